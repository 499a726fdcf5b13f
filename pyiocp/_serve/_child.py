"""One serving process of ``pyiocp serve``: ``python -m pyiocp._serve._child
OPTIONS INDEX CHANNEL``, started by the supervisor (a fresh interpreter:
the Go runtime does not survive fork()).

It imports the target afresh, listens (SO_REUSEPORT on Linux, so that its
siblings and the processes of a reload listen on the same port), reports
"ready" on the channel, then its stats() once a second. The supervisor
commands it on stdin: "stop" (graceful: stop accepting, let connections
finish within the graceful timeout, then close), "quit" (close now); the
end of stdin (the supervisor is gone) is "stop". SIGTERM and SIGQUIT mean
the same when sent to it directly (systemd signals every process of the
unit); SIGINT is left to the supervisor, which a terminal's Ctrl-C reaches
too.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import IO, Any, List, Optional

from .._handler import Handler
from .._listener import Listener
from .._manager import SocketManager
from . import _channel
from ._options import Bind, ServeOptions, log_level_number

logger = logging.getLogger("pyiocp.serve")

STATS_INTERVAL = 1.0
TICK = 0.05


class StartError(Exception):
    """Why the process cannot serve, as one line (the supervisor shows it)."""


def load_handler(target: str) -> Handler:
    """An instance of the target: a Handler subclass made with no arguments,
    or what a zero-argument factory returns."""
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise StartError(f"cannot import {module_name!r}: no module named {exc.name!r}") from None
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise StartError(f"{target}: module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, type) and issubclass(obj, Handler):
        return obj()
    if isinstance(obj, type) or not callable(obj):
        raise StartError(f"{target}: expected a pyiocp.Handler subclass or a factory returning a Handler, "
                         f"not {type(obj).__name__ if not isinstance(obj, type) else 'the class ' + obj.__name__}")
    handler = obj()
    if not isinstance(handler, Handler):
        raise StartError(f"{target}: the factory returned {type(handler).__name__}, not a pyiocp.Handler")
    return handler


def listen(mgr: SocketManager, bind: Bind, opts: ServeOptions) -> Listener:
    try:
        if bind.fd is not None:  # the supervisor's socket, shared
            lst = mgr.listen_socket(bind.fd, proxy_protocol=opts.proxy_protocol,
                                    proxy_allow_from=opts.proxy_allow_from)
            os.close(bind.fd)  # the manager serves a duplicate
            return lst
        if bind.unix is not None:
            return mgr.listen_unix(bind.unix, proxy_protocol=opts.proxy_protocol)
        return mgr.listen(bind.host, bind.port, reuse_port=sys.platform != "win32",
                          proxy_protocol=opts.proxy_protocol,
                          proxy_allow_from=opts.proxy_allow_from if opts.proxy_protocol is not None else None)
    except OSError as exc:
        raise StartError(f"cannot listen on {bind}: {exc}") from None


class Control:
    """What the supervisor (stdin) or a signal asked for."""

    def __init__(self) -> None:
        self.stop = False
        self.quit = False

    def read_commands(self, stdin: IO[str]) -> None:
        for line in stdin:
            if line.strip() == "quit":
                self.quit = True
            elif line.strip() == "stop":
                self.stop = True
        self.stop = True  # the supervisor is gone

    def on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if signum == signal.SIGTERM:
            self.stop = True
        else:
            self.quit = True


def install_signals(control: Control) -> None:
    signal.signal(signal.SIGTERM, control.on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform != "win32":
        signal.signal(signal.SIGQUIT, control.on_signal)
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_IGN)


def run(opts: ServeOptions, index: int, out: IO[bytes]) -> int:
    control = Control()
    install_signals(control)
    threading.Thread(target=control.read_commands, args=(sys.stdin,), name="pyiocp-serve-commands",
                     daemon=True).start()
    try:
        handler = load_handler(opts.target)
    except StartError as exc:
        logger.error("%s", exc)
        return 1
    except Exception:
        logger.exception("loading %s failed", opts.target)
        return 1
    mgr: Optional[SocketManager] = None
    listeners: List[Listener] = []
    try:
        mgr = SocketManager(handler, workers=opts.workers, backend=opts.backend,
                            max_connections=opts.max_connections, idle_timeout=opts.idle_timeout)
        for bind in opts.binds:
            listeners.append(listen(mgr, bind, opts))
        mgr.start()
    except (StartError, OSError, ValueError) as exc:
        logger.error("%s", exc)
        if mgr is not None:
            mgr.close(0)
        return 1
    try:
        _channel.send(out, "ready", addresses=[lst.address for lst in listeners], stats=mgr.stats())
        serve_until_stopped(mgr, control, out)
        drain(mgr, listeners, control, opts.graceful_timeout, out)
    except BrokenPipeError:  # the supervisor is gone: stop as it would have asked
        drain(mgr, listeners, control, opts.graceful_timeout, None)
    return 0


def serve_until_stopped(mgr: SocketManager, control: Control, out: IO[bytes]) -> None:
    next_stats = time.monotonic() + STATS_INTERVAL
    while not (control.stop or control.quit):
        time.sleep(TICK)
        if time.monotonic() >= next_stats:
            _channel.send(out, "stats", stats=mgr.stats())
            next_stats += STATS_INTERVAL


def drain(mgr: SocketManager, listeners: List[Listener], control: Control, grace: float,
          out: Optional[IO[bytes]]) -> None:
    """Stop accepting, wait for the connections to end (grace seconds at
    most, or until "quit"), then close the manager."""
    for lst in listeners:
        lst.close()
    report = out
    if report is not None:
        try:
            _channel.send(report, "draining", stats=mgr.stats())
        except BrokenPipeError:
            report = None
    deadline = time.monotonic() + grace
    next_stats = time.monotonic() + STATS_INTERVAL
    # stats()["listeners"] falls once a socket is closed, after its worker
    # took what the kernel had queued: until then more connections may come.
    while not control.quit and time.monotonic() < deadline and (
            mgr.stats()["listeners"] > 0 or mgr.connections > 0):
        time.sleep(TICK)
        if report is not None and time.monotonic() >= next_stats:
            next_stats += STATS_INTERVAL
            try:
                _channel.send(report, "stats", stats=mgr.stats())
            except BrokenPipeError:
                report = None
    # What is left is reset: its time is up.
    mgr.close(0 if control.quit or time.monotonic() >= deadline else 1.0)


def main(argv: List[str]) -> int:
    opts = ServeOptions.from_json(argv[0])
    index, channel = int(argv[1]), int(argv[2])
    for path in reversed(opts.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    logging.basicConfig(level=log_level_number(opts.log_level),
                        format=f"%(name)s [{index}]: %(levelname)s: %(message)s")
    with _channel.open_channel(channel) as out:
        return run(opts, index, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
