"""What a test leaves behind: file descriptors and threads, compared with a
snapshot taken before it."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Dict, List, NamedTuple, Set

from .. import _pyiocp
from .._handler import Handler
from .._manager import SocketManager
from .._pyiocp import Connection

__all__ = ["Snapshot", "fd_table", "leaks_since", "snapshot", "warm_up"]


def _fd_dir() -> str:
    for where in ("/proc/self/fd", "/dev/fd"):  # Linux; macOS and the BSDs
        if os.path.isdir(where):
            return where
    return ""  # Windows: handles are not counted


def fd_table() -> Dict[int, str]:
    """This process's open file descriptors and what each one is (on Linux
    ``socket:[inode]``, a path, ``anon_inode:[eventpoll]``, ...)."""
    where = _fd_dir()
    if not where:
        return {}
    out: Dict[int, str] = {}
    for name in os.listdir(where):
        try:
            out[int(name)] = os.readlink(f"{where}/{name}") if where == "/proc/self/fd" else "fd"
        except OSError:
            pass  # the descriptor os.listdir itself used
    return out


class Snapshot(NamedTuple):
    fds: Dict[int, str]
    threads: Set[threading.Thread]


def snapshot() -> Snapshot:
    return Snapshot(fd_table(), set(threading.enumerate()))


def leaks_since(before: Snapshot, settle: float) -> List[str]:
    """What is open now and was not in ``before``: threads still running and
    descriptors still open after waiting up to ``settle`` seconds for them
    to go. Empty if nothing leaked."""
    deadline = time.monotonic() + settle
    while True:
        threads = [t for t in threading.enumerate() if t not in before.threads and t.is_alive()]
        now = fd_table()
        new = {fd: what for fd, what in now.items() if before.fds.get(fd) != what}
        if (not threads and not new) or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    problems = []
    if threads:
        problems.append(f"{len(threads)} thread(s) started during the test still running after {settle:g} s: "
                        + ", ".join(repr(t.name) for t in threads))
    if new:
        problems.append(f"{len(new)} file descriptor(s) opened during the test still open after {settle:g} s: "
                        + ", ".join(f"{fd} -> {what}" for fd, what in sorted(new.items())))
    return problems


class _Echo(Handler):
    def on_recv(self, conn: Connection, data: bytes) -> None:
        conn.send(data)


_warmed = False


def warm_up() -> None:
    """Make the Go runtime open the descriptors it keeps for the life of the
    process (its own poller and its wake-up eventfd), which it otherwise
    does at a moment of its choosing, such as a GC cycle: before the first
    snapshot, so that they are never counted as a test's leak. Once per
    process."""
    global _warmed
    if _warmed:
        return
    _warmed = True
    for backend in ("auto", "epoll"):  # auto: io_uring where it runs
        with SocketManager(_Echo(), backend=backend) as mgr:
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
    # The load generator uses Go's timers and net package: a short run
    # against a port nobody listens on starts the runtime's poller.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        run = _pyiocp.bench_start("127.0.0.1:%d" % reserved.getsockname()[1], 1, 1, 1, 1_000_000, 0)
        try:
            while _pyiocp.bench_wait(run, 100_000_000) is None:
                pass
        except OSError:
            pass  # refused, as intended
