"""Fault suite, framing: hostile and careless peers against framed
listeners (Lines and LengthPrefixed): frames cut at every place, lines and
lengths over the limits, resets in the middle of a frame, garbage. Sizes:
pick(CI, soak); see test_faults_harness."""

from __future__ import annotations

import random
import socket
import struct

import pyiocp
from test_faults_harness import Echo, ScenarioFactory, connect, reset_close, run_all, stat, wait_until
from test_faults_harness import scenario  # noqa: F401 - the fixture, for pytest to find

MAX_LINE, MAX_SIZE = 1024, 4096


class FrameEcho(Echo):
    """Echoes each frame as a frame."""

    def on_recv(self, conn: pyiocp.Connection, frame: bytes) -> None:
        try:
            conn.send_frame(frame)
        except pyiocp.ConnectionClosed:
            pass


def _send_cut(s: socket.socket, data: bytes, rng: random.Random) -> None:
    while data:
        k = rng.randint(1, 9)
        s.sendall(data[:k])
        data = data[k:]


def _read(s: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        piece = s.recv(n - len(got))
        if not piece:
            break
        got += piece
    return got


def _ends(s: socket.socket) -> bool:
    """The server ends the connection (FIN or reset) without a byte more."""
    try:
        return s.recv(1) == b""
    except ConnectionError:
        return True


def test_fault_framing(scenario: ScenarioFactory) -> None:
    """From 4 threads, each cycle one peer: good frames cut at random (the
    echo must come back whole), a line or a length over its limit (the
    connection must end, with ProtocolError, before the rest is sent), a
    reset in the middle of a frame, or garbage. Every connection closes
    exactly once; only ProtocolError or a reset reaches on_close; nothing
    is left behind."""
    scen = scenario("framing")
    cycles = scen.scale("cycles", 600, 6000)
    h = FrameEcho()
    mgr, _ = scen.serve(h, workers=2, recv_buffer_limit=64 << 10)
    lines = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines(max_line=MAX_LINE)).address
    lengths = mgr.listen("127.0.0.1", 0, framing=pyiocp.LengthPrefixed(max_size=MAX_SIZE)).address
    refused = [0]

    def cycle(i: int) -> None:
        rng = random.Random(i)
        kind = i % 5
        line = kind % 2 == 0
        s = connect(lines if line else lengths)
        if kind < 2:  # good frames
            frames = [bytes(rng.choice(b"abc xyz") for _ in range(rng.randint(0, 300))) for _ in range(5)]
            wire = b"".join(f + b"\n" if line else struct.pack(">I", len(f)) + f for f in frames)
            _send_cut(s, wire, rng)
            assert _read(s, len(wire)) == wire
            s.close()
        elif kind < 4:  # over the limit: refused before the rest comes
            s.sendall(b"x" * (MAX_LINE + 2) if line else struct.pack(">I", MAX_SIZE + 1))
            assert _ends(s)
            refused[0] += 1
            s.close()
        elif rng.random() < 0.5:  # reset in the middle of a frame
            s.sendall(b"half a line" if line else struct.pack(">I", 100) + b"part")
            reset_close(s)
        else:  # garbage, then gone
            s.sendall(bytes(rng.randrange(256) for _ in range(200)))
            s.close()

    run_all(cycle, cycles, 4)
    h.closes.wait(cycles)
    h.closes.check_once()
    wait_until(lambda: stat(mgr, "connections") == 0)
    errors = [e for e in h.closes.errors.values() if e is not None]
    protocol = sum(isinstance(e, pyiocp.ProtocolError) for e in errors)
    bad = [e for e in errors if not isinstance(e, (pyiocp.ProtocolError, ConnectionError, OSError))]
    assert not bad, bad[:5]
    assert protocol >= refused[0], (protocol, refused[0])
    scen.sized(f"{cycles} peers from 4 threads on a Lines({MAX_LINE}) and a LengthPrefixed({MAX_SIZE}) listener")
    scen.note(f"{protocol} connections ended with ProtocolError ({refused[0]} over a limit on purpose, the rest "
              f"garbage); {len(errors) - protocol} by a reset")
