"""The fault suite's harness (docs/reliability.md), and tests of the harness.

Every scenario of the suite (tests_py/test_faults_*.py) is one code path
with two sizes: the short form runs in CI (``make test``), the long form
with PYIOCP_SOAK=1 (``make soak``). A scenario takes the ``scenario``
fixture: it records a baseline first and, after the test, closes the
managers the scenario made (``scen.manager(...)``) and checks that the
process is back to its baseline, within these tolerances, after a settle
of up to SETTLE_SECONDS:

- open file descriptors: 0 (the same descriptors as before);
- Python threads: 0 (no thread alive that was not alive before);
- RSS: RSS_SLACK over the baseline. Memory the Go runtime and CPython's
  allocators took for a scenario's buffers is not all given back to the OS
  at once (the Go heap shrinks after a garbage collection, which in a
  Python process comes only with Go allocation or every two minutes), so
  this bounds a leak, not the allocator's caches; the reference-count
  scenario checks flatness (RSS and sys.getallocatedblocks) precisely.

The Go runtime's goroutines cannot be counted from Python; the binding
starts none (the workers are Python threads), and the Go suite checks
goroutines after the same scenarios.

With PYIOCP_REPORT_DIR set, each scenario appends one JSON record to
$PYIOCP_REPORT_DIR/py.jsonl, from which scripts/reliability_report.py
writes docs/reliability.md.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import re
import socket
import struct
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, TypeVar

import pytest

import pyiocp
from iocp_helpers import SLOWDOWN, client
from pyiocp.testing import fd_table
from iocp_helpers import recv_exactly as recv_exactly  # the fault tests take them from here
from iocp_helpers import recv_until_eof as recv_until_eof

T = TypeVar("T")
Address = Tuple[str, int]

SOAK = os.environ.get("PYIOCP_SOAK") == "1"
SETTLE_SECONDS = 5.0
# Free-threaded CPython allocates with mimalloc, a heap per thread: what a
# scenario's many short-lived client threads freed goes back to the OS
# later than with pymalloc (half_close once ended 64.4 MiB over its
# baseline there, passing on 3.11): more room on that build.
RSS_SLACK = (128 if sysconfig.get_config_var("Py_GIL_DISABLED") else 64) << 20
STALL_BOUND = 0.25 * SLOWDOWN  # the longest round trip a served client may see, seconds
LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


def pick(short: T, long: T) -> T:
    """The short (CI) or the long (soak) size of a scenario."""
    return long if SOAK else short


# ---------------------------------------------------------------- process state


def fd_targets() -> Dict[int, str]:
    return fd_table()


if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    class _MemoryCounters(ctypes.Structure):  # PROCESS_MEMORY_COUNTERS
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                    ("PeakWorkingSetSize", ctypes.c_size_t), ("WorkingSetSize", ctypes.c_size_t),
                    ("QuotaPeakPagedPoolUsage", ctypes.c_size_t), ("QuotaPagedPoolUsage", ctypes.c_size_t),
                    ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t), ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
                    ("PagefileUsage", ctypes.c_size_t), ("PeakPagefileUsage", ctypes.c_size_t)]

    def _memory() -> _MemoryCounters:
        kernel32 = ctypes.WinDLL("kernel32")
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE
        kernel32.K32GetProcessMemoryInfo.argtypes = [wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD]
        counters = _MemoryCounters()
        counters.cb = ctypes.sizeof(counters)
        if not kernel32.K32GetProcessMemoryInfo(kernel32.GetCurrentProcess(), ctypes.byref(counters),
                                                counters.cb):
            raise ctypes.WinError()
        return counters

    def rss() -> int:
        """The working set: the resident set, as Windows calls it."""
        return int(_memory().WorkingSetSize)

    def peak_rss() -> int:
        return int(_memory().PeakWorkingSetSize)

    def reset_peak_rss() -> None:
        """Windows keeps the peak since the process started: no reset."""

    class _ThreadEntry(ctypes.Structure):  # THREADENTRY32
        _fields_ = [("dwSize", wintypes.DWORD), ("cntUsage", wintypes.DWORD), ("th32ThreadID", wintypes.DWORD),
                    ("th32OwnerProcessID", wintypes.DWORD), ("tpBasePri", wintypes.LONG),
                    ("tpDeltaPri", wintypes.LONG), ("dwFlags", wintypes.DWORD)]

    def os_threads() -> int:
        """This process's threads, the Go runtime's among them."""
        kernel32 = ctypes.WinDLL("kernel32")
        kernel32.CreateToolhelp32Snapshot.restype = wintypes.HANDLE
        for walk in (kernel32.Thread32First, kernel32.Thread32Next):
            walk.argtypes = [wintypes.HANDLE, ctypes.c_void_p]
        kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
        snap = kernel32.CreateToolhelp32Snapshot(0x4, 0)  # TH32CS_SNAPTHREAD
        entry = _ThreadEntry()
        entry.dwSize = ctypes.sizeof(entry)
        n, pid = 0, os.getpid()
        try:
            more = kernel32.Thread32First(snap, ctypes.byref(entry))
            while more:
                n += entry.th32OwnerProcessID == pid
                more = kernel32.Thread32Next(snap, ctypes.byref(entry))
        finally:
            kernel32.CloseHandle(snap)
        return n
else:
    def proc_status(key: str) -> int:
        """A field of /proc/self/status (kB fields in bytes)."""
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    value = line.split()[1]
                    return int(value) * 1024 if line.rstrip().endswith("kB") else int(value)
        return 0

    def rss() -> int:
        return proc_status("VmRSS")

    def peak_rss() -> int:
        return proc_status("VmHWM")

    def reset_peak_rss() -> None:
        """Restart VmHWM at the current RSS (Linux >= 4.0)."""
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass

    def os_threads() -> int:
        """This process's threads, the Go runtime's among them."""
        return proc_status("Threads")


def stat(mgr: pyiocp.SocketManager, key: str) -> int:
    """One counter of mgr.stats()."""
    return int(mgr.stats()[key])


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def live_threads() -> Dict[int, str]:
    return {t.ident: t.name for t in threading.enumerate() if t.ident is not None and t.is_alive()}


# ---------------------------------------------------------------- scenarios


class Scenario:
    """One scenario run: its managers, its figures, its baseline check."""

    def __init__(self, name: str, backend: str, test: str) -> None:
        self.name = name
        self.backend = backend
        self.test = test
        self.size: List[str] = []
        self.notes: List[str] = []
        self.counters: Dict[str, Any] = {}
        self._managers: List[pyiocp.SocketManager] = []
        gc.collect()
        self.fds = fd_targets()
        self.threads = live_threads()
        self.rss = rss()
        self.blocks = sys.getallocatedblocks()
        self.os_threads = os_threads()
        self.start = time.monotonic()
        reset_peak_rss()

    def manager(self, handler: Optional[pyiocp.Handler] = None, *, start: bool = True,
                **options: Any) -> pyiocp.SocketManager:
        """A SocketManager on this scenario's backend, closed (and checked)
        when the scenario ends."""
        mgr = pyiocp.SocketManager(handler, backend=self.backend, **options)
        self._managers.append(mgr)
        if handler is not None and start:
            mgr.start()
        return mgr

    def serve(self, handler: pyiocp.Handler, **options: Any) -> Tuple[pyiocp.SocketManager, Address]:
        """manager(handler, **options), started, listening on an ephemeral
        loopback port: the manager and the listener's address."""
        mgr = self.manager(handler, **options)
        return mgr, mgr.listen(LOOPBACK, 0).address

    def scale(self, name: str, short: T, long: T) -> T:
        """pick(), recorded: the report shows the CI and the soak value of
        each scaled parameter."""
        self.counters.setdefault("scale", {})[name] = [short, long]
        return pick(short, long)

    def sized(self, text: str) -> None:
        self.size.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def set(self, key: str, value: Any) -> None:
        self.counters[key] = value

    def finish(self) -> List[str]:
        """Close the managers; the ways the process is not back to its
        baseline (empty: it is)."""
        problems: List[str] = []
        peak = peak_rss()
        self.seconds = time.monotonic() - self.start
        for mgr in self._managers:
            mgr.close()
            if not mgr.closed:
                problems.append(f"{mgr!r} did not close")
            elif mgr.stats()["connections"]:
                problems.append(f"{mgr!r} kept {mgr.stats()['connections']} connections")
            elif mgr.stats()["stray_completions"]:
                problems.append(f"{mgr!r}: {mgr.stats()['stray_completions']} stray completions")
        self._managers.clear()
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            gc.collect()
            fds, threads, now_rss = fd_targets(), live_threads(), rss()
            new_threads = {i: n for i, n in threads.items() if i not in self.threads}
            if (fds == self.fds and not new_threads and now_rss <= self.rss + RSS_SLACK) \
                    or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if fds != self.fds:
            new = {fd: t for fd, t in fds.items() if self.fds.get(fd) != t}
            gone = {fd: t for fd, t in self.fds.items() if fds.get(fd) != t}
            problems.append(f"open fds {len(self.fds)} -> {len(fds)}; new {new}; gone {gone}")
        if new_threads:
            problems.append(f"threads still alive: {sorted(new_threads.values())}")
        if now_rss > self.rss + RSS_SLACK:
            problems.append(f"RSS {mib(self.rss)} -> {mib(now_rss)} (tolerance +{mib(RSS_SLACK)})")
        self.baseline = {
            "fds": [len(self.fds), len(fds)],
            "threads": [len(self.threads), len(threads)],
            "os_threads": [self.os_threads, os_threads()],
            "rss_mib": [round(self.rss / (1 << 20), 1), round(peak / (1 << 20), 1), round(now_rss / (1 << 20), 1)],
            "blocks": [self.blocks, sys.getallocatedblocks()],
        }
        return problems

    def record(self, result: str) -> None:
        out = os.environ.get("PYIOCP_REPORT_DIR")
        if not out:
            return
        rec = {
            "scenario": self.name,
            "suite": "python",
            "test": self.test,
            "backend": self.backend,
            "mode": "soak" if SOAK else "short",
            "size": self.size,
            "notes": self.notes,
            "counters": self.counters,
            "result": result,
            "seconds": round(self.seconds, 2),
            "baseline": self.baseline,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / "py.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")


