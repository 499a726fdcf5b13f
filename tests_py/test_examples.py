"""The example servers, run as a user runs them, over real sockets."""

from __future__ import annotations

import re
import socket
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from example_procs import env_for, stop_for_stacks
from iocp_helpers import PYTHON, reap, recv_exactly, small_rcvbuf_client

# Linux: the servers run as subprocesses stopped with SIGINT or SIGTERM,
# which Windows cannot send to a child process.
pytestmark = pytest.mark.linux

ROOT = Path(__file__).resolve().parent.parent


def start(argv: List[str]) -> Tuple["subprocess.Popen[str]", int]:
    """Start a server printing 'listening on HOST:PORT'; return it and the port."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env_for(argv[1:]))
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on [\d.]+:(\d+)", line)
    if not m:
        proc.kill()
        err = proc.stderr.read()
        reap(proc)
        pytest.fail(f"no listening line: {line!r} {err}")
    return proc, int(m.group(1))


def stop(proc: "subprocess.Popen[str]", sig: int = signal.SIGINT) -> None:
    """Stop a server with sig: it must exit 0, quietly."""
    assert proc.stdout is not None and proc.stderr is not None
    proc.send_signal(sig)
    try:
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            stop_for_stacks(proc)
            pytest.fail(f"no exit within 10 s of {signal.Signals(sig).name}; stderr, with its stacks: "
                        f"{proc.stderr.read()[-6000:]}")
        assert code == 0, proc.stderr.read()
        assert proc.stderr.read() == ""
    finally:
        reap(proc)


SERVERS = {
    "examples/echo.py": [PYTHON, "examples/echo.py", "--port", "0"],
    "python -m pyiocp echo": [PYTHON, "-m", "pyiocp", "echo", "--port", "0"],
}


@pytest.mark.parametrize("name", SERVERS)
def test_echo_server_keeps_a_peer_that_writes_far_ahead(name: str) -> None:
    """A peer that writes 16 MiB and only starts reading half a second
    later, through a small receive buffer: the server's 4 MiB send buffer
    fills up, and the server pauses reading instead of dropping the peer;
    every byte comes back in order."""
    proc, port = start(SERVERS[name])
    try:
        payload = bytes(range(256)) * (16 << 12)
        with small_rcvbuf_client(("127.0.0.1", port), timeout=30) as s:
            writer = threading.Thread(target=s.sendall, args=(payload,))
            writer.start()
            time.sleep(0.5)
            got = recv_exactly(s, len(payload))
            writer.join(30)
        assert got == payload
    finally:
        stop(proc)


def test_example_echo_with_the_load_generator() -> None:
    proc, port = start(SERVERS["examples/echo.py"])
    try:
        r = subprocess.run([PYTHON, "-m", "pyiocp", "bench", "--port", str(port), "--conns", "20",
                            "--duration", "1", "--warmup", "0.2"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"mismatches\s+0", r.stdout)
    finally:
        stop(proc)



# Every example server, as a user starts it, and a file for file_transfer.
EXTRA_ARGS: Dict[str, List[str]] = {"echo.py": [], "chat.py": [], "http_server.py": [],
                                    "blocking_work.py": [], "file_transfer.py": ["--file", __file__],
                                    "kv_server.py": []}
EXAMPLE_SERVERS = {script: [PYTHON, f"examples/{script}", "--port", "0", *extra]
                   for script, extra in EXTRA_ARGS.items()}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("script", EXAMPLE_SERVERS)
def test_example_server_stops_quietly(script: str, sig: int) -> None:
    """Ctrl-C, and SIGTERM (what a process manager sends, which
    serve_forever handles itself), stop each example with exit status 0 and
    nothing on stderr, a client connected meanwhile."""
    proc, port = start(EXAMPLE_SERVERS[script])
    try:
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
    except BaseException:
        reap(proc)
        raise
    with client:
        stop(proc, sig)
