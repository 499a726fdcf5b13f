"""Echo servers side by side: pyiocp (Python handler), asyncio, uvloop,
pyiocp's engine with a Go handler, and Go's net package.

Each server runs as its own process pinned to CPU 0; the load generator
(``python -m pyiocp bench``, Go, verifying every byte) runs pinned to CPU 1.
Servers take turns within each repetition (interleaved, so drift of the
machine hits all alike); the table gives medians. On two cores the load
generator saturates first, so msgs/s says little about a fast server:
messages per server CPU-second is the figure that compares servers.

    .venv/bin/python bench/echo_compare.py [--conns 50] [--size 64] [--duration 5] [--reps 3]
        [--only NAME]... [--syscalls] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")


def server_commands(bindir: Path) -> Dict[str, List[str]]:
    return {
        "pyiocp io_uring": [PY, str(ROOT / "examples/echo.py"), "--port", "0", "--backend", "io_uring"],
        "pyiocp epoll": [PY, str(ROOT / "examples/echo.py"), "--port", "0", "--backend", "epoll"],
        "uvloop": [PY, str(ROOT / "bench/servers/aio_echo.py"), "--loop", "uvloop"],
        "asyncio": [PY, str(ROOT / "bench/servers/aio_echo.py"), "--loop", "asyncio"],
        "engine io_uring (Go)": [str(bindir / "engineecho"), "-backend", "io_uring"],
        "engine epoll (Go)": [str(bindir / "engineecho"), "-backend", "epoll"],
        "Go net": [str(bindir / "netecho")],
    }


def build_go(bindir: Path) -> None:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    for name in ("netecho", "engineecho"):
        subprocess.run([go, "build", "-o", str(bindir / name), f"./bench/servers/{name}"], cwd=ROOT, check=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def count_syscalls(pid: int, seconds: float) -> int:
    """System calls the process makes in the next seconds, every kind
    (perf's syscall tracepoints; needs perf and root)."""
    out = subprocess.run(["perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_*", "-p", str(pid), "--",
                          "sleep", str(seconds)], capture_output=True, text=True, check=True).stderr
    return sum(int(line.split(",")[0]) for line in out.splitlines() if line.split(",")[0].isdigit())


def measure(cmd: List[str], args: argparse.Namespace) -> Dict[str, float]:
    server = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = server.stdout.readline()
        m = re.search(r"listening on .*:(\d+)", line)
        if not m:
            raise RuntimeError(f"{cmd}: no listening line ({line!r})")
        bench = subprocess.Popen(
            ["taskset", "-c", "1", PY, "-m", "pyiocp", "bench", "--port", m.group(1), "--conns", str(args.conns),
             "--size", str(args.size), "--duration", str(args.duration), "--warmup", str(args.warmup), "--json"],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        time.sleep(args.warmup)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        syscalls = count_syscalls(server.pid, args.duration / 2) if args.syscalls else None
        out, _ = bench.communicate(timeout=args.duration + args.warmup + 60)
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        r = json.loads(out)
        if r["errors"] or r["mismatches"]:
            raise RuntimeError(f"{cmd}: {r['errors']} errors, {r['mismatches']} mismatches: {r['first_error']}")
        cpu = (cpu1 - cpu0) * r["elapsed_s"] / (t1 - t0)  # the measured window's share
        return {
            "msgs_per_sec": r["msgs_per_sec"],
            "cpu_s_per_M": cpu / r["messages"] * 1e6,
            "msgs_per_cpu_s": r["messages"] / cpu if cpu else float("inf"),
            "p50_us": r["p50_s"] * 1e6,
            "p99_us": r["p99_s"] * 1e6,
            **({"syscalls_per_msg": syscalls / (r["msgs_per_sec"] * args.duration / 2)} if syscalls else {}),
        }
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", action="append", help="run only these servers (repeatable)")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--syscalls", action="store_true",
                    help="count the server's system calls per message over half of each run (perf, root)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bindir = Path(tmp)
        build_go(bindir)
        servers = server_commands(bindir)
        names = [n for n in servers if not args.only or n in args.only]
        runs: Dict[str, List[Dict[str, float]]] = {n: [] for n in names}
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                runs[name].append(measure(servers[name], args))
                print(f"rep {rep + 1}/{args.reps} {name:20s} {runs[name][-1]['msgs_per_sec']:10.0f} msgs/s "
                      f"{runs[name][-1]['cpu_s_per_M']:6.2f} CPU s/M msgs", file=sys.stderr, flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    ref = med.get("uvloop")
    print(f"\necho {args.conns} x {args.size} B, {args.duration:g} s, median of {args.reps}; "
          f"server on CPU 0, load generator on CPU 1; load average {os.getloadavg()[0]:.2f}")
    print(f"{'server':20s} {'msgs/s':>10s} {'vs uvloop':>9s} {'CPU s/M msgs':>12s} {'msgs/CPU-s vs uvloop':>20s} "
          f"{'p50 us':>8s} {'p99 us':>8s}")
    for n, m in med.items():
        rate = f"{m['msgs_per_sec'] / ref['msgs_per_sec']:.2f}x" if ref else "-"
        eff = f"{m['msgs_per_cpu_s'] / ref['msgs_per_cpu_s']:.2f}x" if ref else "-"
        print(f"{n:20s} {m['msgs_per_sec']:10.0f} {rate:>9s} {m['cpu_s_per_M']:12.2f} {eff:>20s} "
              f"{m['p50_us']:8.0f} {m['p99_us']:8.0f}" +
              (f" {m['syscalls_per_msg']:6.2f} syscalls/msg" if "syscalls_per_msg" in m else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs, "median": med}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
