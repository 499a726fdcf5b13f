"""The servers the suite measures, how each is built, started pinned to its
CPU, and stopped. Every server prints one line ``...listening on HOST:PORT``
(or ``...listening on unix:PATH``) when it is ready."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

from .report import ASYNCIO_SENDFILE, FT_W1, FT_W2, INLINE, RAW_CEILING, READ_SEND, SERVE_1, SERVE_2

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
GO = shutil.which("go") or "/usr/local/go/bin/go"
SERVER_CPU, CLIENT_CPU = "0", "1"

# What `ready` lines look like: the port is the last number, or a Unix
# domain socket's path follows "unix:".
LISTENING = re.compile(r"listening on (?:unix:(?P<path>\S+)|.*:(?P<port>\d+))\s*$")

GO_COMMANDS = {
    "netecho": "./bench/servers/netecho",
    "engineecho": "./bench/servers/engineecho",
    "pyiocp-loadgen": "./gomod/loadgen/cmd/pyiocp-loadgen",
}


@dataclass(frozen=True)
class Server:
    name: str
    kind: str  # "echo" or "http"
    argv: Tuple[str, ...]
    quick: bool = True  # also measured by --quick
    pinned: bool = True  # on SERVER_CPU; else on any CPU (the load generator's too)


def servers(bindir: Path) -> List[Server]:
    """Every server, in the order of the tables (uvloop is the yardstick)."""
    echo, aio_echo = str(ROOT / "examples/echo.py"), str(ROOT / "bench/servers/aio_echo.py")
    http, aio_http = str(ROOT / "examples/http_server.py"), str(ROOT / "bench/servers/aio_http.py")
    engine = str(bindir / "engineecho")
    return [
        *_frame_servers(bindir),
        *_pool_servers(),
        *_tls_servers(bindir),
        *_unix_servers(bindir),
        *_streams_servers(),
        *_heavy_servers(),
        *_udp_servers(bindir),
        *_file_servers(bindir),
        Server("pyiocp io_uring", "echo", (PY, echo, "--port", "0", "--backend", "io_uring")),
        Server("pyiocp epoll", "echo", (PY, echo, "--port", "0", "--backend", "epoll"), quick=False),
        Server("pyiocp io_uring w2", "echo", (PY, echo, "--port", "0", "--backend", "io_uring", "--workers", "2"),
               quick=False),
        # Several workers' tail against one worker's, on both CPUs.
        Server("pyiocp io_uring unpinned", "echo", (PY, echo, "--port", "0", "--backend", "io_uring"),
               quick=False, pinned=False),
        Server("pyiocp io_uring w2 unpinned", "echo",
               (PY, echo, "--port", "0", "--backend", "io_uring", "--workers", "2"), quick=False, pinned=False),
        # What free-threading costs a light handler, where .venv-ft exists.
        *([Server(FT_W1, "echo", (str(PY_FT), echo, "--port", "0", "--backend", "io_uring"), quick=False)]
          if PY_FT.exists() else []),
        Server("uvloop", "echo", (PY, aio_echo, "--loop", "uvloop")),
        Server("asyncio", "echo", (PY, aio_echo, "--loop", "asyncio"), quick=False),
        Server("engine io_uring (Go)", "echo", (engine, "-backend", "io_uring")),
        Server("engine epoll (Go)", "echo", (engine, "-backend", "epoll"), quick=False),
        Server("Go net", "echo", (str(bindir / "netecho"),)),
        Server("pyiocp io_uring", "http", (PY, http, "--port", "0", "--backend", "io_uring")),
        Server("pyiocp epoll", "http", (PY, http, "--port", "0", "--backend", "epoll"), quick=False),
        Server("uvloop", "http", (PY, aio_http, "--loop", "uvloop")),
        Server("asyncio", "http", (PY, aio_http, "--loop", "asyncio"), quick=False),
    ]


def _pool_servers() -> List[Server]:
    """The thread-pool rows' servers: pyiocp sending from the pool's
    thread; pyiocp's inline reply beside it (the pool's cost is the
    difference); uvloop through run_in_executor."""
    pool, echo, aio = (str(ROOT / p) for p in ("bench/servers/pool_echo.py", "examples/echo.py",
                                               "bench/servers/aio_echo.py"))
    return [
        Server("pyiocp io_uring", "pool", (PY, pool, "--backend", "io_uring")),
        Server("pyiocp epoll", "pool", (PY, pool, "--backend", "epoll"), quick=False),
        Server(INLINE, "pool", (PY, echo, "--port", "0", "--backend", "io_uring")),
        Server("uvloop", "pool", (PY, aio, "--loop", "uvloop", "--pool")),
        Server("asyncio", "pool", (PY, aio, "--loop", "asyncio", "--pool"), quick=False),
    ]


def _frame_servers(bindir: Path) -> List[Server]:
    """The framing rows' servers: pyiocp splitting in the engine; uvloop
    (the yardstick) splitting in an asyncio.Protocol, and with streams;
    the engine's raw echo as the ceiling."""
    frames, aio_frames = str(ROOT / "bench/servers/frame_echo.py"), str(ROOT / "bench/servers/aio_frames.py")
    out = []
    for framing in ("lines", "length"):
        out += [
            # The ceiling: the engine with a Go handler echoing the bytes as
            # they come (no framing, no Python), which for these clients
            # sends exactly what a frame echo sends.
            Server(RAW_CEILING, framing, (str(bindir / "engineecho"), "-backend", "io_uring")),
            Server("pyiocp io_uring", framing, (PY, frames, "--framing", framing, "--backend", "io_uring")),
            Server("pyiocp epoll", framing, (PY, frames, "--framing", framing, "--backend", "epoll"), quick=False),
            Server("uvloop", framing, (PY, aio_frames, "--loop", "uvloop", "--framing", framing)),
            Server("uvloop streams", framing, (PY, aio_frames, "--loop", "uvloop", "--framing", framing,
                                               "--style", "streams")),
            Server("asyncio", framing, (PY, aio_frames, "--loop", "asyncio", "--framing", framing), quick=False),
        ]
    return out


