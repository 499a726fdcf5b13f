"""Send a large file to every client, paced by ``on_drain``.

    python examples/file_transfer.py --file PATH [--host 127.0.0.1] [--port 7080] [--backend auto]

    nc 127.0.0.1 7080 > copy      # then: head -1 copy; sha256sum PATH

Each client that connects gets one line, the file's size in bytes and its
SHA-256 (``<size> <sha256>\\n``), then the file's bytes; then the server
closes the connection.

The file is never loaded: ``sendfile`` queues a range of it, whose bytes
go from the file to the socket in the kernel (``sendfile(2)``,
``TransmitFile``), a piece at a time until it raises ``BufferFull`` (the
client reads slower than the server sends). It stops there;
``on_drain`` comes once the send buffer has drained to its low
watermark, and the server goes on from the offset it kept. Each
connection has at most ``--send-buffer-limit`` bytes queued, however
slow its client.
"""

from __future__ import annotations

import hashlib
import os
from typing import List, Optional

import pyiocp
from _serving import arguments, serve, stop_on_signals

CHUNK = 256 << 10


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class FileSender(pyiocp.Handler):
    """Per connection: ``file`` (open while sending) and ``offset`` (the
    next byte to queue)."""

    def __init__(self, path: str, chunk: int = CHUNK) -> None:
        self.path = path
        self.chunk_size = chunk
        self.size = os.path.getsize(path)
        self.header = f"{self.size} {sha256_of(path)}\n".encode()

    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.file = open(self.path, "rb")
        conn.offset = 0
        conn.send(self.header)
        self.pump(conn)

    def on_drain(self, conn: pyiocp.Connection) -> None:
        self.pump(conn)

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        # None once queued whole; unset when Ctrl-C cut on_accept short.
        if getattr(conn, "file", None) is not None:  # the client left before the end
            conn.file.close()
            conn.file = None

    def pump(self, conn: pyiocp.Connection) -> None:
        """Queue pieces until the buffer is full (on_drain continues) or
        the file is queued whole."""
        while conn.file is not None:
            count = min(self.chunk_size, self.size - conn.offset)
            if count == 0:
                conn.file.close()  # sendfile keeps its own descriptor
                conn.file = None
                conn.close()  # after the pending bytes are written
                return
            try:
                conn.sendfile(conn.file, conn.offset, count)
            except pyiocp.BufferFull:
                return
            except pyiocp.ConnectionClosed:
                return  # on_close closes the file
            conn.offset += count


def main(argv: Optional[List[str]] = None) -> None:
    ap = arguments(__doc__, port=7080)
    ap.add_argument("--file", required=True, help="the file to send")
    ap.add_argument("--chunk", type=int, default=CHUNK, help="bytes of the file queued at a time")
    ap.add_argument("--send-buffer-limit", type=int, default=1 << 20, help="bytes buffered per connection")
    args = ap.parse_args(argv)
    if not 0 < args.chunk <= args.send_buffer_limit:
        ap.error("--chunk must be between 1 and --send-buffer-limit")
    if not os.path.isfile(args.file):
        ap.error(f"{args.file}: not a file")
    stop_on_signals()
    handler = FileSender(args.file, args.chunk)
    mgr = pyiocp.SocketManager(handler, workers=args.workers, backend=args.backend,
                               send_buffer_limit=args.send_buffer_limit)
    serve(mgr, "file_transfer", args.host, args.port, args.unix)


if __name__ == "__main__":
    main()
