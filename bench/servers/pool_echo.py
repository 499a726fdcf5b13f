"""The pyiocp server of the thread-pool rows: each message is handed to a
thread pool, whose thread sends the reply (the pattern for blocking work:
examples/blocking_work.py). The echo is the job; what is measured is the
trip through the pool and the send from a thread that is not the worker.

    python bench/servers/pool_echo.py [--backend io_uring] [--port 0] [--threads 4]
"""

import argparse
import contextlib
import signal
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Optional

import pyiocp


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
    ap = argparse.ArgumentParser(prog="pool_echo")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    with ThreadPoolExecutor(args.threads) as pool, pyiocp.SocketManager(PoolEcho(pool), backend=args.backend) as mgr, \
            contextlib.suppress(KeyboardInterrupt):
        host, port = mgr.listen("127.0.0.1", args.port).address
        print(f"pool_echo: listening on {host}:{port}", flush=True)
        mgr.serve_forever()


if __name__ == "__main__":
    main()
