"""Threads: callbacks run on the Python worker threads (or on the caller of
serve_forever), send() is safe from any thread and each send's bytes stay
contiguous, a blocking handler stalls only its own worker."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import random
import re
import struct
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import pyiocp
from iocp_helpers import PYTHON, Recorder, client, recv_exactly, recv_until_eof, wait_until
from pyiocp.testing import ManagerFactory


@pytest.mark.parametrize("workers", [1, 3])
def test_callbacks_run_on_worker_threads_after_start(iocp_manager: ManagerFactory, backend: str, workers: int) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend, workers=workers)
    names = sorted(t.name for t in threading.enumerate() if t.name.startswith("pyiocp-worker-"))
    assert names == sorted(f"pyiocp-worker-{i}" for i in range(workers))
    lst = mgr.listen("127.0.0.1", 0)
    for _ in range(workers):
        with client(lst.address) as s:
            s.sendall(b"hi")
            assert recv_exactly(s, 2) == b"hi"
    mgr.post("p")
    out = mgr.connect(*lst.address)
    rec.wait(lambda: "connect" in rec.kinds(out.id))
    out.close()
    rec.wait_all_closed(workers + 2)
    rec.wait_count("post", 1)
    threads = {t for *_, t in rec.events}
    assert all(t.startswith("pyiocp-worker-") for t in threads), threads
    assert threading.main_thread().name not in threads


def test_serve_forever_runs_worker_0_on_the_calling_thread(backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = pyiocp.SocketManager(rec, backend=backend)
    errors = []

    def serve() -> None:
        try:
            mgr.serve_forever()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    server = threading.Thread(target=serve, name="the-server-thread")
    try:
        lst = mgr.listen("127.0.0.1", 0)
        server.start()
        with client(lst.address) as s:
            s.sendall(b"abc")
            assert recv_exactly(s, 3) == b"abc"
        rec.wait_all_closed(1)
        assert {t for *_, t in rec.events} == {"the-server-thread"}
        # serve_forever started no thread of its own for worker 0
        assert not [t for t in threading.enumerate() if t.name.startswith("pyiocp-worker-")]
    finally:
        mgr.close()
        server.join(5)
    assert not server.is_alive()
    assert errors == []


def test_serve_forever_with_two_workers(backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = pyiocp.SocketManager(rec, backend=backend, workers=2)
    server = threading.Thread(target=mgr.serve_forever, name="serving")
    try:
        lst = mgr.listen("127.0.0.1", 0)
        server.start()
        for _ in range(4):
            with client(lst.address) as s:
                s.sendall(b"x")
                assert recv_exactly(s, 1) == b"x"
        rec.wait_all_closed(4)
        assert {t for *_, t in rec.events} == {"serving", "pyiocp-worker-1"}
    finally:
        mgr.close()
        server.join(5)
    assert not server.is_alive()


FRAME = struct.Struct(">BII")  # thread, sequence, length


def test_concurrent_send_from_8_threads_keeps_each_send_contiguous(iocp_manager: ManagerFactory, backend: str) -> None:
    nthreads, nframes = 8, 150
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend, send_buffer_limit=256 << 20)
    lst = mgr.listen("127.0.0.1", 0)
    s = client(lst.address, timeout=10)
    try:
        conn = rec.first_conn()
        sizes = {}
        rng = random.Random(13)
        for t in range(nthreads):
            sizes[t] = [rng.randint(1, 64 << 10) for _ in range(nframes)]
        total = sum(FRAME.size + n for v in sizes.values() for n in v)
        barrier = threading.Barrier(nthreads)
        failures = []

        def sender(t: int) -> None:
            try:
                barrier.wait(5)
                for i, n in enumerate(sizes[t]):
                    conn.send(FRAME.pack(t, i, n) + bytes([(t * 31 + i) % 256]) * n)
            except Exception as exc:  # noqa: BLE001
                failures.append(repr(exc))

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(nthreads)]
        for th in threads:
            th.start()
        got = recv_exactly(s, total)
        for th in threads:
            th.join(10)
        assert failures == []
        nxt = [0] * nthreads
        off = 0
        while off < len(got):
            t, i, n = FRAME.unpack_from(got, off)
            off += FRAME.size
            assert t < nthreads, f"garbage frame header at {off - FRAME.size}"
            assert i == nxt[t], f"thread {t}: frame {i}, expected {nxt[t]}"
            body = got[off:off + n]
            assert body == bytes([(t * 31 + i) % 256]) * n, f"thread {t} frame {i} interleaved"
            off += n
            nxt[t] += 1
        assert nxt == [nframes] * nthreads
        conn.close()
        assert recv_until_eof(s) == b""
    finally:
        s.close()
    rec.wait_all_closed(1)


class Blocker(Recorder):
    """Its on_recv of b"block" sets blocked and holds its worker until gate
    is set (a minute at most); with echo=True it echoes everything."""

    def __init__(self, echo: bool) -> None:
        super().__init__(echo=echo)
        self.gate = threading.Event()
        self.blocked = threading.Event()

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        if data == b"block":
            self.blocked.set()
            self.gate.wait(60)
        super().on_recv(conn, data)


def test_a_blocking_handler_stalls_only_its_own_worker(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Blocker(echo=True)
    gate, blocked = rec.gate, rec.blocked
    mgr = iocp_manager(rec, backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)
    a = client(lst.address)
    b = client(lst.address)  # round-robin: the other worker
    try:
        rec.wait_count("accept", 2)
        a.sendall(b"block")
        assert blocked.wait(5)
        for i in range(20):
            b.sendall(b"%02d" % i)
            assert recv_exactly(b, 2) == b"%02d" % i
        gate.set()
        assert recv_exactly(a, 5) == b"block"
    finally:
        gate.set()
        a.close()
        b.close()
    rec.wait_all_closed(2)


def test_reply_from_a_thread_pool(iocp_manager: ManagerFactory, backend: str) -> None:
    """Lesson 11: long work leaves the worker; the reply is sent from the
    pool's thread."""
    pool = concurrent.futures.ThreadPoolExecutor(4)

    class H(pyiocp.Handler):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            pool.submit(lambda: conn.send(data.upper()))

    try:
        mgr = iocp_manager(H(), backend=backend)
        lst = mgr.listen("127.0.0.1", 0)
        with client(lst.address) as s:
            for i in range(50):
                s.sendall(b"msg%02d" % i)
                assert recv_exactly(s, 5) == b"MSG%02d" % i
        wait_until(lambda: mgr.stats()["closed"] == 1)
    finally:
        pool.shutdown(wait=True)


