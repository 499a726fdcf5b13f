"""``pyiocp bench``: the Go load generator against an echo server: a live
progress line on a terminal, then a table (``--json``: one JSON document)."""

from __future__ import annotations

import argparse
import json
import sys

from .. import _pyiocp
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE


def cmd_bench(args: argparse.Namespace) -> int:
    host = f"[{args.host}]" if ":" in args.host else args.host
    target = f"unix:{args.unix}" if args.unix is not None else f"{host}:{args.port}"
    try:
        handle = _pyiocp.bench_start(target, args.conns, args.size, args.depth,
                                     int(args.duration * 1e9), int(args.warmup * 1e9))
    except ValueError as exc:
        print(f"pyiocp bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    live = sys.stderr.isatty() and not args.json
    try:
        while True:
            result = _pyiocp.bench_wait(handle, 250_000_000)
            if result is not None:
                break
            if live:
                elapsed, messages, rate = _pyiocp.bench_progress(handle)
                print(f"\r  {elapsed:5.1f} s  {messages:>12,} msgs  {rate:>12,.0f} msgs/s", end="",
                      file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        _pyiocp.bench_cancel(handle)
        while _pyiocp.bench_wait(handle, 1_000_000_000) is None:
            pass
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"\npyiocp bench: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if live:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    table = result.pop("table")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table, end="" if table.endswith("\n") else "\n")
    ok = result["errors"] == 0 and result["mismatches"] == 0 and result["messages"] > 0
    return EXIT_OK if ok else EXIT_FAILED
