"""Every example: --help, and a clean stop on SIGINT and SIGTERM (exit 0)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from example_procs import EXAMPLES, env_for, example, running
from iocp_helpers import PYTHON, unexpected_stderr
from pyiocp.testing import Client

EXTRA = {"file_transfer.py": ["--file", __file__]}
NAMES = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))

# A request each example answers, and the start of its answer: made before
# the signal, so that the server is serving (its workers running). A
# Ctrl-C that lands while serve_forever() is still starting its worker
# threads is test_signals.py's
# test_ctrl_c_while_the_workers_spawn_closes_at_once.
EXCHANGE = {
    "echo.py": (b"ping", b"ping"),
    "http_server.py": (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK"),
    "chat.py": (b"", b"* welcome"),
    "file_transfer.py": (b"", str(Path(__file__).stat().st_size).encode()),
    "blocking_work.py": (b"1 ping\n", b"1 pong"),
    "kv_server.py": (b"\0\0\0\5GET k", b"\0\0\0\10NOTFOUND"),
}


def test_every_example_is_here() -> None:
    assert set(NAMES) == set(EXCHANGE)


@pytest.mark.parametrize("name", NAMES)
def test_help(name: str) -> None:
    argv = [str(EXAMPLES / name), "--help"]
    r = subprocess.run([PYTHON, *argv], capture_output=True, text=True, timeout=20, env=env_for(argv))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:") and "--port" in r.stdout and "--host" in r.stdout


@pytest.mark.linux  # Windows cannot send a child SIGINT or SIGTERM
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", NAMES)
def test_stops_cleanly_on_a_signal(name: str, sig: int) -> None:
    with running(example(name, *EXTRA.get(name, [])), stop_signal=sig) as server:
        assert server.lines[0].startswith(f"{name[:-3]}: listening on 127.0.0.1:")
        request, answer = EXCHANGE[name]
        with Client(server.address) as c:
            c.send(request)
            assert c.recv_exactly(len(answer)) == answer
        t0 = time.monotonic()
        code = server.stop(sig)
        assert code == 0, server.stderr()
        assert time.monotonic() - t0 < 2
        assert unexpected_stderr(server.stderr()) == ""
