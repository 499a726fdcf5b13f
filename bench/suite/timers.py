"""The timers row: 100,000 timers armed an hour ahead, then cancelled, in
a fresh process each (pyiocp's call_later against asyncio's and uvloop's
loop.call_later): microseconds per arm and per cancel, memory per pending
timer (RSS growth), and how late 2,000 short timers (1-20 ms) run.

Run as a child: python -m bench.suite.timers IMPL N prints one JSON line."""

from __future__ import annotations

import functools
import json
import random
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List

IMPLS = ["pyiocp", "uvloop", "asyncio"]
LATE_TIMERS = 2000


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _ran_late(late: List[float], due: float) -> None:
    late.append(time.monotonic() - due)


def _figures(n: int, call_later: Callable[[float, Callable[[], None]], Any],
             wait: Callable[[Callable[[], bool]], None]) -> Dict[str, float]:
    """LATE_TIMERS timers 1-20 ms ahead and how late they run, against
    time.monotonic(); then n timers armed an hour ahead (time and RSS
    growth) and cancelled (time). wait(done) lets timers run until done()."""
    late: List[float] = []
    rng = random.Random(5)
    for _ in range(LATE_TIMERS):
        delay = rng.uniform(0.001, 0.02)
        due = time.monotonic() + delay
        call_later(delay, functools.partial(_ran_late, late, due))
    wait(lambda: len(late) == LATE_TIMERS)
    late.sort()
    noop = (lambda: None)
    r0 = _rss()
    t0 = time.perf_counter()
    timers = [call_later(3600, noop) for _ in range(n)]
    t1 = time.perf_counter()
    wait(lambda: True)  # pyiocp: the worker takes them onto its heap
    time.sleep(0.2)
    r1 = _rss()
    t2 = time.perf_counter()
    for t in timers:
        t.cancel()
    t3 = time.perf_counter()
    return {"arm_us": (t1 - t0) / n * 1e6, "cancel_us": (t3 - t2) / n * 1e6, "bytes_per_timer": (r1 - r0) / n,
            "late_median_ms": statistics.median(late) * 1e3, "late_p99_ms": late[int(len(late) * 0.99)] * 1e3,
            "late_max_ms": late[-1] * 1e3}


def _pyiocp(n: int) -> Dict[str, float]:
    import pyiocp

    with pyiocp.SocketManager(pyiocp.Handler(), workers=1) as mgr:
        mgr.start()

        def wait(done: Callable[[], bool]) -> None:
            while not done():
                time.sleep(0.01)

        return _figures(n, mgr.call_later, wait)


def _aio(n: int, impl: str) -> Dict[str, float]:
    import asyncio

    loop: asyncio.AbstractEventLoop
    if impl == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    async def until(done: Callable[[], bool]) -> None:
        while not done():
            await asyncio.sleep(0.005)

    try:
        return _figures(n, loop.call_later, lambda done: loop.run_until_complete(until(done)))
    finally:
        loop.close()


def child(impl: str, n: int) -> Dict[str, Any]:
    return _pyiocp(n) if impl == "pyiocp" else _aio(n, impl)


def measure_timers(n: int, reps: int, python: str, env: Dict[str, str]) -> Dict[str, Any]:
    """Each implementation reps times, interleaved, each run in a process
    of its own: {impl: {"runs": [...], "median": {...}}}."""
    runs: Dict[str, List[Dict[str, Any]]] = {impl: [] for impl in IMPLS}
    for rep in range(reps):
        for impl in IMPLS[rep % len(IMPLS):] + IMPLS[:rep % len(IMPLS)]:
            p = subprocess.run([python, "-m", "bench.suite.timers", impl, str(n)], capture_output=True, text=True,
                               env=env, timeout=300)
            fig = json.loads(p.stdout) if p.returncode == 0 else {"error": (p.stderr or p.stdout)[-500:]}
            runs[impl].append(fig)
            shown = fig.get("error") or (f"arm {fig['arm_us']:.2f} us, cancel {fig['cancel_us']:.2f} us, "
                                         f"{fig['bytes_per_timer']:.0f} B each, late p99 {fig['late_p99_ms']:.2f} ms")
            print(f"{'timers':20s} rep {rep + 1}/{reps} {impl:22s} {shown}", file=sys.stderr, flush=True)
    out: Dict[str, Any] = {}
    for impl, rs in runs.items():
        good = [r for r in rs if "error" not in r]
        med = {k: statistics.median(r[k] for r in good) for k in good[0]} if good else {}
        out[impl] = {"runs": rs, "median": med, "errors": [r["error"] for r in rs if "error" in r]}
    return out


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], int(sys.argv[2]))))
