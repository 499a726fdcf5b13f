"""What a test leaves behind: file descriptors (on Windows, handles of
files, sockets and pipes) and threads, compared with a snapshot taken
before it."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Set

from .. import _pyiocp
from .._handler import Handler
from .._manager import SocketManager
from .._pyiocp import Connection

__all__ = ["Snapshot", "fd_table", "leaks_since", "snapshot", "warm_up"]


def _fd_dir() -> str:
    for where in ("/proc/self/fd", "/dev/fd"):  # Linux; macOS and the BSDs
        if os.path.isdir(where):
            return where
    return ""


if sys.platform == "win32":
    import ctypes

    _SYSTEM_EXTENDED_HANDLE_INFORMATION = 64
    _OBJECT_TYPE_INFORMATION = 2
    _STATUS_INFO_LENGTH_MISMATCH = 0xC0000004
    _SO_TYPE = 0x1008
    _file_type: Optional[int] = None  # the object type index of File, learnt once

    class _HandleEntry(ctypes.Structure):  # SYSTEM_HANDLE_TABLE_ENTRY_INFO_EX
        _fields_ = [("Object", ctypes.c_void_p), ("UniqueProcessId", ctypes.c_size_t),
                    ("HandleValue", ctypes.c_size_t), ("GrantedAccess", ctypes.c_ulong),
                    ("CreatorBackTraceIndex", ctypes.c_ushort), ("ObjectTypeIndex", ctypes.c_ushort),
                    ("HandleAttributes", ctypes.c_ulong), ("Reserved", ctypes.c_ulong)]

    class _TypeName(ctypes.Structure):  # the UNICODE_STRING that starts OBJECT_TYPE_INFORMATION
        _fields_ = [("Length", ctypes.c_ushort), ("MaximumLength", ctypes.c_ushort), ("Buffer", ctypes.c_wchar_p)]

    def _handle_table() -> Dict[int, str]:
        """This process's handles of kernel objects of type File (files,
        sockets, pipes), by value. One NtQuerySystemInformation call lists
        every handle with its object type (as psutil lists open files);
        GetProcessHandleCount would count threads and events too, which the
        runtimes make when they like (and under Wine it says 0). The handles
        behind descriptors 0, 1 and 2 are left out: redirecting a standard
        stream (as pytest's output capture does, with dup2) replaces them."""
        import msvcrt

        global _file_type
        standard = set()
        for fd in (0, 1, 2):
            try:
                standard.add(msvcrt.get_osfhandle(fd))
            except OSError:
                pass  # not open
        ntdll = ctypes.WinDLL("ntdll")
        ntdll.NtQuerySystemInformation.restype = ctypes.c_ulong
        ntdll.NtQueryObject.restype = ctypes.c_ulong
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            status = ntdll.NtQuerySystemInformation(_SYSTEM_EXTENDED_HANDLE_INFORMATION, buf, size, None)
            if status != _STATUS_INFO_LENGTH_MISMATCH:
                break
            size *= 4
        if status != 0:
            raise OSError(f"NtQuerySystemInformation: NTSTATUS {status:#x}")
        count = ctypes.c_size_t.from_buffer(buf).value
        entries = (_HandleEntry * count).from_buffer(buf, 2 * ctypes.sizeof(ctypes.c_size_t))
        pid = os.getpid()
        mine = [(e.HandleValue, e.ObjectTypeIndex) for e in entries if e.UniqueProcessId == pid]
        for handle, kind in mine:
            if _file_type is not None:
                break
            info = ctypes.create_string_buffer(1024)
            if ntdll.NtQueryObject(ctypes.c_void_p(handle), _OBJECT_TYPE_INFORMATION, info, len(info), None) == 0:
                name = _TypeName.from_buffer(info)
                if name.Buffer and name.Buffer[:name.Length // 2] == "File":
                    _file_type = kind
        return {handle: _describe(handle) for handle, kind in mine if kind == _file_type and handle not in standard}

    def _describe(handle: int) -> str:
        """What a File handle is: "socket", "pipe", a path, "char device"."""
        kernel32 = ctypes.WinDLL("kernel32")
        kernel32.GetFileType.argtypes = [ctypes.c_void_p]
        kernel32.GetFinalPathNameByHandleW.argtypes = [ctypes.c_void_p, ctypes.c_wchar_p, ctypes.c_ulong,
                                                       ctypes.c_ulong]
        ws2 = ctypes.WinDLL("ws2_32")
        ws2.getsockopt.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        kind = kernel32.GetFileType(handle)
        if kind == 3:  # FILE_TYPE_PIPE: a pipe, or a socket if it has socket options
            value, size = ctypes.c_int(), ctypes.c_int(ctypes.sizeof(ctypes.c_int))
            is_socket = ws2.getsockopt(handle, socket.SOL_SOCKET, _SO_TYPE, ctypes.byref(value), ctypes.byref(size)) == 0
            return "socket" if is_socket else "pipe"
        if kind == 1:  # FILE_TYPE_DISK
            path = ctypes.create_unicode_buffer(1024)
            if kernel32.GetFinalPathNameByHandleW(handle, path, len(path), 0):
                return path.value
            return "file"
        return "char device" if kind == 2 else "file"


def fd_table() -> Dict[int, str]:
    """This process's open file descriptors and what each one is (on Linux
    ``socket:[inode]``, a path, ``anon_inode:[eventpoll]``, ...; on Windows
    its handles of files, sockets and pipes)."""
    if sys.platform == "win32":
        return _handle_table()
    where = _fd_dir()
    if not where:
        return {}
    out: Dict[int, str] = {}
    for name in os.listdir(where):
        try:
            out[int(name)] = os.readlink(f"{where}/{name}") if where == "/proc/self/fd" else "fd"
        except OSError:
            pass  # the descriptor os.listdir itself used
    return out


class Snapshot(NamedTuple):
    fds: Dict[int, str]
    threads: Set[threading.Thread]


def snapshot() -> Snapshot:
    return Snapshot(fd_table(), set(threading.enumerate()))


def leaks_since(before: Snapshot, settle: float) -> List[str]:
    """What is open now and was not in ``before``: threads still running and
    descriptors still open after waiting up to ``settle`` seconds for them
    to go. Empty if nothing leaked."""
    deadline = time.monotonic() + settle
    while True:
        threads = [t for t in threading.enumerate() if t not in before.threads and t.is_alive()]
        now = fd_table()
        new = {fd: what for fd, what in now.items() if before.fds.get(fd) != what}
        if (not threads and not new) or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    problems = []
    if threads:
        problems.append(f"{len(threads)} thread(s) started during the test still running after {settle:g} s: "
                        + ", ".join(repr(t.name) for t in threads))
    if new:
        problems.append(f"{len(new)} file descriptor(s) opened during the test still open after {settle:g} s: "
                        + ", ".join(f"{fd} -> {what}" for fd, what in sorted(new.items())))
    return problems


class _Echo(Handler):
    def on_recv(self, conn: Connection, data: bytes) -> None:
        conn.send(data)


_warmed = False


def warm_up() -> None:
    """Make the Go runtime open the descriptors it keeps for the life of the
    process (its own poller and its wake-up eventfd), which it otherwise
    does at a moment of its choosing, such as a GC cycle: before the first
    snapshot, so that they are never counted as a test's leak. Once per
    process."""
    global _warmed
    if _warmed:
        return
    _warmed = True
    for backend in _pyiocp.backends():
        with SocketManager(_Echo(), backend=backend) as mgr:
            lst = mgr.listen("127.0.0.1", 0)
            mgr.start()
            with socket.create_connection(lst.address, timeout=5) as s:
                s.sendall(b"warm")
                s.recv(4)
            out = mgr.connect(*lst.address)
            deadline = time.monotonic() + 2
            while mgr.stats()["accepted"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            out.close()
    # The load generator uses Go's timers and net package: a short run
    # against a port nobody listens on starts the runtime's poller.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        run = _pyiocp.bench_start("127.0.0.1:%d" % reserved.getsockname()[1], 1, 1, 1, 1_000_000, 0)
        try:
            while _pyiocp.bench_wait(run, 100_000_000) is None:
                pass
        except OSError:
            pass  # refused, as intended
