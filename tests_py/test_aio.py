"""pyiocp.aio: asyncio protocols and streams, unchanged, on the pyiocp
engine, on asyncio's default loop and on uvloop."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import importlib.util
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, cast

import pytest

import pyiocp.aio
from iocp_helpers import full_backlog_listener

TIMEOUT = 20.0


def _uvloop_here() -> bool:
    """uvloop is installed for this interpreter (Debian's, on .venv-ft's
    path, is built for 3.11 only: found, not importable)."""
    if importlib.util.find_spec("uvloop") is None:
        return False
    try:
        import uvloop
    except ImportError:
        return False
    # uvloop opens a pipe for the process on its first loop, kept for good:
    # open it now, before a test counts descriptors.
    uvloop.new_event_loop().close()
    return True


LOOPS = ["asyncio"] + (["uvloop"] if _uvloop_here() else [])


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[Any]], Any]:
    """Runs a coroutine to its end on a new loop of the kind asked for."""

    def runner(coro: Awaitable[Any]) -> Any:
        loop: asyncio.AbstractEventLoop
        if request.param == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return runner


class Echo(asyncio.Protocol):
    """Echoes; records what asyncio calls."""

    def __init__(self) -> None:
        self.calls: List[str] = []
        self.lost: "Optional[asyncio.Future[Optional[BaseException]]]" = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.calls.append("made")
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> Optional[bool]:
        self.calls.append("eof")
        return None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.calls.append("lost")
        assert self.lost is not None
        self.lost.set_result(exc)


def test_protocol_echo(run: Any, backend: str) -> None:
    """A plain asyncio.Protocol served by pyiocp, driven by asyncio's own
    streams (real sockets): every byte back, the addresses, EOF and the
    close told once each."""
    protocols: List[Echo] = []

    def factory() -> Echo:
        protocols.append(Echo())
        return protocols[-1]

    async def main() -> None:
        server = await pyiocp.aio.create_server(factory, "127.0.0.1", 0, backend=backend)
        host, port = server.address
        reader, writer = await asyncio.open_connection(host, port)
        payload = os.urandom(300 << 10)
        for off in range(0, len(payload), 50_000):
            writer.write(payload[off:off + 50_000])
            await writer.drain()
        assert await reader.readexactly(len(payload)) == payload
        t = protocols[0].transport
        assert t.get_extra_info("peername") == writer.get_extra_info("sockname")
        assert t.get_extra_info("sockname") == (host, port)
        assert t.can_write_eof() and not t.is_closing()
        writer.write_eof()
        assert await reader.read() == b""  # the default eof_received closes
        assert await asyncio.wait_for(cast(Any, protocols[0].lost), TIMEOUT) is None
        writer.close()
        server.close()
        await server.wait_closed()
        assert protocols[0].calls == ["made", "eof", "lost"]

    run(main())


def test_streams_both_ends(run: Any, backend: str) -> None:
    """start_server and open_connection: asyncio's streams on both ends,
    with a half-close: the server reads to EOF, then answers and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # to EOF
        writer.write(hashlib.sha256(data).hexdigest().encode() + b"\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server = await pyiocp.aio.start_server(handle, "127.0.0.1", 0, backend=backend)
        reader, writer = await pyiocp.aio.open_connection(*server.address)
        data = os.urandom(1 << 20)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        assert await reader.readline() == hashlib.sha256(data).hexdigest().encode() + b"\n"
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(main())


class Flood(asyncio.Protocol):
    """Writes n bytes at once to a peer that does not read yet."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.paused = self.resumed = 0
        self.sizes: List[int] = []
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = cast(asyncio.Transport, transport)
        t.set_write_buffer_limits(high=256 << 10)
        for off in range(0, len(self.data), 1 << 20):
            t.write(self.data[off:off + (1 << 20)])  # never refused, never blocks
        self.sizes.append(t.get_write_buffer_size())
        t.close()  # after all of it

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.lost = True


def test_backpressure(run: Any, backend: str) -> None:
    """Writes over the high-water mark pause the protocol; once the peer
    reads, it resumes, and every byte arrives in order, then the close."""
    data = os.urandom(16 << 20)
    flood = Flood(data)

    async def main() -> None:
        server = await pyiocp.aio.create_server(lambda: flood, "127.0.0.1", 0, backend=backend)
        reader, writer = await asyncio.open_connection(*server.address)
        while not flood.sizes:  # connection_made has not run yet
            await asyncio.sleep(0.01)
        assert flood.paused == 1 and flood.sizes[0] > 256 << 10
        got = await reader.read()  # to the close
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        while not flood.lost:  # the server's end may be told after the client read the FIN
            await asyncio.sleep(0.01)
        assert flood.resumed == 1
        writer.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_small_writes_pause(run: Any, backend: str) -> None:
    """Many small writes to a peer that does not read pass the high-water
    mark in the engine's buffer: the protocol is paused by the write that
    passed it, once, and resumed once the peer reads."""
    piece = b"w" * 100
    made: "List[asyncio.Transport]" = []

    class Writer(Flood):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(cast(asyncio.Transport, transport))

    writer_proto = Writer(b"")

    async def main() -> None:
        server = await pyiocp.aio.create_server(lambda: writer_proto, "127.0.0.1", 0, backend=backend)
        reader, writer = await asyncio.open_connection(*server.address)
        while not made:
            await asyncio.sleep(0.01)
        t = made[0]
        sent = 0
        while not writer_proto.paused:  # the kernel's buffers fill, then the engine's
            t.write(piece)
            sent += len(piece)
            if sent % (64 << 10) == 0:
                await asyncio.sleep(0)  # let the engine write what it can
            assert sent < 64 << 20, "never paused"
        # Paused by the write that passed the mark, not later.
        assert writer_proto.paused == 1 and 64 << 10 < t.get_write_buffer_size() <= (64 << 10) + len(piece)
        assert await reader.readexactly(sent) == piece * (sent // len(piece))
        while not writer_proto.resumed:
            await asyncio.sleep(0.01)
        assert writer_proto.paused == 1 and writer_proto.resumed == 1
        t.close()
        assert await reader.read() == b""
        writer.close()
        server.close()
        await server.wait_closed()

    run(main())


class Buffered(asyncio.BufferedProtocol):
    """Takes the bytes through small buffers of its own."""

    def __init__(self) -> None:
        self.buf = bytearray(1000)
        self.got = bytearray()
        self.eof: "Optional[asyncio.Future[None]]" = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.eof = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.got += self.buf[:nbytes]

    def eof_received(self) -> Optional[bool]:
        assert self.eof is not None
        self.eof.set_result(None)
        return None


async def send_with_eof(server: Any, data: bytes,
                        told: Buffered) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connects to server, sends data then EOF, and waits until told's
    eof_received has run (after every byte before it)."""
    reader, writer = await asyncio.open_connection(*server.address)
    writer.write(data)
    writer.write_eof()
    while told.eof is None:  # made by connection_made, on the server's side
        await asyncio.sleep(0.01)
    await asyncio.wait_for(told.eof, TIMEOUT)
    return reader, writer


def test_buffered_protocol(run: Any, backend: str) -> None:
    """An asyncio.BufferedProtocol gets every byte, in order, through its
    own buffers, smaller than what each receive brings."""
    proto = Buffered()
    data = os.urandom(300 << 10)

    async def main() -> None:
        server = await pyiocp.aio.create_server(lambda: proto, "127.0.0.1", 0, backend=backend)
        reader, writer = await send_with_eof(server, data, proto)
        assert bytes(proto.got) == data
        assert await reader.read() == b""  # closed after the EOF
        writer.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_set_protocol_mid_stream(run: Any, backend: str) -> None:
    """set_protocol from inside data_received hands the bytes after that
    call to the new protocol, a BufferedProtocol here, and back: every byte
    arrives once, in order, across the switches."""
    data = os.urandom(600 << 10)
    got = bytearray()
    end = Buffered()  # its eof future

    class Plain(asyncio.Protocol):
        switches = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            end.connection_made(transport)

        def data_received(self, data: bytes) -> None:
            got.extend(data)
            if self.switches < 2 and len(got) > self.switches * (200 << 10):
                self.switches += 1
                self.transport.set_protocol(buffered)

        def eof_received(self) -> Optional[bool]:
            return end.eof_received()

    class Switching(Buffered):
        def buffer_updated(self, nbytes: int) -> None:
            got.extend(self.buf[:nbytes])
            if len(got) > 300 << 10:
                plain.transport.set_protocol(plain)

    plain, buffered = Plain(), Switching()

    async def main() -> None:
        server = await pyiocp.aio.create_server(lambda: plain, "127.0.0.1", 0, backend=backend)
        reader, writer = await send_with_eof(server, data, end)
        assert bytes(got) == data
        assert plain.switches == 2
        writer.close()
        server.close()
        await server.wait_closed()

    run(main())


class Pausing(asyncio.Protocol):
    """Pauses reading at the first bytes; resumes when told."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.first: "Optional[asyncio.Future[None]]" = None  # made by the test, on its loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got += data
        if self.first is not None and not self.first.done():
            self.transport.pause_reading()
            self.first.set_result(None)


def test_pause_reading(run: Any, backend: str) -> None:
    """No data_received while paused; resumed, the rest arrives in order."""
    proto = Pausing()
    data = os.urandom(1 << 20)

    async def main() -> None:
        proto.first = asyncio.get_running_loop().create_future()
        server = await pyiocp.aio.create_server(lambda: proto, "127.0.0.1", 0, backend=backend)
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(data)
        await asyncio.wait_for(cast(Any, proto.first), TIMEOUT)
        seen = len(proto.got)
        await asyncio.sleep(0.3)
        assert len(proto.got) == seen and not proto.transport.is_reading()
        proto.transport.resume_reading()
        while len(proto.got) < len(data):
            await asyncio.sleep(0.01)
        assert bytes(proto.got) == data
        writer.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_close_while_reading_is_paused(run: Any, backend: str) -> None:
    """A transport closed while its reading is paused still hears of its
    end: connection_lost comes, without the bytes that waited."""
    lost: List[Optional[Exception]] = []

    class Told(Pausing):
        def connection_lost(self, exc: Optional[Exception]) -> None:
            lost.append(exc)

    proto = Told()

    async def main() -> None:
        proto.first = asyncio.get_running_loop().create_future()
        server = await pyiocp.aio.create_server(lambda: proto, "127.0.0.1", 0, backend=backend)
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(os.urandom(1 << 20))
        await asyncio.wait_for(cast(Any, proto.first), TIMEOUT)
        proto.transport.close()
        while not lost:
            await asyncio.sleep(0.01)
        assert lost == [None] and proto.transport.is_closing()
        writer.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_errors_and_abort(run: Any, backend: str) -> None:
    """A protocol callback that raises goes to the loop's exception handler
    and the connection is aborted; abort() resets and tells connection_lost;
    a refused connect raises ConnectionRefusedError."""
    seen: List[Dict[str, Any]] = []

    class Raising(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            raise ValueError("bad input")

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: seen.append(ctx))
        server = await pyiocp.aio.create_server(Raising, "127.0.0.1", 0, backend=backend)
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"x")
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
        assert isinstance(seen[0]["exception"], ValueError)
        writer.close()
        server.close()
        await server.wait_closed()

        echo = Echo()
        server = await pyiocp.aio.create_server(lambda: echo, "127.0.0.1", 0, backend=backend)
        transport, client = await pyiocp.aio.create_connection(Echo, *server.address)
        transport.abort()
        assert await asyncio.wait_for(cast(Any, cast(Echo, client).lost), TIMEOUT) is None
        while echo.lost is None:  # its accept may come after the client's connect
            await asyncio.sleep(0.01)
        await asyncio.wait_for(cast(Any, echo.lost), TIMEOUT)  # the server's end too
        host, port = server.address
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await pyiocp.aio.create_connection(Echo, host, port)

    run(main())


def test_server_close_keeps_connections(run: Any, backend: str) -> None:
    """close() stops accepting (a connect racing it is closed at once, no
    protocol made); connections open go on; wait_closed returns once they
    have closed."""
    made: List[Echo] = []

    def factory() -> Echo:
        made.append(Echo())
        return made[-1]

    async def main() -> None:
        server = await pyiocp.aio.create_server(factory, "127.0.0.1", 0, backend=backend)
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(b"a")
        assert await reader.readexactly(1) == b"a"
        server.close()
        assert not server.is_serving()
        try:
            late_reader, late_writer = await asyncio.open_connection(*server.address)
        except OSError:
            pass  # refused: the listening socket is closed
        else:
            # Accepted by the kernel, then closed by the server; or left
            # half-open when the listener's close dropped it mid-handshake
            # (the kernel sends no RST then): a byte sent brings the reset.
            late_writer.write(b"x")
            try:
                assert await late_reader.read() == b""
            except ConnectionResetError:
                pass
            late_writer.close()
        assert len(made) == 1
        writer.write(b"b")  # still served
        assert await reader.readexactly(1) == b"b"
        closing = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.1)
        assert not closing.done()
        writer.close()
        await asyncio.wait_for(closing, TIMEOUT)

    run(main())


def test_unmodified_http_protocol(run: Any, backend: str) -> None:
    """The bench's asyncio HTTP protocol (examples/http_server.py's parser
    behind asyncio.Protocol), served unchanged by pyiocp.aio."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "bench" / "servers"))
    try:
        from aio_http import Http
    finally:
        sys.path.remove(str(root / "bench" / "servers"))

    def fetch(port: int) -> List[bytes]:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        bodies = []
        for _ in range(3):  # keep-alive
            c.request("GET", "/")
            bodies.append(c.getresponse().read())
        c.close()
        return bodies

    async def main() -> None:
        server = await pyiocp.aio.create_server(Http, "127.0.0.1", 0, backend=backend)
        got = await asyncio.get_running_loop().run_in_executor(None, fetch, server.address[1])
        assert got == [b"hello, world\n"] * 3
        server.close()
        await server.wait_closed()

    run(main())


