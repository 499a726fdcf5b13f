"""The supervisor's signals, with gunicorn's meanings. A handler only
records the signal; the supervisor's loop acts on it (within a tick), so
nothing runs inside a signal handler but an append.

TERM: graceful stop ("stop"); INT: the same, or an immediate stop when a
stop is under way (Ctrl-C twice); QUIT: immediate stop ("quit"); HUP:
reload; TTIN, TTOU: one process more, one less. Windows has only INT and
BREAK (Ctrl-C, Ctrl-Break), INT as on POSIX, BREAK the graceful stop."""

from __future__ import annotations

import collections
import signal
import sys
from types import FrameType
from typing import Any, Deque, Dict, Optional

ACTIONS: Dict[int, str] = {signal.SIGTERM: "stop", signal.SIGINT: "interrupt"}
if sys.platform == "win32":
    ACTIONS[signal.SIGBREAK] = "stop"
else:
    ACTIONS.update({signal.SIGQUIT: "quit", signal.SIGHUP: "reload",
                    signal.SIGTTIN: "more", signal.SIGTTOU: "fewer"})


class Signals:
    """The actions asked for by signals, oldest first."""

    def __init__(self) -> None:
        self.pending: Deque[str] = collections.deque()
        self._previous: Dict[int, Any] = {}

    def _record(self, signum: int, frame: Optional[FrameType]) -> None:
        self.pending.append(ACTIONS[signum])

    def install(self) -> None:
        for sig in ACTIONS:
            self._previous[sig] = signal.signal(sig, self._record)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def take(self) -> Optional[str]:
        return self.pending.popleft() if self.pending else None
