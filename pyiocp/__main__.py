"""Command line: ``python -m pyiocp echo|bench|top|serve ...`` (also the ``pyiocp`` script).

- ``echo``: an echo server, until Ctrl-C or SIGTERM; with ``--stats-port``
  it also serves its statistics there (the endpoint ``top`` reads).
- ``bench``: the Go load generator against an echo server: a live progress
  line on a terminal, then a table (``--json``: one JSON document).
- ``top``: a live view of a server's statistics endpoint.
- ``serve``: a Handler served by several processes (docs/deploy.md).

Exit codes: 0 success (a server or ``top`` stopped by Ctrl-C or SIGTERM
included); 1 the run failed (bench saw errors or mismatches, a server
(or serve's processes) could not start, ``top`` could not reach its endpoint or lost it); 2 bad
arguments; 130 ``bench`` interrupted.

The statistics endpoint speaks lines over TCP: the client sends ``stats``
and gets one line, ``SocketManager.stats()`` as a JSON object plus
``uptime`` (seconds) and ``stats_connections`` (the endpoint's own
connections, counted in ``connections``); anything else gets a JSON
object with an ``error``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import List, Optional

from ._cli.bench import cmd_bench
from ._cli.common import EXIT_USAGE, _port, _positive
from ._cli.echo import cmd_echo
from ._cli.serve import add_parser as add_serve_parser
from ._cli.top import cmd_top


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyiocp", description="pyiocp: an echo server, a load generator, a live statistics view and a multi-process server.",
        epilog="exit codes: 0 success, 1 the run failed, 2 bad arguments, 130 bench interrupted")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("echo", help="run an echo server until Ctrl-C or SIGTERM")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=_port, default=7007)
    e.add_argument("--workers", type=_positive(int), default=1)
    e.add_argument("--backend", default="auto")
    e.add_argument("--unix", default=None, metavar="PATH",
                   help="listen on this Unix domain socket instead of --host/--port (a leading @: Linux's "
                        "abstract namespace)")
    e.add_argument("--stats-port", type=_port, default=None, metavar="PORT",
                   help="also serve statistics on this port (0: a free one), for `pyiocp top`")
    e.set_defaults(run=cmd_echo)

    b = sub.add_parser("bench", help="drive an echo server, verify every byte, print the figures")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=_port, default=7007)
    b.add_argument("--unix", default=None, metavar="PATH",
                   help="drive the server on this Unix domain socket instead of --host/--port (a leading @: "
                        "Linux's abstract namespace)")
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

    add_serve_parser(sub)
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
