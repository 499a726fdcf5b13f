"""Fault suite, timers: connections that arm timers and vanish, and
manager timers armed and cancelled from many threads at once. Sizes:
pick(CI, soak); see test_faults_harness."""

from __future__ import annotations

import random
import threading
from typing import Dict, List, Optional

import pyiocp
from test_faults_harness import (
    Closes, ScenarioFactory, connect, recv_exactly, reset_close, run_all, stat, wait_until,
)
from test_faults_harness import scenario  # noqa: F401 - the fixture, for pytest to find


class Ticking(pyiocp.Handler):
    """Every connection arms three timers in on_accept: one due at once
    (it says "T"), one due within 5 ms, one an hour away. A tick of a
    connection after its on_close is counted: there must be none."""

    def __init__(self) -> None:
        self.closes = Closes()
        self.lock = threading.Lock()
        self.closed: Dict[int, bool] = {}
        self.ticks = 0
        self.late_ticks = 0
        self.far: List[pyiocp.Timer] = []
        self.rng = random.Random(7)

    def on_accept(self, conn: pyiocp.Connection) -> None:
        self.closes.open(conn)
        conn.call_later(0, self.tick, conn, b"T")
        conn.call_later(self.rng.uniform(0, 0.005), self.tick, conn, None)
        far = conn.call_later(3600, self.tick, conn, None)
        with self.lock:
            self.far.append(far)

    def tick(self, conn: pyiocp.Connection, say: Optional[bytes]) -> None:
        with self.lock:
            self.ticks += 1
            self.late_ticks += self.closed.get(conn.id, False)
        if say:
            try:
                conn.send(say)
            except pyiocp.ConnectionClosed:
                pass

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        pass

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        with self.lock:
            self.closed[conn.id] = True
        self.closes.close(conn, error)


def test_fault_timers(scenario: ScenarioFactory) -> None:
    """Connections arm timers and close or reset at once, from 4 threads,
    while 4 more threads arm manager timers and cancel every other one:
    no connection's timer runs after its on_close and the one an hour away
    ends cancelled; every manager timer not cancelled runs once, none that
    was cancelled runs; nothing is left behind."""
    scen = scenario("timers")
    cycles = scen.scale("cycles", 1000, 10000)
    per_thread = scen.scale("manager timers per thread", 2000, 20000)
    h = Ticking()
    mgr, addr = scen.serve(h, workers=2)

    def cycle(i: int) -> None:
        s = connect(addr)
        if i % 2:
            assert recv_exactly(s, 1) == b"T"  # the timer due at once ran
            s.close()
        else:
            reset_close(s)  # gone before any timer, maybe

    ran: List[int] = []
    ran_lock = threading.Lock()

    def record(tag: int) -> None:
        with ran_lock:
            ran.append(tag)

    cancelled: List[int] = []

    def armer(t: int) -> None:
        for i in range(per_thread):
            tm = mgr.call_later((i % 50) / 10_000, record, t * per_thread + i)
            if i % 2:
                tm.cancel()  # it may have run already: then cancelled() is False
                if tm.cancelled():
                    with ran_lock:
                        cancelled.append(t * per_thread + i)

    armers = [threading.Thread(target=armer, args=(t,), name=f"fault-armer-{t}") for t in range(4)]
    for a in armers:
        a.start()
    run_all(cycle, cycles, 4)
    for a in armers:
        a.join(60)
    h.closes.wait(cycles)
    h.closes.check_once()
    wait_until(lambda: stat(mgr, "connections") == 0)
    total = 4 * per_thread
    wait_until(lambda: len(ran) + len(cancelled) == total, what="every manager timer run or cancelled")
    assert h.late_ticks == 0, f"{h.late_ticks} connection timers ran after their on_close"
    assert all(t.cancelled() for t in h.far)
    assert len(set(ran)) == len(ran) and not set(ran) & set(cancelled)
    scen.sized(f"{cycles} connections arming 3 timers each, closed or reset at once; "
               f"4 threads x {per_thread} manager timers, every other one cancelled")
    scen.note(f"{h.ticks} connection timers ran, none after its on_close; {len(ran)} manager timers ran, "
              f"{len(cancelled)} cancelled in time")
