"""``pyiocp serve``: a Handler served by several processes behind one
port, with gunicorn's signals, zero-downtime reload and /metrics.

The supervisor (_supervisor) starts each serving process (_child) as a
fresh interpreter; _options checks the options once, _signals records the
supervisor's signals, _channel is the pipe a child reports on, _metrics
the HTTP endpoint, _activation the listening sockets the supervisor holds
for its processes to share (systemd's, and those of unix: binds)."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence, Union

from ._options import DEFAULT_GRACEFUL_TIMEOUT, ServeOptions, log_level_number, make_options
from ._supervisor import Supervisor

__all__ = ["serve", "make_options", "run_supervisor", "ServeOptions"]


def serve(
    target: Any,
    *,
    bind: Union[str, Sequence[str], None] = None,
    processes: Union[int, str] = 1,
    workers: int = 1,
    backend: str = "auto",
    max_connections: Optional[int] = None,
    idle_timeout: Optional[float] = None,
    graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT,
    drain_delay: float = 0.0,
    proxy_protocol: Optional[str] = None,
    proxy_allow_from: Union[str, Sequence[str], None] = None,
    metrics: Optional[str] = None,
    log_level: str = "info",
    pid_file: Union[str, "os.PathLike[str]", None] = None,
) -> int:
    """Serve target ("MODULE:ATTR", or a Handler class or zero-argument
    factory defined in an importable module) from `processes` processes
    until a signal stops them (see docs/deploy.md); the options are the
    command line's. Returns 0 once stopped, 1 when the processes could
    not start (their errors are on stderr). Bad options raise ValueError
    (TypeError for a wrong type) before anything starts. Call it from the
    main thread: it installs signal handlers (restored on return)."""
    opts = make_options(target, bind=bind, processes=processes, workers=workers, backend=backend,
                        max_connections=max_connections, idle_timeout=idle_timeout,
                        graceful_timeout=graceful_timeout, drain_delay=drain_delay,
                        proxy_protocol=proxy_protocol,
                        proxy_allow_from=proxy_allow_from, metrics=metrics, log_level=log_level, pid_file=pid_file)
    return run_supervisor(opts)


def run_supervisor(opts: ServeOptions) -> int:
    log = logging.getLogger("pyiocp")
    log.setLevel(log_level_number(opts.log_level))
    if not logging.root.handlers:  # nothing configured: log to stderr
        logging.basicConfig(format="%(name)s: %(levelname)s: %(message)s")
    if opts.pid_file is not None:
        try:
            with open(opts.pid_file, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as exc:
            raise ValueError(f"pid_file {opts.pid_file!r}: cannot write it: {exc.strerror}") from None
    try:
        return Supervisor(opts).run()
    finally:
        if opts.pid_file is not None:
            try:
                os.remove(opts.pid_file)
            except FileNotFoundError:
                pass
