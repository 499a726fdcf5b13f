"""The checks of SocketManager's arguments: clear, typed errors at the call
(TypeError for a wrong type, ValueError for a value out of range), and the
defaults and bounds they use."""

from __future__ import annotations

import math
import socket
from typing import Any, Optional, Tuple

DEFAULT_RECV_BUFFER_LIMIT = 256 << 10
DEFAULT_SEND_BUFFER_LIMIT = 4 << 20
DEFAULT_CLOSE_TIMEOUT = 10.0
DEFAULT_BACKLOG = 1024
DEFAULT_ACCEPTS = 16
MAX_WORKERS = 256
MAX_ACCEPTS = 1024
MAX_BUFFER = 1 << 40  # a buffer limit past a TiB is a typo
MAX_CONNECTIONS = 1 << 31
MAX_BACKLOG = (1 << 31) - 1
MAX_CONN_ID = (1 << 64) - 1
# Timeouts longer than this (about 31 years) are typos; None or math.inf
# mean no timeout.
MAX_SECONDS = 1e9
# A batch of callbacks that holds its worker longer than this is logged.
DEFAULT_SLOW_CALLBACK_WARNING = 0.1
# close()'s timeout when none is given (and a SIGTERM's, see serve_forever).
DEFAULT_MANAGER_CLOSE_TIMEOUT = 5.0


def _int_arg(name: str, value: Any, lo: int, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name}={value}: must be {bound}")
    return value


def _seconds(name: str, value: Any) -> float:
    """A number of seconds, checked: math.inf is allowed (no limit)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name}={value}: must be a non-negative number of seconds")
    if value > MAX_SECONDS and not math.isinf(value):
        raise ValueError(f"{name}={value}: must be at most {MAX_SECONDS:g} seconds (None or math.inf: no limit)")
    return float(value)


def _seconds_ns(name: str, value: Any) -> int:
    """A timeout in seconds (None or math.inf: none) as nanoseconds (0: none)."""
    if value is None:
        return 0
    value = _seconds(name, value)
    if math.isinf(value):
        return 0
    return max(1, int(value * 1e9))


def _resolve(host: Any, port: Any, passive: bool) -> Tuple[str, int]:
    """The numeric address of host, as the Go side takes it."""
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    port = _int_arg("port", port, 0 if passive else 1, 65535)
    if host == "" and passive:
        return "0.0.0.0", port
    flags = socket.AI_PASSIVE if passive else 0
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
    return infos[0][4][0], port
