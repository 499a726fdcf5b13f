"""The UDP rows' Python servers: every datagram is sent back to where it
came from. pyiocp (bind_udp and on_datagram), and asyncio's
DatagramProtocol on uvloop (the yardstick) or the default loop.

    python bench/servers/udp_echo.py pyiocp [--backend io_uring]
    python bench/servers/udp_echo.py uvloop|asyncio
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any, Tuple, cast

import pyiocp


class Echo(pyiocp.Handler):
    def on_datagram(self, endpoint: pyiocp.DatagramEndpoint, data: bytes, addr: Tuple[str, int]) -> None:
        endpoint.sendto(data, addr)


class EchoProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


async def serve_asyncio() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(EchoProtocol, local_addr=("127.0.0.1", 0))
    host, port = transport.get_extra_info("sockname")[:2]
    print(f"udp_echo: listening on {host}:{port}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    await stop
    transport.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("impl", choices=["pyiocp", "uvloop", "asyncio"])
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    if args.impl != "pyiocp":
        if args.impl == "uvloop":
            import uvloop

            uvloop.install()
        asyncio.run(serve_asyncio())
        return
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
    from _serving import stop_on_signals

    stop_on_signals()
    mgr = pyiocp.SocketManager(Echo(), backend=args.backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    print(f"udp_echo: listening on {ep.address[0]}:{ep.address[1]}", flush=True)
    try:
        mgr.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
