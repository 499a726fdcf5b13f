"""Helpers of the Python tests: recording handlers and blocking clients."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Set, Tuple

import pyiocp
from pyiocp.testing import fd_table

REPO = Path(__file__).resolve().parent.parent
# The interpreter child processes run: the one running the tests when it
# is a virtual environment's (.venv, .venv-ft on free-threaded CPython),
# else .venv's, where pyiocp is installed.
PYTHON = str(REPO / ".venv" / "bin" / "python")
if sys.platform == "win32" or sys.prefix != sys.base_prefix or not Path(PYTHON).exists():
    PYTHON = sys.executable

# Windows tests run on Linux under Wine (make test-windows-python), whose
# ntdll has wine_get_version. Wine adds about a millisecond to each I/O, so
# the bounds on waits are looser there; and it reports a peer's reset as the
# end of the stream (to every program: Go's net package sees EOF too), so a
# reset may look like a clean close to the other side.
UNDER_WINE = sys.platform == "win32" and hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")
SLOWDOWN = 4 if UNDER_WINE else 1
RESETS_LOST = UNDER_WINE

LOOPBACK = "127.0.0.1"
WAIT = 5.0 * SLOWDOWN  # default bound on any wait for a callback
# How late something that should come promptly may still come on a loaded
# machine (the tests run beside other work): the bounds that use it tell
# "prompt" from "stuck" (never, or only after seconds of waiting).
LATE = 2.0 * SLOWDOWN


class Recorder(pyiocp.Handler):
    """Records every callback (those of the base Handler's mandatory set;
    subclasses add on_send / on_drain / on_eof only when a test needs them,
    since overriding one changes which events the engine produces).

    events: list of (kind, conn_id, arg, thread_name) in arrival order.
    """

    echo = False  # echo what inbound connections send

    def __init__(self, echo: Optional[bool] = None) -> None:
        if echo is not None:
            self.echo = echo
        self.cond = threading.Condition()
        self.events: List[Tuple[str, Optional[int], Any, str]] = []
        self.conns: Dict[int, Any] = {}
        self.data: Dict[int, bytearray] = collections.defaultdict(bytearray)
        self.closes: Dict[int, List[Optional[BaseException]]] = collections.defaultdict(list)
        self.posts: List[Any] = []
        self.errors: List[Tuple[Optional[pyiocp.Connection], BaseException]] = []
        self.inbound: Set[int] = set()

    # -- recording
    def record(self, kind: str, conn: Any, arg: Any = None) -> None:
        with self.cond:
            cid = conn.id if conn is not None else None
            if conn is not None:
                self.conns.setdefault(cid, conn)
            self.events.append((kind, cid, arg, threading.current_thread().name))
            self.cond.notify_all()

    def wait(self, pred: Callable[[], object], timeout: float = WAIT, what: str = "") -> None:
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what or pred}; "
                                     f"events: {self.events[-20:]}")

    def kinds(self, cid: Optional[int] = None) -> List[str]:
        with self.cond:
            return [k for k, c, _, _ in self.events if cid is None or c == cid]

    def count(self, kind: str) -> int:
        with self.cond:
            return sum(1 for k, *_ in self.events if k == kind)

    def wait_count(self, kind: str, n: int, timeout: float = WAIT) -> None:
        self.wait(lambda: sum(1 for k, *_ in self.events if k == kind) >= n, timeout, f"{n} x {kind}")

    def wait_closed(self, cid: int, timeout: float = WAIT) -> Optional[BaseException]:
        self.wait(lambda: cid in self.closes, timeout, f"on_close of {cid}")
        return self.closes[cid][0]

    def wait_all_closed(self, n: Optional[int] = None, timeout: float = WAIT) -> None:
        """Every connection seen (at least n of them) has had its on_close."""
        def done() -> bool:
            return (n is None or len(self.conns) >= n) and all(c in self.closes for c in self.conns)
        self.wait(done, timeout, "every on_close")

    def first_conn(self, kind: str = "accept", timeout: float = WAIT) -> Any:
        self.wait(lambda: any(k == kind for k, *_ in self.events), timeout, kind)
        with self.cond:
            cid = next(c for k, c, *_ in self.events if k == kind)
            assert cid is not None
            return self.conns[cid]

    # -- callbacks: each updates its state and records its event under one
    # hold of cond (an RLock), so a waiter sees both or neither: without
    # the GIL, a test saw a connection's bytes before its "recv" event.
    def on_accept(self, conn: pyiocp.Connection) -> None:
        with self.cond:
            self.inbound.add(conn.id)
            self.record("accept", conn)

    def on_connect(self, conn: pyiocp.Connection) -> None:
        self.record("connect", conn)

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        with self.cond:
            self.data[conn.id] += data
            self.record("recv", conn, len(data))
        if self.echo and conn.id in self.inbound:
            conn.send(data)

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        with self.cond:
            self.closes[conn.id].append(error)
            self.record("close", conn, error)

    def on_post(self, payload: Any) -> None:
        with self.cond:
            self.posts.append(payload)
            self.record("post", None, payload)

    def on_error(self, conn: Optional[pyiocp.Connection], exc: BaseException) -> None:
        super().on_error(conn, exc)  # logs and closes; recorded once done
        with self.cond:
            self.errors.append((conn, exc))
            self.record("error", conn, exc)


class Serve(Protocol):
    """The ``serve`` fixture (conftest.py): ``serve(handler, **options)``, a
    manager of ``iocp_manager`` running handler and listening on an
    ephemeral loopback port, with its listener."""

    def __call__(self, handler: pyiocp.Handler, **options: Any) -> Tuple[pyiocp.SocketManager, pyiocp.Listener]: ...


class Echo(pyiocp.Handler):
    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        conn.send(data)


# The start of a child process's script that runs a server: pyiocp, its
# log lines kept in `logs` (for the child to report), and an Echo handler.
CHILD_ECHO_SERVER = """
import logging
import pyiocp

