"""SocketManager: the Python face of one Go engine.

No I/O happens here: this module runs the worker threads and closes the
manager; its arguments are checked in _args, its threads' and signals'
helpers are in _threads. Each worker thread calls into the extension,
which harvests completions in Go with the GIL released and calls the
handler for the whole batch.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import namedtuple
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

from . import _pyiocp, _threads
from ._args import (
    DEFAULT_ACCEPTS, DEFAULT_BACKLOG, DEFAULT_CLOSE_TIMEOUT, DEFAULT_MANAGER_CLOSE_TIMEOUT,
    DEFAULT_RECV_BUFFER_LIMIT, DEFAULT_SEND_BUFFER_LIMIT, DEFAULT_SLOW_CALLBACK_WARNING, MAX_ACCEPTS, MAX_BACKLOG,
    MAX_BUFFER, MAX_CONN_ID, MAX_CONNECTIONS, MAX_SECONDS, MAX_WORKERS, _int_arg, _resolve, _seconds, _seconds_ns,
)
from ._handler import Handler
from ._listener import Listener
from ._pyiocp import Connection, Timer
from ._framing import Framing, framing_arg
from ._sockopts import KeepAlive, sockopts
from ._adopt import adopt
from ._proxy import ProxySources, proxy_args, proxy_mode
from ._tls import TLSConfig, tls_handle
from ._udp import DatagramEndpoint, datagram_size_arg, next_handle, resolve_remote
from ._unix import PathArg, unix_mode, unix_path, unix_supported
from ._threads import _LostInterruptCatcher, _PollerExit, _SigtermCatcher, _StartGate, _UnservedWatch, _wait_set
from .errors import ManagerClosed

logger = logging.getLogger("pyiocp")

# Waiting for workers after close(timeout): the grace period for handlers
# still running their last batch.
JOIN_GRACE = 2.0


Completion = namedtuple("Completion", "kind conn data error")
Completion.__doc__ = """One completion from SocketManager.poll().

