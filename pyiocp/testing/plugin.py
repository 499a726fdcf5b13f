"""The pyiocp pytest plugin.

Fixture ``iocp_manager``: a factory of SocketManagers that are closed after
the test; the test fails if one of them still had connections open after
closing or left a worker thread running.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List

import pytest

from .._manager import SocketManager


@pytest.fixture
def iocp_manager() -> Iterator[Callable[..., SocketManager]]:
    """``iocp_manager(handler=None, start=True, **options)`` makes a
    SocketManager (started when it has a handler and start is true) that is
    closed after the test."""
    made: List[SocketManager] = []

    def make(handler: Any = None, *, start: bool = True, **options: Any) -> SocketManager:
        mgr = SocketManager(handler, **options)
        made.append(mgr)
        if handler is not None and start:
            mgr.start()
        return mgr

    yield make
    problems = []
    for mgr in made:
        mgr.close()
        if not mgr.closed:
            problems.append(f"{mgr!r} did not close (a worker is stuck in a callback)")
        elif mgr.stats()["connections"]:
            problems.append(f"{mgr!r} still had {mgr.stats()['connections']} connections")
    stray = [t.name for t in threading.enumerate() if t.name.startswith("pyiocp-worker-") and t.is_alive()]
    if stray:
        problems.append(f"worker threads still running: {stray}")
    if problems:
        pytest.fail("; ".join(problems))
