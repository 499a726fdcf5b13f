"""Fault suite, load: connection churn, close() under load, many managers
in one process, and the integrity soak (SHA-256 both ways). Sizes:
pick(CI, soak); see test_faults_harness."""

from __future__ import annotations

import hashlib
import random
import selectors
import socket
import threading
import time
from typing import List, Optional

import pyiocp
from iocp_helpers import SLOWDOWN
from test_faults_harness import (
    LOOPBACK, Address, Echo, ScenarioFactory, connect, mib, ms, payload, pick, recv_exactly, recv_until_eof,
    reset_close, run_all, sha, stat, wait_until,
)
from test_faults_harness import scenario  # noqa: F401 - the fixture, for pytest to find
from test_faults_limits import Hasher
from test_faults_peers import Modal


def test_fault_churn(scenario: ScenarioFactory) -> None:
    """Connect/close cycles from 4 threads, four ways (echo then close, close
    at once, reset, the server closes first): every connection accepted is
    closed exactly once, nothing is left behind."""
    scen = scenario("churn")
    cycles = scen.scale("cycles", 3000, 20000)
    h = Modal()
    mgr, addr = scen.serve(h, workers=2)

    def cycle(i: int) -> None:
        s = connect(addr)
        how = i % 4
        if how == 0:
            s.sendall(b"Echurn")
            assert recv_exactly(s, 5) == b"churn"
            s.close()
        elif how == 1:
            s.close()
        elif how == 2:
            s.sendall(b"E")
            reset_close(s)
        else:
            s.sendall(b"Q")
            assert recv_until_eof(s) == b""
            s.close()

    t0 = time.monotonic()
    run_all(cycle, cycles, 4)
    took = time.monotonic() - t0
    h.closes.wait(cycles)
    h.closes.check_once()
    wait_until(lambda: stat(mgr, "connections") == 0)
    st = mgr.stats()
    assert st["accepted"] == st["closed"] == cycles, st
    scen.sized(f"{cycles} connect/close cycles, 4 at a time: echo+close, close, reset, server closes")
    scen.note(f"{cycles / took:.0f} cycles/s")


class Streamer(threading.Thread):
    """Peers that write and read as fast as they can until the server ends
    their connection; one thread, non-blocking sockets."""

    def __init__(self, socks: List[socket.socket]) -> None:
        super().__init__(name="fault-streamer", daemon=True)
        self.socks = socks
        self.moved = 0
        self.errors: List[str] = []

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        chunk = bytes(payload(3, 16 << 10))
        for s in self.socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        live = len(self.socks)
        deadline = time.monotonic() + 30
        try:
            while live and time.monotonic() < deadline:
                for key, ev in sel.select(0.5):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        if ev & selectors.EVENT_WRITE:
                            self.moved += sock.send(chunk)
                        if ev & selectors.EVENT_READ:
                            data = sock.recv(1 << 16)
                            self.moved += len(data)
                            if not data:
                                raise ConnectionResetError
                    except BlockingIOError:
                        continue
                    except OSError:  # the end: EOF, reset or a broken pipe
                        sel.unregister(sock)
                        live -= 1
            if live:
                self.errors.append(f"{live} peers never saw the end")
        finally:
            sel.close()


def test_fault_close_under_load(scenario: ScenarioFactory) -> None:
    """close() of the manager while 200 connections stream both ways: every
    on_close exactly once, close() returns within its timeout, every peer
    sees the end, the worker threads are joined."""
    scen = scenario("close_under_load")
    conns, rounds = 200, scen.scale("rounds", 1, 10)
    worst = 0.0
    moved = 0
    for _ in range(rounds):
        h = Echo()
        mgr, addr = scen.serve(h, workers=2)
        socks = [connect(addr) for _ in range(conns)]
        streamer = Streamer(socks)
        try:
            streamer.start()
            wait_until(lambda: stat(mgr, "accepted") == conns and stat(mgr, "bytes_out") > conns * (64 << 10),
                       what="traffic on every connection")
            t0 = time.monotonic()
            mgr.close(2.0)
            took = time.monotonic() - t0
            streamer.join(30)
        finally:
            for s in socks:
                s.close()
        assert not streamer.is_alive() and streamer.errors == [], streamer.errors
        assert mgr.closed and took < 2.0 + 2.0 * SLOWDOWN, f"close() took {took:.3f} s"
        assert not [t for t in threading.enumerate() if t.name.startswith("pyiocp-worker-")]
        h.closes.wait(conns)
        h.closes.check_once()
        worst = max(worst, took)
        moved += streamer.moved
    scen.sized(f"{rounds} rounds x {conns} connections streaming both ways ({mib(moved)} moved by the peers) "
               f"when close(2.0) is called")
    scen.note(f"close() returned after at most {ms(worst)}")


