"""listen_socket()'s argument: a socket that already listens (or its
descriptor), duplicated for the engine, which owns the duplicate."""

from __future__ import annotations

import os
import socket
from typing import Any, Tuple


def adopt(sock: Any) -> Tuple[socket.socket, Any]:
    """A duplicate of sock to hand to the engine, and the address its
    listener reports: (host, port), or a Unix domain socket's name."""
    if isinstance(sock, bool) or not isinstance(sock, (socket.socket, int)):
        raise TypeError(f"sock must be a socket.socket or a descriptor (int), not {type(sock).__name__}")
    if isinstance(sock, int):
        if sock < 0:
            raise ValueError(f"sock: {sock} is not a descriptor")
        try:
            probe = socket.socket(fileno=sock)  # the family and type read from the socket
        except OSError as exc:
            raise ValueError(f"sock: descriptor {sock} is not a socket ({exc.strerror or exc})") from None
        try:
            dup = probe.dup()
        finally:
            probe.detach()  # the caller's, left open
    else:
        dup = sock.dup()
    try:
        if dup.type != socket.SOCK_STREAM:
            raise ValueError("sock must be a listening stream socket (SOCK_STREAM)")
        name = dup.getsockname()
    except BaseException:
        dup.close()
        raise
    if isinstance(name, (str, bytes)):  # Unix domain: its path, or an abstract name with its NUL
        return dup, os.fsdecode(name)
    return dup, (name[0], name[1])
