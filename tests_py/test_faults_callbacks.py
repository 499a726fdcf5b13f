"""Fault suite, callbacks and the C glue: callbacks that raise in every
callback kind, and the reference-count scenario (a million messages
through callbacks with RSS and sys.getallocatedblocks() flat). Sizes:
pick(CI, soak); see test_faults_harness."""

from __future__ import annotations

import itertools
import logging
import socket
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import pyiocp
from pyiocp._pyiocp import go_allocations
from test_faults_harness import (
    LOOPBACK, Closes, ControlClient, ScenarioFactory, connect, mib, pick, recv_exactly, recv_until_eof, rss,
    wait_until,
)
from test_faults_harness import scenario  # noqa: F401 - the fixture, for pytest to find

KINDS = ["on_accept", "on_connect", "on_recv", "on_send", "on_drain", "on_eof", "on_close", "on_post", "on_error"]
DRAIN = b"d" * (48 << 10)  # over the 16 KiB low watermark of a 64 KiB send buffer


class Boom(Exception):
    pass


class Raiser(pyiocp.Handler):
    """Every callback kind overridden; the one named by raise_in raises Boom
    (on_error: it raises RuntimeError for the Boom of on_recv). Echoes;
    b"drain" is answered with DRAIN. Connections whose first bytes are
    b"S" (the control client) are spared."""

    def __init__(self) -> None:
        self.raise_in: Optional[str] = None
        self.closes = Closes()
        self.lock = threading.Lock()
        self.spared: Set[int] = set()
        self.errors: List[Tuple[str, Optional[int], BaseException]] = []
        self.posts = 0

    def maybe(self, kind: str, conn: Optional[pyiocp.Connection]) -> None:
        if self.raise_in == kind and (conn is None or conn.id not in self.spared):
            raise Boom(kind)

    def on_accept(self, conn: pyiocp.Connection) -> None:
        self.closes.open(conn)
        self.maybe("on_accept", conn)

    def on_connect(self, conn: pyiocp.Connection) -> None:
        self.closes.open(conn)
        self.maybe("on_connect", conn)

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        if data.startswith(b"S") and conn.id not in self.spared:
            with self.lock:
                self.spared.add(conn.id)
            data = data[1:]
        if self.raise_in == "on_error" and conn.id not in self.spared:
            raise Boom("on_recv, for on_error to raise")
        self.maybe("on_recv", conn)
        if data == b"drain":
            conn.send(DRAIN)
        elif data:
            conn.send(data)

    def on_send(self, conn: pyiocp.Connection, nbytes: int) -> None:
        self.maybe("on_send", conn)

    def on_drain(self, conn: pyiocp.Connection) -> None:
        self.maybe("on_drain", conn)

    def on_eof(self, conn: pyiocp.Connection) -> None:
        self.maybe("on_eof", conn)
        conn.close()

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        self.closes.close(conn, error)
        self.maybe("on_close", conn)

    def on_post(self, payload: Any) -> None:
        with self.lock:
            self.posts += 1
        self.maybe("on_post", None)

    def on_error(self, conn: Optional[pyiocp.Connection], exc: BaseException) -> None:
        with self.lock:
            self.errors.append((str(self.raise_in), conn.id if conn is not None else None, exc))
        if self.raise_in == "on_error":
            raise RuntimeError("on_error itself failed")
        if conn is not None:
            conn.close()

    def errors_in(self, kind: str) -> List[Tuple[str, Optional[int], BaseException]]:
        with self.lock:
            return [e for e in self.errors if e[0] == kind]


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def trigger(kind: str, mgr: pyiocp.SocketManager, addr: Tuple[str, int]) -> Optional[int]:
    """Makes callback `kind` run once; returns an outbound connection's id."""
    if kind == "on_post":
        mgr.post(kind)
        return None
    if kind == "on_connect":
        return int(mgr.connect(*addr).id)
    with connect(addr) as s:
        if kind == "on_close":
            return None  # the peer's FIN closes it
        if kind in ("on_recv", "on_send", "on_error"):
            s.sendall(b"x")
        elif kind == "on_drain":
            s.sendall(b"drain")
            assert recv_exactly(s, len(DRAIN)) == DRAIN
        elif kind == "on_eof":
            s.shutdown(socket.SHUT_WR)
        if kind != "on_error":  # on_error raised there: nothing closes the connection
            try:
                recv_until_eof(s)
            except ConnectionResetError:
                pass
    return None


