"""The threads and signals of running a SocketManager: waiting on events
safely from the main thread, SIGTERM during serve_forever(), the watch on
listeners nobody serves, a polling thread's end, and a worker thread's
start that Ctrl-C may interrupt."""

from __future__ import annotations

import signal
import sys
import threading
import time
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any, Optional

from . import _pyiocp
from ._args import DEFAULT_MANAGER_CLOSE_TIMEOUT

if TYPE_CHECKING:
    from ._manager import SocketManager

# How often the main thread looks whether a worker has ended (see _wait_set).
MAIN_WAIT_SLICE = 0.01
# A listener whose connections have waited this long (seconds) with no
# worker run since listen() is reported, once (see _UnservedWatch).
UNSERVED_WARNING_DELAY = 1.0


def _wait_set(ev: threading.Event, timeout: Optional[float]) -> bool:
    """ev.wait(timeout), but safe from Ctrl-C on the main thread. A
    KeyboardInterrupt can land inside Event.wait just after the event's
    lock was taken and before the with statement that releases it is in
    force (CPython runs signal handlers between bytecodes); the lock then
    stays held and every later set() and wait() deadlocks. The main thread,
    the only one signals interrupt, polls is_set(), which takes no lock,
    between short sleeps instead."""
    if threading.current_thread() is not threading.main_thread():
        return ev.wait(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not ev.is_set():
        left = MAIN_WAIT_SLICE if deadline is None else min(MAIN_WAIT_SLICE, deadline - time.monotonic())
        if left <= 0:
            return False
        time.sleep(left)
    return True


class _PollerExit:
    """Kept in the thread-local data of each thread that called poll():
    when the thread ends, the connections whose completions it took last go
    to the other polling threads (a connection is handed to one poll() at a
    time and is that thread's until it polls again)."""

    __slots__ = ("_engine", "_ident")

    def __init__(self, engine: _pyiocp.Engine, ident: int) -> None:
        self._engine = engine
        self._ident = ident

    def __del__(self) -> None:
        self._engine.release_poller(self._ident)


class _UnservedWatch:
    """Until a worker first runs, a thread looks every
    UNSERVED_WARNING_DELAY seconds whether connections wait on the manager's
    listeners: the kernel completes their handshakes into the backlog and,
    with no worker, nothing ever accepts them. The engine's own log lines
    reach Python only through a worker, so the look is taken from here. The
    thread holds the manager weakly, and ends once start(), serve_forever(),
    poll() or close() is called, the manager is collected, or it has warned."""

    def __init__(self, manager: SocketManager) -> None:
        self._stopped = threading.Event()
        self._stop_soon = weakref.finalize(manager, self._stopped.set)
        self._thread = threading.Thread(target=self._run, args=(weakref.ref(manager),),
                                        name="pyiocp-unserved-watch", daemon=True)
        self._thread.start()

    def _run(self, ref: "weakref.ref[SocketManager]") -> None:
        while not self._stopped.wait(UNSERVED_WARNING_DELAY):
            manager = ref()
            if manager is None or manager._warn_if_unserved():
                return
            del manager

    def stop(self) -> None:
        """Ends the thread and waits for it."""
        self._stop_soon()
        self._thread.join()


class _SigtermCatcher:
    """SIGTERM, the signal process managers stop a service with, as a
    request to close, for the time serve_forever runs on the main thread.

    The handler runs on the main thread between any two bytecodes: maybe
    while serve_forever holds the manager's lock, or in the middle of a
    callback. So it takes no lock and raises nothing. It only starts the
    engine's shutdown (the workers flush, deliver every on_close and quit;
    idempotent, and a no-op once the engine is released) and notes it, and
    serve_forever, once its worker has quit, finishes with close()."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.caught = False
        self._installed = False
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the application's own handler, or SIGTERM ignored
        signal.signal(signal.SIGTERM, self._handle)
        self._installed = True

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        self.caught = True
        self._engine.shutdown(int(DEFAULT_MANAGER_CLOSE_TIMEOUT * 1e9))

    def restore(self) -> None:
        """Back to the default, unless a callback has put a handler of its
        own in the meantime."""
        if self._installed:
            self._installed = False
            if signal.getsignal(signal.SIGTERM) == self._handle:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _LostInterruptCatcher:
    """While serve_forever runs on the main thread: a KeyboardInterrupt that
    Python swallowed as unraisable is raised again. A signal handler runs
    between any two bytecodes of the main thread, also inside a weakref
    callback or a __del__ that the garbage collector happens to run there
    (threading's WeakSet of threads, for one); what it raises there is only
    printed ("Exception ignored in ..."), and Ctrl-C or the application's
    SIGTERM handler would leave the server running. The hook has the
    serving loop raise it at its next check instead."""

    def __init__(self) -> None:
        self._installed = False
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = sys.unraisablehook
        sys.unraisablehook = self._hook
        self._installed = True

    def _hook(self, unraisable: Any) -> None:
        if (issubclass(unraisable.exc_type, KeyboardInterrupt)
                and threading.current_thread() is threading.main_thread()):
            # Noted in C, for the loop to raise: a signal tripped again here
            # would have its handler run inside this hook, and be lost again.
            _pyiocp.lost_interrupt()
            return
        self._previous(unraisable)

    def restore(self) -> None:
        if self._installed:
            self._installed = False
            if sys.unraisablehook == self._hook:
                sys.unraisablehook = self._previous


def settle_start(t: threading.Thread, timeout: float = 2.0) -> None:
    """Waits for t, whose start() a Ctrl-C interrupted and whose gate was
    abandoned, to have started and returned (at once). A daemon thread
    still starting when the process exits makes the interpreter crash as
    it finalizes (the new thread binds a freed thread state). A thread
    that start() never got to launch is neither running nor in
    threading's list of threads being launched: nothing to wait for."""
    launching = getattr(threading, "_limbo", {})
    if t.ident is None and t not in launching:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            t.join(max(0.0, deadline - time.monotonic()))
            return
        except RuntimeError:  # not started yet, or never will be
            time.sleep(0.001)


class _StartGate:
    """Decides, once, between a worker thread that begins and a spawn that
    was interrupted and gives the worker up: never both."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = ""

    def enter(self) -> bool:
        with self._lock:
            if self._state == "":
                self._state = "entered"
            return self._state == "entered"

    def abandon(self) -> bool:
        with self._lock:
            if self._state == "":
                self._state = "abandoned"
            return self._state == "abandoned"
