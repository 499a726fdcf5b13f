"""The pytest plugin, as a user's project sees it (pytester): the fixtures
work, the fault helpers find real bugs, and a leak fails the test (a
failure, not an error) with a message that says what leaked."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from typing import Dict, List

import pytest

from iocp_helpers import REPO, RESETS_LOST

pytest_plugins = ["pytester"]

FAST_SETTLE = "[pytest]\niocp_settle_timeout = 0.3\n"

HANDLERS = f'''
import threading
import pyiocp
from pyiocp.testing import faults

RESETS_LOST = {RESETS_LOST!r}  # under Wine a reset reads as the end of the stream

class Echo(pyiocp.Handler):
    def on_recv(self, conn, data):
        conn.send(data)

class NeverCloses(Echo):
    """Ignores the peer's FIN: the connection stays open for ever."""
    def on_eof(self, conn):
        pass
'''


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(FAST_SETTLE)
    pytester.makepyfile(test_user=HANDLERS + textwrap.dedent(source))
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_the_plugin_is_registered_through_its_entry_point(pytester: pytest.Pytester) -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert any(ep.name == "pyiocp" and ep.value == "pyiocp.testing.plugin" for ep in points)
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    for name in ("iocp_manager", "iocp_server", "iocp_client", "expect_events"):
        result.stdout.fnmatch_lines([f"{name}*"])
    result.stdout.fnmatch_lines(["*iocp_server(handler, *"])


# The docs' tests that expect a peer's reset: under Wine a reset may read
# as the end of the stream (RESETS_LOST), so there they can fail for Wine.
DOCS_RESET_TESTS = ("test_a_peer_that_resets_mid_stream", "test_a_client_that_resets")


def test_the_example_test_file_of_the_docs_passes(pytester: pytest.Pytester) -> None:
    """docs/test_my_server.py, copied into a project of its own (under
    another module name: this session may have imported the original)."""
    pytester.makepyfile(test_copied_from_the_docs=(REPO / "docs" / "test_my_server.py").read_text())
    args = ["-p", "no:cacheprovider", "-v"]
    if RESETS_LOST:
        args += ["-k", " and ".join(f"not {name}" for name in DOCS_RESET_TESTS)]
    result = pytester.runpytest(*args)
    if RESETS_LOST:
        result.assert_outcomes(passed=13 - len(DOCS_RESET_TESTS), deselected=len(DOCS_RESET_TESTS))
    else:
        result.assert_outcomes(passed=13)


def test_a_server_that_keeps_connections_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, '''
        def test_leaky(iocp_server, iocp_client):
            server = iocp_server(NeverCloses)
            client = iocp_client(server.address)
            client.send(b"hi")
            assert client.recv_exactly(2) == b"hi"
    ''')
    result.assert_outcomes(failed=1)  # failed, not errors=1
    result.stdout.fnmatch_lines([
        "*pyiocp: the test left things behind:",
        "*<pyiocp.testing.Server 127.0.0.1:* NeverCloses> still had 1 connection(s) open 0.3 s after the test "
        "ended and its clients closed: the server never closes them",
    ])
    assert "error" not in result.stdout.lines[-1]


def test_a_leaked_file_descriptor_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, '''
        import os, pytest
        kept = []

        class OpensAFile(Echo):
            def on_accept(self, conn):
                kept.append(open(os.devnull))  # and never closes it

        @pytest.fixture(autouse=True, scope="module")
        def close_them_after_the_check():
            yield
            for f in kept:
                f.close()

        def test_fd(iocp_server, iocp_client):
            client = iocp_client(iocp_server(OpensAFile))
            client.send(b"x")
            client.recv_exactly(1)
    ''')
    result.assert_outcomes(failed=1)
    devnull = "char device" if sys.platform == "win32" else "/dev/null"
    result.stdout.fnmatch_lines([f"*1 file descriptor(s) opened during the test still open after 0.3 s: * -> {devnull}"])


def test_a_leaked_thread_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, '''
        import pytest
        stop = threading.Event()

        @pytest.fixture(autouse=True, scope="module")
        def stop_it_after_the_check():
            yield
            stop.set()

        def test_thread(iocp_server):
            iocp_server(Echo)
            threading.Thread(target=stop.wait, name="forgotten", daemon=True).start()
    ''')
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 thread(s) started during the test still running after 0.3 s: 'forgotten'"])


def test_a_manager_left_open_is_closed_and_its_leaks_reported(pytester: pytest.Pytester) -> None:
    result = run(pytester, '''
        import socket
        kept = []

        def test_clean(iocp_manager):
            mgr = iocp_manager(Echo())
            lst = mgr.listen("127.0.0.1", 0)
            socket.create_connection(lst.address).close()

        def test_client_socket_kept(iocp_manager):
            mgr = iocp_manager(Echo())
            kept.append(socket.create_connection(mgr.listen("127.0.0.1", 0).address))

        def test_last():
            kept.pop().close()
    ''')
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_client_socket_kept*", "*file descriptor(s) opened during the test*socket*"])


def test_expected_events_that_do_not_happen_fail_with_a_diff(pytester: pytest.Pytester) -> None:
    result = run(pytester, '''
        def test_given_up_front(iocp_server, iocp_client, expect_events):
            server = iocp_server(expect_events(Echo, [("accept",), ("recv", b"hello"), ("close", None)]))
            client = iocp_client(server)
            client.send(b"help")
            client.recv_exactly(4)

        def test_asserted(iocp_server, iocp_client, expect_events):
            events = expect_events(Echo())
            client = iocp_client(iocp_server(events))
            client.send(b"hi")
            client.recv_exactly(2)
            client.close()  # a clean close, where the test wants a timeout
            events.assert_events([("accept",), ("recv", b"hi"), ("close", TimeoutError)])
    ''')
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert textwrap.dedent("""\
        pyiocp: the test left things behind:
          - the events of connection 0 are not the expected ones
          expected: [('accept',), ('recv', b'hello'), ('close', None)]
          actual:   [('accept',), ('recv', b'help'), ('close', None)]
          first difference at index 1: expected ('recv', b'hello'), got ('recv', b'help')
        """) in out
    assert "first difference at index 2: expected ('close', <class 'TimeoutError'>), got ('close', None)" in out


def test_a_failing_test_is_reported_once(pytester: pytest.Pytester) -> None:
    """The leak check is for tests that passed: a failing test shows its
    own failure only, and what it left is still cleaned up."""
    result = run(pytester, '''
        def test_fails(iocp_server, iocp_client):
            client = iocp_client(iocp_server(NeverCloses))
            client.send(b"x")
            assert client.recv_exactly(1) == b"y"

        def test_next_is_clean(iocp_server):
            iocp_server(Echo)
    ''')
    result.assert_outcomes(passed=1, failed=1)
    assert "left things behind" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*assert b'x' == b'y'*"])


def test_the_fault_helpers_find_real_bugs(pytester: pytest.Pytester) -> None:
    result = run(pytester, '''
        import pytest
        import pyiocp

        class Naive(Echo):
            """Ignores BufferFull: a slow reader makes its on_recv raise,
            and the default on_error closes the connection."""

        class NoHalfClose(Echo):
            """Resets at once on EOF, dropping its pending reply."""
            def on_eof(self, conn):
                conn.abort()

        class OneShot(pyiocp.Handler):
            """Expects a whole request in one recv: a trickle breaks it."""
            def on_recv(self, conn, data):
                conn.send(b"ok\\n" if data == b"PING\\n" else b"?\\n")

        def test_slow_reader(iocp_server):
            server = iocp_server(Naive, send_buffer_limit=64 << 10)
            with pytest.raises(EOFError, match="the server closed the connection after"):
                faults.slow_reader(server, bytes(4 << 20), expect=4 << 20)

        def test_half_close(iocp_server):
            server = iocp_server(NoHalfClose)
            try:
                faults.half_close(server, bytes(1 << 20))
            except ConnectionResetError:
                return
            assert RESETS_LOST, "no reset: the server answered after the FIN"

        def test_trickle(iocp_server):
            # 20 ms between bytes: a server slow to take the connection
            # (under Wine, on a loaded machine) must not find them all
            # waiting in its first read.
            server = iocp_server(OneShot)
            assert faults.trickle(server, b"PING\\n", expect=2, delay=0.02) == b"?\\n"
    ''', "--log-level=CRITICAL")
    result.assert_outcomes(passed=3)


def test_burst_against_a_connection_cap(pytester: pytest.Pytester) -> None:
    result = run(pytester, '''
        def test_burst(iocp_server):
            server = iocp_server(Echo, max_connections=10)
            r = faults.burst(server, 50, data=b"x", expect=1, hold=0.1)
            # The ten get their echo; the forty over the cap are accepted and
            # closed at once (as they connect, or before their reply).
            assert r.replies.count(b"x") == 10
            assert len(r.errors) == 40
            assert all("closed after 0 of 1 bytes" in e or "reset" in e.lower() for e in r.errors), r.errors
            assert server.manager.stats()["rejected"] == 40
    ''')
    result.assert_outcomes(passed=1)


def test_iocp_client_returns_once_the_server_accepted(pytester: pytest.Pytester) -> None:
    """The test a user writes first: connect clients, then assert what the
    server's on_accept did. A slow on_accept makes the race certain: the
    client must not return before the server's on_accept has."""
    result = run(pytester, '''
        import time
        import pytest

        class Counts(Echo):
            def __init__(self):
                self.accepted = []

            def on_accept(self, conn):
                time.sleep(0.05)
                self.accepted.append(conn)

        @pytest.mark.parametrize("workers", [1, 2])
        def test_three_clients(iocp_server, iocp_client, workers):
            server = iocp_server(Counts(), workers=workers)
            clients = [iocp_client(server.address) for _ in range(3)]
            assert len(server.handler.accepted) == 3
            assert sorted(c.peer for c in server.handler.accepted) == sorted(c.local for c in clients)

        def test_ipv6_and_a_server_object(iocp_server, iocp_client):
            server = iocp_server(Counts(), host="::1")
            iocp_client(server)
            assert len(server.handler.accepted) == 1
    ''')
    result.assert_outcomes(passed=3)


def test_iocp_client_does_not_wait_for_an_accept_that_will_not_come(pytester: pytest.Pytester) -> None:
    """A connection over max_connections gets no on_accept; one that the
    server closes in on_accept is announced all the same; a blocked
    on_accept is a TimeoutError, and wait_accepted=False does not wait."""
    result = run(pytester, '''
        import time
        import pytest

        class Banner(Echo):
            def on_accept(self, conn):
                conn.send(b"bye\\\\n")
                conn.close()
                time.sleep(0.05)
                self.done = True

        def test_over_the_cap(iocp_server, iocp_client):
            server = iocp_server(Echo, max_connections=1)
            iocp_client(server)
            t0 = time.monotonic()
            # Accepted and closed at once, without on_accept (a reset may
            # even reach the client before its connect returns).
            with pytest.raises((EOFError, ConnectionResetError)):
                iocp_client(server).recv_exactly(1)
            assert time.monotonic() - t0 < 2

        def test_closed_in_on_accept(iocp_server, iocp_client):
            server = iocp_server(Banner)
            client = iocp_client(server)
            assert server.handler.done
            assert client.recv_until_eof() == b"bye\\\\n"

        def test_blocked_on_accept(iocp_server, iocp_client):
            go = threading.Event()

            class Blocks(Echo):
                def on_accept(self, conn):
                    go.wait(5)

            server = iocp_server(Blocks)
            with pytest.raises(TimeoutError, match="on_accept for .* has not returned after 0.2 s"):
                iocp_client(server, timeout=0.2)
            client = iocp_client(server, wait_accepted=False)
            go.set()
            client.send(b"x")
            assert client.recv_exactly(1) == b"x"
    ''')
    result.assert_outcomes(passed=3)


class _LateAccepts:
    """A server as the leak check sees it when the test's last clients are
    still in its accept queue: no connection when it first looks, then the
    late ones, accepted after their clients left (under Wine, where each
    accept is a round trip to the wineserver, test_burst met this)."""

    def __init__(self, counts: List[int]) -> None:
        self.counts = counts
        self.manager = self
        self.closed = False

    @property
    def connections(self) -> int:
        return self.counts.pop(0) if len(self.counts) > 1 else self.counts[0]

    def close(self) -> None:
        self.closed = True

    def stats(self) -> Dict[str, int]:
        return {"connections": 0}


def test_connections_accepted_after_the_check_are_not_a_leak() -> None:
    from pyiocp.testing.plugin import _TestState

    state = _TestState(settle=0.3)
    state.servers.append(_LateAccepts([0, 2]))  # type: ignore[arg-type]
    assert state.finish() == []
    kept = _TestState(settle=0.3)
    kept.servers.append(_LateAccepts([2]))  # type: ignore[arg-type]
    assert ["still had 2 connection(s) open 0.3 s after" in p for p in kept.finish()] == [True]
