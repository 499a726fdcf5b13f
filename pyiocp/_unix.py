"""The checks of listen_unix's and connect_unix's arguments: a Unix domain
socket's name, as the Go side takes it (bytes), and a socket file's mode."""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, Optional, Union

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# sun_path's size: a path takes at most one byte less (its NUL), an
# abstract name ("\0" and up to 107 bytes) all of it.
UNIX_NAME_MAX = 108


def unix_supported() -> None:
    """Raises where pyiocp has no Unix domain sockets."""
    if sys.platform == "win32":
        raise OSError(errno.EAFNOSUPPORT, "Unix domain sockets are not supported by pyiocp on Windows "
                      "(the iocp backend is tested under Wine, which has no AF_UNIX)")


def unix_path(path: Any) -> bytes:
    """path (str, bytes or os.PathLike) as bytes; a leading NUL names
    Linux's abstract namespace."""
    if isinstance(path, bool) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str, bytes or os.PathLike, not {type(path).__name__}")
    raw = os.fsencode(path)
    if raw in (b"", b"\0"):
        raise ValueError("path must not be empty")
    if b"\0" in raw[1:]:
        raise ValueError(f"path {path!r}: must not hold a NUL byte (but an abstract name's first)")
    limit = UNIX_NAME_MAX if raw.startswith(b"\0") else UNIX_NAME_MAX - 1
    if len(raw) > limit:
        raise ValueError(f"path {path!r}: {len(raw)} bytes, longer than a Unix domain socket's name "
                         f"may be ({limit} bytes)")
    return raw


def unix_mode(mode: Optional[int]) -> int:
    """The socket file's permission bits (0: left as the umask makes them)."""
    if mode is None:
        return 0
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise TypeError(f"mode must be an int (permission bits, say 0o660), not {type(mode).__name__}")
    if not 0 <= mode <= 0o777:
        raise ValueError(f"mode={mode:#o}: must be permission bits, 0 to 0o777")
    return mode
