"""examples/kv_server.py: length-prefixed requests, per-client idle
timeouts with Connection.call_later."""

from __future__ import annotations

import struct
import threading
import time
from typing import Iterator, List

import pytest

from example_procs import Server, example, running
from pyiocp.testing import Client

# Linux: the servers run as subprocesses stopped with SIGINT or SIGTERM,
# which Windows cannot send to a child process.
pytestmark = pytest.mark.linux

IDLE = 0.5


@pytest.fixture
def kv(backend: str) -> Iterator[Server]:
    with running(example("kv_server.py", "--idle", str(IDLE), "--backend", backend)) as server:
        yield server


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def reply(c: Client) -> bytes:
    (n,) = struct.unpack(">I", c.recv_exactly(4))
    return c.recv_exactly(n)


def ask(c: Client, request: bytes) -> bytes:
    c.send(frame(request))
    return reply(c)


def test_set_get_delete(kv: Server) -> None:
    with Client(kv.address) as c:
        assert ask(c, b"GET k") == b"NOTFOUND"
        assert ask(c, b"SET k binary \0\n value") == b"OK"
        assert ask(c, b"GET k") == b"VALUE binary \0\n value"
        assert ask(c, b"SET empty ") == b"OK"
        assert ask(c, b"GET empty") == b"VALUE "
        assert ask(c, b"DEL k") == b"DELETED"
        assert ask(c, b"DEL k") == b"NOTFOUND"
        assert ask(c, b"PUT k v").startswith(b"ERR unknown command")
        assert ask(c, b"GET " + b"k" * 251).startswith(b"ERR a key")
        big = bytes(range(256)) * 4096  # 1 MiB, in many reads
        assert ask(c, b"SET big " + big) == b"OK"
        assert ask(c, b"GET big") == b"VALUE " + big


def test_pipelined_requests_from_many_clients(kv: Server) -> None:
    """Each client's requests, sent in one write, are answered in order;
    what one client sets, the others read."""
    def client(i: int, out: List[bool]) -> None:
        with Client(kv.address) as c:
            c.send(b"".join(frame(b"SET k%d-%d v%d" % (i, j, j)) for j in range(50)))
            assert [reply(c) for _ in range(50)] == [b"OK"] * 50
            out.append(ask(c, b"GET k%d-49" % ((i + 1) % 8)) in (b"VALUE v49", b"NOTFOUND"))
    ok: List[bool] = []
    threads = [threading.Thread(target=client, args=(i, ok)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ok == [True] * 8
    with Client(kv.address) as c:
        assert all(ask(c, b"GET k%d-%d" % (i, j)) == b"VALUE v%d" % j for i in range(8) for j in range(50))


def test_an_idle_client_is_disconnected(kv: Server) -> None:
    """Each request re-arms the idle timer: the goodbye comes no sooner
    than IDLE after the last request (on a loaded machine this client may
    itself stall past IDLE between two requests: then it comes early in
    the loop, still IDLE after the last one), and it does come."""
    with Client(kv.address) as c:
        began = time.monotonic()
        answer = b""
        while time.monotonic() - began < 2 * IDLE:
            # Before the send: the server re-arms on receipt, which may come
            # before this thread runs again after send() (it did, by 1 ms).
            last = time.monotonic()
            c.send(frame(b"GET x"))
            answer = reply(c)
            if answer != b"NOTFOUND":
                break
            time.sleep(IDLE / 5)
        if answer == b"NOTFOUND":
            answer = reply(c)
        assert answer == b"BYE idle"
        assert time.monotonic() - last >= IDLE
        assert c.recv_until_eof() == b""


def test_an_oversized_frame_closes_the_connection(kv: Server) -> None:
    with Client(kv.address) as c:
        c.send(struct.pack(">I", 1 << 30))
        assert c.recv_until_eof() == b""
