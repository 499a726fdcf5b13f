"""listen(proxy_protocol=...): behind a load balancer that sends a PROXY
protocol header, Connection.peer is the client the header names and
Connection.proxy the balancer; a connection without a good header, or
from a source not allowed, is reset unseen. Tested with headers written
by hand and with HAProxy (Debian's haproxy) in front."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple, Type

import pytest

import pyiocp
from iocp_helpers import LOOPBACK, WAIT, Recorder, client, peer_sees_the_end, recv_exactly, reap, wait_until
from pyiocp.testing import ManagerFactory

CLIENT = ("203.0.113.7", 51000)


def v1(src: Tuple[str, int], dst: Tuple[str, int]) -> bytes:
    proto = "TCP6" if ":" in src[0] else "TCP4"
    return f"PROXY {proto} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


def v2(src: Tuple[str, int], dst: Tuple[str, int], local: bool = False) -> bytes:
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if local:
        return sig + bytes([0x20, 0x00, 0, 0])
    body = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack("!HH", src[1], dst[1])
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.mark.parametrize("header", ["v1", "v2"])
def test_the_header_names_the_peer(iocp_manager: ManagerFactory, backend: str, header: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, proxy_protocol="auto")
    hdr = v1(CLIENT, lst.address) if header == "v1" else v2(CLIENT, lst.address)
    with client(lst.address) as s:
        s.sendall(hdr + b"first")  # the first request in the same segment
        assert recv_exactly(s, 5) == b"first"
        conn = rec.first_conn()
        assert conn.peer == CLIENT
        assert conn.proxy == s.getsockname()[:2]
    rec.wait_closed(conn.id)
    assert bytes(rec.data[conn.id]) == b"first"  # the header never reaches the handler
    assert mgr.stats()["proxy_errors"] == 0


def test_a_local_header_keeps_the_connection_addresses(iocp_manager: ManagerFactory, backend: str) -> None:
    """v2 LOCAL: the balancer's own health check."""
    rec = Recorder(echo=True)
    lst = iocp_manager(rec, backend=backend).listen(LOOPBACK, 0, proxy_protocol="v2")
    with client(lst.address) as s:
        s.sendall(v2(CLIENT, lst.address, local=True) + b"ok")
        assert recv_exactly(s, 2) == b"ok"
        conn = rec.first_conn()
        assert conn.peer == s.getsockname()[:2]
        assert conn.proxy is None


