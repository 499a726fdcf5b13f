"""Fault suite, limits: send_buffer_limit against peers that never read,
recv_buffer_limit against peers that flood, max_connections against
bursts, and running out of file descriptors (EMFILE) in a child process.
Sizes: pick(CI, soak); see test_faults_harness."""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import pyiocp
from iocp_helpers import CHILD_ECHO_SERVER, SLOWDOWN, flood
from test_faults_harness import (
    LOOPBACK, Address, Closes, ScenarioFactory, connect, mib, payload, recv_exactly, rss, run_all, stat,
    wait_until,
)
from test_faults_harness import scenario  # noqa: F401 - the fixture, for pytest to find

FILL = bytes(payload(5, 16 << 10))


class Filler(pyiocp.Handler):
    """Queues bytes on every connection until its send buffer is full, and
    again on every drain."""

    def __init__(self) -> None:
        self.closes = Closes()
        self.lock = threading.Lock()
        self.conns: List[pyiocp.Connection] = []

    def on_accept(self, conn: pyiocp.Connection) -> None:
        self.closes.open(conn)
        self.fill(conn)
        with self.lock:
            self.conns.append(conn)

    def on_drain(self, conn: pyiocp.Connection) -> None:
        self.fill(conn)

    def fill(self, conn: pyiocp.Connection) -> None:
        try:
            while True:
                conn.send(FILL)
        except (pyiocp.BufferFull, pyiocp.ConnectionClosed):
            pass

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        self.closes.close(conn, error)


def tiny_receiver(address: Address) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(address)
    return s


def bytes_out_settled(mgr: pyiocp.SocketManager) -> bool:
    before = stat(mgr, "bytes_out")
    time.sleep(0.2)
    return bool(stat(mgr, "bytes_out") == before)


def test_fault_send_buffer_limit_against_peers_that_never_read(scenario: ScenarioFactory) -> None:
    """Peers that never read, a server that sends to each as much as it can:
    each connection holds at most send_buffer_limit, nothing more is
    written, memory stays within connections x limit, and close() resets
    them after its timeout (TimeoutError)."""
    scen = scenario("send_buffer_limit")
    peers, limit = scen.scale("peers", 20, 200), 256 << 10
    h = Filler()
    mgr, addr = scen.serve(h, workers=2, send_buffer_limit=limit)
    socks = [tiny_receiver(addr) for _ in range(peers)]
    try:
        wait_until(lambda: len(h.conns) == peers)
        # The kernel's socket buffers take what they can first; once the
        # writes stop, top every send buffer up to the limit.
        wait_until(lambda: bytes_out_settled(mgr), what="the writes to peers that never read to stop")
        for c in h.conns:
            h.fill(c)
            assert limit - len(FILL) < c.pending <= limit, c.pending
        sent = stat(mgr, "bytes_out")
        time.sleep(0.3)  # the peers still do not read: nothing may grow
        for c in h.conns:
            assert c.pending <= limit
            try:
                c.send(FILL * 16)
                raise AssertionError("a send into a full buffer was taken")
            except pyiocp.BufferFull:
                pass
        st = mgr.stats()
        assert st["pending_send_bytes"] <= peers * limit
        assert st["bytes_out"] == sent, "bytes written to peers that do not read"
        grown = rss() - scen.rss
        assert grown <= peers * limit + (64 << 20), f"RSS grew {mib(grown)}"
        mgr.close(0.2)
    finally:
        for s in socks:
            s.close()
    h.closes.wait(peers)
    h.closes.check_once()
    assert all(isinstance(e, TimeoutError) for e in h.closes.errors.values()), h.closes.errors
    scen.sized(f"{peers} peers that never read (4 KiB receive buffers); send_buffer_limit {mib(limit)}")
    scen.note(f"pending {mib(st['pending_send_bytes'])} in all (bound {mib(peers * limit)}); "
              f"RSS +{mib(grown)} while full; close(0.2) reset each with TimeoutError")


