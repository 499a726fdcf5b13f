"""Shared fixtures of the Python tests.

- ``backend``: every test that runs sockets is parametrized over BACKENDS,
  the Linux backends (test_backends.py checks that "auto" finds io_uring).
- An autouse check after each test: no ``pyiocp-worker-*`` thread alive and
  the process's open file descriptors back to their count before the test
  (after a short settle loop; tolerance 0).

The ``iocp_manager`` fixture comes from pyiocp's own pytest plugin
(pyiocp.testing.plugin, registered through the pytest11 entry point).
"""

from __future__ import annotations

import socket
import time
from typing import Iterator

import pytest

import pyiocp
from iocp_helpers import Echo, fd_list, worker_threads

BACKENDS = ["epoll", "io_uring"]

# How long the leak check waits for fds and threads to settle after a test.
SETTLE_SECONDS = 3.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _warm_up() -> None:
    """Let the Go runtime open the descriptors it keeps for the life of the
    process (its own poller, ...) before the first test counts fds."""
    for backend in BACKENDS:
        with pyiocp.SocketManager(Echo(), backend=backend) as mgr:
            lst = mgr.listen("127.0.0.1", 0)
            mgr.start()
            with socket.create_connection(lst.address, timeout=5) as s:
                s.sendall(b"warm")
                s.recv(4)
            out = mgr.connect(*lst.address)
            deadline = time.monotonic() + 2
            while mgr.stats()["accepted"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            out.close()
    # The Go runtime opens its own poller (an epoll and an eventfd, kept for
    # the life of the process) the first time anything in it uses a timer
    # or the net package: at a moment of its choosing, such as a GC cycle's
    # scavenger going to sleep. Make that moment now, with the load
    # generator's timer (a run against a refused port: quick).
    from pyiocp import _pyiocp

    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        run = _pyiocp.bench_start("127.0.0.1:%d" % reserved.getsockname()[1], 1, 1, 1, 1_000_000, 0)
        try:
            while _pyiocp.bench_wait(run, 100_000_000) is None:
                pass
        except OSError:
            pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes seconds (a build); still part of the default run")


def pytest_sessionstart(session: pytest.Session) -> None:
    _warm_up()


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
