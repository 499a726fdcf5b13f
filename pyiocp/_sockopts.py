"""Socket options of listen() and connect(): pyiocp.KeepAlive and the
checks that turn the keyword arguments into what the engine takes."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

from ._args import _int_arg

MAX_KEEP_SECONDS = 32767  # Linux's bound on the keepalive idle time and interval
MAX_KEEP_COUNT = 127
MAX_SOCKET_BUFFER = 1 << 30


def _keep_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"KeepAlive {name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and 0 < value <= MAX_KEEP_SECONDS):
        raise ValueError(f"KeepAlive {name}={value!r}: must be more than 0 and at most {MAX_KEEP_SECONDS} seconds")
    return float(value)


class KeepAlive:
    """TCP keepalive probes: after idle seconds without traffic a probe is
    sent every interval seconds, and count unanswered probes reset the
    connection (on_close gets the OSError). Times are rounded up to whole
    seconds; count None keeps the OS's (Linux 9, Windows 10). On Windows a
    count needs Windows 10 1703 or later; where the OS cannot set one
    (Wine), asking for it is an OSError (ENOPROTOOPT), never ignored."""

    __slots__ = ("idle", "interval", "count")
    idle: float
    interval: float
    count: Optional[int]

    def __init__(self, idle: float, interval: float, count: Optional[int] = None) -> None:
        # Immutable once made (hashable, and what was checked stays so).
        object.__setattr__(self, "idle", _keep_seconds("idle", idle))
        object.__setattr__(self, "interval", _keep_seconds("interval", interval))
        object.__setattr__(self, "count",
                           None if count is None else _int_arg("KeepAlive count", count, 1, MAX_KEEP_COUNT))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a KeepAlive cannot be changed: make a new one")

    def __repr__(self) -> str:
        return f"KeepAlive(idle={self.idle:g}, interval={self.interval:g}, count={self.count})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeepAlive) and (self.idle, self.interval, self.count) == \
            (other.idle, other.interval, other.count)

    def __hash__(self) -> int:
        return hash((self.idle, self.interval, self.count))


# What the engine takes for a socket's options: (nodelay, keepalive on,
# idle ns, interval ns, count, rcvbuf, sndbuf); 0 for the OS's value.
SockOpts = Tuple[bool, bool, int, int, int, int, int]


def _keepalive_arg(keepalive: Any) -> Optional[KeepAlive]:
    if keepalive is not None and not isinstance(keepalive, KeepAlive):
        raise TypeError(f"keepalive must be a pyiocp.KeepAlive or None, not {type(keepalive).__name__}")
    return keepalive


def sockopts(nodelay: Any, keepalive: Any, rcvbuf: Any, sndbuf: Any) -> SockOpts:
    """Checks listen()'s and connect()'s socket options."""
    if not isinstance(nodelay, bool):
        raise TypeError(f"nodelay must be a bool, not {type(nodelay).__name__}")
    ka = _keepalive_arg(keepalive)
    bufs = [0 if v is None else _int_arg(name, v, 1, MAX_SOCKET_BUFFER)
            for name, v in (("rcvbuf", rcvbuf), ("sndbuf", sndbuf))]
    if ka is None:
        return (nodelay, False, 0, 0, 0, bufs[0], bufs[1])
    return (nodelay, True, int(ka.idle * 1e9), int(ka.interval * 1e9), ka.count or 0, bufs[0], bufs[1])