def test_bad_headers_are_reset_unseen(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend, accept_timeout=0.5)
    lst = mgr.listen(LOOPBACK, 0, proxy_protocol="v1")
    strict = mgr.listen(LOOPBACK, 0, proxy_protocol="v1", proxy_allow_from=["10.0.0.0/8", "192.0.2.0/24"])
    sends = [(lst, b"GET / HTTP/1.1\r\n\r\n"), (lst, b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n"),
             (lst, v2(CLIENT, lst.address)), (lst, b""), (strict, v1(CLIENT, strict.address))]
    for where, data in sends:
        try:
            with client(where.address) as s:
                s.sendall(data)
                peer_sees_the_end(s)
        except ConnectionResetError:
            pass  # reset as accepted (the source not allowed) before the connect was seen to complete
    wait_until(lambda: mgr.stats()["proxy_errors"] == len(sends), what="every bad header counted")
    with client(lst.address) as s:
        s.sendall(v1(CLIENT, lst.address) + b"fine")
        assert recv_exactly(s, 4) == b"fine"
    assert rec.count("accept") == 1
    assert mgr.stats()["timed_out"] == 0  # the silent one is a PROXY error


def test_without_proxy_protocol_proxy_is_none(iocp_manager: ManagerFactory) -> None:
    rec = Recorder(echo=True)
    lst = iocp_manager(rec).listen(LOOPBACK, 0)
    with client(lst.address) as s:
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        assert rec.first_conn().proxy is None


@pytest.mark.linux  # Unix domain sockets: pyiocp has none on Windows
def test_a_unix_listener_reads_the_header(iocp_manager: ManagerFactory, tmp_path: Path) -> None:
    rec = Recorder(echo=True)
    lst = iocp_manager(rec).listen_unix(str(tmp_path / "s"), proxy_protocol="v1")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(WAIT)
        s.connect(str(tmp_path / "s"))
        s.sendall(v1(CLIENT, ("192.0.2.1", 443)) + b"hi")
        assert recv_exactly(s, 2) == b"hi"
        conn = rec.first_conn()
        assert conn.peer == CLIENT
        assert conn.proxy == ""  # an unnamed Unix domain peer
    assert lst.address == str(tmp_path / "s")


def test_bad_arguments(iocp_manager: ManagerFactory) -> None:
    mgr = iocp_manager(Recorder())
    cases: List[Tuple[Dict[str, Any], Type[Exception], str]] = [
        ({"proxy_protocol": "v3"}, ValueError, "proxy_protocol"),
        ({"proxy_protocol": 1}, TypeError, "proxy_protocol"),
        ({"proxy_allow_from": "10.0.0.0/8"}, ValueError, "needs proxy_protocol"),
        ({"proxy_protocol": "v1", "proxy_allow_from": "10.0.0.0/33"}, ValueError, "CIDR"),
        ({"proxy_protocol": "v1", "proxy_allow_from": ["example.com"]}, ValueError, "CIDR"),
        ({"proxy_protocol": "v1", "proxy_allow_from": [10]}, TypeError, "str"),
        ({"proxy_protocol": "v1", "proxy_allow_from": 10}, TypeError, "iterable"),
        ({"proxy_protocol": "v1", "proxy_allow_from": []}, ValueError, "no source"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            mgr.listen(LOOPBACK, 0, **kwargs)
    assert mgr.stats()["listeners"] == 0
    lst = mgr.listen(LOOPBACK, 0, proxy_protocol="v2", proxy_allow_from="10.0.0.0/8, ::1, 127.0.0.1")
    lst.close()


# -- with HAProxy in front

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Tuple[int, List[Tuple[str, int, str]]]]:
    """HAProxy in TCP mode in front of a pyiocp server port it is given
    back: one frontend per (host, header) pair, sending that header. It is
    ready once a frontend of its own, which refuses every connection,
    accepts one: HAProxy binds all its frontends before it serves any
    (probing the others would make connections to the server)."""
    if not os.path.exists(HAPROXY):
        pytest.fail("haproxy is not installed: make deps installs Debian's haproxy")
    server_port = free_port(LOOPBACK)
    fronts = [(LOOPBACK, free_port(LOOPBACK), "send-proxy"), (LOOPBACK, free_port(LOOPBACK), "send-proxy-v2")]
    if ipv6():
        fronts.append(("::1", free_port("::1"), "send-proxy"))
    cfg = ["global", "  maxconn 200", "defaults", "  mode tcp", "  timeout connect 5s",
           "  timeout client 30s", "  timeout server 30s"]
    for i, (host, port, send) in enumerate(fronts):
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        cfg += [f"frontend f{i}", f"  bind {bind}", f"  default_backend b{i}",
                f"backend b{i}", f"  server s 127.0.0.1:{server_port} {send}"]
    probe = free_port(LOOPBACK)
    cfg += ["frontend probe", f"  bind {LOOPBACK}:{probe}", "  tcp-request connection reject"]
    (tmp_path / "haproxy.cfg").write_text("\n".join(cfg) + "\n")
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(tmp_path / "haproxy.cfg")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                socket.create_connection((LOOPBACK, probe), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "haproxy never listened"
                time.sleep(0.02)
        yield server_port, fronts
    finally:
        proc.terminate()
        reap(proc)


@pytest.mark.linux  # HAProxy is a Linux program here
def test_behind_haproxy(iocp_manager: ManagerFactory, backend: str,
                        haproxy: Tuple[int, List[Tuple[str, int, str]]]) -> None:
    """Through HAProxy with send-proxy and send-proxy-v2, over IPv4 and
    IPv6: the handler sees the real client's address as peer, and
    HAProxy's as proxy."""
    server_port, fronts = haproxy
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    mgr.listen(LOOPBACK, server_port, proxy_protocol="auto")
    for i, (host, port, send) in enumerate(fronts):
        with socket.create_connection((host, port), timeout=WAIT) as s:
            msg = f"through {send} on {host}".encode()
            s.sendall(msg)
            assert recv_exactly(s, len(msg)) == msg
            rec.wait_count("accept", i + 1)
            conn = [rec.conns[c] for k, c, *_ in rec.events if k == "accept" and c is not None][i]
            assert conn.peer == s.getsockname()[:2], send
            assert conn.proxy is not None and conn.proxy[0] == LOOPBACK and conn.proxy != conn.peer, send
        rec.wait_closed(conn.id)
    assert mgr.stats()["proxy_errors"] == 0
    assert mgr.stats()["accepted"] == len(fronts)
