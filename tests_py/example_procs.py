"""Running the example servers and the CLI as a user runs them: a
subprocess that prints ``listening on HOST:PORT``, stopped with a signal."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Dict, Iterator, List, Optional, Tuple

import pytest

from iocp_helpers import PYTHON, REPO

EXAMPLES = REPO / "examples"


def env_for(args: List[str]) -> Dict[str, str]:
    """The environment to run python with args in. The examples import their
    sibling _serving.py through the script's directory on sys.path, which
    PYTHONSAFEPATH leaves out (the Windows harness and the debug run set it,
    so that the source tree's pyiocp, in the current directory, does not
    shadow the build under test): a script runs without it. `-m` and `-c`
    keep it. faulthandler is on, for stop_for_stacks."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    if args and args[0].endswith(".py"):
        env.pop("PYTHONSAFEPATH", None)
    return env


def stop_for_stacks(proc: "subprocess.Popen[str]") -> None:
    """End a server that did not exit when told to. On Linux with SIGABRT:
    faulthandler (env_for turns it on) first prints every thread's Python
    stack to its stderr, which says where it was stuck. Elsewhere killed."""
    if sys.platform == "win32":
        proc.kill()
    else:
        proc.send_signal(signal.SIGABRT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Server:
    """A running server process: its port and the lines it printed first."""

    def __init__(self, proc: "subprocess.Popen[str]", port: int, lines: List[str], stderr: IO[str]) -> None:
        self.proc = proc
        self.port = port
        self.lines = lines
        self._stderr = stderr

    @property
    def address(self) -> Tuple[str, int]:
        return "127.0.0.1", self.port

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        """Send sig and wait for the exit code; fail if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_for_stacks(self.proc)
            pytest.fail(f"{self.proc.args!r} did not exit within {timeout} s of {signal.Signals(sig).name}; "
                        f"stderr, with its stacks: {self.stderr()[-6000:]}")


@contextlib.contextmanager
def running(argv: List[str], *, extra_lines: int = 0, stop_signal: int = signal.SIGINT) -> Iterator[Server]:
    """Start argv (python and its arguments follow), wait for its
    ``listening on HOST:PORT`` line (and extra_lines more), yield it; at
    the end stop it with stop_signal and require exit code 0."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([PYTHON, *argv], stdout=subprocess.PIPE, stderr=err, text=True,
                                env=env_for(argv))
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            m = re.search(r"listening on \S+:(\d+)", line)
            if not m:
                proc.kill()
                proc.wait()
                err.seek(0)
                pytest.fail(f"{argv}: no 'listening on' line: {line!r} {err.read()}")
            lines = [line] + [proc.stdout.readline() for _ in range(extra_lines)]
            server = Server(proc, int(m.group(1)), lines, err)
            yield server
            code = server.stop(stop_signal)
            assert code == 0, (code, server.stderr())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def example(name: str, *args: str) -> List[str]:
    """The argv (after python) of examples/<name> on a free port."""
    return [str(EXAMPLES / name), "--port", "0", *args]


def path_of(name: str) -> Path:
    return EXAMPLES / name