def test_fault_callbacks_raise_in_every_kind(scenario: ScenarioFactory) -> None:
    """Each callback kind raises, many times, while an echo client is served:
    every exception reaches on_error with its traceback (with conn None for
    on_post); an on_error that raises is logged with its traceback; every
    on_close comes exactly once; the workers never die."""
    scen = scenario("callbacks_raise")
    reps = scen.scale("raises per kind", 20, 200)
    h = Raiser()
    keep = Keep()
    log = logging.getLogger("pyiocp")
    log.addHandler(keep)
    try:
        mgr, addr = scen.serve(h, workers=2, send_buffer_limit=64 << 10)
        ctl = ControlClient(addr, b"S")
        ctl.start()
        wait_until(lambda: len(h.spared) == 1, what="the control client")
        outbound: List[int] = []
        for kind in KINDS:
            h.raise_in = kind
            for _ in range(reps):
                cid = trigger(kind, mgr, addr)
                if cid is not None:
                    outbound.append(cid)
            wait_until(lambda: len(h.errors_in(kind)) >= reps, what=f"{reps} errors from {kind}")
            if kind != "on_error":  # (whose connections stay open: on_error raised before closing)
                # Every on_close of this kind's connections is in before the
                # next kind starts: a late one must not raise as another kind.
                wait_until(lambda: h.closes.opened - h.spared <= set(h.closes.count), what=f"the closes of {kind}")
            workers = [t for t in threading.enumerate() if t.name.startswith("pyiocp-worker-")]
            assert len(workers) == 2, f"a worker died after {kind} raised"
        h.raise_in = None
        n, worst, mean = ctl.stop()
        wait_until(lambda: len(keep.records) >= reps, what="the on_error failures logged")
        for kind in KINDS:
            errs = h.errors_in(kind)
            assert len(errs) == reps, (kind, len(errs))
            for _, cid, exc in errs:
                assert isinstance(exc, Boom) and exc.__traceback__ is not None, (kind, exc)
                assert (cid is None) == (kind == "on_post"), (kind, cid)
        failures = [r for r in keep.records if r.getMessage() == "on_error raised"]
        assert len(failures) == reps, [r.getMessage() for r in keep.records]
        assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)
        for c in [mgr.get(cid) for cid in list(h.closes.opened)]:
            if c is not None:
                c.close()  # the on_error phase left its connections open
        wait_until(lambda: h.closes.opened <= set(h.closes.count), what="every on_close")
        h.closes.check_once(outbound=outbound)
        assert h.posts == reps
        assert n > 0
    finally:
        log.removeHandler(keep)
    scen.sized(f"{len(KINDS)} callback kinds x {reps} raises, 2 workers, an echo client served throughout")
    scen.note(f"{len(h.errors)} exceptions to on_error, {len(failures)} on_error failures logged; "
              f"echo client: {n} round trips, worst {worst * 1000:.1f} ms")