logs = []

class Keep(logging.Handler):
    def emit(self, record):
        logs.append(record.getMessage())

logging.getLogger("pyiocp").addHandler(Keep())

class Echo(pyiocp.Handler):
    def on_recv(self, conn, data):
        conn.send(data)
"""


def unexpected_stderr(text: str) -> str:
    """A server's stderr without the slow-callback warnings (logger "pyiocp"):
    on a loaded machine a batch preempted for 0.1 s logs one, rightly."""
    return "".join(line for line in text.splitlines(keepends=True) if "slow_callback_warning=" not in line)


def reap(proc: "subprocess.Popen[str]") -> None:
    """The end of a test's server process, however the test went: killed if
    it still runs, its output pipes closed."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def fd_count() -> int:
    return len(fd_table())


def fd_list() -> Dict[int, str]:
    """This process's open descriptors (Windows: handles) and what they are."""
    return fd_table()


def fds_settled(still: float = 0.1) -> None:
    """Waits until the count of open descriptors has not changed for still
    seconds: what a worker opens on its own (a listener's pre-posted
    accepts, on Windows) is open."""
    last, since = fd_count(), time.monotonic()
    deadline = since + WAIT
    while time.monotonic() - since < still * SLOWDOWN:
        if time.monotonic() > deadline:
            raise AssertionError(f"descriptors still coming and going after {WAIT} s")
        time.sleep(0.005)
        now = fd_count()
        if now != last:
            last, since = now, time.monotonic()


def worker_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pyiocp-worker-") and t.is_alive()]


def client(address: Tuple[str, int], timeout: float = WAIT) -> socket.socket:
    s = socket.create_connection(address, timeout=timeout)
    s.settimeout(timeout)
    return s


@contextlib.contextmanager
def connected(serve: Serve, rec: Recorder, backend: str,
              **options: Any) -> Iterator[Tuple[pyiocp.SocketManager, socket.socket, pyiocp.Connection]]:
    """The opening of most connection tests: rec served on backend (with
    options) and one client connected to it. Gives the manager, the
    client's socket (closed when the with ends) and the server's side of
    it, once its on_accept has run."""
    mgr, lst = serve(rec, backend=backend, **options)
    with client(lst.address) as s:
        yield mgr, s, rec.first_conn()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock: socket.socket) -> bytes:
    buf = bytearray()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk


def wait_until(pred: Callable[[], object], timeout: float = WAIT, interval: float = 0.005, what: str = "") -> None:
    """For state without a callback to wait on (stats counters, socket
    buffers): poll pred until it holds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or pred}")
        time.sleep(interval)


def peer_sees_the_end(s: socket.socket) -> None:
    """The server closed (FIN) or reset this client's connection."""
    s.settimeout(3)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass


def expect_reset(sock: socket.socket) -> None:
    """Reads sock until the peer's reset. Under Wine a reset reads as the
    end of the stream (RESETS_LOST), which is taken for one there."""
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        return
    if not RESETS_LOST:
        raise AssertionError("the peer closed cleanly: no reset")


def set_linger_reset(sock: socket.socket) -> None:
    """close() of this socket sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def flood(sock: socket.socket, stop: threading.Event) -> None:
    """Sends until the connection fails or stop is set; never reads."""
    chunk = bytes(64 << 10)
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            sock.send(chunk)
        except socket.timeout:
            continue  # TCP pushes back: the server stopped reading
        except OSError:
            return


def small_rcvbuf_client(address: Tuple[str, int], rcvbuf: int = 4096, timeout: float = WAIT) -> socket.socket:
    """A client whose receive buffer is small, so that a server sending to
    it fills up quickly."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(address)
    return s


@contextlib.contextmanager
def full_backlog_listener() -> Iterator[Tuple[str, int]]:
    """A listener (backlog 0, never accepting) whose accept queue is full:
    a new connection to it stays in SYN-SENT (loopback only)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    addr = srv.getsockname()
    fillers: List[socket.socket] = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(addr)
            fillers.append(c)
        # the queue is full once a blocking connect no longer completes
        probe = socket.socket()
        probe.settimeout(0.2)
        with probe:
            try:
                probe.connect(addr)
            except socket.timeout:
                pass
            else:
                raise AssertionError("the listener's accept queue took one more connection")
        yield addr
    finally:
        for c in fillers:
            c.close()
        srv.close()
