"""What every example server shares: the command line options of a server
(address, worker threads, backend) and running until Ctrl-C or SIGTERM.
Copying an example? Copy this file with it: it is all standard library
and pyiocp."""

from __future__ import annotations

import argparse
import contextlib
import signal
from types import FrameType
from typing import Any, Optional, Tuple

import pyiocp


def arguments(doc: Optional[str], *, port: int, workers: int = 1, tls: bool = False) -> argparse.ArgumentParser:
    """A parser with --host, --port (or --unix), --workers and --backend
    (with tls, --tls-cert and --tls-key too: see tls_config); the example
    adds its own options."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=port)
    ap.add_argument("--unix", metavar="PATH", help="listen on this Unix domain socket instead of --host/--port "
                                                   "(Linux)")
    ap.add_argument("--workers", type=int, default=workers, help="I/O worker threads")
    ap.add_argument("--backend", default="auto", help="auto, or a backend such as epoll or io_uring")
    if tls:
        ap.add_argument("--tls-cert", help="speak TLS with this certificate chain (PEM)")
        ap.add_argument("--tls-key", help="its key (PEM; default: in --tls-cert)")
    return ap


def tls_config(args: argparse.Namespace, alpn: Tuple[str, ...] = ()) -> Optional[pyiocp.TLSConfig]:
    """The TLSConfig of --tls-cert and --tls-key, None without them. The
    files are read now: a bad one stops the server before it listens."""
    if not args.tls_cert:
        return None
    return pyiocp.TLSConfig(args.tls_cert, args.tls_key, alpn=alpn)


def stop_on_signals() -> None:
    """Make SIGTERM stop the server like Ctrl-C, and Ctrl-C work even when
    the shell started the server in the background (SIGINT ignored).

    serve_forever() handles SIGTERM too, but only once it runs: installed
    first, this also covers a SIGTERM right after the "listening" line.
    Call it before the SocketManager is made."""

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def serve(mgr: pyiocp.SocketManager, name: str, host: str, port: int, unix: Optional[str] = None,
          **listen: Any) -> None:
    """Listen on host:port, or on the Unix domain socket unix when given
    (listen's other arguments, such as framing=, are passed on), say where,
    and serve until Ctrl-C or SIGTERM, which end it quietly; the manager is
    closed on the way out."""
    with mgr, contextlib.suppress(KeyboardInterrupt):
        if unix is not None:
            mgr.listen_unix(unix, **listen)
            print(f"{name}: listening on unix:{unix}", flush=True)
        else:
            host, port = mgr.listen(host, port, **listen).address
            print(f"{name}: listening on {host}:{port}", flush=True)
        mgr.serve_forever()
