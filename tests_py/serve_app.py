"""The application the serve tests run (``pyiocp serve serve_app:PidReply``):
each line a client sends is answered with "<pid> <line>", so that a test
sees which process served it. Two lines are commands: "peer" is answered
with "<pid> <peer host> <peer port>" (the client a PROXY header names),
"slow <seconds>" with "<pid> slow" that many seconds later (a reply in
flight)."""

from __future__ import annotations

import os

import pyiocp


class PidReply(pyiocp.Handler):
    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.buf = b""

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        conn.buf += data
        while b"\n" in conn.buf:
            line, conn.buf = conn.buf.split(b"\n", 1)
            if line.startswith(b"slow "):
                conn.call_later(float(line[5:]), conn.send, f"{os.getpid()} slow\n".encode())
            elif line == b"peer":
                host, port = conn.peer
                conn.send(f"{os.getpid()} {host} {port}\n".encode())
            else:
                conn.send(f"{os.getpid()} ".encode() + line + b"\n")


def make_handler() -> pyiocp.Handler:
    return PidReply()


not_a_handler = 42


class NotAHandler:
    pass


def broken_factory() -> pyiocp.Handler:
    raise RuntimeError("the factory broke")
