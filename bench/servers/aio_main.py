"""What the asyncio yardsticks share: the command line (--loop
asyncio|uvloop, --port or --unix PATH, --tls-cert/--tls-key: TLS through the ssl module),
listening like pyiocp's listen() (127.0.0.1, backlog 1024), the "listening
on" line the suite waits for, and stopping on SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
from typing import Callable, Optional


async def _serve(name: str, protocol: Callable[[], asyncio.BaseProtocol], port: int,
                 tls: Optional[ssl.SSLContext], unix: Optional[str]) -> None:
    loop = asyncio.get_running_loop()
    if unix is not None:  # a stale socket file there is replaced
        server = await loop.create_unix_server(protocol, unix, backlog=1024, ssl=tls)
        print(f"{name}: listening on unix:{unix}", flush=True)
    else:
        server = await loop.create_server(protocol, "127.0.0.1", port, backlog=1024, ssl=tls)
        host, port = server.sockets[0].getsockname()[:2]
        print(f"{name}: listening on {host}:{port}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    await stop
    server.close()


def run(name: str, protocol: Callable[[], asyncio.BaseProtocol]) -> None:
    run_with(name, lambda ap: None, lambda args: protocol)


def run_with(name: str, add_args: Callable[[argparse.ArgumentParser], None],
             protocol_of: Callable[[argparse.Namespace], Callable[[], asyncio.BaseProtocol]]) -> None:
    """run, for a server with options of its own: add_args adds them,
    protocol_of picks the protocol from the parsed arguments."""
    ap = argparse.ArgumentParser(prog=name)
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix", help="listen on this Unix domain socket instead")
    ap.add_argument("--tls-cert", help="speak TLS with this certificate chain (PEM)")
    ap.add_argument("--tls-key", help="its key (PEM)")
    add_args(ap)
    args = ap.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(_serve(name, protocol_of(args), args.port, tls, args.unix))
