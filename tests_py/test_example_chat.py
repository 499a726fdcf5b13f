"""examples/chat.py: a line protocol, broadcast to every other client."""

from __future__ import annotations

import time
from typing import Iterator, List

import pytest

from example_procs import Server, example, running
from iocp_helpers import RESETS_LOST
from pyiocp.testing import Client

# Linux: the servers run as subprocesses stopped with SIGINT or SIGTERM,
# which Windows cannot send to a child process.
pytestmark = pytest.mark.linux


@pytest.fixture
def chat(backend: str) -> Iterator[Server]:
    with running(example("chat.py", "--workers", "2", "--send-buffer-limit", "65536", "--backend", backend)) as server:
        yield server


def line(c: Client) -> str:
    return c.recv_until(b"\n").decode().rstrip("\n")


def join(server: Server, n: int) -> List[Client]:
    """n clients, each past its welcome and the join notices of the later ones."""
    clients: List[Client] = []
    for i in range(n):
        c = Client(server.address)
        assert line(c) == f"* welcome, you are guest{i + 1}"
        for earlier in clients:
            assert line(earlier) == f"* guest{i + 1} joined"
        clients.append(c)
    return clients


def test_messages_go_to_every_other_client(chat: Server) -> None:
    alice, bob, carol = join(chat, 3)
    try:
        alice.send(b"/nick alice\n")
        assert line(alice) == "* you are now alice"
        assert line(bob) == line(carol) == "* guest1 is now known as alice"
        bob.send(b"/nick bob\r\n")  # CRLF works too
        assert line(bob) == "* you are now bob"
        assert line(alice) == line(carol) == "* guest2 is now known as bob"

        alice.send(b"hello everyone\n")
        assert line(bob) == line(carol) == "<alice> hello everyone"
        carol.send("h\u00e9llo \u2603".encode() + b"\n")  # UTF-8, split over two writes below
        assert line(alice) == line(bob) == "<guest3> h\u00e9llo \u2603"
        bob.send(b"one ")
        time.sleep(0.05)
        bob.send(b"line\nand another\n")
        for c in (alice, carol):
            assert [line(c), line(c)] == ["<bob> one line", "<bob> and another"]

        carol.send(b"/who\n")
        assert line(carol) == "* here: alice, bob, guest3"
        carol.send(b"/nick alice\n")
        assert line(carol) == "! alice is taken"
        carol.send(b"/nick not a nick\n")
        assert line(carol).startswith("! a nick is")
        carol.send(b"/dance\n")
        assert line(carol) == "! unknown command /dance"

        bob.send(b"/quit\n")
        assert line(bob) == "* bye"
        assert bob.recv_until_eof() == b""
        assert line(alice) == line(carol) == "* bob left"
        carol.close()
        assert line(alice) == "* guest3 left"
        # The sender never hears its own message; nothing else is pending.
        alice.send(b"anyone?\n/who\n")
        assert line(alice) == "* here: alice"
    finally:
        for c in (alice, bob, carol):
            c.close()


def test_many_clients_on_two_workers_see_every_message(chat: Server) -> None:
    clients = join(chat, 8)
    try:
        for i, c in enumerate(clients):
            c.send(b"message %d\n" % i)
        for i, c in enumerate(clients):
            got = sorted(line(c) for _ in range(7))
            assert got == sorted(f"<guest{j + 1}> message {j}" for j in range(8) if j != i)
    finally:
        for c in clients:
            c.close()


def test_a_line_too_long_closes_the_connection(chat: Server) -> None:
    """The engine refuses the line once it passes 4096 bytes, without
    waiting for its end; the others hear that its sender left."""
    other, c = join(chat, 2)
    try:
        c.send(b"x" * 5000)
        assert c.recv_until_eof() == b""
        assert line(other) == "* guest2 left"
    finally:
        other.close()
        c.close()


def test_a_member_that_does_not_read_is_dropped(chat: Server) -> None:
    """A member with a small receive buffer that never reads, while others
    talk: its 64 KiB send buffer fills and it is dropped; the others go on."""
    idle = Client(chat.address, rcvbuf=4096)
    talker, listener = join_after(chat, idle)
    try:
        text = b"z" * 1000 + b"\n"
        sent = 0
        left = False
        while not left:  # until the idle member's buffers (ours and the kernel's) are full
            assert sent < 20_000, "the idle member was never dropped"
            for _ in range(20):  # 20 KB: well within what the listener's buffers hold
                talker.send(text)
            sent += 20
            for _ in range(20):
                got = listener.recv_until(b"\n")
                if got == b"* guest1 left\n":
                    left = True
                    got = listener.recv_until(b"\n")
                assert got == b"<guest2> " + text
        assert line(talker) == "* guest1 left"
        talker.send(b"/who\n")
        assert line(talker) == "* here: guest2, guest3"
        try:
            idle.recv_until_eof()
        except ConnectionResetError:
            pass
        else:
            assert RESETS_LOST, "the idle client was closed, not reset"
    finally:
        for c in (idle, talker, listener):
            c.close()


def join_after(server: Server, first: Client) -> List[Client]:
    assert line(first) == "* welcome, you are guest1"
    out = []
    for i in (2, 3):
        c = Client(server.address)
        assert line(c) == f"* welcome, you are guest{i}"
        out.append(c)
    assert line(out[0]) == "* guest3 joined"
    return out
