"""The command line: python -m pyiocp echo|bench (and the pyiocp script)."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from iocp_helpers import LATE, PYTHON, client, reap, recv_exactly, unexpected_stderr

PYIOCP_SCRIPT = str(Path(PYTHON).parent / "pyiocp")


def run(*args: str, timeout: float = 30) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([PYTHON, "-m", "pyiocp", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args", [["--help"], ["echo", "--help"], ["bench", "--help"], ["serve", "--help"]])
def test_help(args: List[str]) -> None:
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


@pytest.mark.linux  # the `pyiocp` script of the project's .venv
def test_script_help() -> None:
    r = subprocess.run([PYIOCP_SCRIPT, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "usage: pyiocp" in r.stdout
    assert "echo" in r.stdout and "bench" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nope"],
        ["echo", "--port", "70000"],
        ["echo", "--port", "-1"],
        ["echo", "--port", "abc"],
        ["echo", "--workers", "0"],
        ["echo", "--workers", "two"],
        ["echo", "--bogus"],
        ["bench", "--conns", "0"],
        ["bench", "--size", "x"],
        ["bench", "--depth", "-3"],
        ["bench", "--duration", "0"],
        ["bench", "--duration", "-1"],
        ["bench", "--warmup", "-1"],
        ["bench", "--port", "99999"],
    ],
)
def test_bad_arguments_exit_2(args: List[str]) -> None:
    r = run(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()  # says what is wrong
    assert "Traceback" not in r.stderr


@contextlib.contextmanager
def echo_server(*extra: str) -> Iterator[Tuple["subprocess.Popen[str]", int]]:
    proc = subprocess.Popen([PYTHON, "-m", "pyiocp", "echo", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield proc, int(m.group(1))
    finally:
        reap(proc)


def _stop(proc: "subprocess.Popen[str]", sig: int) -> Tuple[int, float]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(5)
    return code, time.monotonic() - t0


@pytest.mark.linux  # stops a child with SIGINT / SIGTERM, which Windows cannot send
@pytest.mark.parametrize("workers", ["1", "2"])
def test_echo_then_bench_json(workers: str) -> None:
    with echo_server("--workers", workers) as (proc, port):
        with client(("127.0.0.1", port)) as s:
            s.sendall(b"hello")
            assert recv_exactly(s, 5) == b"hello"
        r = run("bench", "--port", str(port), "--conns", "4", "--size", "100", "--depth", "2",
                "--duration", "0.5", "--warmup", "0.1", "--json")
        assert r.returncode == 0, (r.stdout, r.stderr)
        result = json.loads(r.stdout)
        assert result["errors"] == 0
        assert result["mismatches"] == 0
        assert result["messages"] > 0
        assert result["connected"] == 4
        assert result["conns"] == 4 and result["size"] == 100 and result["depth"] == 2
        code, elapsed = _stop(proc, signal.SIGINT)
    assert code == 0
    assert elapsed < LATE, elapsed


@pytest.mark.linux  # stops a child with SIGINT / SIGTERM, which Windows cannot send
def test_bench_table_output() -> None:
    with echo_server() as (proc, port):
        r = run("bench", "--port", str(port), "--conns", "2", "--duration", "0.3", "--warmup", "0")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip()
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.stdout)
        _stop(proc, signal.SIGINT)


def test_bench_against_a_closed_port_exits_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # reserved, not listening: refused
        port = s.getsockname()[1]
        r = run("bench", "--port", str(port), "--conns", "2", "--duration", "0.3", "--warmup", "0", "--json")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "refused" in r.stderr.lower()
    assert "Traceback" not in r.stderr


@pytest.mark.linux  # Windows cannot send a child SIGINT or SIGTERM
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_echo_stops_on_signal_with_exit_0(sig: int) -> None:
    with echo_server() as (proc, port):
        with client(("127.0.0.1", port)) as s:  # with a connection open
            s.sendall(b"x")
            assert recv_exactly(s, 1) == b"x"
            code, elapsed = _stop(proc, sig)
        assert proc.stderr is not None and unexpected_stderr(proc.stderr.read()) == ""
    assert code == 0
    assert elapsed < LATE, elapsed


def test_echo_on_a_port_in_use_exits_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run("echo", "--port", str(s.getsockname()[1]), timeout=10)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "pyiocp echo:" in r.stderr
    assert "Traceback" not in r.stderr


def test_echo_unknown_backend_exits_1() -> None:
    r = run("echo", "--port", "0", "--backend", "nope", timeout=10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "backend" in r.stderr


@pytest.mark.linux  # Unix domain sockets, and SIGINT to stop the server
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_echo_and_bench_on_a_unix_socket(tmp_path: Path, abstract: bool) -> None:
    name = f"@pyiocp-cli-{time.monotonic_ns()}" if abstract else str(tmp_path / "echo.sock")
    proc = subprocess.Popen([PYTHON, "-m", "pyiocp", "echo", "--unix", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert f"listening on unix:{name}" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(LATE)
            s.connect("\0" + name[1:] if abstract else name)
            s.sendall(b"hello")
            assert recv_exactly(s, 5) == b"hello"
        r = run("bench", "--unix", name, "--conns", "4", "--duration", "0.5", "--warmup", "0.1", "--json")
        assert r.returncode == 0, (r.stdout, r.stderr)
        result = json.loads(r.stdout)
        assert (result["errors"], result["mismatches"], result["connected"]) == (0, 0, 4)
        assert result["messages"] > 0
        code, _ = _stop(proc, signal.SIGINT)
        assert code == 0
    finally:
        reap(proc)
    if not abstract:
        assert not Path(name).exists()  # removed as the server stopped