ScenarioFactory = Callable[[str], Scenario]


@pytest.fixture
def scenario(request: pytest.FixtureRequest, backend: str) -> Iterator[ScenarioFactory]:
    """``scen = scenario("name")`` starts the scenario's baseline; after the
    test its managers are closed and the process checked against the
    baseline (see the module's docstring), and the run is recorded."""
    made: List[Scenario] = []
    failed_before = request.session.testsfailed

    def start(name: str) -> Scenario:
        scen = Scenario(name, backend, request.node.nodeid)
        made.append(scen)
        return scen

    yield start
    problems: List[str] = []
    for scen in made:
        mine = scen.finish()
        # The call phase's report is logged before teardown: a failed
        # test has raised the session's count by now.
        failed = bool(mine) or request.session.testsfailed > failed_before
        scen.record("fail" if failed else "pass")
        problems += [f"{scen.name}: not back to baseline: {p}" for p in mine]
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


# ---------------------------------------------------------------- clients


def connect(address: Address, timeout: float = 10.0) -> socket.socket:
    return client(address, timeout)


def reset_close(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or pred}")
        time.sleep(0.005)


def run_all(fn: Callable[[int], None], count: int, parallel: int) -> None:
    """fn(0) ... fn(count - 1) on `parallel` threads; the first error is raised."""
    with ThreadPoolExecutor(parallel, thread_name_prefix="fault-client") as pool:
        for fut in [pool.submit(fn, i) for i in range(count)]:
            fut.result()


