"""Backends: "auto" picks io_uring where it works and falls back to epoll,
saying why, where it does not."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import pyiocp
from iocp_helpers import CHILD_ECHO_SERVER, PYTHON, Echo, client, recv_exactly

# A child that forbids io_uring_setup with a seccomp filter (as a container
# runtime's policy may) before pyiocp loads, then reports what it got.
FORBIDDEN_CHILD = textwrap.dedent("""
    import ctypes, errno, platform, struct, sys

    AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[platform.machine()]
    IO_URING_SETUP = 425  # the same number on x86_64 and aarch64
    BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
    SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x00050000, 0x7FFF0000
    prog = [
        (BPF_LD_W_ABS, 0, 0, 4),                # seccomp_data.arch
        (BPF_JEQ_K, 0, 3, AUDIT_ARCH),          # another ABI: allow
        (BPF_LD_W_ABS, 0, 0, 0),                # seccomp_data.nr
        (BPF_JEQ_K, 0, 1, IO_URING_SETUP),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
                                                                 ctypes.byref(fprog), 0, 0):
        sys.exit("seccomp: " + errno.errorcode[ctypes.get_errno()])
""") + CHILD_ECHO_SERVER + textwrap.dedent("""
    mgr = pyiocp.SocketManager(Echo(), workers=2)
    lst = mgr.listen("127.0.0.1", 0)
    mgr.start()
    print("backend", mgr.stats()["backend"], flush=True)
    print("backends", *pyiocp.backends(), flush=True)
    for line in logs:
        print("log", line, flush=True)
    print("port", lst.address[1], flush=True)
    sys.stdin.readline()  # the parent has echoed through it
    mgr.close()
    try:
        pyiocp.SocketManager(Echo(), backend="io_uring")
    except OSError as exc:
        print("named", type(exc).__name__, errno.errorcode.get(exc.errno), exc, flush=True)
    else:
        print("named: no error", flush=True)
""")


@pytest.mark.linux  # seccomp, io_uring and epoll
def test_auto_falls_back_to_epoll_where_io_uring_is_forbidden() -> None:
    proc = subprocess.Popen([PYTHON, "-c", FORBIDDEN_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        got = {}
        logs = []
        while "port" not in got:
            line = proc.stdout.readline()
            assert line, proc.communicate(timeout=10)
            key, _, rest = line.rstrip("\n").partition(" ")
            if key == "log":
                logs.append(rest)
            else:
                got[key] = rest
        with client(("127.0.0.1", int(got["port"]))) as s:
            s.sendall(b"served on the fallback")
            assert recv_exactly(s, 22) == b"served on the fallback"
        out, err = proc.communicate("\n", timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert got["backend"] == "epoll"
    assert got["backends"] == "epoll"
    assert len(logs) == 1, logs
    assert "io_uring" in logs[0] and "not permitted" in logs[0] and "using epoll" in logs[0], logs
    # Asking for io_uring by name is an error at the call, saying why.
    assert out.startswith("named PermissionError EPERM [Errno 1] io_uring unavailable: "), out


def test_auto_picks_the_first_backend_that_works() -> None:
    # On Linux io_uring (CI's kernel allows it), then epoll; on Windows the
    # completion port.
    expected = ["iocp"] if sys.platform == "win32" else ["io_uring", "epoll"]
    assert pyiocp.backends() == expected
    with pyiocp.SocketManager(Echo()) as mgr:
        assert mgr.stats()["backend"] == expected[0]


def test_stats_names_the_backend_asked_for(backend: str) -> None:
    with pyiocp.SocketManager(Echo(), backend=backend) as mgr:
        assert mgr.stats()["backend"] == backend