def test_connect_timeout(run: Any, backend: str) -> None:
    """A connect's timeout fires on time, with nothing else happening: the
    engine's deadline reaches the loop."""

    async def main() -> None:
        with full_backlog_listener() as addr:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await pyiocp.aio.create_connection(Echo, *addr, timeout=0.3)
            elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 5.0, elapsed

    run(main())


@pytest.mark.linux  # Windows: the iocp port is no descriptor a loop can watch
def test_served_from_the_loop(run: Any, backend: str) -> None:
    """The loop watches the engine itself: no polling thread while a server
    and a client run, and the protocols run on the loop's thread."""
    threads: List[int] = []

    class Where(Echo):
        def data_received(self, data: bytes) -> None:
            threads.append(threading.get_ident())
            super().data_received(data)

    class Heard(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            threads.append(threading.get_ident())

    async def main() -> None:
        server = await pyiocp.aio.create_server(Where, "127.0.0.1", 0, backend=backend)
        transport, _ = await pyiocp.aio.create_connection(Heard, *server.address)
        transport.write(b"ping")
        while len(threads) < 2:  # the server's, then the client's
            await asyncio.sleep(0.01)
        assert set(threads) == {threading.get_ident()}
        assert [t.name for t in threading.enumerate() if t.name.startswith("pyiocp-aio-")] == []
        transport.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_no_thread_left() -> None:
    """The engines' polling threads end with them."""
    left = [t.name for t in threading.enumerate() if t.name.startswith("pyiocp-aio-")]
    deadline = 50
    while left and deadline:
        threading.Event().wait(0.05)
        deadline -= 1
        left = [t.name for t in threading.enumerate() if t.name.startswith("pyiocp-aio-")]
    assert left == []
