"""Framing: pyiocp.Lines and pyiocp.LengthPrefixed, which make the engine
split a connection's bytes into frames (one on_recv per whole frame)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from ._args import _int_arg

MAX_TERMINATOR = 16
MAX_FRAME = (1 << 63) - 1

# What the engine takes (framing.c): (kind, max, terminator,
# keep_terminator, header_size, little_endian).
_LINES, _LENGTH = 1, 2
Spec = Tuple[int, int, bytes, bool, int, bool]


class _Framing:
    """Immutable once made: a listener's connections share it."""

    __slots__ = ()

    @property
    def _spec(self) -> Spec:
        raise NotImplementedError

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a {type(self).__name__} cannot be changed: make a new one")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._spec == self._spec  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._spec)


class Lines(_Framing):
    """Frames end with terminator; on_recv gets the line without it (with
    it if keep_terminator); an empty line is b"". A line longer than
    max_line (not counting the terminator) ends the connection with a
    ProtocolError as soon as it is known; send_frame adds the terminator."""

    __slots__ = ("max_line", "terminator", "keep_terminator")
    max_line: int
    terminator: bytes
    keep_terminator: bool

    def __init__(self, max_line: int = 65536, terminator: bytes = b"\n", keep_terminator: bool = False) -> None:
        max_line = _int_arg("max_line", max_line, 1, MAX_FRAME)
        if not isinstance(terminator, (bytes, bytearray)):
            raise TypeError(f"terminator must be bytes, not {type(terminator).__name__}")
        if not 1 <= len(terminator) <= MAX_TERMINATOR:
            raise ValueError(f"terminator={bytes(terminator)!r}: must be 1 to {MAX_TERMINATOR} bytes")
        if not isinstance(keep_terminator, bool):
            raise TypeError(f"keep_terminator must be a bool, not {type(keep_terminator).__name__}")
        object.__setattr__(self, "max_line", max_line)
        object.__setattr__(self, "terminator", bytes(terminator))
        object.__setattr__(self, "keep_terminator", keep_terminator)

    @property
    def _spec(self) -> Spec:
        return (_LINES, self.max_line, self.terminator, self.keep_terminator, 0, False)

    def __repr__(self) -> str:
        return f"Lines(max_line={self.max_line}, terminator={self.terminator!r}, keep_terminator={self.keep_terminator})"


class LengthPrefixed(_Framing):
    """Frames are an unsigned length of header_size bytes (1, 2, 4 or 8, in
    byteorder "big" or "little"), then that many bytes; on_recv gets the
    payload. An announced length over max_size ends the connection with a
    ProtocolError at once (a max_size over what the header can say bounds
    nothing more than the header does); send_frame adds the header."""

    __slots__ = ("header_size", "byteorder", "max_size")
    header_size: int
    byteorder: str
    max_size: int

    def __init__(self, header_size: int = 4, byteorder: str = "big", max_size: int = 16 << 20) -> None:
        header_size = _int_arg("header_size", header_size, 1, 8)
        if header_size not in (1, 2, 4, 8):
            raise ValueError(f"header_size={header_size}: must be 1, 2, 4 or 8")
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder={byteorder!r}: must be 'big' or 'little'")
        max_size = _int_arg("max_size", max_size, 0, MAX_FRAME)
        object.__setattr__(self, "header_size", header_size)
        object.__setattr__(self, "byteorder", byteorder)
        object.__setattr__(self, "max_size", max_size)

    @property
    def _spec(self) -> Spec:
        return (_LENGTH, self.max_size, b"", False, self.header_size, self.byteorder == "little")

    def __repr__(self) -> str:
        return f"LengthPrefixed(header_size={self.header_size}, byteorder={self.byteorder!r}, max_size={self.max_size})"


Framing = Optional[_Framing]


def framing_arg(framing: Any) -> Framing:
    """Checks a framing= argument."""
    if framing is not None and not isinstance(framing, _Framing):
        raise TypeError(f"framing must be pyiocp.Lines, pyiocp.LengthPrefixed or None, not {type(framing).__name__}")
    return framing
