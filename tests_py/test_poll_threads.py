"""poll() from many threads at once, the way GetQueuedCompletionStatus is
called on one port: every completion reaches exactly one thread, its data
intact; a connection's completions go to one thread at a time, in order;
close() from any thread while others poll."""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time
from typing import Dict, List, Set, Tuple

import pytest

import pyiocp
from iocp_helpers import SLOWDOWN, client, wait_until

KINDS = {"accept", "connect", "recv", "send", "drain", "eof", "close", "post"}


class Server:
    """A poll-mode echo server run by `threads` threads, recording what
    each connection received and how it ended."""

    def __init__(self, mgr: pyiocp.SocketManager, threads: int) -> None:
        self.mgr = mgr
        self.digests: Dict[Tuple[str, int], "hashlib._Hash"] = {}
        self.accepted: Set[int] = set()
        self.closed: Dict[int, object] = {}
        self.busy: Set[int] = set()  # connections whose completions a thread is handling
        self.problems: List[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, name=f"poller-{i}") for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self.mgr.poll(0.05)
                conns = {c.conn.id for c in batch if c.conn is not None}
                with self.lock:
                    clash = conns & self.busy
                    self.busy |= conns
                if clash:
                    self.problems.append(f"connections {sorted(clash)} handed to two threads at once")
                for c in batch:
                    self.handle(c)
                time.sleep(random.random() * 0.001)  # let the threads interleave
                with self.lock:
                    self.busy -= conns
        except pyiocp.ManagerClosed:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.problems.append(repr(exc))

    def handle(self, c: pyiocp.Completion) -> None:
        if c.kind not in KINDS:
            self.problems.append(f"completion of kind {c.kind!r}")
            return
        conn = c.conn
        if c.kind == "accept":
            self.accepted.add(conn.id)
            self.digests[conn.peer] = hashlib.sha256()
        elif c.kind == "recv":
            self.digests[conn.peer].update(c.data)
            conn.send(c.data)
        elif c.kind == "eof":
            conn.close()
        elif c.kind == "close":
            if conn.id in self.closed:
                self.problems.append(f"connection {conn.id} closed twice")
            self.closed[conn.id] = c.error

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        assert not any(t.is_alive() for t in self.threads)


def run_client(address: Tuple[str, int], size: int, seed: int, out: Dict[Tuple[str, int], Tuple[str, str]],
               problems: List[str]) -> None:
    """Sends size random bytes, half-closes, reads the echo to the end."""
    try:
        data = random.Random(seed).randbytes(size)
        with client(address, timeout=30 * SLOWDOWN) as s:
            got = bytearray()

            def reader() -> None:
                while True:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        return
                    got.extend(chunk)

            r = threading.Thread(target=reader)
            r.start()
            for i in range(0, size, 7919):  # uneven pieces
                s.sendall(data[i:i + 7919])
            s.shutdown(socket.SHUT_WR)
            r.join(30 * SLOWDOWN)
            sent = hashlib.sha256(data).hexdigest()
            out[s.getsockname()] = (sent, hashlib.sha256(bytes(got)).hexdigest())
            if bytes(got) != data:
                problems.append(f"client {seed}: echo of {size} bytes came back as {len(got)} different bytes")
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        problems.append(f"client {seed}: {exc!r}")


@pytest.mark.parametrize("pollers", [4, 8])
def test_many_threads_poll_one_manager(backend: str, pollers: int) -> None:
    conns = 50
    mgr = pyiocp.SocketManager(None, backend=backend)
    try:
        lst = mgr.listen("127.0.0.1", 0)
        server = Server(mgr, pollers)
        rng = random.Random(pollers)
        sizes = [rng.randint(1_000, 300_000) for _ in range(conns)]
        digests: Dict[Tuple[str, int], Tuple[str, str]] = {}
        problems: List[str] = []
        clients = [threading.Thread(target=run_client, args=(lst.address, size, i, digests, problems))
                   for i, size in enumerate(sizes)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(60 * SLOWDOWN)
        deadline = time.monotonic() + 10 * SLOWDOWN
        while len(server.closed) < conns and time.monotonic() < deadline:
            time.sleep(0.01)
        server.join()
        assert problems == [] and server.problems == []
        assert len(digests) == conns
        for peer, (sent, echoed) in digests.items():
            assert sent == echoed
            assert server.digests[peer].hexdigest() == sent, f"server received other bytes from {peer}"
        assert len(server.accepted) == conns, "every accept announced once"
        assert set(server.closed) == server.accepted, "every connection closed"
        assert all(err is None for err in server.closed.values())
        stats = mgr.stats()
        assert stats["accepted"] == conns and stats["closed"] == conns and stats["connections"] == 0
    finally:
        mgr.close()


def test_close_while_threads_poll(backend: str) -> None:
    """close() from one thread while one or two others poll connections
    that are sending, each its own byte value: no completion of an unknown
    kind, none after its connection's close, no byte of another connection,
    and every poll ends with [] or ManagerClosed."""
    rng = random.Random(0)
    for round_ in range(200):
        mgr = pyiocp.SocketManager(None, backend=backend)
        lst = mgr.listen("127.0.0.1", 0)
        problems: List[str] = []
        closed: Set[int] = set()
        values: Dict[int, int] = {}

        def poller() -> None:
            try:
                while True:
                    for c in mgr.poll(0.01, max=8):
                        if c.kind not in KINDS:
                            problems.append(f"kind {c.kind!r}")
                        elif c.conn is not None and c.conn.id in closed:
                            problems.append(f"{c.kind} after close")
                        elif c.kind == "close":
                            closed.add(c.conn.id)
                        elif c.kind == "recv":
                            value = values.setdefault(c.conn.id, c.data[0])
                            if c.data.count(value) != len(c.data):
                                problems.append(f"connection {c.conn.id} received another's bytes")
            except pyiocp.ManagerClosed:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                problems.append(repr(exc))

        socks = [client(lst.address) for _ in range(4)]
        threads = [threading.Thread(target=poller) for _ in range(1 + round_ % 2)]
        for t in threads:
            t.start()

        def blast(i: int, s: socket.socket) -> None:
            try:
                for _ in range(20):
                    s.sendall(bytes([i + 1]) * 50_000)
            except OSError:
                pass  # the close reached it

        senders = [threading.Thread(target=blast, args=(i, s)) for i, s in enumerate(socks)]
        for t in senders:
            t.start()
        wait_until(lambda: values, what="the first bytes")
        time.sleep(rng.random() * 0.005)
        mgr.close()
        for t in threads:
            t.join(10)
        for s in socks:
            s.close()
        for t in senders:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        assert problems == [], f"round {round_}: {problems}"
        assert mgr.closed