def _tls_servers(bindir: Path) -> List[Server]:
    """The TLS rows' servers, all with the one certificate build() made
    (ECDSA P-256): pyiocp (crypto/tls in the engine), uvloop and asyncio
    (the ssl module), Go's net behind crypto/tls."""
    cert = ("--tls-cert", str(bindir / "tls.pem"), "--tls-key", str(bindir / "tls.key"))
    echo, aio = str(ROOT / "examples/echo.py"), str(ROOT / "bench/servers/aio_echo.py")
    return [
        Server("pyiocp io_uring", "tls", (PY, echo, "--port", "0", "--backend", "io_uring", *cert)),
        Server("pyiocp epoll", "tls", (PY, echo, "--port", "0", "--backend", "epoll", *cert), quick=False),
        Server("uvloop", "tls", (PY, aio, "--loop", "uvloop", *cert)),
        Server("asyncio", "tls", (PY, aio, "--loop", "asyncio", *cert), quick=False),
        Server("Go net", "tls", (str(bindir / "netecho"), *cert)),
    ]


def _unix_servers(bindir: Path) -> List[Server]:
    """The Unix-socket rows' servers, each on the one path (servers run one
    at a time; a socket file one leaves is replaced by the next)."""
    path = ("--unix", str(bindir / "echo.sock"))
    echo, aio = str(ROOT / "examples/echo.py"), str(ROOT / "bench/servers/aio_echo.py")
    return [
        Server("pyiocp io_uring", "unix", (PY, echo, "--backend", "io_uring", *path)),
        Server("pyiocp epoll", "unix", (PY, echo, "--backend", "epoll", *path), quick=False),
        Server("uvloop", "unix", (PY, aio, "--loop", "uvloop", *path)),
        Server("asyncio", "unix", (PY, aio, "--loop", "asyncio", *path), quick=False),
        Server("Go net", "unix", (str(bindir / "netecho"), "-unix", path[1])),
    ]


def _streams_servers() -> List[Server]:
    """The asyncio streams rows' servers: one echo on StreamReader and
    StreamWriter, through pyiocp.aio (on uvloop) and through asyncio's own
    transports (uvloop's, the yardstick, and the default loop's)."""
    streams = str(ROOT / "bench/servers/aio_streams.py")
    return [
        Server("pyiocp io_uring", "streams", (PY, streams, "--loop", "uvloop", "--pyiocp", "--backend", "io_uring")),
        Server("pyiocp epoll", "streams", (PY, streams, "--loop", "uvloop", "--pyiocp", "--backend", "epoll"),
               quick=False),
        Server("uvloop", "streams", (PY, streams, "--loop", "uvloop")),
        Server("asyncio", "streams", (PY, streams, "--loop", "asyncio"), quick=False),
    ]


def _udp_servers(bindir: Path) -> List[Server]:
    """The UDP rows' servers: pyiocp's bind_udp, asyncio's DatagramProtocol
    on uvloop (the yardstick) and the default loop, the engine with a Go
    handler, Go's net (one goroutine reading and writing the socket)."""
    udp = str(ROOT / "bench/servers/udp_echo.py")
    engine = str(bindir / "engineecho")
    return [
        Server("pyiocp io_uring", "udp", (PY, udp, "pyiocp", "--backend", "io_uring")),
        Server("pyiocp epoll", "udp", (PY, udp, "pyiocp", "--backend", "epoll"), quick=False),
        Server("uvloop", "udp", (PY, udp, "uvloop")),
        Server("asyncio", "udp", (PY, udp, "asyncio"), quick=False),
        Server("engine io_uring (Go)", "udp", (engine, "-udp", "-backend", "io_uring")),
        Server("Go net", "udp", (str(bindir / "netecho"), "-udp")),
    ]


