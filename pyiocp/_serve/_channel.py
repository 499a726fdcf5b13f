"""The pipe on which a child reports to the supervisor: JSON lines (ready,
draining, its stats() once a second). POSIX passes the pipe's write end as
a file descriptor (pass_fds); Windows as an inheritable handle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import IO, Any, Dict, Tuple


def make_pipe() -> Tuple[int, int, Dict[str, Any]]:
    """(read fd, write fd, the Popen arguments that hand the write end to
    the child); the number the child opens is channel_number(write fd)."""
    r, w = os.pipe()
    if sys.platform == "win32":
        import msvcrt
        handle = msvcrt.get_osfhandle(w)
        os.set_handle_inheritable(handle, True)
        return r, w, {"startupinfo": subprocess.STARTUPINFO(lpAttributeList={"handle_list": [handle]})}
    return r, w, {"pass_fds": (w,)}


def channel_number(w: int) -> int:
    if sys.platform == "win32":
        import msvcrt
        return int(msvcrt.get_osfhandle(w))
    return w


def open_channel(number: int) -> IO[bytes]:
    """The child's end, from the number on its command line."""
    if sys.platform == "win32":
        import msvcrt
        number = msvcrt.open_osfhandle(number, os.O_WRONLY)
    return os.fdopen(number, "wb", buffering=0)


def send(out: IO[bytes], event: str, **fields: Any) -> None:
    fields["event"] = event
    out.write(json.dumps(fields).encode() + b"\n")