BLOCK = random.Random(2024).randbytes(4 << 20)


def payload(seed: int, n: int) -> memoryview:
    """n bytes of BLOCK chosen by seed: payloads differ without a copy each."""
    off = (seed * 7919) % (len(BLOCK) - n + 1)
    return memoryview(BLOCK)[off:off + n]


def sha(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


class Latencies:
    """Round-trip times of a served client."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: List[float] = []

    def add(self, seconds: float) -> None:
        with self.lock:
            self.times.append(seconds)

    def summary(self) -> Tuple[int, float, float]:
        """count, worst and mean, in seconds."""
        with self.lock:
            if not self.times:
                return 0, 0.0, 0.0
            return len(self.times), max(self.times), sum(self.times) / len(self.times)


class ControlClient(threading.Thread):
    """Echo round trips every millisecond until stop(): the client that must
    be served, on time, while others misbehave. ``prefix`` is sent first
    (a mode byte for handlers that want one)."""

    def __init__(self, address: Address, prefix: bytes = b"") -> None:
        super().__init__(name="fault-control", daemon=True)
        self.address = address
        self.prefix = prefix
        self.latencies = Latencies()
        self.errors: List[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.address) as s:
                if self.prefix:
                    s.sendall(self.prefix)
                msg = b"control round trip"
                while not self._stop_event.wait(0.001):
                    t0 = time.monotonic()
                    s.sendall(msg)
                    if recv_exactly(s, len(msg)) != msg:
                        self.errors.append("wrong echo")
                        return
                    self.latencies.add(time.monotonic() - t0)
        except Exception as exc:  # noqa: BLE001 - reported by the scenario
            self.errors.append(repr(exc))

    def stop(self) -> Tuple[int, float, float]:
        self._stop_event.set()
        self.join(10)
        assert not self.is_alive(), "the control client is stuck"
        assert self.errors == [], self.errors
        return self.latencies.summary()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Closes:
    """on_close bookkeeping: how often and with what each connection ended."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.opened: Set[int] = set()
        self.count: Dict[int, int] = {}
        self.errors: Dict[int, Optional[BaseException]] = {}

    def open(self, conn: pyiocp.Connection) -> None:
        with self.cond:
            self.opened.add(conn.id)
            self.cond.notify_all()

    def close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        with self.cond:
            self.count[conn.id] = self.count.get(conn.id, 0) + 1
            self.errors[conn.id] = error
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 30.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.count) >= n, timeout):
                raise AssertionError(f"{len(self.count)} of {n} connections closed after {timeout} s")

    def wait_opened_closed(self, but: int = 0, timeout: float = 30.0) -> None:
        """Waits until every connection opened so far, but `but` of them,
        has closed, and no new one opened for a tenth of a second."""
        def settled() -> bool:
            return len(set(self.count) & self.opened) == len(self.opened) - but

        with self.cond:
            deadline = time.monotonic() + timeout
            while True:
                if not self.cond.wait_for(settled, max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"{len(set(self.count) & self.opened)} of {len(self.opened)} opened "
                                         f"connections closed after {timeout} s, {but} to stay open")
                opened = len(self.opened)
                self.cond.wait(0.1)
                if len(self.opened) == opened and settled():
                    return

    def check_once(self, outbound: Sequence[int] = ()) -> None:
        """Every connection closed exactly once; only outbound ones may
        close without having opened (closed while connecting)."""
        with self.cond:
            twice = {c: n for c, n in self.count.items() if n != 1}
            assert not twice, f"closed more than once: {twice}"
            unopened = set(self.count) - self.opened - set(outbound)
            assert not unopened, f"closed, never opened: {unopened}"
            open_only = self.opened - set(self.count)
            assert not open_only, f"opened, never closed: {open_only}"


