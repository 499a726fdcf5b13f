"""The supervisor of ``pyiocp serve``: it starts the serving processes
(fresh interpreters, never fork()), keeps their number, replaces one that
dies unasked (with back-off), reloads and stops them on signals, and
serves /metrics and /healthz.

It runs one loop: it takes the children's reports (a reader thread per
child turns its channel's JSON lines into queue items), acts on signals,
notices exits, and brings the processes to what is asked (reconcile):
processes 0..count-1, each started again when it is missing."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from . import _channel
from ._activation import systemd_fds, unix_listener
from ._metrics import MetricsServer, ProcessStats, Snapshot
from ._options import Bind, ServeOptions
from ._signals import Signals

logger = logging.getLogger("pyiocp.serve")

TICK = 0.05
# A child that died unasked is started again after BACKOFF_FIRST seconds,
# doubled for each death in a row up to BACKOFF_MAX; one that had run
# BACKOFF_RESET seconds starts the count again.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 30.0
BACKOFF_RESET = 10.0
# QUIT: how long children get to close before they are killed; TERM: how
# long past the graceful timeout.
QUIT_GRACE = 5.0
STOP_GRACE = 10.0


@dataclasses.dataclass(eq=False)
class Child:
    index: int
    proc: "subprocess.Popen[str]"
    started: float
    ready: bool = False
    draining: bool = False
    asked: Optional[str] = None  # "stop" or "quit" once told to
    retiring: bool = False  # of the generation a reload replaces
    stats: Dict[str, Any] = dataclasses.field(default_factory=dict)


class Supervisor:
    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        self.count = opts.processes
        self.children: List[Child] = []
        self.events: "queue.Queue[Tuple[Child, Optional[Dict[str, Any]]]]" = queue.Queue()
        self.respawn: Dict[int, float] = {}  # index -> when
        self.failures: Dict[int, int] = {}  # index -> deaths in a row
        self.restarts = 0
        self.phase = "starting"  # starting, running, stopping, failed
        self.reloading = False
        self.stop_at: Optional[float] = None  # a stop's drain delay runs: the children are told then
        self.lock = threading.Lock()  # children's stats, for the metrics thread
        self.reserved: List[socket.socket] = []  # held for the processes
        self.unix_files: List[str] = []  # the sockets' files to remove at exit
        self.metrics: Optional[MetricsServer] = None
        self.signals = Signals()

    # ------------------------------------------------------------ running

    def run(self) -> int:
        self.signals.install()
        try:
            try:
                self.prepare_binds()
            except OSError as exc:
                logger.error("cannot bind: %s", exc)
                return 1
            if self.opts.metrics is not None:
                try:
                    self.metrics = MetricsServer(self.opts.metrics, self.snapshot)
                except OSError as exc:
                    logger.error("cannot serve metrics on %s:%d: %s", *self.opts.metrics, exc)
                    return 1
                self.metrics.start()
                logger.info("metrics on %s:%d", *self.metrics.address)
            return self.loop()
        finally:
            self.kill_all()
            if self.metrics is not None:
                self.metrics.close()
            for s in self.reserved:
                s.close()
            for path in self.unix_files:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            self.signals.restore()

    def loop(self) -> int:
        deadline: Optional[float] = None
        while True:
            action = self.signals.take()
            if action is not None:
                deadline = self.act(action) or deadline
                continue
            self.take_reports()
            self.reap()
            if self.phase == "failed":
                return self.finish_failed()
            if self.phase == "stopping":
                if self.stop_at is not None and time.monotonic() >= self.stop_at:
                    self.stop_at = None
                    for c in self.children:
                        self.tell(c, "stop")
                if not self.children:
                    logger.info("stopped")
                    return 0
                if deadline is not None and time.monotonic() > deadline:
                    logger.warning("processes %s still running: killed",
                                   ", ".join(str(c.proc.pid) for c in self.children))
                    self.kill_all()
            else:
                self.reconcile()
                self.check_ready()

    def act(self, action: str) -> Optional[float]:
        """Acts on a signal; gives the time by which the children must
        have ended, when it is a stop."""
        logger.info("signal: %s", action)
        if action == "interrupt":
            action = "quit" if self.phase == "stopping" else "stop"
        if action == "stop" and self.phase == "stopping" and \
                (self.stop_at is not None or all(c.asked for c in self.children)):
            return None  # asked already; QUIT hurries it
        if action == "stop" and self.opts.drain_delay > 0 and self.phase == "running":
            # /healthz says 503 from now (the phase is no longer "running"),
            # while the processes go on accepting: a load balancer checking
            # it stops sending before their sockets close.
            self.phase = "stopping"
            self.respawn.clear()
            self.stop_at = time.monotonic() + self.opts.drain_delay
            logger.info("draining: /healthz 503 for %gs, then the processes stop", self.opts.drain_delay)
            return self.stop_at + self.opts.graceful_timeout + STOP_GRACE
        if action in ("stop", "quit"):
            self.phase = "stopping"
            self.respawn.clear()
            self.stop_at = None
            for c in self.children:
                self.tell(c, action)
            grace = QUIT_GRACE if action == "quit" else self.opts.graceful_timeout + STOP_GRACE
            return time.monotonic() + grace
        if self.phase != "running":
            return None  # no reload nor resize before the start is over, nor while stopping
        if action == "reload":
            if self.reloading:
                logger.warning("reload: a reload is under way already")
                return None
            self.reloading = True
            for c in self.active():
                c.retiring = True
            self.respawn.clear()
        elif action == "more":
            self.count += 1
        elif action == "fewer":
            self.count = max(1, self.count - 1)
        return None

    def active(self) -> List[Child]:
        """The children that count toward the processes asked for."""
        return [c for c in self.children if not c.asked and not c.retiring]

    def reconcile(self) -> None:
        now = time.monotonic()
        have = {c.index for c in self.active()}
        for c in self.active():
            if c.index >= self.count:
                self.tell(c, "stop")
        for index in [i for i in self.respawn if i >= self.count]:
            del self.respawn[index]
        for index in range(self.count):
            if index in have:
                continue
            due = self.respawn.get(index)
            if due is None or due <= now:
                if due is not None:
                    del self.respawn[index]
                    self.restarts += 1
                self.spawn(index)

    def check_ready(self) -> None:
        fresh = self.active()
        if self.respawn or not all(c.ready for c in fresh):
            return
        if self.phase == "starting":
            self.phase = "running"
            self.announce(fresh, "ready")
        elif self.reloading:
            self.reloading = False
            for c in self.children:
                if c.retiring and not c.asked:
                    self.tell(c, "stop")
            self.announce(fresh, "reloaded")

    def announce(self, children: List[Child], what: str) -> None:
        if what == "ready":
            addresses = children[0].stats.get("addresses", [])
            for address in addresses:
                where = f"unix:{address}" if isinstance(address, str) else str(Bind(host=address[0], port=address[1]))
                logger.info("listening on %s", where)
        pids = " ".join(str(c.proc.pid) for c in sorted(children, key=lambda c: c.index))
        logger.info("%s: %d process(es), pids %s", what, len(children), pids)

    # ------------------------------------------------------------ children

    def spawn(self, index: int) -> None:
        r, w, extra = _channel.make_pipe()
        shared = tuple(b.fd for b in self.opts.binds if b.fd is not None)
        if shared:
            extra["pass_fds"] = tuple(extra["pass_fds"]) + shared
        cmd = [sys.executable, "-m", "pyiocp._serve._child", self.opts.to_json(), str(index),
               str(_channel.channel_number(w))]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, text=True, **extra)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        child = Child(index=index, proc=proc, started=time.monotonic())
        self.children.append(child)
        logger.info("process %d started: pid %d", index, proc.pid)
        threading.Thread(target=self.read_reports, args=(child, r), name=f"pyiocp-serve-reports-{proc.pid}",
                         daemon=True).start()

    def read_reports(self, child: Child, r: int) -> None:
        with os.fdopen(r, "rb") as f:
            for line in f:
                try:
                    self.events.put((child, json.loads(line)))
                except ValueError:
                    logger.warning("process %d: a report that is not JSON: %r", child.index, line[:200])
        self.events.put((child, None))

    def take_reports(self) -> None:
        try:
            child, report = self.events.get(timeout=TICK)
        except queue.Empty:
            return
        while True:
            if report is not None:
                with self.lock:
                    event = report.get("event")
                    if event == "ready":
                        child.ready = True
                        child.stats["addresses"] = report.get("addresses", [])
                    elif event == "draining":
                        child.draining = True
                    if isinstance(report.get("stats"), dict):
                        child.stats.update(report["stats"])
            try:
                child, report = self.events.get_nowait()
            except queue.Empty:
                return

    def tell(self, child: Child, command: str) -> None:
        """Asks a child to "stop" (gracefully) or "quit"."""
        if child.asked == command or child.asked == "quit":
            return
        child.asked = command
        try:
            assert child.proc.stdin is not None
            child.proc.stdin.write(command + "\n")
            child.proc.stdin.flush()
        except OSError:
            pass  # it is gone already: reap() will see

    def reap(self) -> None:
        for c in list(self.children):
            code = c.proc.poll()
            if code is None:
                continue
            with self.lock:
                self.children.remove(c)
            if c.proc.stdin is not None:
                try:
                    c.proc.stdin.close()
                except OSError:
                    pass
            self.exited(c, code)

    def exited(self, c: Child, code: int) -> None:
        if c.asked:
            logger.info("process %d (pid %d) stopped", c.index, c.proc.pid)
            return
        ran = time.monotonic() - c.started
        if not c.ready and self.phase == "starting":
            logger.error("process %d (pid %d) failed to start (exit code %d)", c.index, c.proc.pid, code)
            self.phase = "failed"
            return
        if not c.ready and self.reloading and not c.retiring:
            logger.error("reload failed: process %d (pid %d) did not start (exit code %d); the running processes "
                         "stay", c.index, c.proc.pid, code)
            self.reloading = False
            for other in self.children:
                if other.retiring:
                    other.retiring = False
                elif not other.asked:
                    self.tell(other, "quit")
            return
        if c.retiring:
            return  # its replacement is on its way
        if self.phase in ("stopping", "failed"):
            return
        fails = 0 if ran >= BACKOFF_RESET else self.failures.get(c.index, 0)
        self.failures[c.index] = fails + 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * (2 ** fails))
        logger.warning("process %d (pid %d) died (exit code %d) after %.1f s: starting it again in %.1f s",
                       c.index, c.proc.pid, code, ran, delay)
        self.respawn[c.index] = time.monotonic() + delay

    def finish_failed(self) -> int:
        for c in self.children:
            self.tell(c, "quit")
        deadline = time.monotonic() + QUIT_GRACE
        while self.children and time.monotonic() < deadline:
            time.sleep(TICK)
            self.reap()
        return 1

    def kill_all(self) -> None:
        for c in self.children:
            if c.proc.poll() is None:
                c.proc.kill()
        for c in list(self.children):
            c.proc.wait()
            self.reap()

    # ------------------------------------------------------------ ports, metrics

    def prepare_binds(self) -> None:
        """The sockets the processes listen on, as far as the supervisor
        makes them. With systemd socket activation: systemd's, shared by
        every process (--bind is not used then). A unix: bind: a socket
        made here, shared. A bind on port 0 gets its port here, held
        (bound, not listening, with SO_REUSEPORT) for the supervisor's
        life: every process, and those of a reload, then listen on the
        same port. Windows: nothing, one process picks its own port."""
        if sys.platform == "win32":
            return
        activated = systemd_fds()
        if activated:
            logger.info("socket activation: serving descriptors %s (not --bind)",
                        ", ".join(str(fd) for fd in activated))
            self.opts = dataclasses.replace(self.opts, binds=tuple(Bind(fd=fd) for fd in activated))
            return
        binds = []
        for b in self.opts.binds:
            if b.unix is not None:
                s = unix_listener(b.unix)
                self.reserved.append(s)
                self.unix_files.append(b.unix)
                b = Bind(unix=b.unix, fd=s.fileno())
            elif b.port == 0:
                host = b.host or "0.0.0.0"
                info = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
                s = socket.socket(info[0], socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(info[4])
                self.reserved.append(s)
                b = Bind(host=info[4][0], port=s.getsockname()[1])
            binds.append(b)
        self.opts = dataclasses.replace(self.opts, binds=tuple(binds))

    def snapshot(self) -> Snapshot:
        with self.lock:
            procs = [ProcessStats(c.index, c.proc.pid, dict(c.stats)) for c in self.children]
            accepting = self.phase == "running" and any(c.ready and not c.draining for c in self.children)
            return Snapshot(accepting, sorted(procs, key=lambda p: (p.slot, p.pid)), self.restarts)