def test_fault_close_timeout_against_peers_that_flood(scenario: ScenarioFactory) -> None:
    """Peers that flood and never read, whose connections the server closes
    with a reply they cannot take: after close() the server reads and drops
    at most about recv_buffer_limit of each flood, then TCP pushes back;
    every connection is reset by close_timeout (not before, less than a
    second late) with TimeoutError, counted in timed_out."""
    scen = scenario("close_timeout")
    peers, timeout = scen.scale("peers", 10, 100), 0.5
    h = Filler()
    mgr, addr = scen.serve(h, workers=2, send_buffer_limit=1 << 20, close_timeout=timeout)
    socks = [tiny_receiver(addr) for _ in range(peers)]
    stop = threading.Event()
    floods = [threading.Thread(target=flood, args=(s, stop)) for s in socks]
    try:
        wait_until(lambda: len(h.conns) == peers)
        wait_until(lambda: bytes_out_settled(mgr), what="the writes to peers that never read to stop")
        for c in h.conns:
            h.fill(c)
        for t in floods:
            t.start()
        wait_until(lambda: stat(mgr, "bytes_in") > peers * (64 << 10), what="the floods under way")
        before, timed_out = stat(mgr, "bytes_in"), stat(mgr, "timed_out")
        t0 = time.monotonic()
        for c in h.conns:
            c.close()
        h.closes.wait(peers)
        took = time.monotonic() - t0
        read = stat(mgr, "bytes_in") - before
    finally:
        stop.set()
        for t in floods:
            if t.is_alive():
                t.join(5)
        for s in socks:
            s.close()
    h.closes.check_once()
    assert all(isinstance(e, TimeoutError) for e in h.closes.errors.values()), h.closes.errors
    assert stat(mgr, "timed_out") - timed_out == peers
    assert timeout <= took < timeout + 1.0 * SLOWDOWN, took
    # recv_buffer_limit (256 KiB) each, plus what the worker read before it
    # took the close and what a posted receive may still take: megabytes,
    # where reading all of it would be gigabytes.
    assert read <= peers * (4 << 20), f"read {mib(read)} after close()"
    scen.sized(f"{peers} peers flooding, never reading; closed with 1 MiB they cannot take; "
               f"close_timeout {timeout} s")
    scen.note(f"{mib(read)} read after close() in all ({mib(read // peers)} per peer), then none; "
              f"every connection reset {took * 1000:.0f} ms after close() at the latest")


class Hasher(pyiocp.Handler):
    """Hashes what each connection delivers; on the peer's FIN keeps the
    digest by the peer's port and closes."""

    def __init__(self) -> None:
        self.closes = Closes()
        self.lock = threading.Lock()
        self.conns: List[pyiocp.Connection] = []
        self.hashes: Dict[int, Tuple["hashlib._Hash", List[int]]] = {}
        self.digests: Dict[int, Tuple[int, bytes]] = {}

    def on_accept(self, conn: pyiocp.Connection) -> None:
        self.closes.open(conn)
        with self.lock:
            self.hashes[conn.id] = (hashlib.sha256(), [0])
            self.conns.append(conn)

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        with self.lock:
            h, n = self.hashes[conn.id]
        h.update(data)
        n[0] += len(data)

    def on_eof(self, conn: pyiocp.Connection) -> None:
        with self.lock:
            h, n = self.hashes.pop(conn.id)
        peer = conn.peer
        assert peer is not None
        with self.lock:
            self.digests[peer[1]] = (n[0], h.digest())
        conn.close()

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        self.closes.close(conn, error)


class Flooder(threading.Thread):
    """Writes to every socket as fast as they take it, until stopped."""

    def __init__(self, socks: List[socket.socket]) -> None:
        super().__init__(name="fault-flooder", daemon=True)
        self.socks = socks
        self.sent = [0] * len(socks)
        self.sums = [hashlib.sha256() for _ in socks]
        self.halt = threading.Event()
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        for i, s in enumerate(self.socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_WRITE, i)
        chunk = payload(6, 64 << 10)
        try:
            while not self.halt.is_set():
                for key, _ in sel.select(0.05):
                    i = key.data
                    assert isinstance(i, int)
                    try:
                        n = self.socks[i].send(chunk)
                    except BlockingIOError:
                        continue
                    self.sums[i].update(chunk[:n])
                    self.sent[i] += n
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            sel.close()