class Echo(pyiocp.Handler):
    """Echoes; keeps the on_close bookkeeping."""

    def __init__(self) -> None:
        self.closes = Closes()

    def on_accept(self, conn: pyiocp.Connection) -> None:
        self.closes.open(conn)

    def on_connect(self, conn: pyiocp.Connection) -> None:
        self.closes.open(conn)

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        try:
            conn.send(data)
        except pyiocp.ConnectionClosed:
            pass  # closing: what still arrives is dropped

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        self.closes.close(conn, error)


# ---------------------------------------------------------------- tests of the harness


def test_scenario_check_catches_a_leaked_fd_and_thread(backend: str) -> None:
    """The baseline check is not vacuous: a descriptor and a thread left
    behind are reported; closed again, the process is back to baseline."""
    scen = Scenario("self-test", backend, "self-test")
    scen.manager(pyiocp.Handler()).listen(LOOPBACK, 0)
    leaked = socket.socket()
    stop = threading.Event()
    lingering = threading.Thread(target=stop.wait, name="lingering")
    lingering.start()
    global SETTLE_SECONDS
    saved, SETTLE_SECONDS = SETTLE_SECONDS, 0.2
    try:
        problems = scen.finish()
    finally:
        SETTLE_SECONDS = saved
        leaked.close()
        stop.set()
        lingering.join()
    assert any(p.startswith("open fds") for p in problems), problems
    assert any("lingering" in p for p in problems), problems
    assert scen.finish() == []


def test_debug_run_loads_the_debug_build() -> None:
    """``make test``'s debug run (PYIOCP_DEBUG_RUN=1) must test the extension
    built with cgocheck2, under PYTHONMALLOC=debug and -X dev; the Windows
    run (make test-windows-python) the one cross-built into build/windows;
    every other run tests the in-tree extension."""
    from pyiocp import _pyiocp

    ext = Path(_pyiocp.__file__).resolve()
    if sys.platform == "win32":
        assert ext.parent == REPO / "build" / "windows" / "pkg" / "pyiocp", f"imported {ext}"
    elif os.environ.get("PYIOCP_DEBUG_RUN") == "1":
        assert sys.flags.dev_mode, "the debug run must use python -X dev"
        assert os.environ.get("PYTHONMALLOC") == "debug"
        assert ext.parent != REPO / "pyiocp", f"the debug run imported the in-tree extension {ext}"
    else:
        assert ext.parent == REPO / "pyiocp", f"imported {ext}, not the in-tree extension"
    # The Go build settings are in the binary (go version -m reads them).
    cgocheck2 = re.search(rb"\nbuild\tGOEXPERIMENT=[^\n]*\bcgocheck2\b", ext.read_bytes()) is not None
    assert cgocheck2 == (os.environ.get("PYIOCP_DEBUG_RUN") == "1"), f"{ext}: cgocheck2 build {cgocheck2}"