kind is one of "accept" "connect" "recv" "send" "drain" "eof" "close"
"post" "timer" "datagram"; data is the bytes for "recv", the byte count for "send",
a (bytes, (host, port)) pair for "datagram" (conn is its DatagramEndpoint),
the payload for "post", the due Timer for "timer" (run it:
timer.callback(*timer.args)); conn is None for "post" and a manager's
timer; error is set for "close" (None if clean)."""


def _report(message: str, exc: Optional[BaseException]) -> None:
    if exc is None:
        logger.warning("%s", message)
    else:
        logger.error("%s", message, exc_info=exc)


class SocketManager:
    """Runs sockets on a Go engine and delivers their events to a Handler.

    With a handler, start() runs the workers on background threads and
    serve_forever() runs them with the calling thread as one of them. With
    handler=None, poll() hands out the completions instead (one worker).
    """

    def __init__(
        self,
        handler: Optional[Handler] = None,
        *,
        workers: int = 1,
        backend: str = "auto",
        recv_buffer_limit: int = DEFAULT_RECV_BUFFER_LIMIT,
        send_buffer_limit: int = DEFAULT_SEND_BUFFER_LIMIT,
        send_low_watermark: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        accept_timeout: Optional[float] = None,
        close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
        max_connections: Optional[int] = None,
        slow_callback_warning: Optional[float] = DEFAULT_SLOW_CALLBACK_WARNING,
    ) -> None:
        if handler is not None and not isinstance(handler, Handler):
            raise TypeError(f"handler must be a pyiocp.Handler or None, not {type(handler).__name__}")
        workers = _int_arg("workers", workers, 1, MAX_WORKERS)
        if handler is None and workers != 1:
            raise ValueError(f"workers={workers}: poll() mode (handler=None) runs one worker")
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a str, not {type(backend).__name__}")
        recv_buffer_limit = _int_arg("recv_buffer_limit", recv_buffer_limit, 1, MAX_BUFFER)
        send_buffer_limit = _int_arg("send_buffer_limit", send_buffer_limit, 1, MAX_BUFFER)
        low = -1
        if send_low_watermark is not None:
            low = _int_arg("send_low_watermark", send_low_watermark, 0, send_buffer_limit - 1)
        cap = 0 if max_connections is None else _int_arg("max_connections", max_connections, 1, MAX_CONNECTIONS)
        slow_ns = _seconds_ns("slow_callback_warning", slow_callback_warning)
        if slow_callback_warning == 0:
            slow_ns = 0  # off, like None
        self._handler = handler
        self._workers = workers
        self._engine = _pyiocp.Engine(
            handler,
            _report,
            Completion,
            workers,
            backend,
            recv_buffer_limit,
            send_buffer_limit,
            low,
            _seconds_ns("idle_timeout", idle_timeout),
            _seconds_ns("accept_timeout", accept_timeout),
            _seconds_ns("close_timeout", close_timeout),
            cap,
            self._event_mask(handler),
            slow_ns,
        )
        self._lock = threading.Lock()
        self._state = "open"  # open, running, closing, closed
        self._driven: Dict[int, threading.Event] = {}  # worker -> set when its loop ends
        self._threads: List[threading.Thread] = []
        self._worker_idents: Set[int] = set()
        self._final_stats: Optional[Dict[str, Any]] = None
        self._polling = 0  # poll() calls under way
        self._pollers = threading.local()  # a _PollerExit in each thread that polled
        self._listeners: List[Listener] = []
        self._served = False  # start(), serve_forever() or poll() was called
        self._watch: Optional[_UnservedWatch] = None

    # ------------------------------------------------------------ sockets

    def listen(
        self,
        host: str,
        port: int,
        *,
        backlog: int = DEFAULT_BACKLOG,
        accepts: int = DEFAULT_ACCEPTS,
        reuse_port: bool = False,
        nodelay: bool = True,
        keepalive: Optional[KeepAlive] = None,
        rcvbuf: Optional[int] = None,
        sndbuf: Optional[int] = None,
        framing: Framing = None,
        tls: Optional[TLSConfig] = None,
        first_data: bool = False,
        proxy_protocol: Optional[str] = None,
        proxy_allow_from: Optional[ProxySources] = None,
    ) -> Listener:
        """Listen on host:port (port 0 picks a free port: see .address).
        The socket options (TCP_NODELAY, keepalive, the kernel's buffer
        sizes) are every accepted connection's too, and so is framing (a
        pyiocp.Lines or LengthPrefixed: on_recv gets one whole frame).
        With tls (a pyiocp.TLSConfig with a certificate) every connection
        does its TLS handshake first: on_accept comes after it succeeded,
        a failed one is never announced (stats()["tls_handshake_errors"]),
        and the callbacks see plaintext. With first_data a connection is
        accepted only once its peer has sent something (a peer silent for
        accept_timeout, or 10 s without one, is dropped); on_accept then
        on_recv with those bytes follow, as without it. With
        proxy_protocol ("v1", "v2" or "auto": either) the listener is
        behind a load balancer that sends a PROXY protocol header first:
        it is read before anything else (the TLS handshake too), and
        Connection.peer is the client it names, Connection.proxy the
        balancer. Only sources in proxy_allow_from (CIDR prefixes; by
        default loopback) may connect; a missing, malformed or late
        (accept_timeout, or 10 s) header resets the connection unseen,
        counted in stats()["proxy_errors"]."""
        backlog = _int_arg("backlog", backlog, 1, MAX_BACKLOG)
        accepts = _int_arg("accepts", accepts, 1, MAX_ACCEPTS)
        for name, flag in (("reuse_port", reuse_port), ("first_data", first_data)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, not {type(flag).__name__}")
        opts = sockopts(nodelay, keepalive, rcvbuf, sndbuf)
        framing = framing_arg(framing)
        tls_h = tls_handle(tls)
        proxy, allow = proxy_args(proxy_protocol, proxy_allow_from)
        self._check_open()
        ip, port = _resolve(host, port, passive=True)
        handle, bound = self._engine.listen(ip, port, backlog, accepts, reuse_port, first_data, opts, framing, tls_h,
                                            proxy, allow)
        return self._keep_listener(Listener(self, handle, (ip, bound), tls))

    def listen_socket(
        self,
        sock: Union[socket.socket, int],
        *,
        accepts: int = DEFAULT_ACCEPTS,
        nodelay: bool = True,
        keepalive: Optional[KeepAlive] = None,
        rcvbuf: Optional[int] = None,
        sndbuf: Optional[int] = None,
        framing: Framing = None,
        tls: Optional[TLSConfig] = None,
        first_data: bool = False,
        proxy_protocol: Optional[str] = None,
        proxy_allow_from: Optional[ProxySources] = None,
    ) -> Listener:
        """Serve a socket that already listens: one inherited from systemd
        socket activation (LISTEN_FDS: descriptors from 3 on), from a
        supervisor, or made with socket.create_server(). The manager
        serves a duplicate: the caller keeps sock (a socket.socket or a
        descriptor) and may close it. A TCP socket, or a Unix domain one
        (Linux), whose file is left in place when the listener closes. The
        options are listen()'s (a Unix domain socket takes no socket
        options nor first_data); the backlog and SO_REUSEPORT are the
        socket's own. Not a listening stream socket: ValueError."""
        accepts = _int_arg("accepts", accepts, 1, MAX_ACCEPTS)
        if not isinstance(first_data, bool):
            raise TypeError(f"first_data must be a bool, not {type(first_data).__name__}")
        opts = sockopts(nodelay, keepalive, rcvbuf, sndbuf)
        framing = framing_arg(framing)
        tls_h = tls_handle(tls)
        proxy, allow = proxy_args(proxy_protocol, proxy_allow_from)
        self._check_open()
        dup, address = adopt(sock)
        handle = self._engine.listen_socket(dup.detach(), accepts, first_data, opts, framing, tls_h, proxy, allow)
        return self._keep_listener(Listener(self, handle, address, tls))

    def _keep_listener(self, lst: Listener) -> Listener:
        """Records a new listener; until a worker runs, a watch warns of
        connections waiting on it."""
        self._listeners.append(lst)
        with self._lock:
            if not self._served and self._watch is None and self._state == "open":
                self._watch = _UnservedWatch(self)
        return lst

    def connect(self, host: str, port: int, *, timeout: Optional[float] = None, nodelay: bool = True,
                keepalive: Optional[KeepAlive] = None, rcvbuf: Optional[int] = None,
                sndbuf: Optional[int] = None, framing: Framing = None,
                tls: Optional[TLSConfig] = None) -> Connection:
        """Start connecting to host:port and return the Connection at once;
        on_connect follows, or on_close with the error (TimeoutError after
        timeout seconds). Bytes sent before it connects go out once it does.
        Outbound connections count toward max_connections: over it this
        raises TooManyConnections (an OSError, errno EMFILE). The socket
        options are listen()'s. A host name is resolved off the calling
        thread, so that a callback may connect without stalling its worker;
        its addresses are raced in Happy Eyeballs order (RFC 8305: the next
        one 250 ms after the last, or once it fails; the first to connect
        wins), all within timeout. A name that does not resolve
        ends the connection with on_close(conn, socket.gaierror). Until it
        connects, the connection's peer is None. framing is listen()'s.
        With tls (a pyiocp.TLSConfig) the TLS handshake follows the
        connect: on_connect comes after it, a failure ends in
        on_close(conn, pyiocp.TLSError), and what is sent before is
        written once it is done."""
        timeout_ns = _seconds_ns("timeout", timeout)
        opts = sockopts(nodelay, keepalive, rcvbuf, sndbuf)
        framing = framing_arg(framing)
        tls_h = tls_handle(tls, server=False)
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, not {host!r}")
        port = _int_arg("port", port, 1, 65535)
        self._check_open()
        return self._engine.connect(host, port, timeout_ns, opts, framing, tls_h)

    def listen_unix(self, path: PathArg, *, backlog: int = DEFAULT_BACKLOG, mode: Optional[int] = None,
                    accepts: int = DEFAULT_ACCEPTS, framing: Framing = None,
                    tls: Optional[TLSConfig] = None, proxy_protocol: Optional[str] = None) -> Listener:
        """Listen on the Unix domain socket path (Linux; a leading "\\0"
        names the abstract namespace, with no file). A socket file left by
        a listener that is gone is replaced; one something listens on, or
        any other file, is OSError EADDRINUSE. mode sets the file's
        permission bits (0o660, say). The file is removed when the listener
        closes. The connections are listen()'s: the same Handler, framing,
        tls, timeouts and limits, and proxy_protocol (from any peer: a Unix
        domain one is local); Connection.peer and .local are the names
        ("" when unnamed), unless a PROXY header names the client."""
        unix_supported()
        raw = unix_path(path)
        perm = unix_mode(mode)
        backlog = _int_arg("backlog", backlog, 1, MAX_BACKLOG)
        accepts = _int_arg("accepts", accepts, 1, MAX_ACCEPTS)
        framing = framing_arg(framing)
        tls_h = tls_handle(tls)
        proxy = proxy_mode(proxy_protocol)
        self._check_open()
        handle = self._engine.listen_unix(raw, perm, backlog, accepts, framing, tls_h, proxy)
        return self._keep_listener(Listener(self, handle, os.fsdecode(raw), tls))

    def connect_unix(self, path: PathArg, *, timeout: Optional[float] = None,
                     framing: Framing = None) -> Connection:
        """Connect to the Unix domain socket path and return the Connection
        at once: on_connect follows, or on_close with the error
        (FileNotFoundError, ConnectionRefusedError; BlockingIOError when
        the listener's backlog is full: a Unix domain connect does not
        wait). Counts toward max_connections as connect() does."""
        unix_supported()
        raw = unix_path(path)
        timeout_ns = _seconds_ns("timeout", timeout)
        framing = framing_arg(framing)
        self._check_open()
        return self._engine.connect_unix(raw, timeout_ns, framing)

    def bind_udp(self, host: str, port: int, *, reuse_port: bool = False, broadcast: bool = False,
                 remote: Optional[Tuple[str, int]] = None,
                 datagram_size: Optional[int] = None) -> DatagramEndpoint:
        """Bind a UDP endpoint to host:port (port 0 picks a free one: see
        .address; "::" takes IPv4 and IPv6). Its datagrams come to
        Handler.on_datagram (or as "datagram" Completions). reuse_port
        sets SO_REUSEPORT (Linux), broadcast SO_BROADCAST. remote=(host,
        port) connects it: it receives from remote only and sendto needs no
        address. datagram_size (1-65536, default 65536: every datagram) is
        the longest datagram delivered; a longer one is dropped, never
        delivered short, and counted in stats()["datagrams_truncated"].
        The endpoint stays open until its close() or the manager's."""
        for name, flag in (("reuse_port", reuse_port), ("broadcast", broadcast)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, not {type(flag).__name__}")
        size = datagram_size_arg(datagram_size)
        ip, port = _resolve(host, port, passive=True)
        rip, rport = ("", 0) if remote is None else resolve_remote(remote, ":" in ip)
        self._check_open()
        ep = DatagramEndpoint(self, next_handle(), (ip, port), None if remote is None else (rip, rport))
        ep.address = (ip, self._engine.bind_udp(ep._handle, ep, ip, port, reuse_port, broadcast, rip, rport, size))
        return ep

    def _close_endpoint(self, handle: int) -> None:
        if self._state != "closed":
            self._engine.close_endpoint(handle)

    def _endpoint_closed(self, handle: int) -> bool:
        return self._state == "closed" or self._engine.endpoint_closed(handle)

    def _reload_tls(self, handle: int, tls: TLSConfig) -> None:
        self._check_open()
        self._engine.reload_tls(handle, tls_handle(tls))

    def _close_listener(self, handle: int) -> None:
        if self._state != "closed":
            self._engine.close_listener(handle)

    def _warn_if_unserved(self) -> bool:
        """Called by the watch every UNSERVED_WARNING_DELAY seconds until a
        worker runs: warns, once, of listeners with connections waiting.
        True: the watch is over."""
        with self._lock:
            if self._served or self._state != "open":
                return True
            waiting = [lst.address for lst in self._listeners
                       if not lst._closed and self._engine.listener_waiting(lst._handle)]
        if not waiting:
            return False
        where = ", ".join(_where(a) for a in waiting)
        logger.warning("connections wait on %s, but no worker has run for %g s: nothing accepts them until "
                       "start() or serve_forever() (or poll(), without a handler) is called",
                       where, _threads.UNSERVED_WARNING_DELAY)
        return True

    def _stop_watch(self) -> None:
        """Ends the watch, if any (kept until its thread has ended, so that
        close() after a Ctrl-C in here still waits for it)."""
        watch = self._watch
        if watch is not None:
            watch.stop()
            self._watch = None

    # ------------------------------------------------------------ running

    def start(self) -> None:
        """Run the workers on background threads and return."""
        with self._lock:
            self._check_can_run()
            self._state = "running"
            self._served = True
        try:
            self._stop_watch()
            with self._lock:
                for i in range(self._workers):
                    self._spawn(i)
        except BaseException:  # Ctrl-C while spawning: undo what started
            self._close_after_interrupt()
            raise

    def serve_forever(self) -> None:
        """Run the workers, the calling thread being one of them, until
        close() (from any thread), Ctrl-C, which closes the manager and
        re-raises KeyboardInterrupt, or SIGTERM, which closes the manager
        gracefully and returns. SIGTERM is caught so only on the main
        thread, and only when its handler is the default one: a handler
        the application installed is left alone. The default is back
        once serve_forever returns."""
        with self._lock:
            started = self._state == "running"
            if not started:
                self._check_can_run()
                self._state = "running"
                self._served = True
        sigterm = _SigtermCatcher(self._engine)
        lost = _LostInterruptCatcher()
        try:
            self._serve(started)
            if sigterm.caught:
                self.close()
        finally:
            lost.restore()
            sigterm.restore()

    def _serve(self, started: bool) -> None:
        done: Optional[threading.Event] = None
        try:
            self._stop_watch()
            if started:
                self._wait_workers()
                return
            with self._lock:
                for i in range(1, self._workers):
                    self._spawn(i)
                done = threading.Event()
                self._driven[0] = done
            self._drive(0, done, threading.current_thread() is threading.main_thread())
        except BaseException:
            if done is not None:
                # Claimed by this thread, which drives it no more (a _drive
                # that ran has already set it): close() must not wait for it.
                done.set()
            self._close_after_interrupt()
            raise

    def _close_after_interrupt(self) -> None:
        """close() on the way out of an exception; a second Ctrl-C or a
        failure in it must not hide the first exception."""
        try:
            self.close()
        except BaseException as exc:
            logger.warning("close() after an interrupted start failed: %r", exc)

    def _wait_workers(self) -> None:
        """serve_forever() after start(): wait until the workers end, waking
        for signal handlers."""
        for ev in list(self._driven.values()):
            _wait_set(ev, None)

    def _claim(self, worker: int) -> threading.Event:
        done = threading.Event()
        self._driven[worker] = done
        return done

    def _spawn(self, worker: int) -> None:
        """Start a thread for the worker. If the start is interrupted
        (Ctrl-C) before the thread began, the thread will not drive the
        worker and its claim is released, so close() does not wait for it."""
        done = threading.Event()
        gate = _StartGate()
        t = threading.Thread(target=self._run, args=(worker, done, gate),
                             name=f"pyiocp-worker-{worker}", daemon=True)
        try:
            # Claimed inside the try, in one step: a Ctrl-C lands before
            # (close() drives the worker itself) or after (it is released
            # below), never between a claim and its release.
            self._driven[worker] = done
            t.start()
        except BaseException:
            if gate.abandon():
                done.set()
                # The thread may still be starting: a daemon thread left
                # starting while the interpreter finalizes crashes it.
                _threads.settle_start(t)
            raise
        self._threads.append(t)

    def _run(self, worker: int, done: threading.Event, gate: "_StartGate") -> None:
        if not gate.enter():
            return  # its start was interrupted and abandoned
        try:
            self._drive(worker, done, False)
        except BaseException as exc:  # the loop itself failed: say so, never die silently
            _report(f"worker {worker} stopped", exc)

    def _drive(self, worker: int, done: threading.Event, is_main: bool) -> None:
        """Run a worker's loop on this thread until the worker ends after
        close() (or Ctrl-C stops the main thread), then release the engine if
        it was the last one. A close() from a callback on this thread only
        starts the close: this thread cannot wait for itself."""
        ident = threading.get_ident()
        self._worker_idents.add(ident)
        try:
            self._engine.run_worker(worker, is_main)
        finally:
            self._worker_idents.discard(ident)
            done.set()
            self._finish()

    def _finish(self) -> None:
        """Release the engine once every worker has ended after close()."""
        if self._state != "closing":
            return  # nothing to release (read without the lock: set under it, before the workers end)
        with self._lock:
            # A poll() still turning its batch into Completions reads memory
            # the release frees: it finishes first.
            if self._state != "closing" or len(self._driven) < self._workers or self._polling:
                return
            if not all(ev.is_set() for ev in self._driven.values()):
                return
            # Set before the release, so stats() from another thread never
            # finds neither the engine nor the final figures.
            self._final_stats = self._engine.stats()
            if self._engine.release():
                self._state = "closed"
            else:
                self._final_stats = None

    def _check_can_run(self) -> None:
        if self._handler is None:
            raise ValueError("this manager has no handler: use poll()")
        if self._state in ("closing", "closed"):
            raise ManagerClosed("manager closed")
        if self._state == "running":
            raise RuntimeError("manager already started")

    def _check_open(self) -> None:
        if self._state in ("closing", "closed"):
            raise ManagerClosed("manager closed")

    # ------------------------------------------------------------ completions

    def poll(self, timeout: Optional[float] = None, max: int = 64) -> List[Completion]:
        """Harvest completions (handler=None only): blocks up to timeout
        seconds (None: until there is one) and returns [] when it passes.

        Any number of threads may poll at once. Each completion goes to one
        of them, and a connection's completions to one thread at a time, in
        order: once a poll() returned some, that connection's next
        completions (and its next receive) wait until the same thread
        calls poll() again, as a GetQueuedCompletionStatus thread posts
        the next receive only once it has handled the last one."""
        if self._handler is not None:
            raise ValueError("this manager has a handler: its workers deliver the events")
        max = _int_arg("max", max, 1, 1 << 16)
        timeout_ns = -1
        if timeout is not None:
            seconds = _seconds("timeout", timeout)
            timeout_ns = -1 if math.isinf(seconds) else int(seconds * 1e9)
        self._begin_poll()
        try:
            return self._engine.poll(timeout_ns, max, threading.current_thread() is threading.main_thread())
        finally:
            self._end_poll()

    def _begin_poll(self) -> None:
        with self._lock:
            self._check_open()
            self._polling += 1
            self._served = True
        try:
            if getattr(self._pollers, "exit", None) is None:
                self._pollers.exit = _PollerExit(self._engine, threading.get_ident())
            if self._watch is not None:
                self._stop_watch()
        except BaseException:  # Ctrl-C in the watch's join: this poll is over
            self._end_poll()
            raise

    def _end_poll(self) -> None:
        with self._lock:
            self._polling -= 1
        self._finish()

    def _wait_fd(self) -> Optional[int]:
        """The descriptor an event loop watches between _poll_park()
        rounds, in poll mode (pyiocp.aio): readable when there are
        completions to harvest. None where there is none (iocp)."""
        self._check_open()
        return self._engine.wait_fd()

    def _poll_park(self, max: int = 64) -> Tuple[List[Completion], Optional[int]]:
        """One round of poll() that never blocks, for the thread of a loop
        watching _wait_fd(): the completions, and when to poll again: 0 at
        once; else once the descriptor is readable or that many
        nanoseconds have passed (-1: no deadline); None once the manager
        has ended."""
        self._begin_poll()
        try:
            return self._engine.poll_park(max)
        finally:
            self._end_poll()

    def post(self, payload: Any) -> None:
        """Deliver payload to on_post (or as a "post" Completion) on a
        worker, like PostQueuedCompletionStatus. Safe from any thread."""
        self._check_open()
        self._engine.post(payload)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run callback(*args) on a worker thread after delay seconds (a
        negative delay: at once), like asyncio's call_later; an exception
        it raises goes to on_error(None, exc). With handler=None it comes
        out of poll() as a "timer" Completion for the caller to run.
        Returns the Timer (cancel() it to stop it). Safe from any thread;
        ManagerClosed once the manager is closing. For a timer that runs
        in order with one connection's events, use Connection.call_later."""
        self._check_open()
        return self._engine.call_later(delay, callback, args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """call_later, at when on time.monotonic()'s clock (Timer.when is
        when)."""
        if isinstance(when, bool) or not isinstance(when, (int, float)):
            raise TypeError(f"when must be a time.monotonic() time, not {type(when).__name__}")
        if not math.isfinite(when):
            raise ValueError(f"when={when!r}: must be finite")
        self._check_open()
        return self._engine.call_later(when - time.monotonic(), callback, args, float(when))

    # ------------------------------------------------------------ state

    def stats(self) -> Dict[str, Any]:
        """Counters: connections, accepted, connected, closed, rejected,
        timed_out, bytes_in, bytes_out, pending_send_bytes, paused_reading,
        completions, workers, backend, and more. After close(), the final
        figures."""
        final = self._final_stats
        if final is None:
            try:
                return self._engine.stats()
            except ManagerClosed:
                final = self._final_stats  # released just now
                if final is None:
                    raise
        return dict(final)

    @property
    def connections(self) -> int:
        """Open connections."""
        return int(self.stats()["connections"])

    def get(self, conn_id: int) -> Optional[Connection]:
        """The open Connection with this id, or None."""
        _int_arg("conn_id", conn_id, 0, MAX_CONN_ID)
        if self._state == "closed":
            return None
        return self._engine.get(conn_id)

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    @property
    def workers(self) -> int:
        return self._workers

    def close(self, timeout: float = DEFAULT_MANAGER_CLOSE_TIMEOUT) -> None:
        """Close gracefully: stop accepting, flush pending bytes (resetting
        connections still flushing after timeout seconds; math.inf: no
        limit), deliver every on_close, stop the workers. Idempotent. From
        inside a callback it starts the close and returns; the workers end
        after their batch. Workers nobody runs (a manager never started, or
        poll() mode) are run to their end by the calling thread, so pending
        callbacks run there."""
        seconds = _seconds("timeout", timeout)
        self._stop_watch()
        with self._lock:
            if self._state == "closed":
                return
            if self._state != "closing":
                self._state = "closing"
                self._engine.shutdown(int(min(seconds, MAX_SECONDS) * 1e9))
            todo = [i for i in range(self._workers) if i not in self._driven or self._driven[i].is_set()]
            for i in todo:
                self._claim(i)
        if threading.get_ident() in self._worker_idents:
            return
        for i in todo:
            self._drive(i, self._driven[i], False)
        deadline = time.monotonic() + seconds + JOIN_GRACE
        for ev in list(self._driven.values()):
            if not _wait_set(ev, None if math.isinf(seconds) else max(0.0, deadline - time.monotonic())):
                logger.warning("close(): a worker is still in a callback %.1f s after the timeout; not waiting",
                               JOIN_GRACE)
                return
        self._finish()
        for t in self._threads:
            t.join(0.5)

    def __enter__(self) -> "SocketManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pyiocp.SocketManager workers={self._workers} {self._state}>"

    def _event_mask(self, handler: Optional[Handler]) -> int:
        """The optional events the engine delivers (a subclass that needs
        fewer in poll mode narrows them: pyiocp.aio takes no "send")."""
        return _event_mask(handler)


def _event_mask(handler: Optional[Handler]) -> int:
    """The optional events the handler overrides (all of them in poll mode):
    a handler without on_send costs no send events at all, and without
    on_eof the engine closes after flushing, as Handler.on_eof would."""
    if handler is None:
        return _pyiocp.MASK_SEND | _pyiocp.MASK_DRAIN | _pyiocp.MASK_EOF
    cls = type(handler)
    mask = 0
    if cls.on_send is not Handler.on_send:
        mask |= _pyiocp.MASK_SEND
    if cls.on_drain is not Handler.on_drain:
        mask |= _pyiocp.MASK_DRAIN
    if cls.on_eof is not Handler.on_eof:
        mask |= _pyiocp.MASK_EOF
    return mask


def _where(address: Any) -> str:
    """A listener's address as a log line names it."""
    if isinstance(address, str):
        return "unix:" + repr(address)
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
