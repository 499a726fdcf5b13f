"""The pyiocp server of the thread-pool rows: each message is handed to a
thread pool, whose thread sends the reply (the pattern for blocking work:
examples/blocking_work.py). The echo is the job; what is measured is the
trip through the pool and the send from a thread that is not the worker.

    python bench/servers/pool_echo.py [--backend io_uring] [--port 0] [--threads 4]
"""

import contextlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pyiocp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from _serving import arguments, serve, stop_on_signals  # noqa: E402 (the examples' own runner)


class PoolEcho(pyiocp.Handler):
    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        self.pool.submit(self.reply, conn, data)

    @staticmethod
    def reply(conn: pyiocp.Connection, data: bytes) -> None:
        with contextlib.suppress(pyiocp.ConnectionClosed):
            conn.send(data)


def main() -> None:
    ap = arguments(__doc__, port=0)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    stop_on_signals()
    with ThreadPoolExecutor(args.threads) as pool:
        serve(pyiocp.SocketManager(PoolEcho(pool), workers=args.workers, backend=args.backend), "pool_echo",
              args.host, args.port, args.unix)


if __name__ == "__main__":
    main()
