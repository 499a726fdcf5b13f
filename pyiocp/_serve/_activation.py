"""Listening sockets the supervisor holds and its processes share:
systemd's (socket activation: LISTEN_PID, LISTEN_FDS, descriptors from 3
on) and the ones it makes for unix: binds (Unix domain sockets have no
SO_REUSEPORT). Each process serves a duplicate (listen_socket), passed
to it under the same number (pass_fds), so that a process that stops
closes only its own: the socket, and its queue, live on."""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import sys
from typing import List

logger = logging.getLogger("pyiocp.serve")

SD_LISTEN_FDS_START = 3
UNIX_BACKLOG = 1024


def systemd_fds() -> List[int]:
    """The descriptors systemd passed to this process, as sd_listen_fds()
    finds them; the variables are removed, as sd_listen_fds(1) does, so
    that no child takes them for its own."""
    if sys.platform == "win32":
        return []
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if pid is None or count is None:
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if pid != str(os.getpid()):
        return []  # meant for another process
    try:
        n = int(count)
    except ValueError:
        logger.warning("LISTEN_FDS=%r is not a number: socket activation ignored", count)
        return []
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + max(0, n)))
    for fd in fds:
        os.set_inheritable(fd, False)  # passed to the processes by pass_fds only
    return fds


def unix_listener(path: str) -> socket.socket:
    """A listening Unix domain socket at path. A socket file nobody listens
    on (left by a server that is gone) is replaced; one something listens
    on, or any other file, is OSError EADDRINUSE."""
    if sys.platform == "win32":
        raise OSError(errno.EAFNOSUPPORT, "Unix domain sockets are not supported on Windows")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise OSError(errno.EADDRINUSE, f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
            except ConnectionRefusedError:
                os.unlink(path)  # stale
            else:
                raise OSError(errno.EADDRINUSE, f"something listens on {path} already")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path)
        s.listen(UNIX_BACKLOG)
    except BaseException:
        s.close()
        raise
    return s
