"""Free-threaded CPython (3.13t): pyiocp keeps the GIL off, and its
invariants hold with callbacks of different connections truly running at
once. The stress tests run on every build (with the GIL they check the
same invariants, taking turns); only on a free-threaded one can they
catch state the GIL used to protect."""

from __future__ import annotations

import collections
import random
import selectors
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from typing import Any, Callable, Counter, Dict, List, Optional, Tuple, cast

import pytest

import pyiocp
from iocp_helpers import LATE, WAIT, Serve, set_linger_reset, wait_until

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded CPython (3.13t)")
def test_import_leaves_the_gil_off() -> None:
    # In a fresh interpreter: an extension that does not declare Py_mod_gil
    # turns the GIL back on at its import, with a RuntimeWarning.
    code = "import sys, pyiocp; print(sys._is_gil_enabled())"
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert r.stderr == ""


# ------------------------------------------------------------------ stress
#
# Each runs for STRESS_SECONDS, loopback only, then checks the invariants of
# DESIGN.md that threads racing each other could break: on_close exactly
# once per connection, no callback on a connection after it, no payload
# lost or delivered twice, a cancelled timer never run, no exception but
# those a caller is told to expect.

STRESS_SECONDS = 1.5
SENDERS = 16


class Tracker(pyiocp.Handler):
    """Echoes; records each connection, its on_close count and anything
    that came after it; errors from callbacks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: Dict[int, pyiocp.Connection] = {}
        self.accepted = 0
        self.closes: Counter[int] = collections.Counter()
        self.after_close: List[Tuple[str, int]] = []
        self.errors: List[BaseException] = []

    def on_accept(self, conn: pyiocp.Connection) -> None:
        with self.lock:
            self.open[conn.id] = conn
            self.accepted += 1

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        with self.lock:
            if self.closes[conn.id]:
                self.after_close.append(("recv", conn.id))
        try:
            conn.send(data)
        except (pyiocp.ConnectionClosed, pyiocp.BufferFull):
            pass

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        with self.lock:
            self.closes[conn.id] += 1
            self.open.pop(conn.id, None)

    def on_error(self, conn: Optional[pyiocp.Connection], exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)
        super().on_error(conn, exc)

    def snapshot(self) -> List[pyiocp.Connection]:
        with self.lock:
            return list(self.open.values())

    def check(self) -> None:
        """Every connection accepted had exactly one on_close, nothing after."""
        with self.lock:
            assert not self.errors, f"callbacks raised: {self.errors[:5]}"
            assert not self.after_close, f"events after on_close: {self.after_close[:5]}"
            twice = {cid: n for cid, n in self.closes.items() if n != 1}
            assert not twice, f"on_close not exactly once: {twice}"
            assert len(self.closes) == self.accepted, f"{self.accepted} accepted, {len(self.closes)} closed"


def run_threads(targets: List[Callable[[], None]], seconds: float, stop: threading.Event) -> List[BaseException]:
    """Runs each target on its own thread until stop is set after seconds;
    returns what they raised."""
    errors: List[BaseException] = []

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # reported to the test, not lost in a thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(fn,), name=f"stress-{i}") for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), f"{t.name} did not stop"
    return errors


class Peers:
    """Client sockets of a server, read by one thread (so the server's
    sends flow), and closed (half of them reset) and replaced over time."""

    def __init__(self, address: Tuple[str, int], n: int, budget: int) -> None:
        self.address = address
        self.sel = selectors.DefaultSelector()
        self.socks: List[socket.socket] = []
        self.budget = budget  # connections opened in all
        self.rng = random.Random(1)
        for _ in range(n):
            self.open_one()

    def open_one(self) -> None:
        s = socket.create_connection(self.address, timeout=WAIT)
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ)
        self.socks.append(s)
        self.budget -= 1

    def close_one(self, s: socket.socket) -> None:
        self.sel.unregister(s)
        self.socks.remove(s)
        if self.rng.random() < 0.5:
            set_linger_reset(s)
        s.close()

    def run(self, stop: threading.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            if not self.socks:  # Windows' select() with nothing to watch is EINVAL
                time.sleep(0.005)
                continue
            for key, _ in self.sel.select(0.005):
                s = cast(socket.socket, key.fileobj)
                try:
                    data = s.recv(1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.close_one(s)
            if time.monotonic() - last > 0.01 and self.socks:
                last = time.monotonic()
                self.close_one(self.rng.choice(self.socks))
                if self.budget > 0:
                    self.open_one()

    def close_all(self) -> None:
        for s in list(self.socks):
            self.close_one(s)
        self.sel.close()


def test_sends_from_16_threads_while_peers_and_the_app_close(serve: Serve, backend: str) -> None:
    """16 threads send to every open connection while the peers close
    (some with a reset) and the application closes and aborts them: sends
    raise only ConnectionClosed or BufferFull, and each connection's
    on_close comes once, with nothing after it."""
    h = Tracker()
    mgr, lst = serve(h, backend=backend, workers=4, send_buffer_limit=1 << 16)
    peers = Peers(lst.address, 48, budget=400)
    wait_until(lambda: h.accepted >= 48, what="48 accepted")
    stop = threading.Event()
    sent = [0] * SENDERS

    def sender(i: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(i)
            payload = bytes([i]) * 512
            while not stop.is_set():
                conns = h.snapshot()
                if not conns:
                    time.sleep(0.001)
                    continue
                conn = rng.choice(conns)
                try:
                    conn.send(payload)
                    sent[i] += 1
                except (pyiocp.ConnectionClosed, pyiocp.BufferFull):
                    pass
                conn.closed, conn.pending, conn.peer  # read while its worker may change them
        return run

    def app_closer() -> None:
        rng = random.Random(99)
        while not stop.is_set():
            conns = h.snapshot()
            if conns:
                conn = rng.choice(conns)
                conn.abort() if rng.random() < 0.3 else conn.close()
            time.sleep(0.003)

    errors = run_threads([sender(i) for i in range(SENDERS)] + [app_closer, lambda: peers.run(stop)],
                         STRESS_SECONDS, stop)
    peers.close_all()
    assert not errors, errors
    wait_until(lambda: mgr.stats()["connections"] == 0, what="every connection closed")
    wait_until(lambda: len(h.closes) == h.accepted, what="every on_close")
    h.check()
    assert sum(sent) > 0
    assert h.accepted > 48


def test_post_storm(serve: Serve, backend: str) -> None:
    """8 threads post 2,000 payloads each to 4 workers: every payload comes
    to on_post once, the same object, and none is left referenced."""
    threads_n, per = 8, 2000

    class Posts(pyiocp.Handler):
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.got: Dict[Tuple[int, int], int] = {}

        def on_post(self, payload: Any) -> None:
            with self.lock:
                self.got[payload[:2]] = self.got.get(payload[:2], 0) + 1
            payload[2].append(threading.get_ident())

    h = Posts()
    mgr, _ = serve(h, backend=backend, workers=4)
    witnesses: List[List[int]] = []

    def poster(t: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(per):
                box: List[int] = []
                if i % 100 == 0:
                    witnesses.append(box)
                mgr.post((t, i, box))
        return run

    errors = run_threads([poster(t) for t in range(threads_n)], 0, threading.Event())  # each to its end
    assert not errors, errors
    wait_until(lambda: len(h.got) == threads_n * per and all(len(box) == 1 for box in witnesses),
               timeout=LATE * 5, what="every post")
    with h.lock:
        twice = {k: n for k, n in h.got.items() if n != 1}
    assert not twice, f"posts delivered more than once: {list(twice.items())[:5]}"

    def refs(boxes: List[List[int]]) -> List[int]:
        return [sys.getrefcount(box) for box in boxes]

    # Referenced as a list that was never posted is: the engine kept none.
    wait_until(lambda: set(refs(witnesses)) == set(refs([[]])), what="the payloads released")


def test_get_stats_and_close_race_the_callbacks(serve: Serve, backend: str) -> None:
    """On 4 workers, while clients connect, send and close: other threads
    call get(), stats(), .connections and read every Connection's
    properties, and then close() lands in the middle of it all. None of
    them raises (get() is None once closed, stats() the final figures),
    and every connection's on_close comes once."""
    h = Tracker()
    mgr, lst = serve(h, backend=backend, workers=4)
    stop = threading.Event()
    closed = threading.Event()
    looked = [0]

    def churn(i: int) -> Callable[[], None]:
        def run() -> None:
            while not stop.is_set() and not closed.is_set():
                try:
                    with socket.create_connection(lst.address, timeout=WAIT) as s:
                        s.sendall(b"x" * 100)
                        s.recv(100)
                except OSError:
                    pass  # the listener closed under it
        return run

    def observer(i: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(i)
            ids: List[int] = []
            while not stop.is_set():
                ids.extend(c.id for c in h.snapshot()[:4])
                del ids[:-64]
                for cid in rng.sample(ids, min(8, len(ids))):
                    conn = mgr.get(cid)
                    if conn is not None:
                        assert conn.id == cid
                        conn.closed, conn.pending, conn.peer, conn.local, repr(conn)
                stats = mgr.stats()
                assert stats["connections"] >= 0
                mgr.connections
                looked[0] += 1
        return run

    def closer() -> None:
        stop.wait(STRESS_SECONDS / 2)
        mgr.close()
        closed.set()
        assert mgr.get(1) is None

    errors = run_threads([churn(i) for i in range(3)] + [observer(i) for i in range(3)] + [closer],
                         STRESS_SECONDS, stop)
    assert not errors, errors
    assert closed.is_set() and mgr.closed
    assert mgr.stats()["connections"] == 0
    h.check()
    assert h.accepted > 0 and looked[0] > 0


def test_a_cancelled_timer_never_runs(serve: Serve, backend: str) -> None:
    """Timers due at once on 4 workers, cancelled from other threads as
    they come due: each one either ran (and cancel() was too late:
    cancelled() is False) or was cancelled (and never runs), never both,
    never neither."""
    h = Tracker()
    mgr, _ = serve(h, backend=backend, workers=4)
    ran: Dict[int, int] = {}
    lock = threading.Lock()
    made: List[pyiocp.Timer] = []
    stop = threading.Event()

    def fire(n: int) -> None:
        with lock:
            ran[n] = ran.get(n, 0) + 1

    def scheduler(k: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(20_000):
                if stop.is_set():
                    return
                n = k * 1_000_000 + i  # its own numbers
                t = mgr.call_later(0, fire, n)
                made.append(t)
        return run

    def canceller(k: int) -> Callable[[], None]:
        def run() -> None:
            i = k  # every other timer, as they are made
            while not stop.is_set():
                if i < len(made):
                    made[i].cancel()
                    i += 2
                else:
                    time.sleep(0.0005)
        return run

    errors = run_threads([scheduler(0), scheduler(1), canceller(0), canceller(1)], STRESS_SECONDS, stop)
    assert not errors, errors
    for t in made:  # what the cancellers left
        t.cancel()
    wait_until(lambda: all(t.cancelled() or _ran(ran, lock, t) for t in made),
               what="every timer settled")
    with lock:
        both = [t for t in made if t.cancelled() and t.args[0] in ran]
        twice = {n: k for n, k in ran.items() if k != 1}
    assert not both, f"cancelled timers that ran: {both[:5]}"
    assert not twice, f"timers run more than once: {list(twice.items())[:5]}"
    assert len(made) > 100
    h.check()


def _ran(ran: Dict[int, int], lock: threading.Lock, t: pyiocp.Timer) -> bool:
    with lock:
        return t.args[0] in ran
