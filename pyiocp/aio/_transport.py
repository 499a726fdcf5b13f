"""An asyncio.Transport backed by a pyiocp connection: the protocol's
callbacks run on the loop's thread, fed by the engine's completions."""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional, Tuple, cast

from pyiocp import BufferFull, Completion, Connection, ConnectionClosed

from ._engine import Engine

# asyncio's default write buffer limits.
HIGH_WATER = 64 << 10
# What one send hands the engine from the transport's own buffer: the
# engine refuses a send that would pass its limit whole.
CHUNK = 256 << 10
# How often a transport paused for writing looks at its buffer again when
# its low-water mark is under the engine's (no drain comes for that).
RECHECK = 0.002


class Transport(asyncio.Transport):
    """What asyncio's selector transports do, over a pyiocp Connection:
    writes never block nor fail (what the engine does not take waits here,
    and the protocol is paused over the high-water mark), reading pauses
    and resumes, EOF both ways, close after what is pending, abort."""

    def __init__(self, engine: Engine, conn: Connection, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self._engine = engine
        self._loop = engine.loop
        self._conn = conn
        self._protocol = protocol
        self._extra = {"peername": conn.peer, "sockname": conn.local}
        self._closing = False  # close() or abort() called, or the connection is gone
        self._lost = False  # connection_lost was called
        self._reading_paused = False
        # Completions that came while reading was paused, or behind those:
        # delivered in order once it resumes (_flush_held).
        self._held: List[Completion] = []
        self._flushing = False  # _flush_held is scheduled
        self._aborted = False
        self._buf = bytearray()  # written, not yet taken by the engine
        self._eof_after = False  # write_eof() was called: FIN once _buf is taken
        self._eof_sent = False
        self._close_after = False  # close() once _buf is taken
        self._writing_paused = False
        self._high, self._low = HIGH_WATER, HIGH_WATER // 4
        # A bound on what the engine holds of our writes, known without
        # asking it: what it held when last asked, plus what was handed to
        # it since (it only ever falls meanwhile). Under the high-water
        # mark, a write needs no look at the engine's figure.
        self._engine_bound = 0
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        engine.routes[conn.id] = self._completion
        self._route_recv()

    # The protocol's side ------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Close after what was written (FIN); connection_lost(None) follows."""
        if self._closing:
            return
        self._closing = True
        if self._buf:
            self._close_after = True
        else:
            self._conn.close()

    def abort(self) -> None:
        """Close at once with a reset, dropping what was written."""
        if self._lost:
            return
        self._closing = self._aborted = True
        self._buf.clear()
        self._held.clear()
        self._route_recv()
        self._conn.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._route_recv()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return not self._reading_paused and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._reading_paused:
            return
        self._reading_paused = True
        self._route_recv()
        self._conn.pause_reading()

    def resume_reading(self) -> None:
        if self._closing or not self._reading_paused:
            return
        self._reading_paused = False
        self._route_recv()
        if not self._flushing:
            # Not from here: resume_reading may be called from inside the
            # protocol's own data_received.
            self._flushing = True
            self._loop.call_soon(self._flush_held)

    def _flush_held(self) -> None:
        """Delivers what waited while reading was paused, in order, then
        lets the engine read again."""
        self._flushing = False
        while self._held and not self._reading_paused:
            self._deliver(self._held.pop(0))
        self._route_recv()
        if not self._reading_paused and not self._lost:
            self._conn.resume_reading()

    def write(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof_after:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._closing or not data:
            return  # asyncio ignores writes to a closing transport
        if self._buf:
            self._buf += data
        else:
            try:
                self._conn.send(data)
            except BufferFull:
                # In pieces the engine takes (a write over its whole limit
                # would never fit); the drain of what it took brings the rest.
                self._buf += data
                self._push()
            except ConnectionClosed:
                return
            else:
                self._engine_bound += len(data)
                if self._engine_bound <= self._high:
                    return  # under the high-water mark: no pause to make
        self._maybe_pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Half-close: FIN after what was written."""
        if self._closing or self._eof_after:
            return
        self._eof_after = True
        if not self._buf:
            self._eof_sent = True
            self._conn.shutdown_write()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        pending = 0 if self._lost else self._conn.pending
        self._engine_bound = pending
        return len(self._buf) + pending

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_writing()

    # The engine's side ---------------------------------------------------

    def _route_recv(self) -> None:
        """Lets the engine hand receives straight to data_received while
        nothing stands between: reading not paused, nothing held back, a
        plain Protocol, the connection not gone."""
        if not self._reading_paused and not self._held and not self._buffered and not self._lost:
            self._engine.receivers[self._conn] = self
        else:
            self._engine.receivers.pop(self._conn, None)

    def _completion(self, c: Completion) -> None:
        """Everything but the receives the engine hands a plain Protocol
        itself (_route_recv): a BufferedProtocol's, held ones, the rest."""
        kind = c.kind
        if kind == "send":
            return
        if kind == "drain":
            self._drain()
            return
        if kind == "close":
            # The end: after close() or abort(), or an error or a timeout.
            # What waited for a resume_reading is not delivered (asyncio
            # would not have read it either), and a transport paused for
            # good still hears of its end.
            self._held.clear()
            self._connection_lost(c.error)
            return
        if self._reading_paused or self._held:
            self._held.append(c)  # behind what came while reading was paused
            return
        self._deliver(c)

    def _deliver(self, c: Completion) -> None:
        kind = c.kind
        try:
            if kind == "recv":
                self._data_received(c.data)
            elif kind == "eof":
                if not self._protocol.eof_received():  # type: ignore[attr-defined]
                    self.close()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(exc, f"Fatal error: protocol.{'data' if kind == 'recv' else 'eof'}_received() call failed.")

    def _data_received(self, data: bytes) -> None:
        if self._buffered:
            self._buffer_updated(data)
        else:
            self._protocol.data_received(data)  # type: ignore[attr-defined]

    def _buffer_updated(self, data: bytes) -> None:
        """data through a BufferedProtocol's own buffers."""
        protocol = cast(asyncio.BufferedProtocol, self._protocol)
        view = memoryview(data)
        while view:
            buf = memoryview(protocol.get_buffer(len(view))).cast("B")
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]

    def _drain(self) -> None:
        """The engine's buffer fell to its low-water mark: hand it what
        waits here, then resume the protocol if under ours."""
        self._push()
        if not self._buf and not self._lost:
            if self._close_after:
                self._close_after = False
                self._conn.close()
            elif self._eof_after and not self._eof_sent:
                self._eof_sent = True
                self._conn.shutdown_write()
        self._maybe_resume_writing()

    def _push(self) -> None:
        """Hands the engine what waits here, in pieces, while it takes them."""
        while self._buf and not self._lost:
            part = bytes(self._buf[:CHUNK])
            try:
                self._conn.send(part)
            except BufferFull:
                break
            except ConnectionClosed:
                self._buf.clear()
                break
            del self._buf[:len(part)]
            self._engine_bound += len(part)

    def _maybe_pause_writing(self) -> None:
        if self._writing_paused or self.get_write_buffer_size() <= self._high:
            return
        self._writing_paused = True
        self._call_protocol("pause_writing")

    def _maybe_resume_writing(self) -> None:
        if not self._writing_paused or self._lost:
            return
        if self.get_write_buffer_size() <= self._low:
            self._writing_paused = False
            self._call_protocol("resume_writing")
        else:
            # Over a low-water mark under the engine's own: no drain will
            # come for it; look again soon.
            self._loop.call_later(RECHECK, self._maybe_resume_writing)

    def _call_protocol(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed", "exception": exc,
                "transport": self, "protocol": self._protocol})

    def _fatal(self, exc: BaseException, message: str) -> None:
        self._loop.call_exception_handler({"message": message, "exception": exc,
                                           "transport": self, "protocol": self._protocol})
        self.abort()

    def _connection_lost(self, error: Optional[Exception]) -> None:
        if self._lost:
            return
        self._lost = self._closing = True
        self._buf.clear()
        self._engine.forget(self._conn)
        if error is None and self._writing_paused and not self._aborted:
            # Closed after all was written: asyncio resumes the protocol
            # before it tells the end.
            self._writing_paused = False
            self._call_protocol("resume_writing")
        if error is not None and not isinstance(error, Exception):
            error = ConnectionError(str(error))  # asyncio's protocols take an Exception
        self._protocol.connection_lost(error)

    def __repr__(self) -> str:
        state = " closed" if self._lost else " closing" if self._closing else ""
        return f"<pyiocp.aio.Transport conn={self._conn.id}{state}>"
