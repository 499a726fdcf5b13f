"""Bad input gets a clear exception at the call (DESIGN.md section 3): never
a crash, never a half-open state, and no file descriptor left behind."""

from __future__ import annotations

import errno
import math
import socket
import threading
from typing import Any, Callable, Dict, List, Tuple, Type, TypeVar

import pytest

import pyiocp
from iocp_helpers import Echo, Recorder, Serve, client, connected, fd_count, fds_settled, recv_exactly, wait_until
from pyiocp.testing import ManagerFactory


E = TypeVar("E", bound=BaseException)


def raises_cleanly(exc_type: Type[E], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> E:
    """fn(*args, **kwargs) raises exc_type and leaves no fd or worker thread."""
    before = fd_count()
    threads = threading.active_count()
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    assert fd_count() == before, f"{fn.__name__}{args}{kwargs} leaked an fd"
    assert threading.active_count() == threads
    return info.value


# ------------------------------------------------------------ constructor

CTOR_TYPE_ERRORS: List[Tuple[Dict[str, Any], str]] = [
    ({"handler": object()}, "handler"),
    ({"handler": "echo"}, "handler"),
    ({"handler": pyiocp.Handler}, "handler class, not instance"),
    ({"workers": "2"}, "workers str"),
    ({"workers": 2.0}, "workers float"),
    ({"workers": True}, "workers bool"),
    ({"workers": None}, "workers None"),
    ({"backend": 1}, "backend int"),
    ({"backend": None}, "backend None"),
    ({"recv_buffer_limit": "1"}, "recv_buffer_limit str"),
    ({"recv_buffer_limit": 1.5}, "recv_buffer_limit float"),
    ({"send_buffer_limit": None}, "send_buffer_limit None"),
    ({"send_low_watermark": "1"}, "send_low_watermark str"),
    ({"idle_timeout": "1"}, "idle_timeout str"),
    ({"idle_timeout": True}, "idle_timeout bool"),
    ({"accept_timeout": [1]}, "accept_timeout list"),
    ({"close_timeout": "10"}, "close_timeout str"),
    ({"max_connections": 1.0}, "max_connections float"),
    ({"max_connections": "10"}, "max_connections str"),
    ({"slow_callback_warning": "0.1"}, "slow_callback_warning str"),
    ({"slow_callback_warning": True}, "slow_callback_warning bool"),
]

CTOR_VALUE_ERRORS: List[Tuple[Dict[str, Any], str]] = [
    ({"workers": 0}, "workers 0"),
    ({"workers": -1}, "workers negative"),
    ({"workers": 257}, "workers too many"),
    ({"backend": "nope"}, "unknown backend"),
    ({"backend": ""}, "empty backend"),
    ({"recv_buffer_limit": -1}, "negative recv_buffer_limit"),
    ({"recv_buffer_limit": 0}, "zero recv_buffer_limit"),
    ({"send_buffer_limit": -1}, "negative send_buffer_limit"),
    ({"send_buffer_limit": 0}, "zero send_buffer_limit"),
    ({"send_low_watermark": -1}, "negative send_low_watermark"),
    ({"send_buffer_limit": 1000, "send_low_watermark": 1000}, "watermark at the limit"),
    ({"idle_timeout": -1}, "negative idle_timeout"),
    ({"idle_timeout": -0.001}, "negative idle_timeout float"),
    ({"idle_timeout": math.nan}, "nan idle_timeout"),
    ({"accept_timeout": -5}, "negative accept_timeout"),
    ({"close_timeout": -1}, "negative close_timeout"),
    ({"close_timeout": math.nan}, "nan close_timeout"),
    ({"max_connections": -1}, "negative max_connections"),
    ({"slow_callback_warning": -0.1}, "negative slow_callback_warning"),
    ({"slow_callback_warning": math.nan}, "nan slow_callback_warning"),
]


@pytest.mark.parametrize("kwargs", [k for k, _ in CTOR_TYPE_ERRORS], ids=[i for _, i in CTOR_TYPE_ERRORS])
def test_constructor_type_errors(kwargs: Dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    handler = kwargs.pop("handler", Echo())
    raises_cleanly(TypeError, pyiocp.SocketManager, handler, **kwargs)


@pytest.mark.parametrize("kwargs", [k for k, _ in CTOR_VALUE_ERRORS], ids=[i for _, i in CTOR_VALUE_ERRORS])
def test_constructor_value_errors(kwargs: Dict[str, Any]) -> None:
    raises_cleanly(ValueError, pyiocp.SocketManager, Echo(), **kwargs)


def test_poll_mode_needs_one_worker() -> None:
    raises_cleanly(ValueError, pyiocp.SocketManager, None, workers=2)


def test_unknown_keyword_and_positional_options() -> None:
    raises_cleanly(TypeError, pyiocp.SocketManager, Echo(), worker=2)
    raises_cleanly(TypeError, pyiocp.SocketManager, Echo(), 2)  # options are keyword-only


def test_connection_cannot_be_made_directly() -> None:
    with pytest.raises(TypeError):
        pyiocp.Connection()


# ------------------------------------------------------------ listen


@pytest.mark.parametrize(
    "args, kwargs, exc",
    [
        ((None, 0), {}, TypeError),
        ((123, 0), {}, TypeError),
        ((b"127.0.0.1", 0), {}, TypeError),
        (("127.0.0.1", "80"), {}, TypeError),
        (("127.0.0.1", 1.0), {}, TypeError),
        (("127.0.0.1", None), {}, TypeError),
        (("127.0.0.1", -1), {}, ValueError),
        (("127.0.0.1", 65536), {}, ValueError),
        (("127.0.0.1", 0), {"backlog": 0}, ValueError),
        (("127.0.0.1", 0), {"backlog": -1}, ValueError),
        (("127.0.0.1", 0), {"backlog": "8"}, TypeError),
        (("127.0.0.1", 0), {"accepts": 0}, ValueError),
        (("127.0.0.1", 0), {"accepts": 1025}, ValueError),
        (("127.0.0.1", 0), {"accepts": 2.5}, TypeError),
        (("127.0.0.1", 0), {"reuse_port": 1}, TypeError),
        (("127.0.0.1", 0), {"reuse_port": "yes"}, TypeError),
        (("127.0.0.1", 0), {"tls": "yes"}, TypeError),  # not a pyiocp.TLSConfig
    ],
)
def test_listen_bad_arguments(iocp_manager: ManagerFactory, backend: str, args: Tuple[Any, ...],
                              kwargs: Dict[str, Any], exc: Type[BaseException]) -> None:
    mgr = iocp_manager(Echo(), backend=backend)
    raises_cleanly(exc, mgr.listen, *args, **kwargs)
    _still_works(mgr)


@pytest.mark.parametrize("host", ["no.such.host.invalid", "256.1.1.1", "bad host!", "::g"])
def test_listen_bad_address(iocp_manager: ManagerFactory, backend: str, host: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend)
    err = raises_cleanly(OSError, mgr.listen, host, 0)
    assert isinstance(err, socket.gaierror) or err.errno is not None
    _still_works(mgr)


def test_listen_on_an_address_not_of_this_host(iocp_manager: ManagerFactory, backend: str) -> None:
    # Binding only: no packet leaves the machine.
    mgr = iocp_manager(Echo(), backend=backend)
    err = raises_cleanly(OSError, mgr.listen, "192.0.2.1", 0)
    assert err.errno == errno.EADDRNOTAVAIL
    _still_works(mgr)


def test_listen_port_in_use(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = raises_cleanly(OSError, mgr.listen, "127.0.0.1", port)
        assert err.errno == errno.EADDRINUSE
    # and one of its own listeners, once its worker has posted its accepts
    # (on Windows each AcceptEx posted holds a new socket)
    lst = mgr.listen("127.0.0.1", 0)
    fds_settled()
    err = raises_cleanly(OSError, mgr.listen, "127.0.0.1", lst.address[1])
    assert err.errno == errno.EADDRINUSE
    assert mgr.stats()["listeners"] == 1
    _still_works(mgr)


# ------------------------------------------------------------ connect


@pytest.mark.parametrize(
    "args, kwargs, exc",
    [
        ((None, 80), {}, TypeError),
        ((("127.0.0.1", 80),), {}, TypeError),
        (("127.0.0.1", "80"), {}, TypeError),
        (("127.0.0.1", 0), {}, ValueError),
        (("127.0.0.1", -5), {}, ValueError),
        (("127.0.0.1", 70000), {}, ValueError),
        (("127.0.0.1", 80), {"timeout": -1}, ValueError),
        (("127.0.0.1", 80), {"timeout": math.nan}, ValueError),
        (("127.0.0.1", 80), {"timeout": "1"}, TypeError),
        (("", 80), {}, TypeError),  # a name that does not resolve: on_close, test_connect_names.py
    ],
)
def test_connect_bad_arguments(iocp_manager: ManagerFactory, backend: str, args: Tuple[Any, ...],
                               kwargs: Dict[str, Any], exc: Type[BaseException]) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    raises_cleanly(exc, mgr.connect, *args, **kwargs)
    assert rec.events == []  # no half-made connection reports anything
    assert mgr.connections == 0
    _still_works(mgr)
    rec.wait_all_closed(1)


# ------------------------------------------------------------ the rest


def test_poll_bad_arguments(iocp_manager: ManagerFactory, backend: str) -> None:
    with_handler = iocp_manager(Echo(), backend=backend)
    raises_cleanly(ValueError, with_handler.poll, 0)
    mgr = iocp_manager(None, backend=backend)
    raises_cleanly(ValueError, mgr.poll, 0, max=0)
    raises_cleanly(TypeError, mgr.poll, 0, max="1")
    raises_cleanly(ValueError, mgr.poll, -1)
    raises_cleanly(TypeError, mgr.poll, "1")
    assert mgr.poll(0) == []


def test_start_and_serve_forever_without_handler(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    raises_cleanly(ValueError, mgr.start)
    raises_cleanly(ValueError, mgr.serve_forever)


def test_get_bad_arguments(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend)
    raises_cleanly(TypeError, mgr.get, "1")
    raises_cleanly(TypeError, mgr.get, None)
    raises_cleanly(ValueError, mgr.get, -1)
    assert mgr.get(12345) is None


def test_close_negative_timeout(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend)
    raises_cleanly(ValueError, mgr.close, -1)
    raises_cleanly(ValueError, mgr.close, math.nan)
    assert not mgr.closed


def test_close_wrong_type_is_a_type_error(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend)
    raises_cleanly(TypeError, mgr.close, "1")


def test_send_wrong_types(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        for bad in ("text", 123, None, [1, 2], object()):
            with pytest.raises(TypeError):
                conn.send(bad)  # type: ignore[arg-type]
        conn.send(b"fine")
        assert recv_exactly(s, 4) == b"fine"
    rec.wait_all_closed(1)


def test_operations_on_a_closed_manager_raise_manager_closed(backend: str) -> None:
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend)
    mgr.listen("127.0.0.1", 0)
    mgr.close()
    assert mgr.closed
    raises_cleanly(pyiocp.ManagerClosed, mgr.listen, "127.0.0.1", 0)
    raises_cleanly(pyiocp.ManagerClosed, mgr.connect, "127.0.0.1", 80)
    raises_cleanly(pyiocp.ManagerClosed, mgr.post, "late")
    raises_cleanly(pyiocp.ManagerClosed, mgr.start)
    raises_cleanly(pyiocp.ManagerClosed, mgr.serve_forever)
    err = raises_cleanly(RuntimeError, mgr.start)  # ManagerClosed is a RuntimeError
    assert isinstance(err, pyiocp.ManagerClosed) and isinstance(err, pyiocp.Error)
    # what still works: stats, get, repr, close
    assert mgr.stats()["connections"] == 0
    assert mgr.get(1) is None
    assert "closed" in repr(mgr)
    mgr.close()
    assert rec.events == []

    poller = pyiocp.SocketManager(None, backend=backend)
    poller.close()
    raises_cleanly(pyiocp.ManagerClosed, poller.poll, 0)
    raises_cleanly(pyiocp.ManagerClosed, poller.post, 1)
    raises_cleanly(pyiocp.ManagerClosed, poller.listen, "127.0.0.1", 0)


def test_a_started_manager_closed_raises_manager_closed(backend: str) -> None:
    with pyiocp.SocketManager(Echo(), backend=backend) as mgr:
        mgr.start()
    ops: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = [
        (mgr.listen, ("127.0.0.1", 0)), (mgr.connect, ("127.0.0.1", 1)), (mgr.post, (None,)), (mgr.start, ())]
    for op, args in ops:
        raises_cleanly(pyiocp.ManagerClosed, op, *args)


def _still_works(mgr: pyiocp.SocketManager) -> None:
    """After a failed call the manager is whole: it listens and echoes."""
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address) as s:
        s.sendall(b"ok")
        assert recv_exactly(s, 2) == b"ok"
    lst.close()
    wait_until(lambda: mgr.connections == 0, what="the echo connection closed")


# Values too big for the engine's 64-bit fields: a ValueError (or being
# taken as "no limit", as math.inf is for timeouts), never OverflowError.
HUGE: List[Tuple[str, Callable[[pyiocp.SocketManager], Any]]] = [
    ("SocketManager(idle_timeout=1e10)", lambda mgr: pyiocp.SocketManager(Echo(), idle_timeout=1e10).close()),
    ("SocketManager(accept_timeout=1e12)", lambda mgr: pyiocp.SocketManager(Echo(), accept_timeout=1e12).close()),
    ("SocketManager(close_timeout=1e12)", lambda mgr: pyiocp.SocketManager(Echo(), close_timeout=1e12).close()),
    ("SocketManager(recv_buffer_limit=2**63)",
     lambda mgr: pyiocp.SocketManager(Echo(), recv_buffer_limit=2**63).close()),
    ("SocketManager(max_connections=2**70)", lambda mgr: pyiocp.SocketManager(Echo(), max_connections=2**70).close()),
    ("listen(backlog=2**40)", lambda mgr: mgr.listen("127.0.0.1", 0, backlog=2**40).close()),
    ("connect(timeout=1e20)", lambda mgr: mgr.connect("127.0.0.1", 9, timeout=1e20).abort()),
    ("get(2**64)", lambda mgr: mgr.get(2**64)),
]


@pytest.mark.parametrize("call", [c for _, c in HUGE], ids=[i for i, _ in HUGE])
def test_huge_numbers_are_value_errors(iocp_manager: ManagerFactory, backend: str,
                                       call: Callable[[pyiocp.SocketManager], Any]) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    before = fd_count()
    try:
        call(mgr)
    except ValueError:
        pass
    finally:
        rec.wait_all_closed()
    assert fd_count() == before


def test_huge_numbers_leave_nothing_behind(iocp_manager: ManagerFactory, backend: str) -> None:
    """Whatever they raise today, the calls above leave no fd or thread."""
    mgr = iocp_manager(Echo(), backend=backend)
    for _, call in HUGE:
        before = fd_count()
        try:
            call(mgr)
        except (ValueError, OverflowError):
            pass
        assert fd_count() == before
    _still_works(mgr)