def test_fault_many_managers(scenario: ScenarioFactory) -> None:
    """Managers made and closed one after another in one process, each
    closed with inbound and outbound connections open and data in flight:
    every on_close once, every listener and worker thread gone."""
    scen = scenario("many_managers")
    managers = scen.scale("managers", 50, 300)
    for i in range(managers):
        h = Echo()
        mgr = scen.manager(h, workers=1 + i % 3)
        lst = mgr.listen(LOOPBACK, 0)
        peers = []
        for _ in range(3):
            s = connect(lst.address)
            peers.append(s)
            s.sendall(b"in flight")
            assert recv_exactly(s, 9) == b"in flight"
            s.sendall(b"unanswered")
        out = mgr.connect(*lst.address)
        out.send(b"outbound")
        mgr.close(1.0)
        for s in peers:
            s.settimeout(5)
            try:
                recv_until_eof(s)
            except ConnectionResetError:
                pass
            s.close()
        assert mgr.closed and lst.closed
        h.closes.check_once(outbound=[out.id])
        assert len(h.closes.count) >= 4, h.closes.count
        assert not [t for t in threading.enumerate() if t.name.startswith("pyiocp-worker-")]
    scen.sized(f"{managers} managers (1-3 workers), each closed with 3 inbound + 1 outbound connections open")


class HashEcho(Hasher):
    """A Hasher that also echoes (the connection closes once the echo is
    out) and keeps the error of every connection that closed with one."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: List[str] = []

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        super().on_recv(conn, data)
        conn.send(data)

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        super().on_close(conn, error)
        if error is not None:
            with self.lock:
                self.problems.append(repr(error))


class Upload:
    """One integrity client connection."""

    def __init__(self, addr: Address, seed: int, size: int) -> None:
        self.sock = connect(addr)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.data = payload(seed, size)
        self.sum = sha(self.data)
        self.sent = 0
        self.back = hashlib.sha256()
        self.got = 0


def integrity_pump(uploads: List[Upload], timeout: float) -> None:
    """Send every upload, half-close, read every echo to its end."""
    sel = selectors.DefaultSelector()
    for u in uploads:
        if len(u.data):
            sel.register(u.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, u)
        else:
            u.sock.shutdown(socket.SHUT_WR)
            sel.register(u.sock, selectors.EVENT_READ, u)
    live = len(uploads)
    deadline = time.monotonic() + timeout
    try:
        while live:
            assert time.monotonic() < deadline, f"{live} connections unfinished after {timeout} s"
            for key, ev in sel.select(0.5):
                u = key.data
                assert isinstance(u, Upload)
                if ev & selectors.EVENT_WRITE and u.sent < len(u.data):
                    try:
                        u.sent += u.sock.send(u.data[u.sent:u.sent + (256 << 10)])
                    except BlockingIOError:
                        pass
                    if u.sent == len(u.data):
                        u.sock.shutdown(socket.SHUT_WR)
                        sel.modify(u.sock, selectors.EVENT_READ, u)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = u.sock.recv(1 << 18)
                    except BlockingIOError:
                        continue
                    if chunk:
                        u.back.update(chunk)
                        u.got += len(chunk)
                    else:
                        sel.unregister(u.sock)
                        u.sock.close()
                        live -= 1
    finally:
        sel.close()
        for u in uploads:
            u.sock.close()


def test_fault_integrity(scenario: ScenarioFactory) -> None:
    """Connections at once, each sending a random size from 1 B to 1 MiB (the
    first 1 B, the second 1 MiB): the server hashes what arrived and echoes
    it; SHA-256 compared both ways; zero mismatches."""
    scen = scenario("integrity")
    conns = scen.scale("connections", 100, 1000)
    rng = random.Random(conns)
    sizes = [1, 1 << 20] + [rng.randint(1, 1 << 20) for _ in range(conns - 2)]
    h = HashEcho()
    mgr, addr = scen.serve(h, workers=2)
    uploads = [Upload(addr, i, n) for i, n in enumerate(sizes)]
    t0 = time.monotonic()
    integrity_pump(uploads, pick(60.0, 600.0))
    took = time.monotonic() - t0
    h.closes.wait(conns)
    h.closes.check_once()
    assert h.problems == []
    down = sum(1 for u in uploads if u.got != len(u.data) or u.back.digest() != u.sum)
    up = sum(1 for u in uploads if h.digests.get(u.port) != (len(u.data), u.sum))
    scen.set("mismatches", up + down)
    assert (up, down) == (0, 0), f"{up} uploads and {down} echoes differ"
    total = sum(sizes)
    st = mgr.stats()
    assert st["bytes_in"] == st["bytes_out"] == total
    scen.sized(f"{conns} connections at once, 1 B-1 MiB each (uniform), {mib(total)} each way")
    scen.note(f"mismatches: 0 client->server, 0 server->client; {2 * total / took / (1 << 20):.0f} MiB/s")
