"""Signals: Ctrl-C (SIGINT) and SIGTERM stop serve_forever, a blocked
poll() and a start that is spawning its workers; KeyboardInterrupt from a
callback on the main thread."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Any, Iterator, List, Tuple

import pytest

import pyiocp
from iocp_helpers import (LATE, PYTHON, Echo, Recorder, client, reap, recv_exactly, recv_until_eof, unexpected_stderr,
                          wait_until, worker_threads)
from pyiocp.testing import Client


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
    sender = threading.Timer(0.05, s.sendall, args=(b"boom",))
    try:
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            mgr.serve_forever()
        assert mgr.closed
        assert len(rec.closes) == 1
        assert rec.errors == []  # not an on_error matter
    finally:
        sender.cancel()
        sender.join()  # before the socket closes: it would send on a closed descriptor
        mgr.close()
        s.close()


# ------------------------------------------------------------ Ctrl-C in a real process

@contextlib.contextmanager
def ready_server(script: str) -> Iterator[Tuple["subprocess.Popen[str]", Tuple[str, int]]]:
    """Runs a Python script that prints "ready PORT" once it listens on
    127.0.0.1; yields the process and that address. Its output is left to
    read with communicate()."""
    proc = subprocess.Popen([PYTHON, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready"), (line, proc.stderr.read() if proc.poll() is not None else "")
        yield proc, ("127.0.0.1", int(line.split()[1]))
    finally:
        reap(proc)


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


class _InterruptOnce(logging.Handler):
    """A log handler in which a Ctrl-C lands: its first record raises
    KeyboardInterrupt, as the signal handler would mid-logging."""

    def __init__(self) -> None:
        super().__init__()
        self.fired = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired:
            self.fired = True
            raise KeyboardInterrupt


def _interrupted_serve_forever(handler: pyiocp.Handler, backend: str, **options: Any) -> None:
    """serve_forever on this thread, a client sending one byte 50 ms in:
    it must end with KeyboardInterrupt, the manager closed. SIGINT gets
    Python's handler meanwhile, as in a terminal: a shell's background job
    (CI) starts with SIGINT ignored, and then there is no Ctrl-C to lose
    or to raise again."""
    old_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    mgr = pyiocp.SocketManager(handler, backend=backend, **options)
    lst = mgr.listen("127.0.0.1", 0)
    s = client(lst.address)
    sender = threading.Timer(0.05, s.sendall, args=(b"x",))
    try:
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            mgr.serve_forever()
        assert mgr.closed
    finally:
        sender.join()
        signal.signal(signal.SIGINT, old_sigint)
        s.close()
        mgr.close()


def test_ctrl_c_swallowed_as_unraisable_still_stops_serve_forever(backend: str) -> None:
    """A signal handler's KeyboardInterrupt raised inside a weakref callback
    (or a __del__) that the garbage collector runs on the main thread is
    only printed by Python ("Exception ignored in"); while serve_forever
    runs, it is raised again. Once, a chat server stopped with SIGTERM
    (its handler raising KeyboardInterrupt) ran on this way."""

    class Gone:
        pass

    def interrupted(ref: Any) -> None:
        raise KeyboardInterrupt

    class H(Recorder):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            obj = Gone()
            ref = weakref.ref(obj, interrupted)
            del obj  # the callback runs here; what it raises is unraisable
            assert ref() is None

    hook = sys.unraisablehook
    _interrupted_serve_forever(H(), backend)  # one worker: on_recv runs on this thread
    assert sys.unraisablehook == hook  # put back


@pytest.mark.parametrize("where", ["slow batch warning", "on_error"])
def test_ctrl_c_landing_in_pyiocps_logging_is_not_lost(backend: str, where: str) -> None:
    """A KeyboardInterrupt raised while pyiocp logs on the main thread (a
    slow batch's warning, a callback's exception) still stops
    serve_forever: it was once swallowed as an unraisable exception, and
    the server ran on after Ctrl-C."""

    class H(Recorder):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            time.sleep(0.01)  # over slow_callback_warning
            if where == "on_error":
                raise ValueError("logged by on_error")

    log = logging.getLogger("pyiocp")
    catcher = _InterruptOnce()
    log.addHandler(catcher)
    try:
        _interrupted_serve_forever(H(), backend, slow_callback_warning=0.001)
    finally:
        log.removeHandler(catcher)
    assert catcher.fired



@pytest.mark.linux  # Windows cannot send a child SIGINT (Ctrl-C needs a shared console)
@pytest.mark.parametrize("workers, start", [(1, False), (2, False), (2, True)])
def test_ctrl_c_stops_serve_forever_within_half_a_second(backend: str, workers: int, start: bool) -> None:
    script = SERVER_SCRIPT.format(workers=workers, backend=backend, start=start)
    with ready_server(script) as (proc, address):
        with client(address) as s:  # an open connection at Ctrl-C
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
    with ready_server(script) as (proc, address):
        with Client(address, rcvbuf=4096) as c:
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
    with ready_server(POLL_SCRIPT.format(backend=backend)) as (proc, address):
        with client(address) as s:
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(5)
            elapsed = time.monotonic() - t0
        out, err = proc.communicate(timeout=5)
    assert elapsed < LATE, f"exited {elapsed:.3f} s after SIGINT"
    assert "KeyboardInterrupt" in err
    assert "closed True" in out


# ------------------------------------------------------------ leaks
