"""Command line of the suite: run the scenarios, keep every repetition,
write the JSON and the Markdown report (see bench/suite/__init__.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from . import __doc__ as USAGE
from .machine import describe
from .measure import Knobs, count_syscalls, measure
from .report import markdown, plot
from .scenarios import QUICK_BULK_BYTES, QUICK_IDLE_CONNS, QUICK_IDLE_HOLD, SCENARIOS, Scenario
from .servers import GO, PY, ROOT, build, servers
from .timers import measure_timers

RESULTS = ROOT / "bench/results"
TIMERS = "timers"  # the timers row's name for --scenario (bench/suite/timers.py)
TIMERS_N = 100_000


def parse(argv: List[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.suite", description=USAGE,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="fewer servers and scenarios, shorter and smaller (about 2 minutes); "
                         "writes bench/results/quick/, not bench/RESULTS.md")
    ap.add_argument("--client", choices=["engine", "net"], default="net",
                    help="the load generator's client in the echo scenarios: net (a goroutine per connection "
                         "on Go's net package, one write per message, like independent clients; default) or "
                         "engine (every connection on one worker of pyiocp's engine, batched system calls)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--duration", type=float, help="measured seconds per run (default 5, quick 1.5)")
    ap.add_argument("--warmup", type=float, help="seconds of traffic before measuring (default 1, quick 0.5)")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="longest wait for a quiet machine before each run (seconds)")
    ap.add_argument("--only", action="append", metavar="SERVER", help="only these servers (repeatable)")
    ap.add_argument("--scenario", action="append", metavar="NAME", help="only these scenarios (repeatable)")
    ap.add_argument("--no-syscalls", action="store_true", help="skip counting system calls (needs perf and root)")
    ap.add_argument("--from-json", type=Path, metavar="FILE",
                    help="measure nothing: write the report and the plot again from a JSON record")
    ap.add_argument("--out", type=Path, help="directory for the JSON, the report and the plot "
                                             "(default bench/results, the report as bench/RESULTS.md)")
    args = ap.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (1.5 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    if args.reps < 1 or args.duration <= 0.8 or args.warmup < 0:
        ap.error("--reps must be >= 1, --duration > 0.8, --warmup >= 0")
    known = {sc.name for sc in SCENARIOS} | {TIMERS}
    for name in args.scenario or []:
        if name not in known:
            ap.error(f"unknown scenario {name!r} (known: {', '.join(sorted(known))})")
    return args


def chosen(args: argparse.Namespace) -> List[Scenario]:
    out = []
    for sc in SCENARIOS:
        if args.scenario and sc.name not in args.scenario:
            continue
        if not args.scenario and args.quick and not sc.quick:
            continue
        if args.quick and sc.mode in ("bulk", "download"):
            sc = dataclasses.replace(sc, nbytes=QUICK_BULK_BYTES, title=sc.title.replace("1 GiB", "128 MiB"))
        if args.quick and sc.mode == "idle":
            sc = dataclasses.replace(sc, conns=QUICK_IDLE_CONNS, hold=QUICK_IDLE_HOLD,
                                     title=sc.title.replace("10,000", "2,000"))
        out.append(sc)
    return out


def medians(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {}
    keys = [k for k, v in good[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    med = {k: statistics.median(r[k] for r in good if k in r) for k in keys}
    med["busy"] = any(r.get("busy") for r in good)
    return med


def raise_fd_limit() -> None:
    """10,000 idle connections need more descriptors than the usual 1024
    soft limit, in the servers and the client (they inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 30_000 if hard == resource.RLIM_INFINITY else min(hard, 30_000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def measure_all(args: argparse.Namespace, argv: List[str]) -> Dict[str, Any]:
    """Every chosen scenario against every chosen server: the JSON record."""
    raise_fd_limit()
    scenarios = chosen(args)
    knobs = Knobs(args.duration, args.warmup, args.quiet_wait, args.client)
    started = time.monotonic()
    doc: Dict[str, Any] = {"command": "python -m bench.suite " + shlex.join(argv), "machine": describe(ROOT, GO),
                           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                           "scenarios": [dataclasses.asdict(sc) for sc in scenarios], "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        bindir = Path(tmp)
        build(bindir)
        pool = [s for s in servers(bindir) if (not args.only and (s.quick or not args.quick))
                or (args.only and s.name in args.only)]
        for sc in scenarios:
            names = [s for s in pool if s.kind == sc.kind]
            if sc.mode == "http" and not shutil.which("wrk"):
                print(f"{sc.name}: skipped, wrk is not installed", file=sys.stderr)
                continue
            runs: Dict[str, List[Dict[str, Any]]] = {s.name: [] for s in names}
            for rep in range(args.reps):
                order = names[rep % len(names):] + names[:rep % len(names)]
                for server in order:
                    fig = measure(server, sc, bindir, knobs)
                    runs[server.name].append(fig)
                    shown = fig.get("error") or (f"{fig['rate']:12,.1f} {sc.unit}"
                                                 + (f"/s {fig['cpu_us']:8.2f} CPU us each" if "cpu_us" in fig else "")
                                                 + (" (busy)" if fig.get("busy") else ""))
                    print(f"{sc.name:20s} rep {rep + 1}/{args.reps} {server.name:22s} {shown}",
                          file=sys.stderr, flush=True)
            doc["results"][sc.name] = {
                n: {"runs": rs, "median": medians(rs), "errors": [r["error"] for r in rs if "error" in r]}
                for n, rs in runs.items()}
        echo50 = next((sc for sc in scenarios if sc.name == "echo-50x64"), None)
        if echo50 and not args.no_syscalls and shutil.which("perf"):
            doc["syscalls"] = {s.name: count_syscalls(s, echo50, bindir, knobs)
                               for s in pool if s.kind == "echo"}
    if not args.scenario or TIMERS in args.scenario:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        doc["timers"] = measure_timers(TIMERS_N, args.reps, PY, env)
    doc["elapsed_s"] = time.monotonic() - started
    return doc


def main(argv: List[str]) -> int:
    args = parse(argv)
    out_dir = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = out_dir / "RESULTS.md" if args.out or args.quick else ROOT / "bench/RESULTS.md"
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        json_path = args.from_json
    else:
        doc = measure_all(args, argv)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        json_path = out_dir / ("results.json" if args.quick else f"{stamp}.json")
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
    png = out_dir / "echo-vs-conns.png"
    drew = plot(doc, png)
    plot_ref = (png.relative_to(report.parent).as_posix() if png.is_relative_to(report.parent) else str(png)) \
        if drew else None
    report.write_text(markdown(doc, plot_ref))
    print(f"\nwrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}, "
          f"{report.relative_to(ROOT) if report.is_relative_to(ROOT) else report}"
          + (f", {png.name}" if drew else "") + f" (the run took {doc['elapsed_s'] / 60:.1f} min)", file=sys.stderr)
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