# The file the file rows send (measure.py makes it before each server starts).
def file_path(bindir: Path) -> Path:
    return bindir / "file.bin"


def _file_servers(bindir: Path) -> List[Server]:
    """The file rows' servers, all speaking examples/file_transfer.py's
    protocol: pyiocp with Connection.sendfile (the example, 4 MiB queued at
    a time under an 8 MiB send buffer limit) and with a read+send loop;
    uvloop reading and writing (it has no loop.sendfile); asyncio's
    loop.sendfile."""
    f = str(file_path(bindir))
    transfer, others = str(ROOT / "examples/file_transfer.py"), str(ROOT / "bench/servers/file_servers.py")
    limits = ("--send-buffer-limit", str(8 << 20), "--chunk", str(4 << 20))
    return [
        Server("pyiocp io_uring", "file", (PY, transfer, "--file", f, "--port", "0", "--backend", "io_uring", *limits)),
        Server("pyiocp epoll", "file", (PY, transfer, "--file", f, "--port", "0", "--backend", "epoll", *limits),
               quick=False),
        Server(READ_SEND, "file", (PY, others, "pyiocp-readsend", "--file", f, "--backend", "io_uring")),
        Server("uvloop", "file", (PY, others, "uvloop", "--file", f)),
        Server(ASYNCIO_SENDFILE, "file", (PY, others, "asyncio-sendfile", "--file", f)),
    ]


# The free-threaded interpreter's venv (make venv-ft), when there is one.
PY_FT = ROOT / ".venv-ft/bin/python"


def _heavy_servers() -> List[Server]:
    """The CPU-heavy rows' servers, all free to use both CPUs: uvloop (one
    loop: one core), pyiocp with one and two workers (which take turns
    under the GIL), `pyiocp serve` with one and two processes, and, where
    .venv-ft exists, one and two workers on the free-threaded interpreter."""
    heavy = str(ROOT / "bench/servers/heavy_echo.py")
    uring = ("--backend", "io_uring")
    out = [
        Server("uvloop", "heavy", (PY, heavy, "uvloop"), pinned=False),
        Server("pyiocp io_uring", "heavy", (PY, heavy, "pyiocp", *uring), pinned=False),
        Server("pyiocp io_uring w2", "heavy", (PY, heavy, "pyiocp", "--workers", "2", *uring), pinned=False),
        Server(SERVE_1, "heavy", (PY, heavy, "serve", "--processes", "1", *uring), pinned=False),
        Server(SERVE_2, "heavy", (PY, heavy, "serve", "--processes", "2", *uring), pinned=False),
    ]
    if PY_FT.exists():
        ft = str(PY_FT)
        out += [Server(FT_W1, "heavy", (ft, heavy, "pyiocp", *uring), pinned=False),
                Server(FT_W2, "heavy", (ft, heavy, "pyiocp", "--workers", "2", *uring), pinned=False)]
    return out


def build(bindir: Path) -> None:
    """Build the Go servers and the load generator into bindir, and the TLS
    servers' certificate (a throwaway, made for the run)."""
    for name, pkg in GO_COMMANDS.items():
        subprocess.run([GO, "build", "-o", str(bindir / name), pkg], cwd=ROOT, check=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(bindir / "tls.key"), "-out", str(bindir / "tls.pem"), "-days", "2",
                    "-subj", "/CN=pyiocp-bench", "-addext", "subjectAltName=DNS:pyiocp-bench"],
                   check=True, capture_output=True)


class Running:
    """A server process pinned to SERVER_CPU (unless it says otherwise),
    listening on 127.0.0.1:port."""

    def __init__(self, server: Server, timeout: float = 20.0) -> None:
        self.server = server
        pin = ["taskset", "-c", SERVER_CPU] if server.pinned else []
        self.proc = subprocess.Popen([*pin, *server.argv], stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.port = 0
        self.target = self._wait_listening(timeout)  # what pyiocp-loadgen -addr takes

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_listening(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                m = LISTENING.search(line)
                if m and m.group("path"):
                    return "unix:" + m.group("path")
                if m:
                    self.port = int(m.group("port"))
                    return f"127.0.0.1:{self.port}"
                if not line:  # it exited
                    break
        self.stop()
        raise RuntimeError(f"{self.server.name}: no 'listening on' line within {timeout:g} s "
                           f"(exit status {self.proc.returncode})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
