"""pyiocp serve: the supervisor and its processes, driven as a user drives
them (``python -m pyiocp serve serve_app:PidReply``, signals, /metrics).
The app answers each line with the pid of the process that served it."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Callable, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import pytest

from iocp_helpers import LATE, PYTHON, SLOWDOWN, WAIT, wait_until
from netns import Namespaces, namespaces
from pyiocp.__main__ import main as cli_main
from pyiocp._cli import serve as cli_serve
from pyiocp._serve import make_options

TESTS = str(Path(__file__).resolve().parent)
START = 20.0 * SLOWDOWN  # a supervisor and its processes starting on a loaded machine
linux = pytest.mark.linux


class Serving:
    """A running ``pyiocp serve``: its output read by threads, its address
    and metrics address, the pids it announced."""

    def __init__(self, cmd: List[str], pass_fds: Tuple[int, ...] = ()) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=TESTS,
                                     pass_fds=pass_fds)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self.pids: Set[int] = set()
        # The supervisor logs to stderr: what it announces is read from there.
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, False)),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, True))]
        for t in self.readers:
            t.start()
        self.port = 0
        self.metrics_port = 0

    def _read(self, pipe: Optional[object], keep: List[str], announce: bool) -> None:
        assert pipe is not None
        for line in pipe:  # type: ignore[attr-defined]
            keep.append(line)
            if announce:
                m = re.search(r"pids ([\d ]+)", line)
                if m:  # before the line is seen: whoever waits for it reads the pids next
                    self.pids.update(int(p) for p in m.group(1).split())
                self.lines.put(line)

    def expect(self, pattern: str, timeout: float = START) -> "re.Match[str]":
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                ended = self.proc.poll() is not None and not self.readers[1].is_alive()
                if ended or time.monotonic() > deadline:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s (exit code "
                                         f"{self.proc.poll()}); stdout {self.stdout}, "
                                         f"stderr {''.join(self.stderr)}") from None
                continue
            m = re.search(pattern, line)
            if m:
                return m

    def started(self) -> "Serving":
        m = self.expect(r"metrics on [\d.]+:(\d+)")
        self.metrics_port = int(m.group(1))
        m = self.expect(r"listening on (?:[\d.]+:(\d+)|unix:)")
        self.port = int(m.group(1) or 0)
        self.expect(r"ready: ")
        return self

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for t in self.readers:
            t.join(WAIT)
        return code

    def metrics(self) -> Dict[str, List[Tuple[Dict[str, str], float]]]:
        from prometheus_client.parser import text_string_to_metric_families
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=WAIT) as r:
            text = r.read().decode()
        families = text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
        return {f.name: [(s.labels, s.value) for s in f.samples] for f in families}

    def value(self, name: str) -> float:
        return self.metrics()[name][0][1]

    def healthz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=WAIT) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def reap(self) -> None:
        """However the test went: the supervisor and every process it
        announced are gone, the pipes closed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pid in self.pids:
            with contextlib.suppress(OSError):
                if b"pyiocp._serve._child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
        for t in self.readers:
            t.join(WAIT)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def serving(*args: str, target: str = "serve_app:PidReply") -> Iterator[Serving]:
    s = Serving([PYTHON, "-m", "pyiocp", "serve", target, "--bind", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                 "--graceful-timeout", "10", *args])
    try:
        yield s.started()
    finally:
        s.reap()


