"""What the command line's tools share: exit codes, argument types, and
SIGTERM handled as Ctrl-C."""

from __future__ import annotations

import argparse
from types import FrameType
from typing import Any, Callable, Optional

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    name = getattr(kind, "__name__", "number")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {name}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0-65535")
    return value


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def unix_name(text: str) -> str:
    """A --unix argument as listen_unix takes it: a leading @ (as ss and
    Go spell it) names the abstract namespace, which Python spells with a
    NUL."""
    return "\0" + text[1:] if text.startswith("@") else text
