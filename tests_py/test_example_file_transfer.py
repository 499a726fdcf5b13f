"""examples/file_transfer.py: a 64 MiB file to several clients at once,
paced by on_drain, checked with SHA-256."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest

from example_procs import EXAMPLES, env_for, example, running
from iocp_helpers import PYTHON
from pyiocp.testing import Client

SIZE = 64 << 20


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, str]:
    path = tmp_path_factory.mktemp("transfer") / "big.bin"
    h = hashlib.sha256()
    with open(path, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(SIZE >> 20):
            piece = bytes([i]) + block[1:]  # not 64 copies of one MiB
            f.write(piece)
            h.update(piece)
    return path, h.hexdigest()


class Progress:
    """How far a slow download is, and when it may stop being slow."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.hurry = threading.Event()
        self.received = 0


def download(address: Tuple[str, int], *, rcvbuf: Optional[int] = None, pause: float = 0.0,
             progress: Optional[Progress] = None) -> Tuple[int, str, int, str]:
    """(size, sha256) the server announced, and (bytes, sha256) received.
    With pause, it sleeps between reads until progress.hurry is set."""
    h = hashlib.sha256()
    got = 0
    with Client(address, rcvbuf=rcvbuf, timeout=30) as c:
        size_text, digest = c.recv_until(b"\n").decode().split()
        while True:
            piece = c.recv(1 << 20 if rcvbuf is None else rcvbuf)
            if not piece:
                break
            h.update(piece)
            got += len(piece)
            if progress is not None:
                progress.received = got
                progress.started.set()
                if pause and not progress.hurry.is_set():
                    time.sleep(pause)
    return int(size_text), digest, got, h.hexdigest()


@pytest.mark.linux  # stops a child with SIGINT / SIGTERM, which Windows cannot send
def test_a_large_file_arrives_whole_to_fast_and_slow_clients(big_file: Tuple[Path, str], backend: str) -> None:
    path, digest = big_file
    argv = example("file_transfer.py", "--file", str(path), "--send-buffer-limit", str(1 << 20), "--backend", backend)
    with running(argv) as server:
        assert download(server.address) == (SIZE, digest, SIZE, digest)

        # A slow client (small reads, pauses) and two fast ones at once: the
        # slow one does not hold up the others, which finish while it is
        # still at it; everyone gets every byte.
        results: Dict[str, Tuple[int, str, int, str]] = {}
        slow = Progress()

        def slow_download() -> None:
            results["slow"] = download(server.address, rcvbuf=1 << 16, pause=0.002, progress=slow)

        t = threading.Thread(target=slow_download)
        t.start()
        try:
            assert slow.started.wait(10)
            fast = [download(server.address) for _ in range(2)]
            slow_at = slow.received
        finally:
            slow.hurry.set()
            t.join(60)
        assert fast == [(SIZE, digest, SIZE, digest)] * 2
        assert results["slow"] == (SIZE, digest, SIZE, digest)
        assert slow_at < SIZE, "the slow client was done before two fast ones"


@pytest.mark.linux  # stops a child with SIGINT / SIGTERM, which Windows cannot send
def test_clients_that_leave_early(big_file: Tuple[Path, str], backend: str) -> None:
    """Clients that reset after the first MiB: the server closes the file
    of each (on_close) and keeps serving, and stops at once on SIGINT."""
    path, digest = big_file
    with running(example("file_transfer.py", "--file", str(path), "--backend", backend)) as server:
        for _ in range(3):
            with Client(server.address) as c:
                c.recv_until(b"\n")
                c.recv_exactly(1 << 20)
                c.reset()
        fd_dir = Path(f"/proc/{server.proc.pid}/fd")

        def open_copies() -> int:
            targets = []
            for fd in fd_dir.iterdir():
                try:
                    targets.append(os.readlink(fd))
                except OSError:
                    pass
            return targets.count(str(path))

        deadline = time.monotonic() + 5
        while open_copies() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert open_copies() == 0
        with Client(server.address) as c:
            assert c.recv_until(b"\n") == f"{SIZE} {digest}\n".encode()


def test_bad_arguments() -> None:
    script = str(EXAMPLES / "file_transfer.py")
    for args in (["--port", "0"], ["--file", __file__, "--chunk", "9", "--send-buffer-limit", "8"]):
        r = subprocess.run([PYTHON, script, *args], capture_output=True, text=True, timeout=20,
                           env=env_for([script]))
        assert r.returncode == 2, (args, r.stderr)
        assert "error:" in r.stderr