def ask(port: int, line: bytes = b"hi", timeout: float = WAIT) -> Tuple[int, bytes]:
    """One request on a fresh connection: (the pid that served it, the rest)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(line + b"\n")
        reply = c.makefile("rb").readline()
    pid, _, rest = reply.rstrip(b"\n").partition(b" ")
    assert rest, f"no reply to {line!r}: {reply!r}"
    return int(pid), rest


def gone(pid: int) -> bool:
    """The process has ended (a zombie until the supervisor reaps it)."""
    try:
        return b"\nState:\tZ" in Path(f"/proc/{pid}/status").read_bytes()
    except FileNotFoundError:
        return True


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
    except ConnectionRefusedError:
        return True
    return False


def pids_serving(port: int, want: int, tries: int = 400) -> Set[int]:
    """The pids seen over fresh connections, until want of them are seen
    (SO_REUSEPORT spreads connections by their addresses)."""
    seen: Set[int] = set()
    for _ in range(tries):
        seen.add(ask(port)[0])
        if len(seen) >= want:
            break
    return seen


@linux  # SO_REUSEPORT, and signals to stop the supervisor
def test_two_processes_both_serve_and_term_exits_0() -> None:
    with serving("--processes", "2") as s:
        assert len(s.pids) == 2
        assert pids_serving(s.port, 2) == s.pids
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0
        s.expect("stopped", LATE)
        for pid in s.pids:
            wait_until(lambda: gone(pid), LATE, what=f"process {pid} gone")


@linux  # signals
def test_term_under_load_finishes_in_flight_replies_and_healthz_turns_503() -> None:
    with serving("--processes", "2") as s:
        assert s.healthz() == 200
        clients = []
        try:
            for _ in range(20):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)
                clients.append(c)
                c.sendall(b"hi\n")
                assert c.recv(100).endswith(b" hi\n")  # accepted and served
            for c in clients:
                c.sendall(b"slow 1.5\n")
            t0 = time.monotonic()
            s.signal(signal.SIGTERM)
            wait_until(lambda: s.healthz() == 503, LATE, what="/healthz 503 while draining")
            assert time.monotonic() - t0 < 1.5  # before the replies were due: draining, not stopped
            wait_until(lambda: refused(s.port), LATE, what="the listeners closed")
            for c in clients:
                assert c.recv(100).endswith(b" slow\n")
        finally:
            for c in clients:
                c.close()
        assert s.wait(START) == 0


@linux  # signals
def test_drain_delay_keeps_accepting_while_healthz_says_503() -> None:
    """--drain-delay: on TERM /healthz turns 503 at once, and the processes
    go on accepting and serving until the delay is over; then they stop as
    without it. QUIT does not wait for it."""
    with serving("--processes", "2", "--drain-delay", "3") as s:
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        wait_until(lambda: s.healthz() == 503, LATE, what="/healthz 503 while draining")
        served: Set[int] = set()
        while time.monotonic() - t0 < 1.0 or len(served) < 2:  # well inside the delay
            served.add(ask(s.port)[0])
            assert time.monotonic() - t0 < 2.5, f"only {served} of {s.pids} served within the delay"
        assert served == s.pids  # every process still accepts
        wait_until(lambda: refused(s.port), START, what="the listeners closed after the delay")
        assert time.monotonic() - t0 >= 3.0
        assert s.wait(START) == 0
    with serving("--drain-delay", "30") as s:
        s.signal(signal.SIGTERM)
        wait_until(lambda: s.healthz() == 503, LATE, what="/healthz 503 while draining")
        s.signal(signal.SIGQUIT)
        assert s.wait(START) == 0


@linux  # SIGQUIT, SIGINT
@pytest.mark.parametrize("how", ["QUIT", "INT twice"])
def test_quit_and_a_second_int_exit_promptly(how: str) -> None:
    with serving() as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=WAIT) as idle:
            idle.sendall(b"hi\n")
            idle.recv(100)  # an open connection would hold a graceful stop for 10 s
            t0 = time.monotonic()
            if how == "QUIT":
                s.signal(signal.SIGQUIT)
            else:
                s.signal(signal.SIGINT)
                wait_until(lambda: s.healthz() == 503, LATE, what="the first INT's stop")
                s.signal(signal.SIGINT)
            assert s.wait(START) == 0
        assert time.monotonic() - t0 < 2 * LATE


def test_processes_stop_when_the_supervisor_is_gone() -> None:
    """Killed without a word (SIGKILL, TerminateProcess), the supervisor
    leaves its processes without their stdin: they stop as on TERM.
    Also what shows that serving works on Windows, one process."""
    with serving() as s:
        assert ask(s.port)[0] in s.pids
        s.proc.kill()
        s.wait(START)
        wait_until(lambda: refused(s.port), START, interval=0.05, what="the process's listener closed")
        if sys.platform != "win32":
            for pid in s.pids:
                wait_until(lambda: gone(pid), START, what=f"process {pid} gone")


@linux  # SIGTTIN, SIGTTOU
def test_ttin_and_ttou_change_the_process_count() -> None:
    with serving() as s:
        assert s.value("pyiocp_processes") == 1
        s.signal(signal.SIGTTIN)
        wait_until(lambda: s.value("pyiocp_processes") == 2 and len(s.metrics()["pyiocp_connections"]) == 2,
                   START, interval=0.1, what="a second process")
        s.signal(signal.SIGTTOU)
        wait_until(lambda: s.value("pyiocp_processes") == 1, START, interval=0.1, what="back to one process")
        s.signal(signal.SIGTTOU)  # never fewer than one
        time.sleep(0.3)
        assert s.value("pyiocp_processes") == 1
        ask(s.port)
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0


@linux  # SIGKILL
def test_a_killed_process_is_replaced() -> None:
    with serving("--processes", "2") as s:
        victim = min(s.pids)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: s.value("pyiocp_supervisor_restarts") == 1, START, interval=0.1,
                   what="a restart")

        def replaced() -> bool:
            pids = {int(labels["pid"]) for labels, _ in s.metrics()["pyiocp_connections"]}
            return len(pids) == 2 and victim not in pids
        wait_until(replaced, START, interval=0.1, what="two processes, without the killed one")
        assert victim not in pids_serving(s.port, 2)
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0
        assert "died" in "".join(s.stderr)


@linux  # the metrics of two SO_REUSEPORT processes
def test_metrics_parse_and_count_every_process() -> None:
    with serving("--processes", "2") as s:
        for _ in range(10):
            ask(s.port)

        def counted() -> bool:
            return sum(v for _, v in s.metrics()["pyiocp_accepted"]) >= 10
        wait_until(counted, START, interval=0.2, what="the accepts in /metrics")
        m = s.metrics()
        assert {labels["process"] for labels, _ in m["pyiocp_connections"]} == {"0", "1"}
        assert {int(labels["pid"]) for labels, _ in m["pyiocp_bytes_in"]} == s.pids
        assert m["pyiocp_processes"] == [({}, 2.0)]
        assert m["pyiocp_supervisor_restarts"] == [({}, 0.0)]
        assert s.healthz() == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/nope", timeout=WAIT)
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0


def run_serve(*args: str, timeout: float = START) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([PYTHON, "-m", "pyiocp", "serve", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=TESTS)


@pytest.mark.parametrize("target, message", [
    ("no_such_module:App", "no module named 'no_such_module'"),
    ("serve_app:Missing", "has no attribute 'Missing'"),
    ("serve_app:not_a_handler", "expected a pyiocp.Handler subclass"),
    ("serve_app:NotAHandler", "expected a pyiocp.Handler subclass"),
    ("serve_app:broken_factory", "the factory broke"),
])
def test_a_process_that_cannot_start_fails_serve(target: str, message: str) -> None:
    r = run_serve(target, "--bind", "127.0.0.1:0", "--processes", "1")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "failed to start" in r.stderr


def test_a_port_in_use_fails_serve() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = run_serve("serve_app:PidReply", "--bind", f"127.0.0.1:{taken.getsockname()[1]}")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "cannot listen on 127.0.0.1:" in r.stderr
    assert "failed to start" in r.stderr


@pytest.mark.parametrize("args", [
    [],
    ["serve_app"],
    ["serve_app:"],
    ["serve-app:X"],
    ["serve_app:PidReply", "--bind", "nowhere"],
    ["serve_app:PidReply", "--bind", "127.0.0.1:70000"],
    ["serve_app:PidReply", "--bind", "::1:80"],
    ["serve_app:PidReply", "--bind", "unix:"],
    ["serve_app:PidReply", "--processes", "0"],
    ["serve_app:PidReply", "--processes", "many"],
    ["serve_app:PidReply", "--workers", "0"],
    ["serve_app:PidReply", "--workers", "x"],
    ["serve_app:PidReply", "--backend", "kqueue"],
    ["serve_app:PidReply", "--max-connections", "0"],
    ["serve_app:PidReply", "--idle-timeout", "0"],
    ["serve_app:PidReply", "--idle-timeout", "soon"],
    ["serve_app:PidReply", "--graceful-timeout", "-1"],
    ["serve_app:PidReply", "--graceful-timeout", "nan"],
    ["serve_app:PidReply", "--drain-delay", "-1"],
    ["serve_app:PidReply", "--drain-delay", "soon"],
    ["serve_app:PidReply", "--proxy-protocol", "v3"],
    ["serve_app:PidReply", "--proxy-protocol", "v1", "--proxy-allow-from", "10.0.0.300/8"],
    ["serve_app:PidReply", "--proxy-allow-from", "10.0.0.0/8"],
    ["serve_app:PidReply", "--metrics", "localhost"],
    ["serve_app:PidReply", "--log-level", "loud"],
    ["serve_app:PidReply", "--pid-file", "/nonexistent-dir/serve.pid"],
])
def test_bad_values_exit_2(args: List[str], capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line's main(), in this process (a subprocess each would
    cost a second apiece): nothing may start."""
    def started(opts: object) -> int:
        raise AssertionError(f"serve started with {opts}")
    monkeypatch.setattr(cli_serve, "run_supervisor", started)
    try:
        code = cli_main(["serve", *args])
    except SystemExit as exc:  # argparse's own checks
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert "pyiocp serve" in err or "usage:" in err


