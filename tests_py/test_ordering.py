"""Per-connection order with several workers: each connection belongs to
one worker, its callbacks come in order and never two at once."""

from __future__ import annotations

import collections
import socket
import threading
import time
from typing import DefaultDict, Dict, List, Optional, Set

import pytest

import pyiocp
from iocp_helpers import client, recv_until_eof
from pyiocp.testing import ManagerFactory


class Checker(pyiocp.Handler):
    """Checks, per connection: accept first, close last and once, never two
    callbacks at once, always the same thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy: Set[int] = set()
        self.problems: List[str] = []
        self.kinds: DefaultDict[int, List[str]] = collections.defaultdict(list)
        self.data: DefaultDict[int, bytearray] = collections.defaultdict(bytearray)
        self.thread: Dict[int, str] = {}
        self.objects: Dict[int, pyiocp.Connection] = {}
        self.closed = threading.Condition(self.lock)
        self.nclosed = 0

    def got(self, cid: int) -> bytes:
        """What connection cid received so far, read under the lock: its
        worker may be appending (a bytearray is not safe to copy while
        another thread resizes it, without the GIL)."""
        with self.lock:
            return bytes(self.data[cid])

    def enter(self, conn: pyiocp.Connection, kind: str) -> None:
        with self.lock:
            cid = conn.id
            if cid in self.busy:
                self.problems.append(f"conn {cid}: {kind} while another callback runs")
            self.busy.add(cid)
            name = threading.current_thread().name
            if not name.startswith("pyiocp-worker-"):
                self.problems.append(f"conn {cid}: {kind} on thread {name}")
            if self.thread.setdefault(cid, name) != name:
                self.problems.append(f"conn {cid}: {kind} on {name}, before on {self.thread[cid]}")
            if self.objects.setdefault(cid, conn) is not conn:
                self.problems.append(f"conn {cid}: {kind} got another Connection object")
            if self.kinds[cid] and self.kinds[cid][-1] == "close":
                self.problems.append(f"conn {cid}: {kind} after on_close")
            if kind != "accept" and not self.kinds[cid]:
                self.problems.append(f"conn {cid}: {kind} before on_accept")
            self.kinds[cid].append(kind)
        # Widen the window for a concurrent callback of the same connection.
        time.sleep(0.0005)

    def leave(self, conn: pyiocp.Connection) -> None:
        with self.lock:
            self.busy.discard(conn.id)

    def on_accept(self, conn: pyiocp.Connection) -> None:
        self.enter(conn, "accept")
        self.leave(conn)

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        self.enter(conn, "recv")
        with self.lock:
            self.data[conn.id] += data
        conn.send(data)
        self.leave(conn)

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        self.enter(conn, "close")
        if error is not None:
            with self.lock:
                self.problems.append(f"conn {conn.id}: closed with {error!r}")
        self.leave(conn)
        with self.lock:
            self.nclosed += 1
            self.closed.notify_all()


@pytest.mark.parametrize("workers", [4])
def test_per_connection_order_with_4_workers(iocp_manager: ManagerFactory, backend: str, workers: int) -> None:
    nconns, nmsgs = 40, 150
    h = Checker()
    mgr = iocp_manager(h, backend=backend, workers=workers)
    lst = mgr.listen("127.0.0.1", 0)
    expected = {}
    failures = []
    ports = {}

    def run(k: int) -> None:
        try:
            with client(lst.address, timeout=10) as s:
                ports[k] = s.getsockname()[1]
                msgs = b"".join(b"<%d:%d>" % (k, i) for i in range(nmsgs))
                expected[k] = msgs
                for i in range(nmsgs):
                    s.sendall(b"<%d:%d>" % (k, i))
                s.shutdown(socket.SHUT_WR)  # the echo of everything, then EOF
                got = recv_until_eof(s)
                if got != msgs:
                    failures.append(f"client {k}: echo differs ({len(got)} of {len(msgs)} bytes)")
        except Exception as exc:  # noqa: BLE001
            failures.append(f"client {k}: {exc!r}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(nconns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert failures == []
    with h.lock:
        assert h.closed.wait_for(lambda: h.nclosed == nconns, 5)
    assert h.problems == []
    assert len(h.kinds) == nconns
    by_port: Dict[int, int] = {}
    for cid, conn in h.objects.items():
        assert conn.peer is not None
        by_port[conn.peer[1]] = cid
    for k in range(nconns):
        cid = by_port[ports[k]]
        assert bytes(h.data[cid]) == expected[k]
        kinds = h.kinds[cid]
        assert kinds[0] == "accept" and kinds[-1] == "close" and kinds.count("close") == 1
        assert set(kinds[1:-1]) == {"recv"}
    # Every worker took a share (round-robin assignment).
    assert len(set(h.thread.values())) == workers


def test_outbound_connections_are_ordered_too(iocp_manager: ManagerFactory, backend: str) -> None:
    """Connections made with connect() (to the same manager) follow the
    same rules: on_connect first, then on_recv in order, then on_close."""

    class Both(Checker):
        def on_connect(self, conn: pyiocp.Connection) -> None:
            self.enter(conn, "accept")  # the first callback of an outbound one
            self.leave(conn)

        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            self.enter(conn, "recv")
            with self.lock:
                self.data[conn.id] += data
            if not getattr(conn, "outbound", False):
                conn.send(data)
            self.leave(conn)

    h = Both()
    mgr = iocp_manager(h, backend=backend, workers=4)
    lst = mgr.listen("127.0.0.1", 0)
    outs = []
    for _ in range(12):
        c = mgr.connect(*lst.address)
        c.outbound = True
        outs.append(c)
    for k, c in enumerate(outs):
        for i in range(100):
            c.send(b"[%d.%d]" % (k, i))
    deadline = time.monotonic() + 10
    for k, c in enumerate(outs):
        want = b"".join(b"[%d.%d]" % (k, i) for i in range(100))
        while (got := h.got(c.id)) != want:
            assert time.monotonic() < deadline, f"echo {k} incomplete: {got[-40:]!r}"
            time.sleep(0.005)
        c.close()
    with h.lock:
        assert h.closed.wait_for(lambda: h.nclosed == 24, 5)
    assert h.problems == []
