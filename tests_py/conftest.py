"""Shared fixtures of the Python tests.

- ``backend``: every test that runs sockets is parametrized over BACKENDS,
  the Linux backends (test_backends.py checks that "auto" finds io_uring).
- An autouse check after each test: no ``pyiocp-worker-*`` thread alive and
  the process's open file descriptors back to their count before the test
  (after a short settle loop; tolerance 0).

- ``serve(handler, **options)``: what most socket tests start with, an
  ``iocp_manager`` listening on an ephemeral loopback port; returns the
  manager and its listener.

The ``iocp_manager`` fixture comes from pyiocp's own pytest plugin
(pyiocp.testing.plugin, registered through the pytest11 entry point).
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any, Iterator, Tuple

import pytest

import pyiocp
from iocp_helpers import LOOPBACK, Serve, fd_list, worker_threads
from pyiocp.testing import ManagerFactory
from pyiocp.testing._leaks import warm_up

# The backends every socket test runs on: Linux's two, or Windows's one (the
# Windows run is make test-windows-python, under Wine).
BACKENDS = ["iocp"] if sys.platform == "win32" else ["epoll", "io_uring"]

# Test files that cannot even be imported on Windows (pty, resource): all
# Linux-only. Tests that need Linux in files that import are marked
# `linux`, and the Windows run leaves them out (-m "not linux").
collect_ignore = ["test_bench_suite.py", "test_cli_top.py"] if sys.platform == "win32" else []

# How long the leak check waits for fds and threads to settle after a test.
SETTLE_SECONDS = 3.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def serve(iocp_manager: ManagerFactory) -> Serve:
    def make(handler: pyiocp.Handler, **options: Any) -> Tuple[pyiocp.SocketManager, pyiocp.Listener]:
        mgr = iocp_manager(handler, **options)
        return mgr, mgr.listen(LOOPBACK, 0)

    return make


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes seconds (a build); still part of the default run")
    config.addinivalue_line("markers", "linux: needs Linux (its reason is written beside the mark); "
                                       "make test-windows-python leaves it out")


def pytest_sessionstart(session: pytest.Session) -> None:
    # A suite started in the background by a non-interactive shell (cmd &)
    # inherits SIGINT ignored, and so would every server it starts: Python
    # then installs no KeyboardInterrupt handler, and the tests that stop
    # a server with Ctrl-C would wait for nothing. Handled here, the
    # signal is back to its default in each child (exec resets handlers).
    if sys.platform != "win32" and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The Go runtime opens descriptors it keeps for the life of the process
    # (its own poller, ...) at a moment of its choosing: make it now, before
    # the first test counts fds (the plugin's warm-up runs every backend).
    warm_up()


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test: no worker thread, no file descriptor left behind."""
    before = fd_list()
    yield
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        threads = worker_threads()
        now = fd_list()
        if not threads and len(now) == len(before):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    new = {fd: target for fd, target in now.items() if before.get(fd) != target}
    gone = {fd: target for fd, target in before.items() if now.get(fd) != target}
    problems = []
    if threads:
        problems.append(f"worker threads still alive: {threads}")
    if len(now) != len(before):
        problems.append(f"open fds {len(before)} -> {len(now)}; new: {new}; gone: {gone}")
    pytest.fail("leak after test: " + "; ".join(problems), pytrace=False)