@pytest.mark.parametrize("args", [
    ["serve_app:PidReply", "--processes", "0"],
    ["serve_app:PidReply", "--proxy-protocol", "v3"],
    ["serve_app:PidReply", "--pid-file", "/nonexistent-dir/serve.pid"],
])
def test_bad_values_exit_2_from_the_command(args: List[str]) -> None:
    r = run_serve(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()
    assert "Traceback" not in r.stderr


def test_processes_and_platforms() -> None:
    auto = make_options("serve_app:PidReply", processes="auto").processes
    if sys.platform == "win32":
        assert auto == 1
        with pytest.raises(ValueError, match="Windows has no SO_REUSEPORT"):
            make_options("serve_app:PidReply", processes=2)
    else:
        assert auto == (os.cpu_count() or 1)
        assert make_options("serve_app:PidReply", processes=2).processes == 2


def test_options_from_python_are_checked() -> None:
    with pytest.raises(TypeError):
        make_options("serve_app:PidReply", workers=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        make_options(42)
    with pytest.raises(ValueError, match="__main__"):
        make_options(type("Local", (), {"__module__": "__main__"}))
    from serve_app import PidReply
    assert make_options(PidReply).target == "serve_app:PidReply"
    assert make_options("m:A", bind=["127.0.0.1:1", "[::1]:2"]).binds[1].host == "::1"


@linux  # SIGTERM to stop it; the pid file
def test_serve_from_python(tmp_path: Path) -> None:
    pid_file = tmp_path / "serve.pid"
    # The app's directory named, not taken from the working directory:
    # make test's debug run sets PYTHONSAFEPATH.
    code = (f"import sys\nsys.path.insert(0, {TESTS!r})\nimport pyiocp\nfrom serve_app import PidReply\n"
            f"sys.exit(pyiocp.serve(PidReply, bind='127.0.0.1:0', metrics='127.0.0.1:0', pid_file={str(pid_file)!r}))")
    s = Serving([PYTHON, "-c", code])
    try:
        s.started()
        assert pid_file.read_text() == f"{s.proc.pid}\n"
        assert ask(s.port)[0] in s.pids
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0
        assert not pid_file.exists()
    finally:
        s.reap()


def reload_under_requests(s: Serving, ask_one: Callable[[], int], n: int) -> Set[int]:
    """HUP while a client makes n requests (and 100 more after the reload):
    none may fail. Gives the pids of the new processes, once the old ones
    are gone."""
    before = set(s.pids)
    errors: List[BaseException] = []
    served: List[int] = []
    reloaded = threading.Event()

    def loop() -> None:
        after_reload = 0
        while len(served) + len(errors) < n or after_reload < 100:
            if reloaded.is_set():
                after_reload += 1
            try:
                served.append(ask_one())
            except (OSError, AssertionError, ValueError) as exc:
                errors.append(exc)
            if len(errors) > 100 or len(served) > 100_000:
                return

    t = threading.Thread(target=loop)
    t.start()
    try:
        wait_until(lambda: len(served) >= n // 10 or not t.is_alive(), START)
        s.signal(signal.SIGHUP)
        s.expect("reloaded: ", START)
    finally:
        reloaded.set()
        t.join(120)
    assert not t.is_alive()
    assert errors == [], errors[:5]
    after = set(s.pids) - before
    for pid in before:
        wait_until(lambda: gone(pid), START, what=f"old process {pid} gone")
    return after


@linux  # Unix domain sockets
def test_unix_bind_shared_by_two_processes_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "serve.sock"
    s = Serving([PYTHON, "-m", "pyiocp", "serve", "serve_app:PidReply", "--bind", f"unix:{path}",
                 "--metrics", "127.0.0.1:0", "--processes", "2"])

    def ask_unix() -> int:
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(WAIT)
            c.connect(str(path))
            c.sendall(b"hi\n")
            pid, _, rest = c.makefile("rb").readline().partition(b" ")
            assert rest == b"hi\n", rest
            return int(pid)
    try:
        s.started()
        assert ask_unix() in s.pids
        new = reload_under_requests(s, ask_unix, 500)
        assert ask_unix() in new
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0
        assert not path.exists()
    finally:
        s.reap()


@linux  # systemd socket activation
def test_systemd_socket_activation() -> None:
    """The socket systemd would pass (LISTEN_PID, LISTEN_FDS, descriptor
    3) is served, not --bind, by every process; a reload loses nothing:
    the socket, with its queue, outlives the processes."""
    with socket.create_server(("127.0.0.1", 0)) as activated:
        port = activated.getsockname()[1]
        fd = activated.fileno()
        # What systemd does before it execs the service.
        launch = (f"import os, sys\nos.dup2({fd}, 3)\nos.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1')\n"
                  "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")
        with socket.socket() as taken:  # --bind would fail: not used
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            s = Serving([PYTHON, "-c", launch, "-m", "pyiocp", "serve", "serve_app:PidReply",
                         "--bind", "127.0.0.1:{}".format(taken.getsockname()[1]), "--metrics", "127.0.0.1:0",
                         "--processes", "2"], pass_fds=(fd,))
            try:
                s.started()
                assert s.port == port
                assert ask(port)[0] in s.pids
                new = reload_under_requests(s, lambda: ask(port)[0], 500)
                assert ask(port)[0] in new
                s.signal(signal.SIGTERM)
                assert s.wait(START) == 0
            finally:
                s.reap()


@linux  # SO_REUSEPORT processes and signals
@pytest.mark.parametrize("processes", ["1", "2"])
def test_proxy_protocol_v1_passes_the_client_through(processes: str) -> None:
    with serving("--proxy-protocol", "v1", "--processes", processes) as s:
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", s.port), timeout=WAIT) as c:
                c.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\npeer\n")
                pid, _, rest = c.makefile("rb").readline().partition(b" ")
            assert int(pid) in s.pids
            assert rest == b"203.0.113.7 5555\n"
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def haproxy_servers(sock_path: Path) -> Dict[str, Dict[str, str]]:
    """HAProxy's own view of the servers of its backend b (show stat), by
    server name: status (UP, DOWN, ...), check_status, ..."""
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(WAIT)
        c.connect(str(sock_path))
        c.sendall(b"show stat\n")
        text = b""
        while chunk := c.recv(65536):
            text += chunk
    lines = text.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
    for row in rows:
        # "* " before check_status means a check is running now; the status
        # is still the last check's result.
        row["check_status"] = row.get("check_status", "").removeprefix("* ")
    return {row["svname"]: row for row in rows
            if row.get("pxname") == "b" and row.get("svname") not in ("FRONTEND", "BACKEND")}


def haproxy_status(sock_path: Path, server: str = "s") -> str:
    return haproxy_servers(sock_path)[server]["status"]


def haproxy_up(sock_path: Path) -> bool:
    try:
        servers = haproxy_servers(sock_path)
    except OSError:  # not listening yet
        return False
    return bool(servers) and all(row["status"] == "UP" for row in servers.values())


@contextlib.contextmanager
def haproxy(tmp_path: Path, front: str, servers: List[str], prefix: List[str]) -> Iterator[Path]:
    """HAProxy in TCP mode on front (HOST:PORT), balancing round robin over
    servers (each "NAME ADDRESS OPTIONS..."), run after prefix (a network
    namespace's `ip netns exec`, or nothing); it retries a connection that
    fails on another server (retries, option redispatch). Gives its stats
    socket once every server's check passes."""
    if not os.path.exists(HAPROXY):
        pytest.fail("haproxy is not installed: make deps installs Debian's haproxy")
    stats = tmp_path / "haproxy.sock"
    cfg = ["global", "  maxconn 500", f"  stats socket {stats} level admin",
           "defaults", "  mode tcp", "  timeout connect 5s", "  timeout client 30s", "  timeout server 30s",
           "  timeout check 2s", "  retries 3", "  option redispatch 1",
           "frontend f", f"  bind {front}", "  default_backend b",
           "backend b", "  balance roundrobin", "  option httpchk GET /healthz",
           *(f"  server {line}" for line in servers)]
    (tmp_path / "haproxy.cfg").write_text("\n".join(cfg) + "\n")
    with open(tmp_path / "haproxy.log", "w") as log:
        proc = subprocess.Popen([*prefix, HAPROXY, "-db", "-f", str(tmp_path / "haproxy.cfg")],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: haproxy_up(stats), START, interval=0.05, what="HAProxy's checks passing")
        yield stats
    finally:
        proc.terminate()
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def haproxy_in_front(tmp_path: Path, s: Serving, send_proxy: str = "send-proxy-v2") -> Iterator[Tuple[int, Path]]:
    """HAProxy before s on loopback, sending the PROXY header (send_proxy:
    send-proxy-v2, or send-proxy for v1) with a health check of its
    /healthz every 100 ms; gives its port and its stats socket."""
    front = free_port()
    server = f"s 127.0.0.1:{s.port} {send_proxy} check port {s.metrics_port} inter 100 fall 1 rise 1"
    with haproxy(tmp_path, f"127.0.0.1:{front}", [server], []) as stats:
        yield front, stats


@linux  # HAProxy is a Linux program here; signals
@pytest.mark.parametrize("version,send_proxy", [("v2", "send-proxy-v2"), ("v1", "send-proxy"),
                                                ("auto", "send-proxy"), ("auto", "send-proxy-v2")])
def test_behind_haproxy_the_handler_sees_the_client_and_the_check_follows_healthz(
        tmp_path: Path, version: str, send_proxy: str) -> None:
    with serving("--processes", "2", "--proxy-protocol", version) as s, \
            haproxy_in_front(tmp_path, s, send_proxy) as (front, stats):
        seen = set()
        for _ in range(40):
            with socket.create_connection(("127.0.0.1", front), timeout=WAIT) as c:
                c.sendall(b"peer\n")
                pid, host, port = c.makefile("rb").readline().split()
                assert (host.decode(), int(port)) == c.getsockname()[:2]  # the client, not HAProxy
                seen.add(int(pid))
        assert seen == s.pids
        with socket.create_connection(("127.0.0.1", front), timeout=WAIT) as slow:
            slow.sendall(b"slow 1.5\n")
            time.sleep(0.2)  # through HAProxy to a process
            s.signal(signal.SIGTERM)
            wait_until(lambda: haproxy_status(stats).startswith("DOWN"), LATE, interval=0.05,
                       what="HAProxy marking the draining server down")
            assert slow.makefile("rb").readline().endswith(b" slow\n")  # still served
        assert s.wait(START) == 0


# ---------------------------------------------------------------- hosts as network namespaces
#
# These tests make network namespaces of their own (root: CI runs as root)
# and serve inside them: "hosts" on veth pairs, with addresses and sysctls
# (net.ipv4.tcp_migrate_req) that exist only there.


class Outcome(NamedTuple):
    start: float  # time.monotonic() when the connection was opened
    end: float
    pid: Optional[int]  # that served it; None: failed
    error: Optional[BaseException]


class RequestLoop:
    """Clients (threads) that each make one request per fresh connection,
    over and over (ask_one() gives the pid that served it, or raises),
    until stop() or the end of the with block. Every outcome is kept, with
    its times. The threads start in the network namespace of the thread
    that starts them."""

    def __init__(self, ask_one: Callable[[], int], clients: int = 1) -> None:
        self.ask_one = ask_one
        self.outcomes: List[Outcome] = []
        self.failures = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, name=f"client-{i}") for i in range(clients)]

    def _run(self) -> None:
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                pid = self.ask_one()
            except (OSError, AssertionError, ValueError) as exc:
                self.outcomes.append(Outcome(t0, time.monotonic(), None, exc))
                self.failures += 1
                if self.failures > 100:
                    return  # broken: the test's asserts say how
            else:
                self.outcomes.append(Outcome(t0, time.monotonic(), pid, None))

    def __enter__(self) -> "RequestLoop":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(START)
        assert not any(t.is_alive() for t in self.threads), "a client is stuck"

    def count(self, since: float = 0.0) -> int:
        return sum(1 for o in list(self.outcomes) if o.start >= since)

    def wait_for(self, n: int, since: float = 0.0) -> None:
        """Until n requests opened since then have ended (or the clients gave up)."""
        wait_until(lambda: self.count(since) >= n or not any(t.is_alive() for t in self.threads), START,
                   interval=0.01, what=f"{n} requests")

    def errors(self, since: float = 0.0) -> List[Outcome]:
        return [o for o in self.outcomes if o.error is not None and o.start >= since]

    def pids(self, since: float = 0.0) -> Set[int]:
        return {o.pid for o in self.outcomes if o.pid is not None and o.start >= since}


def ask_peer(address: Tuple[str, int]) -> int:
    """One "peer" request on a fresh connection: the reply must name this
    client's own address (the PROXY header's, not the balancer's). Gives
    the pid that served it."""
    with socket.create_connection(address, timeout=WAIT) as c:
        c.sendall(b"peer\n")
        reply = c.makefile("rb").readline()
        host, port = c.getsockname()[:2]
    pid, _, rest = reply.rstrip(b"\n").partition(b" ")
    assert rest == f"{host} {port}".encode(), f"{reply!r} to the client {host}:{port}"
    return int(pid)


def serve_in(ns: Namespaces, where: str, *args: str) -> Serving:
    """pyiocp serve in the network namespace where (its metrics served there too)."""
    return Serving([*ns.exec(where), PYTHON, "-m", "pyiocp", "serve", "serve_app:PidReply",
                    "--graceful-timeout", "10", *args])


@contextlib.contextmanager
def one_host(processes: int = 2) -> Iterator[Tuple[Namespaces, str, Serving]]:
    """A host of its own: a network namespace with net.ipv4.tcp_migrate_req=1
    (what docs/deploy.md asks of hosts that reload under load) and pyiocp
    serve on 127.0.0.1:8000 there. The calling thread is in the namespace
    for the block."""
    with namespaces() as ns:
        host = ns.add("host")
        migrate_req(ns, host, "1")
        with ns.entered(host):
            s = serve_in(ns, host, "--bind", "127.0.0.1:8000", "--metrics", "127.0.0.1:9100",
                         "--processes", str(processes))
            try:
                yield ns, host, s.started()
            finally:
                s.reap()


def migrate_req(ns: Namespaces, where: str, value: str) -> None:
    if not os.path.exists("/proc/sys/net/ipv4/tcp_migrate_req"):
        pytest.skip("this kernel has no net.ipv4.tcp_migrate_req (Linux 5.14+): a listener that closes "
                    "resets what it had queued, so no reload nor kill can be without errors")
    ns.sysctl(where, "net.ipv4.tcp_migrate_req", value)


def ask_here() -> int:
    return ask(8000)[0]


@linux  # network namespaces, SIGHUP, SO_REUSEPORT
def test_5000_requests_across_a_hup_reload_without_an_error() -> None:
    with one_host() as (ns, host, s):
        before = set(s.pids)
        with RequestLoop(ask_here) as loop:
            loop.wait_for(1000)
            s.signal(signal.SIGHUP)
            s.expect("reloaded: ", START)
            after = set(s.pids) - before
            assert len(after) == 2
            for pid in before:  # drained and gone
                wait_until(lambda: gone(pid), START, what=f"old process {pid} gone")
            t_gone = time.monotonic()
            loop.wait_for(300, since=t_gone)
            loop.wait_for(5000)
        assert loop.errors() == [], loop.errors()[:5]
        assert loop.pids(since=t_gone) == after
        assert len(loop.outcomes) >= 5000
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0


@linux  # network namespaces, SIGKILL, SO_REUSEPORT
def test_5000_requests_across_a_killed_process_lose_only_the_one_it_held() -> None:
    """SIGKILL of one of two processes under a client loop. What the kernel
    had queued for it (connections completed, not yet accepted, and those
    in their handshake) goes to its sibling (net.ipv4.tcp_migrate_req=1).
    What it had accepted dies with it: the request it was serving (a
    reset, or the end of the stream without a reply) cannot be saved by
    anyone but the client. This client has one request in flight at a
    time: at most one fails, and only one opened before the process was
    gone; every later one is served, by its sibling, then its replacement."""
    with one_host() as (ns, host, s):
        victim = min(s.pids)
        with RequestLoop(ask_here) as loop:
            loop.wait_for(1000)
            t_kill = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: gone(victim), START, interval=0.001, what="the killed process gone")
            t_gone = time.monotonic()

            def replaced() -> bool:
                pids = {int(labels["pid"]) for labels, _ in s.metrics()["pyiocp_connections"]}
                return len(pids) == 2 and victim not in pids
            wait_until(replaced, START, interval=0.05, what="two processes, without the killed one")
            t_replaced = time.monotonic()
            loop.wait_for(300, since=t_replaced)
            loop.wait_for(5000)
        errors = loop.errors()
        assert len(errors) <= 1, errors
        for o in errors:  # the request the killed process was serving
            assert o.start < t_gone and o.end > t_kill, (o, t_kill, t_gone)
        assert victim not in loop.pids(since=t_gone)
        now = {int(labels["pid"]) for labels, _ in s.metrics()["pyiocp_connections"]}
        assert loop.pids(since=t_replaced) == now, "the sibling and the replacement serve"
        assert s.value("pyiocp_supervisor_restarts") == 1
        s.signal(signal.SIGTERM)
        assert s.wait(START) == 0


