"""The pyiocp pytest plugin (entry point ``pytest11``: ``pyiocp``).

Fixtures, each a factory:

- ``iocp_manager(handler=None, *, start=True, **options)``: a
  SocketManager, started when it has a handler.
- ``iocp_server(handler, *, host="127.0.0.1", port=0, backlog, accepts,
  **options)``: a handler (instance or class) running on an ephemeral
  loopback port: a :class:`~pyiocp.testing.Server` with ``.address``.
- ``iocp_client(address, *, timeout=5.0, rcvbuf=None, sndbuf=None,
  nodelay=True, wait_accepted=True)``: a blocking
  :class:`~pyiocp.testing.Client`, returned once an ``iocp_server``'s
  ``on_accept`` for it has returned.
- ``expect_events(handler, expected=None, *, conn=0, timeout=5.0)``: the
  handler wrapped in an :class:`~pyiocp.testing.EventRecorder`, whose
  ``assert_events([...])`` asserts the callback sequence; an ``expected``
  sequence given here is asserted at the end of the test.

At the end of a test that passed, still inside the test (so that a leak
fails it, rather than erroring in teardown), everything those fixtures
made is closed and checked, in this order: the clients are closed; each
server must then drop all its connections within the settle time
(``iocp_settle_timeout`` in the ini file, default 2 s), or it leaked them;
every manager is closed (one that does not close has a worker stuck in a
callback); the ``expected`` sequences are asserted; and no thread started
and no file descriptor opened while the test ran may still be there. A
test that failed is cleaned up quietly, without more reports.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence, Type, TypeVar, Union

import pytest

from .._handler import Handler
from .._args import DEFAULT_ACCEPTS, DEFAULT_BACKLOG
from .._manager import SocketManager
from .._pyiocp import Connection
from ._client import DEFAULT_TIMEOUT, Address, Client, address_of
from ._events import Event, EventRecorder, record_events
from ._leaks import Snapshot, leaks_since, snapshot, warm_up
from ._server import Server, start_server
from ._types import ClientFactory, EventsFactory, ManagerFactory, ServerFactory

logger = logging.getLogger("pyiocp")

_F = TypeVar("_F", bound=Callable[..., Any])


def _hookimpl(**options: Any) -> Callable[[_F], _F]:
    """pytest.hookimpl, typed (pluggy 1.0 is not)."""
    marker: Callable[[_F], _F] = pytest.hookimpl(**options)
    return marker


SETTLE_INI = "iocp_settle_timeout"
DEFAULT_SETTLE = 2.0


class _TestState:
    """What the pyiocp fixtures made for one test."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self.managers: List[SocketManager] = []
        self.servers: List[Server] = []
        self.clients: List[Client] = []
        self.recorders: List[EventRecorder] = []
        self.before: Optional[Snapshot] = None  # when the test body started
        self.body_passed = False

    def finish(self) -> List[str]:
        """Close everything made so far; what leaked."""
        problems: List[str] = []
        clients, self.clients = self.clients, []
        servers, self.servers = self.servers, []
        managers, self.managers = self.managers, []
        recorders, self.recorders = self.recorders, []
        for client in clients:
            client.close()
        deadline = time.monotonic() + self.settle
        for server in servers:
            # One reading decides: a connection the test's clients opened
            # and closed may still wait in the listener's accept queue when
            # the count first reads 0, and be counted a moment later. That
            # one is on its way out (its peer is gone), not leaked, and
            # close() below ends it; a leaked one stays counted all along.
            left = server.connections
            while left and time.monotonic() < deadline:
                time.sleep(0.01)
                left = server.connections
            if left:
                problems.append(f"{server!r} still had {left} connection(s) open "
                                f"{self.settle:g} s after the test ended and its clients closed: "
                                f"the server never closes them")
        for mgr in [s.manager for s in servers] + managers:
            try:
                mgr.close()
            except Exception as exc:
                problems.append(f"{mgr!r}: close() raised {exc!r}")
                continue
            if not mgr.closed:
                problems.append(f"{mgr!r} did not close: a worker is stuck in a callback")
            elif mgr.stats()["connections"]:
                problems.append(f"{mgr!r} still had {mgr.stats()['connections']} connection(s) after close()")
        for rec in recorders:
            if rec.expected is not None and not rec.checked:
                try:
                    rec.check()
                except AssertionError as exc:
                    problems.append(str(exc))
        if self.before is not None:
            problems += leaks_since(self.before, self.settle)
        return problems


_STATE = pytest.StashKey[_TestState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(SETTLE_INI, "pyiocp: seconds the end-of-test leak check waits for connections, threads and "
                  f"file descriptors to go away (default {DEFAULT_SETTLE:g})", default=str(DEFAULT_SETTLE))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_EndOfTest(), "pyiocp-end-of-test")


