"""``pyiocp serve MODULE:ATTR``: a Handler served by several processes
(pyiocp._serve); the arguments' checks are pyiocp.serve()'s, a bad value
exits 2."""

from __future__ import annotations

import argparse
import sys

from .._serve import make_options, run_supervisor
from .._serve._options import DEFAULT_BIND, DEFAULT_GRACEFUL_TIMEOUT, LOG_LEVELS, PROXY_PROTOCOLS
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    s = sub.add_parser(
        "serve", help="serve a Handler from several processes, with reload and /metrics",
        description="Serve MODULE:ATTR (a pyiocp.Handler subclass, or a zero-argument factory returning one) "
                    "from --processes processes, each listening on its own SO_REUSEPORT socket (under systemd "
                    "socket activation, all serving systemd's socket instead of --bind). Signals: "
                    "TERM/INT stop gracefully, QUIT at once, HUP reloads (new processes first), TTIN/TTOU "
                    "add/remove a process. See docs/deploy.md.")
    s.add_argument("target", metavar="MODULE:ATTR")
    s.add_argument("--bind", action="append", default=None, metavar="HOST:PORT",
                   help=f"listen here (repeatable; unix:PATH for a Unix domain socket; default {DEFAULT_BIND})")
    s.add_argument("--processes", default="1", metavar="N|auto", help="serving processes (auto: one per CPU)")
    s.add_argument("--workers", default="1", metavar="N", help="completion-port threads per process")
    s.add_argument("--backend", default="auto")
    s.add_argument("--max-connections", default=None, metavar="N", help="per process")
    s.add_argument("--idle-timeout", default=None, metavar="S", help="close connections idle this long")
    s.add_argument("--graceful-timeout", default=str(DEFAULT_GRACEFUL_TIMEOUT), metavar="S",
                   help="on stop or reload, how long connections may take to finish")
    s.add_argument("--drain-delay", default="0", metavar="S",
                   help="on TERM/INT, /healthz says 503 this long before the processes stop accepting, "
                        "so that a load balancer stops sending first")
    s.add_argument("--proxy-protocol", default="off", choices=PROXY_PROTOCOLS)
    s.add_argument("--proxy-allow-from", default=None, metavar="CIDR,...",
                   help="balancers allowed to send a PROXY header (default loopback)")
    s.add_argument("--metrics", default=None, metavar="HOST:PORT", help="serve /metrics and /healthz here")
    s.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    s.add_argument("--pid-file", default=None, metavar="PATH")
    s.set_defaults(run=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        opts = make_options(
            args.target, bind=args.bind, processes=args.processes, workers=args.workers, backend=args.backend,
            max_connections=args.max_connections, idle_timeout=args.idle_timeout,
            graceful_timeout=args.graceful_timeout, drain_delay=args.drain_delay,
            proxy_protocol=args.proxy_protocol,
            proxy_allow_from=args.proxy_allow_from, metrics=args.metrics, log_level=args.log_level,
            pid_file=args.pid_file)
        code = run_supervisor(opts)
    except (TypeError, ValueError) as exc:
        print(f"pyiocp serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if code == 0 else EXIT_FAILED
