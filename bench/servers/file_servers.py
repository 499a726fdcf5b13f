"""The file rows' yardsticks, each speaking examples/file_transfer.py's
protocol (a client that connects gets "<size> <sha256>\\n", then the
file's bytes, then the end of the stream):

    python bench/servers/file_servers.py pyiocp-readsend --file PATH [--backend io_uring]
    python bench/servers/file_servers.py uvloop --file PATH          # read+write on uvloop
    python bench/servers/file_servers.py asyncio-sendfile --file PATH  # loop.sendfile (os.sendfile)

pyiocp-readsend reads the file in 256 KiB pieces and sends them, paced by
on_drain: what a pyiocp server did before Connection.sendfile. uvloop has
no loop.sendfile (it raises NotImplementedError), so its row reads and
writes, awaiting drain(); asyncio's loop.sendfile is its zero-copy one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Optional

import pyiocp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
from file_transfer import sha256_of  # noqa: E402

PIECE = 256 << 10


class ReadSend(pyiocp.Handler):
    def __init__(self, path: str, header: bytes) -> None:
        self.path, self.header = path, header

    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.file = open(self.path, "rb")
        conn.piece = b""
        conn.send(self.header)
        self.pump(conn)

    def on_drain(self, conn: pyiocp.Connection) -> None:
        self.pump(conn)

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        if getattr(conn, "file", None) is not None:
            conn.file.close()
            conn.file = None

    def pump(self, conn: pyiocp.Connection) -> None:
        while conn.file is not None:
            piece = conn.piece or conn.file.read(PIECE)
            if not piece:
                conn.file.close()
                conn.file = None
                conn.close()
                return
            try:
                conn.send(piece)
            except pyiocp.BufferFull:
                conn.piece = piece  # sent on the next drain
                return
            except pyiocp.ConnectionClosed:
                return
            conn.piece = b""


async def serve_asyncio(path: str, header: bytes, zero_copy: bool) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        writer.write(header)
        with open(path, "rb") as f:
            if zero_copy:
                await loop.sendfile(writer.transport, f)
            else:
                while block := f.read(PIECE):
                    writer.write(block)
                    await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"file_servers: listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("impl", choices=["pyiocp-readsend", "uvloop", "asyncio-sendfile"])
    ap.add_argument("--file", required=True)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    header = f"{os.path.getsize(args.file)} {sha256_of(args.file)}\n".encode()
    if args.impl == "pyiocp-readsend":
        from _serving import serve, stop_on_signals

        stop_on_signals()
        mgr = pyiocp.SocketManager(ReadSend(args.file, header), backend=args.backend, send_buffer_limit=8 << 20)
        serve(mgr, "file_servers", "127.0.0.1", 0)
        return
    if args.impl == "uvloop":
        import uvloop

        uvloop.install()
    try:
        asyncio.run(serve_asyncio(args.file, header, args.impl == "asyncio-sendfile"))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
