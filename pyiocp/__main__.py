"""Command line: ``python -m pyiocp echo|bench|top ...`` (also the ``pyiocp`` script).

- ``echo``: an echo server, until Ctrl-C or SIGTERM; with ``--stats-port``
  it also serves its statistics there (the endpoint ``top`` reads).
- ``bench``: the Go load generator against an echo server: a live progress
  line on a terminal, then a table (``--json``: one JSON document).
- ``top``: a live view of a server's statistics endpoint.

Exit codes: 0 success (a server or ``top`` stopped by Ctrl-C or SIGTERM
included); 1 the run failed (bench saw errors or mismatches, a server
could not start, ``top`` could not reach its endpoint or lost it); 2 bad
arguments; 130 ``bench`` interrupted.

The statistics endpoint speaks lines over TCP: the client sends ``stats``
and gets one line, ``SocketManager.stats()`` as a JSON object plus
``uptime`` (seconds) and ``stats_connections`` (the endpoint's own
connections, counted in ``connections``); anything else gets a JSON
object with an ``error``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, TextIO

from . import _pyiocp
from ._handler import Handler
from ._manager import SocketManager
from ._pyiocp import Connection
from .errors import BufferFull, ConnectionClosed

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class EchoHandler(Handler):
    """Sends every byte back. A peer that writes far ahead of what it reads
    fills the send buffer: then reading pauses until the buffer drains, so
    the peer is slowed down by TCP instead of cut off."""

    def on_recv(self, conn: Connection, data: bytes) -> None:
        try:
            conn.send(data)
        except BufferFull:
            conn.unsent = data
            conn.pause_reading()

    def on_drain(self, conn: Connection) -> None:
        data = getattr(conn, "unsent", None)
        if data is not None:
            conn.unsent = None
            conn.send(data)
            conn.resume_reading()


MAX_STATS_LINE = 1024


class StatsEchoHandler(EchoHandler):
    """EchoHandler, except on the connections to the statistics port: there
    a ``stats`` line is answered with the manager's statistics as one JSON
    line."""

    def __init__(self) -> None:
        self.manager: Optional[SocketManager] = None
        self.stats_port = -1
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.stats_connections = 0

    def on_accept(self, conn: Connection) -> None:
        local = conn.local
        conn.is_stats = local is not None and local[1] == self.stats_port
        if conn.is_stats:
            conn.buf = bytearray()
            with self.lock:
                self.stats_connections += 1

    def on_recv(self, conn: Connection, data: bytes) -> None:
        if not conn.is_stats:
            super().on_recv(conn, data)
            return
        conn.buf += data
        while (end := conn.buf.find(b"\n")) >= 0:
            command = bytes(conn.buf[:end]).strip()
            del conn.buf[:end + 1]
            self.answer(conn, command)
        if len(conn.buf) > MAX_STATS_LINE:
            conn.close()

    def on_close(self, conn: Connection, error: Optional[BaseException]) -> None:
        if getattr(conn, "is_stats", False):
            with self.lock:
                self.stats_connections -= 1

    def answer(self, conn: Connection, command: bytes) -> None:
        reply: Dict[str, Any]
        if command == b"stats" and self.manager is not None:
            reply = self.manager.stats()
            reply["uptime"] = round(time.monotonic() - self.started, 3)
            with self.lock:
                reply["stats_connections"] = self.stats_connections
        else:
            reply = {"error": f"unknown command {command.decode('utf-8', 'replace')!r}; try 'stats'"}
        try:
            conn.send(json.dumps(reply).encode() + b"\n")
        except (BufferFull, ConnectionClosed):
            conn.abort()  # asks without reading the answers


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    name = getattr(kind, "__name__", "number")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {name}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0-65535")
    return value


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def cmd_echo(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop)
    # A server started in the background of a script inherits SIGINT
    # ignored; it should still stop on SIGINT like on Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    handler = StatsEchoHandler() if args.stats_port is not None else EchoHandler()
    mgr: Optional[SocketManager] = None
    try:
        mgr = SocketManager(handler, workers=args.workers, backend=args.backend)
        lst = mgr.listen(args.host, args.port)
        if isinstance(handler, StatsEchoHandler):
            stats_lst = mgr.listen(args.host, args.stats_port)
            handler.manager = mgr
            handler.stats_port = stats_lst.address[1]
    except (OSError, ValueError) as exc:
        print(f"pyiocp echo: {exc}", file=sys.stderr)
        if mgr is not None:
            mgr.close()
        return EXIT_FAILED
    host, port = lst.address
    try:  # a signal right after the "listening" line still ends it quietly
        print(f"pyiocp echo: listening on {host}:{port} (workers={args.workers}, "
              f"backend={mgr.stats()['backend']})", flush=True)
        if isinstance(handler, StatsEchoHandler):
            print(f"pyiocp echo: stats on {host}:{handler.stats_port}", flush=True)
        mgr.serve_forever()
    except KeyboardInterrupt:
        mgr.close()
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    host = f"[{args.host}]" if ":" in args.host else args.host
    try:
        handle = _pyiocp.bench_start(f"{host}:{args.port}", args.conns, args.size, args.depth,
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyiocp", description="pyiocp: an echo server, a load generator and a live statistics view.",
        epilog="exit codes: 0 success, 1 the run failed, 2 bad arguments, 130 bench interrupted")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("echo", help="run an echo server until Ctrl-C or SIGTERM")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=_port, default=7007)
    e.add_argument("--workers", type=_positive(int), default=1)
    e.add_argument("--backend", default="auto")
    e.add_argument("--stats-port", type=_port, default=None, metavar="PORT",
                   help="also serve statistics on this port (0: a free one), for `pyiocp top`")
    e.set_defaults(run=cmd_echo)

    b = sub.add_parser("bench", help="drive an echo server, verify every byte, print the figures")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=_port, default=7007)
    b.add_argument("--conns", type=_positive(int), default=50, help="concurrent connections")
    b.add_argument("--size", type=_positive(int), default=64, help="bytes per message")
    b.add_argument("--depth", type=_positive(int), default=1, help="messages in flight per connection")
    b.add_argument("--duration", type=_positive(float), default=5.0, help="measured seconds")
    b.add_argument("--warmup", type=float, default=1.0, help="seconds of traffic before measuring")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(run=cmd_bench)

    t = sub.add_parser("top", help="live statistics of a server started with --stats-port",
                       description="Poll a statistics endpoint (`pyiocp echo --stats-port PORT`) and show "
                                   "connections, rates and buffers: redrawn in place on a terminal, one line per "
                                   "sample otherwise, JSON lines with --json. Ends with Ctrl-C (exit 0) or after "
                                   "--count samples.")
    t.add_argument("--host", default="127.0.0.1")
    t.add_argument("--port", type=_port, required=True, help="the statistics port")
    t.add_argument("--interval", type=_positive(float), default=1.0, help="seconds between samples")
    t.add_argument("--count", type=_positive(int), default=None, help="stop after this many samples")
    t.add_argument("--json", action="store_true", help="one JSON object per sample")
    t.set_defaults(run=cmd_top)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    if getattr(args, "warmup", 0) < 0:
        print("pyiocp bench: --warmup must not be negative", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    code: int = args.run(args)
    logging.getLogger("pyiocp").debug("%s took %.1f s", args.command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
