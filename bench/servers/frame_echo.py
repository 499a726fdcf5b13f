"""The pyiocp server of the framing rows: the engine splits the frames
(pyiocp.Lines or a 4-byte big-endian pyiocp.LengthPrefixed) and the
handler sends each back with send_frame.

    python bench/servers/frame_echo.py --framing lines|length [--backend io_uring] [--port 0]
"""

import argparse
import contextlib
import signal
from types import FrameType
from typing import Optional

import pyiocp


class FrameEcho(pyiocp.Handler):
    def on_recv(self, conn: pyiocp.Connection, frame: bytes) -> None:
        conn.send_frame(frame)


def main() -> None:
    ap = argparse.ArgumentParser(prog="frame_echo")
    ap.add_argument("--framing", choices=["lines", "length"], required=True)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    framing = pyiocp.Lines() if args.framing == "lines" else pyiocp.LengthPrefixed()
    with pyiocp.SocketManager(FrameEcho(), backend=args.backend) as mgr, contextlib.suppress(KeyboardInterrupt):
        host, port = mgr.listen("127.0.0.1", args.port, framing=framing).address
        print(f"frame_echo: listening on {host}:{port}", flush=True)
        mgr.serve_forever()


if __name__ == "__main__":
    main()