def test_fault_recv_buffer_limit_against_peers_that_flood(scenario: ScenarioFactory) -> None:
    """Peers write as fast as they can; the application pauses reading
    mid-flood, from another thread: the engine reads nothing more (at most
    recv_buffer_limit held per connection), memory stays bounded, the peers
    stall on the closed TCP window; resumed, every byte arrives in order."""
    scen = scenario("recv_buffer_limit")
    peers, limit = scen.scale("peers", 10, 50), 64 << 10
    h = Hasher()
    mgr, addr = scen.serve(h, workers=2, recv_buffer_limit=limit)
    socks = [connect(addr) for _ in range(peers)]
    flooder = Flooder(socks)
    try:
        wait_until(lambda: len(h.conns) == peers)
        flooder.start()
        wait_until(lambda: stat(mgr, "bytes_in") > peers * (256 << 10), what="the flood under way")
        for c in h.conns:
            c.pause_reading()

        def stalled() -> bool:
            before = list(flooder.sent)
            time.sleep(0.2)
            return flooder.sent == before

        wait_until(stalled, what="every flooding peer stalled")
        received = stat(mgr, "bytes_in")
        grown = rss() - scen.rss
        time.sleep(0.3)
        st = mgr.stats()
        assert st["bytes_in"] == received, f"read {st['bytes_in'] - received} bytes while paused"
        assert st["paused_reading"] == peers
        assert grown <= peers * limit + (64 << 20), f"RSS grew {mib(grown)}"
        flooder.halt.set()
        flooder.join(10)
        assert flooder.error is None, repr(flooder.error)
        for s in socks:
            s.setblocking(True)
            s.shutdown(socket.SHUT_WR)
        for c in h.conns:
            c.resume_reading()
        for i, s in enumerate(socks):
            port = s.getsockname()[1]
            want = (flooder.sent[i], flooder.sums[i].digest())
            wait_until(lambda: h.digests.get(port) == want, what="the whole flood delivered in order")
    finally:
        flooder.halt.set()
        for s in socks:
            s.close()
    h.closes.wait(peers)
    h.closes.check_once()
    flooded = sum(flooder.sent)
    scen.sized(f"{peers} peers flooding {mib(flooded)} in all before they stalled; recv_buffer_limit "
               f"{mib(limit)}, reading paused mid-flood")
    scen.note(f"0 bytes read while paused; RSS +{mib(grown)}; every byte delivered in order after resume")


def test_fault_max_connections_burst(scenario: ScenarioFactory) -> None:
    """Waves of connects far over max_connections: the ones over the cap are
    reset at once (never announced) and counted rejected; the open count
    never passes the cap; service goes on."""
    scen = scenario("max_connections")
    cap, wave, waves = 50, 300, scen.scale("waves of 300", 1, 10)
    h = Hasher()
    mgr, addr = scen.serve(h, workers=2, max_connections=cap)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.0005):
            peak[0] = max(peak[0], mgr.connections)

    sampler = threading.Thread(target=sample, name="fault-sampler")
    sampler.start()
    held = reset = 0
    try:
        for _ in range(waves):
            socks: List[socket.socket] = []
            for _ in range(wave):
                try:
                    socks.append(connect(addr))
                except ConnectionResetError:
                    reset += 1
            sel = selectors.DefaultSelector()
            for s in socks:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            quiet_since = time.monotonic()
            live = set(socks)
            while time.monotonic() - quiet_since < 0.5:
                for key, _ in sel.select(0.1):
                    ended = key.fileobj
                    assert isinstance(ended, socket.socket)
                    try:
                        assert ended.recv(1) == b""
                    except ConnectionResetError:
                        pass
                    reset += 1
                    sel.unregister(ended)
                    live.discard(ended)
                    quiet_since = time.monotonic()
            sel.close()
            held += len(live)
            for s in socks:
                s.close()
            wait_until(lambda: mgr.connections == 0, what="the wave's connections closed")
    finally:
        stop.set()
        sampler.join()
    st = mgr.stats()
    assert st["accepted"] == held == waves * cap, (st, held)
    assert st["rejected"] == reset == waves * (wave - cap), (st, reset)
    assert peak[0] <= cap, f"{peak[0]} connections open at once, over the cap {cap}"
    h.closes.wait(waves * cap)
    h.closes.check_once()
    with connect(addr) as s:
        s.sendall(b"served")
        s.shutdown(socket.SHUT_WR)
        port = s.getsockname()[1]
        wait_until(lambda: port in h.digests, what="service after the bursts")
    scen.sized(f"{waves} waves of {wave} connects at once; max_connections {cap}")
    scen.note(f"accepted {st['accepted']}, rejected (reset at once) {st['rejected']}; at most {peak[0]} open at once")


