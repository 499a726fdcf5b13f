"""The pyiocp server of the framing rows: the engine splits the frames
(pyiocp.Lines or a 4-byte big-endian pyiocp.LengthPrefixed) and the
handler sends each back with send_frame.

    python bench/servers/frame_echo.py --framing lines|length [--backend io_uring] [--port 0]
"""

import os
import sys

import pyiocp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from _serving import arguments, serve, stop_on_signals  # noqa: E402 (the examples' own runner)


class FrameEcho(pyiocp.Handler):
    def on_recv(self, conn: pyiocp.Connection, frame: bytes) -> None:
        conn.send_frame(frame)


def main() -> None:
    ap = arguments(__doc__, port=0)
    ap.add_argument("--framing", choices=["lines", "length"], required=True)
    args = ap.parse_args()
    stop_on_signals()
    framing = pyiocp.Lines() if args.framing == "lines" else pyiocp.LengthPrefixed()
    serve(pyiocp.SocketManager(FrameEcho(), workers=args.workers, backend=args.backend), "frame_echo",
          args.host, args.port, args.unix, framing=framing)


if __name__ == "__main__":
    main()