class PingPong(pyiocp.Handler):
    """Pairs of connections of one manager bounce a message until the
    manager has delivered `target` messages; every 1000th also posts."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.received = itertools.count(1)
        self.sent = itertools.count()
        self.posts = itertools.count()
        self.done = threading.Event()
        self.last = 0
        self.mgr: Optional[pyiocp.SocketManager] = None

    def on_connect(self, conn: pyiocp.Connection) -> None:
        conn.send(b"ping-pong")

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        n = next(self.received)
        self.last = n
        if n >= self.target:
            self.done.set()
            return
        if n % 1000 == 0 and self.mgr is not None:
            self.mgr.post(("tick", n))
        conn.send(data)

    def on_send(self, conn: pyiocp.Connection, nbytes: int) -> None:
        next(self.sent)

    def on_post(self, payload: Any) -> None:
        next(self.posts)


def flat_run(scen: Any, h: PingPong, pairs: int) -> Dict[str, Any]:
    """Runs the ping-pong to its target, sampling sys.getallocatedblocks(),
    RSS and the Go side's allocation count at every tenth of it once the
    warm-up is done."""
    mgr = scen.manager(h, workers=2)
    h.mgr = mgr
    addr = mgr.listen(LOOPBACK, 0).address
    for _ in range(pairs):
        mgr.connect(*addr)
    samples: List[Tuple[int, int, int, int]] = []
    t0 = time.monotonic()
    # The warm-up: caches fill, and the Go heap (a post allocates) grows to
    # its collector's first goal, a few MiB, which takes some 200,000
    # messages.
    mark = min(h.target // 5, 200_000)
    while not h.done.wait(0.005):
        if h.last >= mark:
            samples.append((h.last, sys.getallocatedblocks(), rss(), go_allocations()))
            mark += h.target // 10
        assert time.monotonic() - t0 < pick(120, 600), f"{h.last} of {h.target} messages"
    took = time.monotonic() - t0
    samples.append((h.last, sys.getallocatedblocks(), rss(), go_allocations()))
    mgr.close()
    return {"samples": samples, "seconds": took}


def test_fault_reference_counts_stay_flat(scenario: ScenarioFactory) -> None:
    """A million messages through on_recv (each sent back from the
    callback; on_send overridden; every 1000th also posts a tuple to
    on_post): after the warm-up, sys.getallocatedblocks() and RSS stay
    flat; a leaked reference per message or per post would show as
    thousands of blocks."""
    scen = scenario("refcount")
    target = scen.scale("messages", 1_000_000, 5_000_000)
    h = PingPong(target)
    out = flat_run(scen, h, pairs=50)
    samples = out["samples"]
    base_blocks, base_rss = samples[0][1], samples[0][2]
    blocks_growth = max(s[1] for s in samples) - base_blocks
    rss_growth = max(s[2] for s in samples) - base_rss
    measured = samples[-1][0] - samples[0][0]
    scen.set("blocks", [s[1] for s in samples])
    scen.set("rss_mib", [round(s[2] / (1 << 20), 1) for s in samples])
    go_allocs = samples[-1][3] - samples[0][3]
    assert blocks_growth < 1000, f"allocated blocks grew by {blocks_growth} over {measured} messages"
    # Go allocates for a post (its payload boxed), never per message: an
    # allocation per message would also grow RSS by the garbage collector's
    # goal, which depends on what the process did before.
    assert go_allocs < measured // 100, f"the Go side allocated {go_allocs} objects over {measured} messages"
    assert rss_growth < (4 << 20), f"RSS grew {mib(rss_growth)} over {measured} messages"
    assert next(h.posts) >= target // 1000 - 1
    scen.sized(f"{target:,} messages (on_recv + on_send each, a post per 1000) over 50 connection pairs")
    scen.note(f"after the warm-up ({samples[0][0]:,} messages): allocated blocks {base_blocks} +{blocks_growth} at most, "
              f"RSS {mib(base_rss)} +{mib(rss_growth)} at most, Go allocations {go_allocs}; "
              f"{target / out['seconds']:,.0f} messages/s")


def test_fault_reference_count_check_catches_a_leak(scenario: ScenarioFactory) -> None:
    """The flatness check is not vacuous: a handler that keeps a reference
    to every message it receives fails it."""
    kept: List[bytes] = []

    class Leaky(PingPong):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            kept.append(data)
            super().on_recv(conn, data)

    scen = scenario("refcount_self_test")
    h = Leaky(50_000)
    samples = flat_run(scen, h, pairs=20)["samples"]
    growth = max(s[1] for s in samples) - samples[0][1]
    assert growth >= 1000, f"a leak of {len(kept)} bytes objects went unseen ({growth} blocks)"
    kept.clear()
