"""Recording a handler's callbacks and asserting their sequence."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

from .._handler import Handler
from .._pyiocp import Connection

__all__ = ["ANY", "Event", "EventRecorder", "record_events"]

#: One recorded callback: ``("accept",)``, ``("connect",)``,
#: ``("recv", data)``, ``("send", nbytes)``, ``("drain",)``, ``("eof",)``,
#: ``("close", error)``, ``("error", exc)``.
Event = Tuple[Any, ...]

DEFAULT_TIMEOUT = 5.0


class _Any:
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"


#: In an expected event, matches any value: ``("close", ANY)``.
ANY: Any = _Any()

# The callbacks the engine delivers only to handlers that override them: the
# recorder overrides them exactly when the wrapped handler does, so that the
# engine produces the same events with and without the recorder.
_OPTIONAL = ("on_send", "on_drain", "on_eof")


def _matches(expected: Any, actual: Any) -> bool:
    if expected is ANY:
        return True
    if isinstance(expected, type) and issubclass(expected, BaseException):
        return isinstance(actual, expected)
    if isinstance(expected, BaseException):
        return type(actual) is type(expected) and str(actual) == str(expected)
    return bool(expected == actual)


def _is_data(ev: Event) -> bool:
    return len(ev) == 2 and ev[0] == "recv" and isinstance(ev[1], (bytes, bytearray))


def _merge_recvs(events: Sequence[Event]) -> List[Event]:
    """Adjacent ("recv", data) events as one: TCP keeps no message
    boundaries, so b"hi" may arrive as b"h" then b"i"."""
    out: List[Event] = []
    for ev in events:
        if _is_data(ev) and out and _is_data(out[-1]):
            out[-1] = ("recv", out[-1][1] + ev[1])
        else:
            out.append(("recv", bytes(ev[1])) if _is_data(ev) else ev)
    return out


def _sequence_matches(expected: Sequence[Event], actual: Sequence[Event]) -> bool:
    if len(expected) != len(actual):
        return False
    for exp, act in zip(expected, actual):
        if not exp or exp[0] != act[0] or len(exp) > len(act):
            return False
        if not all(_matches(e, a) for e, a in zip(exp[1:], act[1:])):
            return False
    return True


def _is_prefix(expected: Sequence[Event], actual: Sequence[Event]) -> bool:
    """actual may still grow into expected (its last recv may still grow)."""
    if len(actual) > len(expected):
        return False
    if not actual:
        return True
    if not _sequence_matches(expected[:len(actual) - 1], actual[:-1]):
        return False
    exp, act = expected[len(actual) - 1], actual[-1]
    if _is_data(act) and exp and _is_data(exp):
        return bool(exp[1].startswith(act[1]))
    return _sequence_matches([exp], [act])


def _show(value: Any, limit: int = 80) -> str:
    """repr, with long bytes cut short: a failure shows a 64 MiB recv as
    b'...'... (67108864 bytes)."""
    if isinstance(value, bytearray):
        value = bytes(value)
    if isinstance(value, bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} bytes)"
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(v, limit) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, limit) for v in value) + "]"
    return repr(value)


class EventRecorder(Handler):
    """A Handler that records every callback, per connection, and passes it
    on to the handler it wraps (``.handler``). Make one with
    :func:`record_events` (or the ``expect_events`` fixture) and run it in
    place of the wrapped handler.
    """

    handler: Handler

    def __init__(self, handler: Handler, expected: Optional[Sequence[Event]] = None, *,
                 conn: Union[int, Connection] = 0, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.handler = handler
        self.expected = list(expected) if expected is not None else None
        self.expected_conn = conn
        self.timeout = timeout
        self.checked = False  # the expected sequence was asserted
        self._cond = threading.Condition()
        self._order: List[Connection] = []  # connections, first seen first
        self._events: Dict[int, List[Event]] = {}  # as they came
        # The same with adjacent recvs merged, kept up to date as they come
        # (a recv's data is a bytearray that grows): what assert_events
        # compares, without merging again on every new event.
        self._merged: Dict[int, List[Event]] = {}
        self.posts: List[Any] = []

    # ------------------------------------------------------------ queries

    def connections(self) -> List[Connection]:
        """Every connection seen, in the order of its first callback."""
        with self._cond:
            return list(self._order)

    def events(self, conn: Union[int, Connection] = 0) -> List[Event]:
        """The events of one connection so far: ``conn`` is a Connection or
        an index into :meth:`connections` (0: the first one)."""
        with self._cond:
            key = self._key(conn)
            return list(self._events.get(key, [])) if key is not None else []

    def wait_connections(self, n: int, timeout: Optional[float] = None) -> List[Connection]:
        """Wait until n connections have been seen; return them all."""
        limit = self.timeout if timeout is None else timeout
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._order) >= n, limit):
                raise AssertionError(f"{len(self._order)} connections after {limit} s, expected {n}")
            return list(self._order)

    def assert_events(self, expected: Sequence[Event], *, conn: Union[int, Connection] = 0,
                      timeout: Optional[float] = None) -> None:
        """Wait until the events of ``conn`` are ``expected`` and return;
        raise AssertionError if they turn out different (or are still
        incomplete after ``timeout`` seconds).

        Adjacent ``recv`` events count as one (TCP keeps no message
        boundaries), on both sides. An expected event may leave out its
        arguments (``("recv",)``); an argument matches by ``==``, ``ANY``
        matches anything, and an exception class matches its instances
        (``("close", ConnectionResetError)``). ``send``, ``drain`` and ``eof``
        are recorded only when the wrapped handler overrides ``on_send``,
        ``on_drain`` or ``on_eof``, as the engine only produces them then.
        """
        want = _merge_recvs([tuple(e) for e in expected])
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._cond:
            while True:
                key = self._key(conn)
                got = self._merged.get(key, []) if key is not None else []
                if _sequence_matches(want, got):
                    self.checked = True
                    return
                closed = bool(got) and got[-1][0] == "close"
                left = deadline - time.monotonic()
                if closed or left <= 0 or not _is_prefix(want, got):
                    break
                self._cond.wait(left)
            got = [("recv", bytes(ev[1])) if _is_data(ev) else ev for ev in got]  # a copy, for the report
        self.checked = True
        which = f"connection {conn}" if isinstance(conn, int) else repr(conn)
        lines = [f"the events of {which} are not the expected ones"
                 + ("" if closed or not _is_prefix(want, got) else f" (still incomplete after {limit} s)"),
                 f"  expected: {_show(want)}", f"  actual:   {_show(got)}"]
        for i, (e, a) in enumerate(zip(want, got)):
            if not _sequence_matches([e], [a]):
                lines.append(f"  first difference at index {i}: expected {_show(e)}, got {_show(a)}")
                break
        raise AssertionError("\n".join(lines))

    def check(self) -> None:
        """Assert the sequence given when this recorder was made."""
        if self.expected is not None:
            self.assert_events(self.expected, conn=self.expected_conn)

    # ------------------------------------------------------------ recording

    def _key(self, conn: Union[int, Connection]) -> Optional[int]:
        if isinstance(conn, int):
            return self._order[conn].id if 0 <= conn < len(self._order) else None
        return conn.id

    def _record(self, conn: Connection, event: Event) -> None:
        with self._cond:
            events = self._events.get(conn.id)
            if events is None:
                events = self._events[conn.id] = []
                self._merged[conn.id] = []
                self._order.append(conn)
            events.append(event)
            merged = self._merged[conn.id]
            if _is_data(event) and merged and _is_data(merged[-1]):
                merged[-1][1].extend(event[1])
            else:
                merged.append(("recv", bytearray(event[1])) if _is_data(event) else event)
            self._cond.notify_all()

    def on_accept(self, conn: Connection) -> None:
        self._record(conn, ("accept",))
        self.handler.on_accept(conn)

    def on_connect(self, conn: Connection) -> None:
        self._record(conn, ("connect",))
        self.handler.on_connect(conn)

    def on_recv(self, conn: Connection, data: bytes) -> None:
        self._record(conn, ("recv", bytes(data)))
        self.handler.on_recv(conn, data)

    def on_close(self, conn: Connection, error: Optional[BaseException]) -> None:
        self._record(conn, ("close", error))
        self.handler.on_close(conn, error)

    def on_post(self, payload: Any) -> None:
        with self._cond:
            self.posts.append(payload)
            self._cond.notify_all()
        self.handler.on_post(payload)

    def on_error(self, conn: Optional[Connection], exc: BaseException) -> None:
        if conn is not None:
            self._record(conn, ("error", exc))
        self.handler.on_error(conn, exc)

    def _on_send(self, conn: Connection, nbytes: int) -> None:
        self._record(conn, ("send", nbytes))
        self.handler.on_send(conn, nbytes)

    def _on_drain(self, conn: Connection) -> None:
        self._record(conn, ("drain",))
        self.handler.on_drain(conn)

    def _on_eof(self, conn: Connection) -> None:
        self._record(conn, ("eof",))
        self.handler.on_eof(conn)

    def __repr__(self) -> str:
        return f"<EventRecorder of {self.handler!r}>"


_classes: Dict[Tuple[bool, ...], Type[EventRecorder]] = {}


def _handler_instance(handler: Union[Handler, Type[Handler]]) -> Handler:
    """handler, or a new instance of it if it is a Handler class."""
    if isinstance(handler, type):
        if not issubclass(handler, Handler):
            raise TypeError(f"{handler.__name__} is not a pyiocp.Handler subclass")
        handler = handler()
    if not isinstance(handler, Handler):
        raise TypeError(f"handler must be a pyiocp.Handler, not {type(handler).__name__}")
    return handler


def record_events(handler: Union[Handler, Type[Handler]], expected: Optional[Sequence[Event]] = None, *,
                  conn: Union[int, Connection] = 0, timeout: float = DEFAULT_TIMEOUT) -> EventRecorder:
    """Wrap handler (an instance, or a Handler class made with no
    arguments) in an :class:`EventRecorder`. With ``expected``, the
    recorder's :meth:`~EventRecorder.check` asserts that sequence (the
    ``expect_events`` fixture calls it at the end of the test)."""
    handler = _handler_instance(handler)
    overrides = tuple(getattr(type(handler), name) is not getattr(Handler, name) for name in _OPTIONAL)
    cls = _classes.get(overrides)
    if cls is None:
        methods = {name: getattr(EventRecorder, "_" + name) for name, on in zip(_OPTIONAL, overrides) if on}
        # setdefault: of two threads making it at once, both use one class.
        cls = _classes.setdefault(overrides, type("EventRecorder", (EventRecorder,), methods))
    return cls(handler, expected, conn=conn, timeout=timeout)
