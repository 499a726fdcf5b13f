"""The client of the file rows: connect, read the header
("<size> <sha256>\\n") and the file's bytes to the end of the stream,
check them against the size and digest the suite expects, print JSON.

    python -m bench.suite.download HOST PORT SIZE SHA256
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import time
from typing import List


def main(argv: List[str]) -> int:
    host, port, size, digest = argv[0], int(argv[1]), int(argv[2]), argv[3]
    t0 = time.monotonic()
    with socket.create_connection((host, port), timeout=120) as s:
        header = b""
        while not header.endswith(b"\n"):
            b = s.recv(1)
            if not b:
                break
            header += b
        h = hashlib.sha256()
        got = 0
        buf = memoryview(bytearray(1 << 20))
        while n := s.recv_into(buf):
            h.update(buf[:n])
            got += n
    seconds = time.monotonic() - t0
    ok = header == f"{size} {digest}\n".encode() and got == size and h.hexdigest() == digest
    print(json.dumps({"bytes": got, "seconds": seconds, "ok": ok, "header": header.decode(errors="replace")[:100]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
