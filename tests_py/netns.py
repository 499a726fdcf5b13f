"""Network namespaces a test makes for itself (Linux, as root): "hosts"
joined by veth pairs, with addresses and sysctls of their own, removed
again however the test ends. Nothing of the machine's own network is
touched: the veth pairs are made inside the namespaces, and the addresses
exist only there.

A thread enters a namespace with setns(2) (``Namespaces.entered``): the
sockets it makes, the threads and the processes it starts belong to that
namespace, while the rest of the test process stays where it is."""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
from typing import Iterator, List

import pytest

CLONE_NEWNET = 0x40000000
IP = "ip"
_made = itertools.count()


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)  # here, not at import: test_serve runs on Windows too
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Namespaces:
    """The namespaces of one test, named uniquely on the machine
    (pyiocp-<pid>-<n>-<name>). close() kills what still runs in them and
    deletes them."""

    def __init__(self) -> None:
        self.prefix = f"pyiocp-{os.getpid()}-{next(_made)}-"
        self.names: List[str] = []

    def ip(self, *args: str) -> "subprocess.CompletedProcess[str]":
        try:
            r = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            pytest.fail("no `ip` command: these tests need iproute2 (make deps installs it)")
        if r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
        return r

    def add(self, name: str) -> str:
        """A new namespace (its loopback up); gives its full name."""
        if not self.names:
            self.remove_abandoned()
        full = self.prefix + name
        try:
            self.ip("netns", "add", full)
        except RuntimeError as exc:
            pytest.fail(f"cannot make a network namespace ({exc}): these tests need root "
                        f"(CAP_SYS_ADMIN and CAP_NET_ADMIN)")
        self.names.append(full)
        self.ip("-n", full, "link", "set", "lo", "up")
        return full

    def link(self, a: str, a_addr: str, b: str, b_addr: str) -> None:
        """A veth pair between namespaces a and b, with an address (CIDR)
        at each end, both up. Its ends are named after the other side."""
        a_dev, b_dev = "to-" + b[len(self.prefix):][:12], "to-" + a[len(self.prefix):][:12]
        self.ip("-n", a, "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b)
        for ns, dev, addr in ((a, a_dev, a_addr), (b, b_dev, b_addr)):
            self.ip("-n", ns, "addr", "add", addr, "dev", dev)
            self.ip("-n", ns, "link", "set", dev, "up")

    def sysctl(self, ns: str, key: str, value: str) -> None:
        """Sets a per-namespace sysctl (net.ipv4.*) in ns only."""
        with self.entered(ns):
            # /proc/sys/net is the namespace of whoever opens it: this thread.
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)

    @contextlib.contextmanager
    def entered(self, ns: str) -> Iterator[None]:
        """The calling thread in ns for the block (and the threads and
        processes it starts, which stay there)."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            try:
                yield
            finally:
                _setns(back)
        finally:
            os.close(back)

    def exec(self, ns: str) -> List[str]:
        """The prefix of a command run in ns."""
        return [IP, "netns", "exec", ns]

    def close(self) -> None:
        """Kills every process still in the namespaces (only this test's
        processes run there), then deletes them."""
        errors = delete(self.names)
        self.names.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    def remove_abandoned(self) -> None:
        """The namespaces of a test run that ended without its cleanup
        (killed by a timeout): those named after a process that is gone."""
        listed = self.ip("netns", "list").stdout.split()
        abandoned = []
        for name in listed:
            parts = name.split("-")
            if len(parts) > 3 and parts[0] == "pyiocp" and parts[1].isdigit() and \
                    not os.path.exists(f"/proc/{parts[1]}"):
                abandoned.append(name)
        delete(abandoned)


def delete(names: List[str]) -> List[str]:
    for ns in names:
        r = subprocess.run([IP, "netns", "pids", ns], capture_output=True, text=True, timeout=30)
        for pid in r.stdout.split():
            if int(pid) == os.getpid():
                continue  # a thread of this process left inside: not to be killed
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    errors = []
    for ns in reversed(names):
        r = subprocess.run([IP, "netns", "del", ns], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
    return errors


@contextlib.contextmanager
def namespaces() -> Iterator[Namespaces]:
    ns = Namespaces()
    try:
        yield ns
    finally:
        ns.close()