# The server of the EMFILE scenario, run in a child process (it lowers its
# own RLIMIT_NOFILE). Commands on stdin, one JSON line per answer.
EMFILE_CHILD = CHILD_ECHO_SERVER + textwrap.dedent("""
    import errno, json, os, resource, sys, time

    def say(**kw):
        print(json.dumps(kw), flush=True)

    def fds():
        return len(os.listdir("/proc/self/fd"))

    def cpu():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    # The Go runtime's own descriptors (its poller), which it opens at a
    # moment of its choosing (a GC cycle, say), are open before counting.
    from pyiocp.testing._leaks import warm_up
    warm_up()
    start_fds = fds()
    # Lowered before the listener posts its accepts (io_uring takes the
    # limit when an accept is submitted), and kept: each episode fills what
    # is left of it.
    orig = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (start_fds + 128, orig[1]))
    mgr = pyiocp.SocketManager(Echo(), backend=sys.argv[1])
    lst = mgr.listen("127.0.0.1", 0)
    mgr.start()
    say(port=lst.address[1])
    base_fds = fds()
    fill = []
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["do"] == "fill":
            # The last peers' descriptors must be free first: a connection
            # is gone from mgr.connections before its descriptor is closed
            # (io_uring queues the close for the worker's next submission).
            deadline = time.monotonic() + 10
            while (mgr.connections or fds() > base_fds) and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                while True:
                    fill.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE, exc
            say(full=len(fill))  # the peer connects from the parent: no descriptor left here
        elif cmd["do"] == "measure":
            before = cmd["errors"]
            deadline = time.monotonic() + 10
            while mgr.stats()["accept_errors"] <= before and time.monotonic() < deadline:
                time.sleep(0.01)
            c0, t0 = cpu(), time.monotonic()
            time.sleep(cmd["hold"])
            # A copy: workers may append to logs meanwhile (json does not lock the list).
            say(cpu=(cpu() - c0) / (time.monotonic() - t0), stats=mgr.stats(), logs=list(logs))
        elif cmd["do"] == "free":
            while fill:
                os.close(fill.pop())
            say(freed=True)
        elif cmd["do"] == "quit":
            mgr.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, orig)
            say(closed=mgr.closed, fds=[start_fds, fds()], stats=mgr.stats())
            break
""")


class Child:
    """The EMFILE scenario's server process."""

    def __init__(self, backend: str) -> None:
        env = dict(os.environ)
        # The same pyiocp as this process (the debug run's build, say).
        env["PYTHONPATH"] = os.pathsep.join([str(Path(pyiocp.__file__).resolve().parent.parent)]
                                            + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        args = [sys.executable] + (["-X", "dev"] if sys.flags.dev_mode else [])
        self.proc = subprocess.Popen(args + ["-c", EMFILE_CHILD, backend], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True)

    def ask(self, **cmd: Any) -> Dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if cmd:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the child died: exit {self.proc.wait()}"
        answer: Dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


@pytest.mark.linux  # RLIMIT_NOFILE: Windows has no descriptor limit to run into
def test_fault_out_of_file_descriptors(scenario: ScenarioFactory, backend: str) -> None:
    """A server process runs out of descriptors (RLIMIT_NOFILE lowered, the
    rest filled) while a peer connects: accepts fail with EMFILE; the
    listener neither spins (CPU stays low, the failed accepts are paced at
    100 ms) nor closes; the episode is logged once and counted in
    stats()["accept_error_episodes"]; once descriptors free up the waiting
    peer is served, and so are more peers at once than the accepts posted."""
    scen = scenario("emfile")
    episodes, hold = scen.scale("episodes", 2, 10), scen.scale("seconds each", 1.0, 3.0)
    child = Child(backend)
    worst_cpu = 0.0
    per_episode: List[int] = []
    try:
        addr = (LOOPBACK, int(child.ask()["port"]))
        errors = 0
        for ep in range(1, episodes + 1):
            child.ask(do="fill")
            with connect(addr) as waiting:
                waiting.sendall(b"waiting")
                got = child.ask(do="measure", errors=errors, hold=hold)
                st = got["stats"]
                failed = st["accept_errors"] - errors
                errors = st["accept_errors"]
                per_episode.append(failed)
                worst_cpu = max(worst_cpu, got["cpu"])
                child.ask(do="free")
                assert recv_exactly(waiting, 7) == b"waiting", "the waiting peer was not served"
            assert failed > 0, "no accept failed: the scenario did not run out of descriptors"
            assert failed <= 16 * (hold / 0.1 + 3), f"{failed} failed accepts in {hold} s: a busy loop"
            assert got["cpu"] < 0.1, f"{got['cpu']:.0%} of a CPU while out of descriptors"
            assert st["accept_error_episodes"] == ep and st["listeners"] == 1, st
            lines = [m for m in got["logs"] if "accept" in m]
            assert len(lines) == ep and "too many open files" in lines[-1], got["logs"]

            def echo(i: int) -> None:
                with connect(addr) as s:
                    s.sendall(b"after %d" % i)
                    assert recv_exactly(s, len(b"after %d" % i)) == b"after %d" % i

            run_all(echo, 24, 24)  # more than the 16 accepts kept posted
        end = child.ask(do="quit")
        assert end["closed"] and end["fds"][0] == end["fds"][1], end
        assert child.proc.wait(10) == 0
    finally:
        child.stop()
    scen.sized(f"{episodes} episodes of {hold:g} s out of descriptors in a child process, a peer waiting in each")
    scen.note(f"failed accepts per episode {per_episode} (16 posted, retried every 100 ms); "
              f"worst CPU {worst_cpu:.1%}; one log line per episode")
