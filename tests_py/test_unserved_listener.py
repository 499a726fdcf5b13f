"""A listener nobody serves (listen() on a manager that never runs a
worker) is reported once, and only then."""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import List

import pytest

import pyiocp
from iocp_helpers import Echo, client, recv_exactly, wait_until


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
