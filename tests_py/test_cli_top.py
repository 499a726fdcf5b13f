"""``pyiocp echo --stats-port`` (the statistics endpoint) and ``pyiocp top``
(its live view); the live progress line of ``bench`` on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from example_procs import Server, running
from iocp_helpers import PYTHON, reap
from pyiocp.testing import Client

SCRIPT = str(Path(PYTHON).parent / "pyiocp")


def cli(*args: str, timeout: float = 30) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([PYTHON, "-m", "pyiocp", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def echo() -> Iterator[Tuple[Server, int]]:
    """An echo server with its statistics endpoint: (server, stats port)."""
    with running(["-m", "pyiocp", "echo", "--port", "0", "--stats-port", "0", "--workers", "2"],
                 extra_lines=1) as server:
        m = re.match(r"pyiocp echo: stats on 127\.0\.0\.1:(\d+)$", server.lines[1].strip())
        assert m, server.lines
        yield server, int(m.group(1))


class Traffic:
    """Echo traffic on a few connections until stopped."""

    def __init__(self, server: Server, conns: int = 3) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(server,)) for _ in range(conns)]
        for t in self.threads:
            t.start()

    def run(self, server: Server) -> None:
        with Client(server.address) as c:
            while not self.stop.is_set():
                c.send(b"x" * 1000)
                c.recv_exactly(1000)

    def __enter__(self) -> "Traffic":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_help() -> None:
    r = cli("top", "--help")
    assert r.returncode == 0 and "usage: pyiocp top" in r.stdout and "--count" in r.stdout
    r = cli("echo", "--help")
    assert r.returncode == 0 and "--stats-port" in r.stdout
    r = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "top" in r.stdout and "exit codes" in r.stdout


@pytest.mark.parametrize("args", [
    ["top"],
    ["top", "--port", "x"],
    ["top", "--port", "1", "--interval", "0"],
    ["top", "--port", "1", "--count", "0"],
    ["echo", "--stats-port", "70000"],
])
def test_bad_arguments_exit_2(args: List[str]) -> None:
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip()


def test_the_stats_endpoint(echo: Tuple[Server, int]) -> None:
    server, stats_port = echo
    with Client(server.address) as c:
        c.send(b"stats\n")  # on the echo port, just bytes
        assert c.recv_exactly(6) == b"stats\n"
        with Client(("127.0.0.1", stats_port)) as s:
            s.send(b"stats\nst")
            first = json.loads(s.recv_until(b"\n"))
            s.send(b"ats\r\nnonsense\n")
            second = json.loads(s.recv_until(b"\n"))
            error = json.loads(s.recv_until(b"\n"))
    for key in ("connections", "accepted", "closed", "bytes_in", "bytes_out", "completions", "workers", "backend",
                "pending_send_bytes", "paused_reading", "uptime", "stats_connections"):
        assert key in first
    assert first["connections"] == 2 and first["stats_connections"] == 1 and first["workers"] == 2
    assert second["bytes_in"] >= first["bytes_in"] + 6 and second["uptime"] >= first["uptime"]
    assert "unknown command 'nonsense'" in error["error"]


def test_top_json_lines_follow_the_traffic(echo: Tuple[Server, int]) -> None:
    server, stats_port = echo
    with Traffic(server):
        r = cli("top", "--port", str(stats_port), "--interval", "0.2", "--count", "3", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["bytes_in_per_s"] == 0.0  # no rate before a second sample
    assert rows[2]["connections"] == 3  # the endpoint's own connection is not counted
    assert rows[2]["bytes_in_per_s"] > 0 and rows[2]["completions_per_s"] > 0
    assert rows[2]["backend"] and rows[2]["workers"] == 2


def test_top_table_when_not_on_a_terminal(echo: Tuple[Server, int]) -> None:
    server, stats_port = echo
    r = cli("top", "--port", str(stats_port), "--interval", "0.1", "--count", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and "\x1b" not in r.stdout
    assert lines[0].split() == ["uptime", "conns", "accepted/s", "closed/s", "in", "MB/s", "out", "MB/s",
                                "events/s", "paused", "pending"]
    assert lines[2].split()[1] == "0"  # connections


def run_on_a_terminal(argv: List[str], timeout: float = 20) -> Tuple[int, str]:
    """Run argv with stdout and stderr on a pseudo-terminal; its exit code
    and everything it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(5), out.decode("utf-8", "replace")
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_top_redraws_in_place_on_a_terminal(echo: Tuple[Server, int]) -> None:
    server, stats_port = echo
    code, out = run_on_a_terminal([PYTHON, "-m", "pyiocp", "top", "--port", str(stats_port), "--interval", "0.1",
                                   "--count", "3"])
    assert code == 0, out
    assert out.count("\x1b[H\x1b[2J") == 3
    assert f"pyiocp top: 127.0.0.1:{stats_port}, backend " in out


def test_bench_shows_a_live_progress_line_on_a_terminal(echo: Tuple[Server, int]) -> None:
    server, _ = echo
    code, out = run_on_a_terminal([PYTHON, "-m", "pyiocp", "bench", "--port", str(server.port), "--conns", "2",
                                   "--duration", "1", "--warmup", "0"])
    assert code == 0, out
    progress = re.findall(r"\r +\d+\.\d s +[\d,]+ msgs +[\d,]+ msgs/s", out)
    assert len(progress) >= 2, out
    assert "mismatches" in out  # then the table


def test_top_without_an_endpoint_exits_1() -> None:
    import socket

    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        r = cli("top", "--port", str(reserved.getsockname()[1]), "--count", "1")
    assert r.returncode == 1
    assert "pyiocp top: cannot reach the statistics endpoint" in r.stderr and "Traceback" not in r.stderr


def test_top_against_a_port_that_is_not_an_endpoint(echo: Tuple[Server, int]) -> None:
    server, _ = echo
    r = cli("top", "--port", str(server.port), "--count", "1")  # the echo port: "stats" comes back
    assert r.returncode == 1
    assert f"pyiocp top: 127.0.0.1:{server.port} is not a statistics endpoint" in r.stderr
    assert "Traceback" not in r.stderr


def test_top_exits_1_when_the_server_goes_away(echo: Tuple[Server, int]) -> None:
    server, stats_port = echo
    top = subprocess.Popen([PYTHON, "-m", "pyiocp", "top", "--port", str(stats_port), "--interval", "0.05"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert top.stdout is not None and top.stdout.readline().split()[0] == "uptime"
        assert server.stop(signal.SIGTERM) == 0
        assert top.wait(10) == 1
        assert top.stderr is not None and "pyiocp top: lost the statistics endpoint" in top.stderr.read()
    finally:
        reap(top)


def test_top_ends_on_sigint_with_exit_0(echo: Tuple[Server, int]) -> None:
    _, stats_port = echo
    top = subprocess.Popen([PYTHON, "-m", "pyiocp", "top", "--port", str(stats_port), "--interval", "0.05"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert top.stdout is not None and top.stdout.readline()
        top.send_signal(signal.SIGINT)
        assert top.wait(10) == 0
        assert top.stderr is not None and top.stderr.read() == ""
    finally:
        reap(top)