@pytest.mark.linux  # iocp leaves every write to the worker (docs/design.md, "Sending")
@pytest.mark.parametrize("how", ["send", "send_frame"])
def test_a_send_from_another_thread_does_not_wait_for_its_worker(iocp_manager: ManagerFactory, backend: str,
                                                                 how: str) -> None:
    """A send (or a frame) from a thread that runs no callbacks is written
    on that thread: it leaves while the connection's only worker is held up
    in another connection's callback (it used to wait for the worker)."""
    rec = Blocker(echo=False)
    gate, blocked = rec.gate, rec.blocked
    mgr = iocp_manager(rec, backend=backend, workers=1)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines() if how == "send_frame" else None)
    b = client(lst.address)  # accepted first: rec.first_conn()
    c = client(lst.address)
    try:
        rec.wait_count("accept", 2)
        c.sendall(b"block\n" if how == "send_frame" else b"block")  # the line is b"block"
        assert blocked.wait(10)
        getattr(rec.first_conn(), how)(b"from this thread")
        b.settimeout(10)  # well before the gate opens by itself
        want = b"from this thread" + (b"\n" if how == "send_frame" else b"")
        assert recv_exactly(b, len(want)) == want
    finally:
        gate.set()
        b.close()
        c.close()
    rec.wait_all_closed(2)


def _on_one_cpu(code: str, env: Dict[str, str]) -> str:
    """What code prints, run on CPU 0 alone with env (and no GOMAXPROCS but env's)."""
    base = {k: v for k, v in os.environ.items() if k != "GOMAXPROCS"}
    r = subprocess.run(["taskset", "-c", "0", PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**base, **env})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.linux  # taskset
@pytest.mark.parametrize("env, want", [({}, "4 6 4 1"), ({"GOMAXPROCS": "1"}, "1 1 1 1")],
                         ids=["default", "GOMAXPROCS=1"])
def test_managers_give_go_a_p_per_worker_and_one_more(env: Dict[str, str], want: str) -> None:
    """On one CPU (taskset here; a one-CPU container alike) Go has one P. A
    worker waiting in a system call keeps its P, so live workers get one
    each, and one more for the thread holding the GIL: 3 workers, 4 Ps;
    then 3 + 2, 6; when they close, back to the runtime's own number.
    GOMAXPROCS set by hand rules."""
    code = ("import pyiocp, pyiocp._pyiocp as ext\n"
            "a = pyiocp.SocketManager(pyiocp.Handler(), workers=3); n = [ext.go_maxprocs()]\n"
            "b = pyiocp.SocketManager(pyiocp.Handler(), workers=2); n.append(ext.go_maxprocs())\n"
            "b.close(); n.append(ext.go_maxprocs()); a.close(); n.append(ext.go_maxprocs())\n"
            "print(*n)")
    assert _on_one_cpu(code, env) == want