def all_stopped(pid: int) -> bool:
    """Every thread of the process is stopped (SIGSTOP takes each in turn)."""
    states = []
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(FileNotFoundError):
            states.append(re.search(r"\nState:\t(\S)", status.read_text()).group(1))  # type: ignore[union-attr]
    return bool(states) and all(state in "Tt" for state in states)


@linux  # network namespaces, SIGSTOP, SIGKILL, SO_REUSEPORT
@pytest.mark.parametrize("migrate", ["1", "0"])
def test_what_a_killed_process_had_queued_goes_to_its_sibling(migrate: str) -> None:
    """Connections the kernel completed for a process but which it had not
    accepted yet: stopped (SIGSTOP), the process accepts none of them; then
    killed, its socket closes. With net.ipv4.tcp_migrate_req=1 the kernel
    moves them to the sibling's socket, which serves them all; without, each
    is reset (what docs/deploy.md tells hosts to set, and why)."""
    with namespaces() as ns:
        host = ns.add("host")
        migrate_req(ns, host, migrate)
        with ns.entered(host):
            s = serve_in(ns, host, "--bind", "127.0.0.1:8000", "--metrics", "127.0.0.1:9100", "--processes", "2")
            clients: List[socket.socket] = []
            try:
                s.started()
                victim = min(s.pids)
                os.kill(victim, signal.SIGSTOP)
                # Every thread, not only the first: a thread of the engine
                # still running would take connections in.
                wait_until(lambda: all_stopped(victim), LATE, interval=0.001, what="the process stopped")
                for _ in range(40):
                    c = socket.create_connection(("127.0.0.1", 8000), timeout=WAIT)
                    clients.append(c)
                    c.sendall(b"hi\n")
                # The sibling answers its share; the rest wait in the stopped one's queue.
                time.sleep(0.3)
                waiting = [c for c in clients if not select.select([c], [], [], 0)[0]]
                assert 0 < len(waiting) < len(clients), "the kernel spread the connections over both"
                os.kill(victim, signal.SIGKILL)
                replies = []
                for c in clients:
                    try:
                        replies.append(c.makefile("rb").readline())
                    except ConnectionResetError:
                        replies.append(b"reset")
                served = [r for r in replies if r.endswith(b" hi\n")]
                assert victim not in {int(r.split()[0]) for r in served}
                if migrate == "1":
                    assert len(served) == len(clients), replies
                else:
                    assert len(served) == len(clients) - len(waiting), replies
                    assert replies.count(b"reset") == len(waiting), replies
                for c in clients:
                    c.close()  # else the stop would wait for them
                s.signal(signal.SIGTERM)
                assert s.wait(START) == 0
            finally:
                for c in clients:
                    c.close()
                s.reap()


