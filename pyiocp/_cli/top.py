"""``pyiocp top``: a live view of a server's statistics endpoint."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
from typing import Any, Dict, Optional, TextIO

from .common import EXIT_FAILED, EXIT_OK, _stop


TOP_COLUMNS = [  # header, width, stats key, shown as a rate per second
    ("conns", 7, "connections", False),
    ("accepted/s", 11, "accepted", True),
    ("closed/s", 9, "closed", True),
    ("in MB/s", 9, "bytes_in", True),
    ("out MB/s", 9, "bytes_out", True),
    ("events/s", 11, "completions", True),
    ("paused", 7, "paused_reading", False),
    ("pending", 10, "pending_send_bytes", False),
]


def _top_sample(prev: Optional[Dict[str, Any]], cur: Dict[str, Any], dt: float) -> Dict[str, Any]:
    """One sample of top: the current gauges and the rates per second since
    prev (``<key>_per_s``; bytes per second for bytes_in and bytes_out)."""
    row: Dict[str, Any] = {"uptime": cur.get("uptime", 0.0), "backend": cur.get("backend"),
                           "workers": cur.get("workers")}
    for _, _, key, rate in TOP_COLUMNS:
        value = cur.get(key, 0)
        if key == "connections":
            value -= cur.get("stats_connections", 0)
        if rate:
            value = (value - prev.get(key, 0)) / dt if prev is not None and dt > 0 else 0.0
            row[key + "_per_s"] = round(value, 3)
        else:
            row[key] = value
    return row


def _top_line(row: Dict[str, Any]) -> str:
    cells = [f"{row['uptime']:>8.1f}"]
    for _, width, key, rate in TOP_COLUMNS:
        value = row[key + "_per_s"] if rate else row[key]
        cells.append(f"{value / 1e6:>{width},.2f}" if rate and key.startswith("bytes_") else f"{value:>{width},.0f}")
    return " ".join(cells)


def _top_header() -> str:
    return " ".join([f"{'uptime':>8}"] + [f"{h:>{w}}" for h, w, _, _ in TOP_COLUMNS])


class _StatsClient:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def get(self) -> Dict[str, Any]:
        self.sock.sendall(b"stats\n")
        line = self.file.readline(1 << 20)
        if not line:
            raise ConnectionError("the server closed the statistics connection")
        reply: Dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise ConnectionError(f"the server says: {reply['error']}")
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def cmd_top(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    where = f"{args.host}:{args.port}"
    try:
        client = _StatsClient(args.host, args.port, timeout=max(5.0, args.interval * 2))
    except OSError as exc:
        print(f"pyiocp top: cannot reach the statistics endpoint at {where}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    live = out.isatty() and not args.json
    prev: Optional[Dict[str, Any]] = None
    prev_t = 0.0
    shown = 0
    try:
        while args.count is None or shown < args.count:
            try:
                cur = client.get()
            except ValueError as exc:
                print(f"pyiocp top: {where} is not a statistics endpoint: {exc}", file=sys.stderr)
                return EXIT_FAILED
            except OSError as exc:
                print(f"pyiocp top: lost the statistics endpoint at {where}: {exc}", file=sys.stderr)
                return EXIT_FAILED
            now = time.monotonic()
            row = _top_sample(prev, cur, now - prev_t)
            prev, prev_t = cur, now
            if args.json:
                print(json.dumps(row), file=out, flush=True)
            elif live:
                title = f"pyiocp top: {where}, backend {row['backend']}, {row['workers']} worker(s)"
                print(f"\x1b[H\x1b[2J{title}\n\n{_top_header()}\n{_top_line(row)}", file=out, flush=True)
            else:
                if shown % 20 == 0:
                    print(_top_header(), file=out)
                print(_top_line(row), file=out, flush=True)
            shown += 1
            if args.count is None or shown < args.count:
                time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return EXIT_OK