@_hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Take the snapshot the leak check compares with: after every fixture
    is set up, right before the test body."""
    state = item.stash.get(_STATE, None)
    if state is not None:
        state.before = snapshot()
    yield


class _EndOfTest:
    @_hookimpl(trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        """Runs after the test body, and only if it passed: a leak found here
        fails the test (a failure in a fixture's teardown would be an
        error instead)."""
        state = item.stash.get(_STATE, None)
        if state is None:
            return
        state.body_passed = True
        problems = state.finish()
        if problems:
            pytest.fail("pyiocp: the test left things behind:\n  - " + "\n  - ".join(problems), pytrace=False)


@pytest.fixture
def _iocp_state(request: pytest.FixtureRequest) -> Iterator[_TestState]:
    warm_up()
    try:
        settle = float(request.config.getini(SETTLE_INI))
    except ValueError:
        raise pytest.UsageError(f"{SETTLE_INI} must be a number of seconds") from None
    state = _TestState(settle)
    request.node.stash[_STATE] = state
    yield state
    state.before = None  # the test body's leaks are reported by then, or it failed
    problems = state.finish()
    if problems and state.body_passed:
        # Made after the end of the test, by another fixture's teardown.
        pytest.fail("pyiocp: left behind at teardown:\n  - " + "\n  - ".join(problems), pytrace=False)
    for problem in problems:
        logger.debug("cleanup after a failed test: %s", problem)


@pytest.fixture
def iocp_manager(_iocp_state: _TestState) -> ManagerFactory:
    """``iocp_manager(handler=None, *, start=True, **options)``: a
    SocketManager (started when it has a handler and ``start`` is true),
    closed at the end of the test. The test fails if it does not close, or
    if a thread or file descriptor it opened is left over."""

    def make(handler: Optional[Handler] = None, *, start: bool = True, **options: Any) -> SocketManager:
        mgr = SocketManager(handler, **options)
        _iocp_state.managers.append(mgr)
        if handler is not None and start:
            mgr.start()
        return mgr

    return make


@pytest.fixture
def iocp_server(_iocp_state: _TestState) -> ServerFactory:
    """``iocp_server(handler, *, host="127.0.0.1", port=0, backlog, accepts,
    **options)``: run ``handler`` (an instance, or a Handler class made with
    no arguments) on a started SocketManager (``options``: its keyword
    arguments, such as ``workers`` or ``backend``) listening on an ephemeral
    loopback port; returns a Server (``.address``, ``.manager``,
    ``.handler``). At the end of the test the server must drop every
    connection once the clients are gone, then it is closed."""

    def make(handler: Union[Handler, Type[Handler]], *, host: str = "127.0.0.1", port: int = 0,
             backlog: int = DEFAULT_BACKLOG, accepts: int = DEFAULT_ACCEPTS, **options: Any) -> Server:
        server = start_server(handler, host=host, port=port, backlog=backlog, accepts=accepts, **options)
        _iocp_state.servers.append(server)
        return server

    return make


@pytest.fixture
def iocp_client(_iocp_state: _TestState) -> ClientFactory:
    """``iocp_client(address, *, timeout=5.0, rcvbuf=None, sndbuf=None,
    nodelay=True, wait_accepted=True)``: a connected blocking Client
    (``send``, ``recv_exactly``, ``recv_until``, ``recv_until_eof``,
    ``shutdown_write``, ``close``, ``reset``), closed at the end of the
    test. ``address``: a ``(host, port)`` or a Server. Connected to a
    Server (``iocp_server``'s, or its address), it is returned once the
    server's ``on_accept`` for it has returned (``Server.wait_accepted``),
    so that what on_accept did is there to assert;
    ``wait_accepted=False`` returns as soon as the connection is made."""

    def make(address: Address, *, timeout: float = DEFAULT_TIMEOUT, rcvbuf: Optional[int] = None,
             sndbuf: Optional[int] = None, nodelay: bool = True, wait_accepted: bool = True) -> Client:
        client = Client(address, timeout=timeout, rcvbuf=rcvbuf, sndbuf=sndbuf, nodelay=nodelay)
        _iocp_state.clients.append(client)
        if wait_accepted:
            server = _server_at(address, _iocp_state.servers)
            if server is not None:
                server.wait_accepted(client)
        return client

    return make


def _server_at(address: Address, servers: List[Server]) -> Optional[Server]:
    """The Server address is, or the one of this test's that listens there."""
    if isinstance(address, Server):
        return address
    where = address_of(address)
    return next((s for s in servers if s.address == where), None)


@pytest.fixture
def expect_events(_iocp_state: _TestState) -> EventsFactory:
    """``expect_events(handler, expected=None, *, conn=0, timeout=5.0)``:
    ``handler`` (instance or class) wrapped in an EventRecorder to run in
    its place; ``recorder.assert_events([("accept",), ("recv", b"hi"),
    ("close", None)])`` waits for and asserts the callback sequence of a
    connection. An ``expected`` sequence given here is asserted at the end
    of the test, once every connection is closed."""

    def make(handler: Union[Handler, Type[Handler]], expected: Optional[Sequence[Event]] = None, *,
             conn: Union[int, Connection] = 0, timeout: float = 5.0) -> EventRecorder:
        rec = record_events(handler, expected, conn=conn, timeout=timeout)
        _iocp_state.recorders.append(rec)
        return rec

    return make