@linux  # network namespaces, HAProxy, signals
@pytest.mark.parametrize("stop", ["TERM", "KILL"])
def test_two_hosts_behind_haproxy_one_stopped_under_load(tmp_path: Path, stop: str) -> None:
    """Four network namespaces: a client (10.0.0.2), HAProxy (10.0.0.1,
    and 10.0.1.1 / 10.0.2.1 toward the hosts), and two hosts (10.0.1.2,
    10.0.2.2) each running `pyiocp serve --processes 2 --proxy-protocol v2`
    with /healthz checked by HAProxy every 100 ms. Two clients make
    requests through HAProxy, each checking that the handler saw its own
    address; host 2 is stopped among them.

    TERM: its /healthz turns 503, HAProxy marks it down while the host
    still accepts (--drain-delay); what it was serving, the requests
    already on it, are finished (none is lost), and a connection it
    refuses meanwhile would be retried by HAProxy on host 1.
    KILL (every process of the host): the requests host 2 held when it died
    fail (their bytes died with it: expected, before the mark-down);
    connections it refuses are retried on host 1, and its check fails on
    the refused connect (or on the death of a check in flight).
    Either way, once HAProxy has marked it down, no request fails."""
    with namespaces() as ns:
        client, lb = ns.add("client"), ns.add("lb")
        ns.link(client, "10.0.0.2/24", lb, "10.0.0.1/24")
        hosts: List[Serving] = []
        try:
            for i in (1, 2):
                where = ns.add(f"host{i}")
                ns.link(lb, f"10.0.{i}.1/24", where, f"10.0.{i}.2/24")
                migrate_req(ns, where, "1")
                hosts.append(serve_in(ns, where, "--bind", f"10.0.{i}.2:8000", "--metrics", f"10.0.{i}.2:9100",
                                      "--processes", "2", "--proxy-protocol", "v2",
                                      "--proxy-allow-from", f"10.0.{i}.1/32",
                                      # HAProxy marks it down (100 ms checks) before its sockets close
                                      "--drain-delay", "1"))
            for s in hosts:
                s.started()
            servers = [f"h{i} 10.0.{i}.2:8000 send-proxy-v2 check port 9100 inter 100 fall 1 rise 1" for i in (1, 2)]
            front = ("10.0.0.1", 8000)
            with haproxy(tmp_path, "10.0.0.1:8000", servers, ns.exec(lb)) as stats, ns.entered(client):
                two_hosts_one_stopped(stop, hosts, stats, front)
        finally:
            for s in hosts:
                s.reap()


