"""Lifecycle: serve_forever, Ctrl-C, close from other threads, leaks."""

from __future__ import annotations

import gc
import logging
import signal
import subprocess
import textwrap
import threading
import time
from typing import Any, List, Optional

import pytest

import pyiocp
from iocp_helpers import (LATE, PYTHON, Echo, Recorder, client, fd_count, fds_settled, recv_exactly, recv_until_eof, wait_until,
                          unexpected_stderr, worker_threads)
from pyiocp.testing import Client, ManagerFactory


# ------------------------------------------------------------ serve_forever and close


def _serve_and_close_from(thread_name_of_server: Optional[str], backend: str, workers: int) -> None:
    rec = Recorder(echo=True)
    mgr = pyiocp.SocketManager(rec, backend=backend, workers=workers)
    lst = mgr.listen("127.0.0.1", 0)
    closed_at: List[float] = []
    returned_at: List[float] = []

    def close_soon() -> None:
        with client(lst.address) as s:
            s.sendall(b"up?")
            recv_exactly(s, 3)
        rec.wait_all_closed(1)
        closed_at.append(time.monotonic())
        mgr.close()

    closer = threading.Thread(target=close_soon)
    closer.start()
    try:
        if thread_name_of_server is None:
            mgr.serve_forever()  # on this (the main) thread
            returned_at.append(time.monotonic())
        else:
            def serve() -> None:
                mgr.serve_forever()
                returned_at.append(time.monotonic())

            server = threading.Thread(target=serve, name=thread_name_of_server)
            server.start()
            server.join(5)
            assert not server.is_alive()
    finally:
        closer.join(5)
        mgr.close()
    assert returned_at and closed_at
    assert returned_at[0] - closed_at[0] < 0.5
    assert mgr.closed


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_forever_on_main_thread_returns_after_close_from_another_thread(backend: str, workers: int) -> None:
    assert threading.current_thread() is threading.main_thread()
    _serve_and_close_from(None, backend, workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_forever_on_a_thread_returns_after_close_from_another_thread(backend: str, workers: int) -> None:
    _serve_and_close_from("server", backend, workers)


def test_serve_forever_after_start_waits_for_close(backend: str) -> None:
    mgr = pyiocp.SocketManager(Echo(), backend=backend, workers=2)
    mgr.start()
    returned = threading.Event()

    def serve() -> None:
        mgr.serve_forever()
        returned.set()

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert not returned.wait(0.2)
        t0 = time.monotonic()
        mgr.close()
        assert returned.wait(2)
        assert time.monotonic() - t0 < LATE
    finally:
        mgr.close()
        t.join(5)


def test_close_from_many_threads_at_once(backend: str) -> None:
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)
    mgr.start()
    socks = [client(lst.address) for _ in range(5)]
    try:
        rec.wait_count("accept", 5)
        barrier = threading.Barrier(6)
        errors = []

        def close() -> None:
            try:
                barrier.wait(5)
                mgr.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        ts = [threading.Thread(target=close) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert errors == []
        assert mgr.closed
        assert all(len(rec.closes[c]) == 1 for c in rec.conns)
        assert len(rec.closes) == 5
    finally:
        for s in socks:
            s.close()


def test_close_from_a_callback(backend: str) -> None:
    """close() inside a callback starts the close and returns; the workers
    deliver the remaining on_close and stop; serve_forever returns."""

    class H(Recorder):
        mgr: pyiocp.SocketManager

        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            if data == b"quit":
                self.mgr.close()
                self.record("close-called", conn)

    rec = H()
    mgr = pyiocp.SocketManager(rec, backend=backend)
    rec.mgr = mgr
    lst = mgr.listen("127.0.0.1", 0)
    other = client(lst.address)
    s = client(lst.address)
    try:
        timer = threading.Timer(0.05, s.sendall, args=(b"quit",))
        timer.start()
        mgr.serve_forever()
        timer.join()
        assert rec.kinds().count("close") == 2
        assert recv_until_eof(other) == b""
        assert recv_until_eof(s) == b""
    finally:
        mgr.close()
        other.close()
        s.close()
    assert mgr.closed


def test_close_from_a_callback_run_by_close(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    class H(pyiocp.Handler):
        def on_post(self, payload: Any) -> None:
            mgr.close(timeout=0)  # today: waits 0 + 2 s for its own thread

    mgr = pyiocp.SocketManager(H(), backend=backend)
    mgr.post("close from inside")
    t0 = time.monotonic()
    mgr.close(timeout=1)
    elapsed = time.monotonic() - t0
    assert mgr.closed
    assert "still in a callback" not in caplog.text
    assert elapsed < 1.5, elapsed  # not close()'s 2 s wait for a callback


def test_context_manager_closes_on_exception(backend: str) -> None:
    with pytest.raises(ZeroDivisionError):
        with pyiocp.SocketManager(Echo(), backend=backend) as mgr:
            mgr.listen("127.0.0.1", 0)
            mgr.start()
            1 / 0
    assert mgr.closed
    assert worker_threads() == []


def test_keyboard_interrupt_from_a_callback_stops_serve_forever(backend: str) -> None:
    """On the main thread a BaseException from a callback (what Ctrl-C
    raises in a signal handler) stops serve_forever, closes the manager
    and propagates."""

    class H(Recorder):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            raise KeyboardInterrupt

    rec = H()
    mgr = pyiocp.SocketManager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    s = client(lst.address)
    try:
        threading.Timer(0.05, s.sendall, args=(b"boom",)).start()
        with pytest.raises(KeyboardInterrupt):
            mgr.serve_forever()
        assert mgr.closed
        assert len(rec.closes) == 1
        assert rec.errors == []  # not an on_error matter
    finally:
        mgr.close()
        s.close()


# ------------------------------------------------------------ Ctrl-C in a real process

SERVER_SCRIPT = textwrap.dedent("""
    import sys, pyiocp
    class H(pyiocp.Handler):
        def on_recv(self, conn, data):
            conn.send(data)
        def on_close(self, conn, error):
            print("on_close", error, flush=True)
    mgr = pyiocp.SocketManager(H(), workers={workers}, backend={backend!r})
    lst = mgr.listen("127.0.0.1", 0)
    if {start}:
        mgr.start()
    print("ready", lst.address[1], flush=True)
    try:
        mgr.serve_forever()
    finally:
        print("closed", mgr.closed, flush=True)
""")


@pytest.mark.linux  # Windows cannot send a child SIGINT (Ctrl-C needs a shared console)
@pytest.mark.parametrize("workers, start", [(1, False), (2, False), (2, True)])
def test_ctrl_c_stops_serve_forever_within_half_a_second(backend: str, workers: int, start: bool) -> None:
    script = SERVER_SCRIPT.format(workers=workers, backend=backend, start=start)
    proc = subprocess.Popen([PYTHON, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split()[1])
        with client(("127.0.0.1", port)) as s:  # an open connection at Ctrl-C
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
            if start:
                # The echo came from a worker start() began, which says
                # nothing of the main thread: give it time to get from the
                # "ready" print into serve_forever(), or Ctrl-C lands
                # before it (seen on a loaded machine). Without start() the
                # echo itself proves it: serve_forever() runs the workers.
                time.sleep(0.3)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(5)
            elapsed = time.monotonic() - t0
            assert recv_until_eof(s) == b""
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert elapsed < LATE, f"exited {elapsed:.3f} s after SIGINT"
    assert "KeyboardInterrupt" in err
    assert proc.returncode in (-signal.SIGINT, 130, 1), proc.returncode
    assert "on_close None" in out, (out, err)
    assert "closed True" in out, (out, err)


@pytest.mark.parametrize("how", ["start", "serve_forever"])
def test_ctrl_c_while_the_workers_spawn_closes_at_once(backend: str, how: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C landing while start() or serve_forever() is starting worker
    threads: the KeyboardInterrupt comes out, the manager is closed, and no
    worker that never began is waited for."""
    real_start = threading.Thread.start

    def interrupted_start(self: threading.Thread) -> None:
        if self.name == "pyiocp-worker-1":
            raise KeyboardInterrupt
        real_start(self)

    mgr = pyiocp.SocketManager(Echo(), backend=backend, workers=3)
    lst = mgr.listen("127.0.0.1", 0)
    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        getattr(mgr, how)()
    monkeypatch.undo()
    assert mgr.closed
    mgr.close()
    assert time.monotonic() - t0 < 2.0
    wait_until(lambda: worker_threads() == [], 5, what="the worker threads to end")
    with pytest.raises(pyiocp.ManagerClosed):
        mgr.listen("127.0.0.1", 0)
    del lst


# ------------------------------------------------------------ SIGTERM

SIGTERM_SCRIPT = textwrap.dedent("""
    import pyiocp
    class H(pyiocp.Handler):
        def on_recv(self, conn, data):
            conn.send(data * {repeat})  # far more than the socket buffers hold
        def on_close(self, conn, error):
            print("on_close", error, flush=True)
    mgr = pyiocp.SocketManager(H(), workers={workers}, backend={backend!r}, send_buffer_limit=64 << 20)
    lst = mgr.listen("127.0.0.1", 0)
    if {start}:
        mgr.start()
    print("ready", lst.address[1], flush=True)
    mgr.serve_forever()
    print("returned, closed:", mgr.closed, flush=True)
""")


@pytest.mark.linux  # Windows cannot send a child SIGTERM (os.kill terminates it at once)
@pytest.mark.parametrize("workers, start", [(1, False), (2, False), (2, True)])
def test_sigterm_closes_serve_forever_gracefully(backend: str, workers: int, start: bool) -> None:
    """SIGTERM, what systemd, docker and Kubernetes stop a service with:
    the pending reply of an open connection is flushed and ends with a
    clean EOF, on_close(None) runs, serve_forever returns, exit code 0."""
    request, repeat = b"0123456789" * 8, 100_000  # an 8 MB reply
    script = SIGTERM_SCRIPT.format(workers=workers, backend=backend, start=start, repeat=repeat)
    proc = subprocess.Popen([PYTHON, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), (line, proc.stderr.read() if proc.poll() is not None else "")
        with Client(("127.0.0.1", int(line.split()[1])), rcvbuf=4096) as c:
            c.send(request)
            got = len(c.recv_exactly(1000))  # the reply has begun: most of it is still pending
            if start:
                time.sleep(0.3)  # into serve_forever (see test_ctrl_c_stops_serve_forever_within_half_a_second)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            got += len(c.recv_until_eof())  # a reset would raise
            proc.wait(10)
            elapsed = time.monotonic() - t0
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert got == len(request) * repeat
    assert proc.returncode == 0, (proc.returncode, err)
    assert unexpected_stderr(err) == ""
    assert out.splitlines() == ["on_close None", "returned, closed: True"], out
    assert elapsed < 5, f"exited {elapsed:.3f} s after SIGTERM"


def test_serve_forever_catches_sigterm_only_while_it_runs(backend: str) -> None:
    """Caught on the main thread when the handler is the default one, and
    the default is back afterwards; an application's own handler and a
    serve_forever on another thread are left alone."""
    seen: List[Any] = []

    class H(pyiocp.Handler):
        def on_post(self, payload: pyiocp.SocketManager) -> None:
            seen.append(signal.getsignal(signal.SIGTERM))
            payload.close()

    def serve() -> None:
        mgr = pyiocp.SocketManager(H(), backend=backend)
        mgr.post(mgr)
        mgr.serve_forever()
        assert mgr.closed

    def mine(signum: int, frame: Any) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        serve()
        assert callable(seen[-1])
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        t = threading.Thread(target=serve)
        t.start()
        t.join(5)
        assert seen[-1] is signal.SIG_DFL
        signal.signal(signal.SIGTERM, mine)
        serve()
        assert seen[-1] is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_handler_takes_no_lock(backend: str) -> None:
    """The SIGTERM handler runs between any two bytecodes of the main
    thread, maybe while serve_forever holds the manager's lock or in the
    middle of a callback: it must neither block nor raise there. Called
    so, it starts a graceful close that serve_forever finishes."""
    class H(Recorder):
        def on_post(self, payload: Any) -> None:
            handler = signal.getsignal(signal.SIGTERM)
            if not callable(handler):
                mgr.close()  # serve_forever caught no SIGTERM: end it (the test fails below)
                return
            with mgr._lock:
                handler(signal.SIGTERM, None)
            rec.record("handled", None)

    rec = H(echo=True)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    mgr = pyiocp.SocketManager(rec, backend=backend)
    try:
        lst = mgr.listen("127.0.0.1", 0)
        with client(lst.address) as s:
            s.sendall(b"ping")
            threading.Timer(0.1, mgr.post, args=(None,)).start()
            mgr.serve_forever()
            assert recv_exactly(s, 4) == b"ping"
            assert recv_until_eof(s) == b""
        assert mgr.closed
        assert rec.kinds().count("handled") == 1
        assert [v for c in rec.closes.values() for v in c] == [None]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        mgr.close()
        signal.signal(signal.SIGTERM, previous)


POLL_SCRIPT = textwrap.dedent("""
    import pyiocp
    mgr = pyiocp.SocketManager(None, backend={backend!r})
    lst = mgr.listen("127.0.0.1", 0)
    print("ready", lst.address[1], flush=True)
    try:
        while True:
            for c in mgr.poll():
                if c.kind == "recv":
                    c.conn.send(c.data)
    finally:
        mgr.close()
        print("closed", mgr.closed, flush=True)
""")


@pytest.mark.linux  # Windows cannot send a child SIGINT (Ctrl-C needs a shared console)
def test_ctrl_c_interrupts_a_blocked_poll_within_half_a_second(backend: str) -> None:
    proc = subprocess.Popen([PYTHON, "-c", POLL_SCRIPT.format(backend=backend)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), (line, proc.stderr.read() if proc.poll() is not None else "")
        with client(("127.0.0.1", int(line.split()[1]))) as s:
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(5)
            elapsed = time.monotonic() - t0
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert elapsed < LATE, f"exited {elapsed:.3f} s after SIGINT"
    assert "KeyboardInterrupt" in err
    assert "closed True" in out


# ------------------------------------------------------------ leaks


def test_no_leak_after_1000_connect_close_cycles(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)

    def cycles(n: int) -> None:
        for i in range(n):
            with client(lst.address) as s:
                if i % 10 == 0:
                    s.sendall(b"x")
                    assert recv_exactly(s, 1) == b"x"

    cycles(100)  # warm the pools up
    wait_until(lambda: mgr.stats()["closed"] == 100)
    fds = fd_count()
    cycles(900)
    wait_until(lambda: mgr.stats()["closed"] == 1000)
    wait_until(lambda: fd_count() == fds, what="fds back to the warm count")
    assert mgr.connections == 0
    assert mgr.stats()["stray_completions"] == 0


def test_no_leak_after_outbound_connect_close_cycles(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)
    fds_settled()  # the listener's accepts are posted (on Windows each holds a socket)
    fds = fd_count()
    for i in range(300):
        c = mgr.connect(*lst.address)
        if i % 3 == 0:
            c.close()
        elif i % 3 == 1:
            c.send(b"x")
            c.close()
        else:
            c.abort()
    rec.wait(lambda: len(rec.closes) >= 300 and all(cid in rec.closes for cid in rec.conns), timeout=10)
    wait_until(lambda: mgr.connections == 0)
    wait_until(lambda: fd_count() == fds)
    assert all(len(v) == 1 for v in rec.closes.values())


def test_no_leak_after_50_managers(backend: str) -> None:
    fds = fd_count()
    for i in range(50):
        rec = Recorder(echo=True)
        with pyiocp.SocketManager(rec, backend=backend, workers=1 + i % 2) as mgr:
            lst = mgr.listen("127.0.0.1", 0)
            mgr.start()
            s = client(lst.address)
            s.sendall(b"hi")
            assert recv_exactly(s, 2) == b"hi"
        assert recv_until_eof(s) == b""
        s.close()
        assert len(rec.closes) == 1
    assert worker_threads() == []
    wait_until(lambda: fd_count() == fds, what="fds back after 50 managers")


def test_a_manager_dropped_without_close_releases_its_fds(backend: str) -> None:
    fds = fd_count()
    mgr = pyiocp.SocketManager(Echo(), backend=backend)
    mgr.listen("127.0.0.1", 0)
    assert fd_count() > fds
    del mgr
    gc.collect()
    wait_until(lambda: fd_count() == fds, what="fds released by the collected manager")


# ------------------------------------------------------------ a listener nobody serves

WATCH_DELAY = 0.2  # UNSERVED_WARNING_DELAY in these tests (1 s by default)


@pytest.fixture
def quick_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyiocp._threads, "UNSERVED_WARNING_DELAY", WATCH_DELAY)


def unserved_warnings(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "pyiocp" and r.levelname == "WARNING" and "no worker has run" in r.getMessage()]


def watch_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name == "pyiocp-unserved-watch" and t.is_alive()]


def test_a_listener_nobody_serves_is_reported_once(backend: str, caplog: pytest.LogCaptureFixture,
                                                   quick_watch: None) -> None:
    """listen() on a manager never started: the kernel completes a client's
    connect into the backlog, where it hangs; one warning says so."""
    caplog.set_level(logging.WARNING, logger="pyiocp")
    mgr = pyiocp.SocketManager(Echo(), backend=backend)
    try:
        lst = mgr.listen("127.0.0.1", 0)
        with client(lst.address):
            wait_until(lambda: unserved_warnings(caplog), what="the warning")
            time.sleep(3 * WATCH_DELAY)
    finally:
        mgr.close()
    [msg] = unserved_warnings(caplog)
    assert f"127.0.0.1:{lst.address[1]}" in msg and "start()" in msg, msg
    assert watch_threads() == []


# The usual paths, at the usual delay: a stall of the machine as long as
# the delay is needed to warn there (rightly: no worker ran that long).


def test_no_warning_when_started_after_listen(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pyiocp")
    with pyiocp.SocketManager(Echo(), backend=backend) as mgr:
        lst = mgr.listen("127.0.0.1", 0)
        assert watch_threads() != []
        with client(lst.address) as s:
            mgr.start()
            assert watch_threads() == []  # start() ended the watch: no warning can come
            s.sendall(b"hi")
            assert recv_exactly(s, 2) == b"hi"
    assert unserved_warnings(caplog) == []


def test_no_warning_in_poll_mode_while_polled(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pyiocp")
    with pyiocp.SocketManager(backend=backend) as mgr:
        lst = mgr.listen("127.0.0.1", 0)
        with client(lst.address):
            kinds = [c.kind for c in mgr.poll(0)]
            assert watch_threads() == []  # poll() ended the watch: no warning can come
            deadline = time.monotonic() + 5
            while "accept" not in kinds and time.monotonic() < deadline:
                kinds += [c.kind for c in mgr.poll(0.05)]
            assert "accept" in kinds
    assert unserved_warnings(caplog) == []


def test_no_warning_while_no_one_connects(backend: str, caplog: pytest.LogCaptureFixture, quick_watch: None) -> None:
    caplog.set_level(logging.WARNING, logger="pyiocp")
    with pyiocp.SocketManager(Echo(), backend=backend) as mgr:
        mgr.listen("127.0.0.1", 0)
        time.sleep(3 * WATCH_DELAY)
        assert watch_threads() != []  # still watching
    assert watch_threads() == []  # close() ended it
    assert unserved_warnings(caplog) == []


def test_the_watch_ends_with_a_manager_dropped_without_close(backend: str, quick_watch: None) -> None:
    mgr = pyiocp.SocketManager(Echo(), backend=backend)
    mgr.listen("127.0.0.1", 0)
    del mgr
    gc.collect()
    wait_until(lambda: watch_threads() == [], what="the watch thread to end")