@pytest.mark.linux  # taskset
@pytest.mark.parametrize("env, want", [({}, "2 6 2 1"), ({"GOMAXPROCS": "1"}, "1 1 1 1")],
                         ids=["default", "GOMAXPROCS=1"])
def test_go_keeps_a_p_for_each_thread_that_calls_in_and_one_more(env: Dict[str, str], want: str) -> None:
    """A thread back from a call into Go keeps its P, as a thread in a
    system call does, until it calls again: five threads that posted hold
    five, so Go keeps six on one CPU (and a spare one stays idle); a
    thread's count ends with it: after they end, one more caller makes two
    again (its P and the spare); with no manager left, the runtime's own."""
    code = ("import threading, pyiocp, pyiocp._pyiocp as ext\n"
            "m = pyiocp.SocketManager(None); n = [ext.go_maxprocs()]\n"
            "met, done = threading.Barrier(6), threading.Event()\n"
            "def caller():\n"
            "    m.post(None); met.wait(); done.wait()\n"
            "ts = [threading.Thread(target=caller) for _ in range(5)]\n"
            "for t in ts: t.start()\n"
            "met.wait(); n.append(ext.go_maxprocs()); done.set()\n"
            "for t in ts: t.join()\n"
            "t = threading.Thread(target=m.post, args=(None,)); t.start(); t.join(); n.append(ext.go_maxprocs())\n"
            "m.close(); n.append(ext.go_maxprocs())\n"
            "print(*n)")
    assert _on_one_cpu(code, env) == want


def test_start_twice_raises(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Recorder(), backend=backend)
    with pytest.raises(RuntimeError):
        mgr.start()


def _slow_warnings(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "pyiocp" and r.levelno == logging.WARNING and "slow_callback_warning" in r.getMessage()]


@pytest.mark.parametrize("setting, sleep", [(None, 0.3), (0.02, 0.06)])
def test_a_slow_callback_is_logged_once_with_its_name(iocp_manager: ManagerFactory, backend: str,
                                                      caplog: pytest.LogCaptureFixture, setting: Optional[float],
                                                      sleep: float) -> None:
    """A callback that holds its worker past slow_callback_warning (0.1 s
    by default) is named in one warning, with the time of its batch. (A
    threshold under 40 ms is timed with the fine clock, not the coarse.)"""
    caplog.set_level(logging.WARNING, logger="pyiocp")

    class Slow(pyiocp.Handler):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            time.sleep(sleep)
            conn.send(data)

    options: Dict[str, Any] = {} if setting is None else {"slow_callback_warning": setting}
    mgr = iocp_manager(Slow(), backend=backend, **options)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address) as s:
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
    mgr.close()
    (message,) = _slow_warnings(caplog)
    m = re.fullmatch(r"Slow\.on_recv took (\d+\.\d{3}) s \(one batch of callbacks: (\d+\.\d{3}) s; "
                     r"slow_callback_warning=(\S+)\)", message)
    assert m, message
    took, batch = float(m.group(1)), float(m.group(2))
    assert m.group(3) == ("0.1" if setting is None else repr(setting))
    assert sleep - 0.005 <= took <= batch < 5, message


@pytest.mark.parametrize("setting", [None, 0, 0.5])
def test_slow_callback_warning_off_or_above(iocp_manager: ManagerFactory, backend: str,
                                            caplog: pytest.LogCaptureFixture, setting: Optional[float]) -> None:
    caplog.set_level(logging.WARNING, logger="pyiocp")

    class Slowish(pyiocp.Handler):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            time.sleep(0.2)
            conn.send(data)

    mgr = iocp_manager(Slowish(), backend=backend, slow_callback_warning=setting)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address) as s:
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
    mgr.close()
    assert _slow_warnings(caplog) == []


def test_fast_callbacks_log_nothing(iocp_manager: ManagerFactory, backend: str,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pyiocp")
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)
    socks = [client(lst.address) for _ in range(4)]
    try:
        for i in range(200):
            for s in socks:
                s.sendall(b"%03d" % i)
            for s in socks:
                assert recv_exactly(s, 3) == b"%03d" % i
    finally:
        for s in socks:
            s.close()
    rec.wait_all_closed(4)
    mgr.close()
    assert _slow_warnings(caplog) == []