def two_hosts_one_stopped(stop: str, hosts: List[Serving], stats: Path, front: Tuple[str, int]) -> None:
    stopped = hosts[1]
    held: List[Tuple[socket.socket, IO[bytes]]] = []  # on host 2, a reply due after the stop
    try:
        with RequestLoop(lambda: ask_peer(front), clients=2) as loop:
            loop.wait_for(300)
            assert loop.pids() == hosts[0].pids | stopped.pids, "HAProxy spread the requests over both hosts"
            if stop == "TERM":
                for _ in range(100):  # HAProxy takes turns: about one in two
                    c = socket.create_connection(front, timeout=WAIT)
                    f = c.makefile("rb")
                    held.append((c, f))
                    c.sendall(b"hi\n")
                    if int(f.readline().split()[0]) in stopped.pids:
                        c.sendall(b"slow 1.0\n")
                    else:
                        held.pop()
                        f.close()
                        c.close()
                    if len(held) == 3:
                        break
                assert len(held) == 3
            t_stop = time.monotonic()
            if stop == "TERM":
                stopped.signal(signal.SIGTERM)
            else:
                for pid in [stopped.proc.pid, *stopped.pids]:  # the supervisor first: it restarts nothing
                    os.kill(pid, signal.SIGKILL)
            wait_until(lambda: haproxy_status(stats, "h2") == "DOWN", LATE, interval=0.01,
                       what="HAProxy marking host 2 down")
            t_down = time.monotonic()
            h2 = haproxy_servers(stats)["h2"]
            check = h2["check_status"]
            loop.wait_for(500, since=t_down)
        for _, reader in held:
            served_by, _, rest = reader.readline().partition(b" ")
            assert rest == b"slow\n" and int(served_by) in stopped.pids  # finished by the draining host
    finally:
        for conn, reader in held:
            reader.close()
            conn.close()
    assert loop.errors(since=t_down) == [], loop.errors(since=t_down)[:5]
    assert loop.pids(since=t_down) <= hosts[0].pids
    if stop == "TERM":
        assert check == "L7STS", check  # /healthz's 503, while the host still served
        assert loop.errors() == [], loop.errors()[:5]
        assert stopped.wait(START) == 0
    else:
        # Nothing listens there any more: the connect refused (L4CON); or a
        # check in flight when the host died, its connection reset (SOCKERR)
        # or closed before any response (L7RSP, "invalid response").
        assert check in ("L4CON", "SOCKERR", "L7RSP"), (check, h2.get("last_chk"))
        for o in loop.errors():  # held by host 2 when it died
            assert o.start < t_down and o.end > t_stop, (o, t_stop, t_down)
