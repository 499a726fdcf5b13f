"""The scenarios: what load each drives, with which client, and how big
it is in the full run and in the quick one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    mode: str  # "echo", "churn", "bulk", "idle" (pyiocp-loadgen), "http" (wrk) or "download" (bench/suite/download.py)
    conns: int
    size: int = 64
    depth: int = 1
    nbytes: int = 0  # bulk: bytes streamed per connection
    hold: float = 0.0  # idle: seconds the connections stay idle
    unit: str = "msgs"  # what rate counts: msgs, conns, MB, reqs
    plot: bool = False  # a point of the msgs/s-against-connections plot
    quick: bool = False  # also run by --quick
    framing: str = ""  # echo: each message one frame, "lines" or "length" (pyiocp-loadgen -framing)
    pool: bool = False  # echo: the servers reply from a thread pool
    tls: bool = False  # over TLS 1.3 (pyiocp-loadgen -tls): the servers' TLS echo
    unix: bool = False  # over a Unix domain socket: the servers' Unix-socket echo
    streams: bool = False  # the echo on asyncio streams: pyiocp.aio against asyncio's transports
    udp: bool = False  # over UDP, each message one datagram (pyiocp-loadgen -addr udp:HOST:PORT)
    heavy: bool = False  # echo after ~50 us of Python per message: the servers that spread it over cores

    @property
    def kind(self) -> str:
        """The kind of server it drives: an echo server, a frame echo
        server of its framing, one replying from a thread pool, a TLS echo
        server, a Unix-socket echo server, or an HTTP server."""
        if self.mode == "http":
            return "http"
        if self.mode == "download":
            return "file"
        if self.tls:
            return "tls"
        if self.unix:
            return "unix"
        if self.streams:
            return "streams"
        if self.heavy:
            return "heavy"
        if self.udp:
            return "udp"
        return "pool" if self.pool else self.framing or "echo"


SCENARIOS: List[Scenario] = [
    Scenario("echo-1x64", "echo, 1 connection x 64 B", "echo", 1, plot=True),
    Scenario("echo-10x64", "echo, 10 connections x 64 B", "echo", 10, plot=True),
    Scenario("echo-50x64", "echo, 50 connections x 64 B", "echo", 50, plot=True, quick=True),
    Scenario("echo-200x64", "echo, 200 connections x 64 B", "echo", 200, plot=True),
    Scenario("echo-1000x64", "echo, 1000 connections x 64 B", "echo", 1000, plot=True, quick=True),
    Scenario("echo-50x4k", "echo, 50 connections x 4 KiB", "echo", 50, size=4096),
    Scenario("pipelined-50x64-d16", "pipelined echo, 50 connections x 64 B, 16 in flight each", "echo", 50,
             depth=16),
    Scenario("lines-50x64-d16", "line echo, 50 connections x 64 B lines, 16 in flight each", "echo", 50,
             depth=16, framing="lines", unit="lines", quick=True),
    Scenario("length-50x64-d16", "length-prefixed echo, 50 connections x 64 B messages, 16 in flight each", "echo",
             50, depth=16, framing="length", unit="frames", quick=True),
    Scenario("pool-1x64", "echo with the reply sent from a thread pool, 1 connection x 64 B", "echo", 1,
             pool=True, quick=True),
    Scenario("pool-50x64", "echo with the reply sent from a thread pool, 50 connections x 64 B", "echo", 50,
             pool=True),
    Scenario("churn-50", "connection churn: connect, one 64 B echo, close; 50 at a time", "churn", 50,
             unit="conns", quick=True),
    Scenario("bulk-1GiB", "bulk: 1 GiB streamed through one connection in 64 KiB writes", "bulk", 1,
             size=64 << 10, nbytes=1 << 30, unit="MB", quick=True),
    Scenario("sendfile-1GiB", "a 1 GiB file to one client", "download", 1, nbytes=1 << 30, unit="MB", quick=True),
    Scenario("idle-10k", "10,000 idle connections (each echoed once)", "idle", 10_000, hold=2.0, unit="conns",
             quick=True),
    Scenario("http-50", "HTTP/1.1 keep-alive GET / under wrk, 50 connections", "http", 50, unit="reqs",
             quick=True),
    Scenario("streams-echo-50x64", "asyncio streams echo, 50 connections x 64 B", "echo", 50, streams=True,
             quick=True),
    Scenario("unix-echo-50x64", "Unix-socket echo, 50 connections x 64 B", "echo", 50, unix=True, quick=True),
    Scenario("udp-echo-50x64", "UDP echo, 50 clients x 64 B datagrams", "echo", 50, udp=True, unit="datagrams",
             quick=True),
    Scenario("heavy-50x64", "CPU-heavy handler (about 50 us of Python per message), 50 connections x 64 B, "
             "servers on both CPUs", "echo", 50, heavy=True, quick=True),
    Scenario("tls-echo-50x64", "TLS 1.3 echo, 50 connections x 64 B", "echo", 50, tls=True, quick=True),
    Scenario("tls-churn-50", "TLS 1.3 full handshakes: connect, handshake, one 64 B echo, close; 50 at a time",
             "churn", 50, unit="conns", tls=True, quick=True),
    Scenario("tls-bulk-1GiB", "TLS 1.3 bulk: 1 GiB streamed through one connection in 64 KiB writes", "bulk", 1,
             size=64 << 10, nbytes=1 << 30, unit="MB", tls=True),
    Scenario("tls-idle-10k", "10,000 idle TLS connections (each echoed once)", "idle", 10_000, hold=2.0,
             unit="conns", tls=True),
]

# --quick shrinks what takes long.
QUICK_BULK_BYTES = 128 << 20
QUICK_IDLE_CONNS = 2_000
QUICK_IDLE_HOLD = 1.0  # seconds
