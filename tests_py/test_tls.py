"""TLS in the engine, through the Python API, with real clients: Python's
ssl module and the openssl command."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from typing import Any, List, Optional

import pytest

import pyiocp
from iocp_helpers import LOOPBACK, Recorder, wait_until
from pyiocp.testing import ManagerFactory
from tls_pki import PKI, make_pki

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    if shutil.which("openssl") is None and not os.environ.get("PYIOCP_TEST_PKI"):
        pytest.fail("the openssl command is missing (make deps installs it)")
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_config(pki: PKI, **kw: Any) -> pyiocp.TLSConfig:
    kw.setdefault("alpn", ("pyiocp", "h2"))
    return pyiocp.TLSConfig(pki.server, pki.server_key, **kw)


def client_context(pki: PKI, version: Optional[ssl.TLSVersion] = None, cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    ctx.set_alpn_protocols(["pyiocp"])
    if cert:
        ctx.load_cert_chain(pki.client, pki.client_key)
    return ctx


def tls_client(address: Any, ctx: ssl.SSLContext, name: str = "pyiocp.test") -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=TIMEOUT)
    try:
        return ctx.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise


def recv_all(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class TLSRecorder(Recorder):
    """Echoes, and records each connection's TLSInfo at on_accept."""

    echo = True

    def __init__(self) -> None:
        super().__init__()
        self.infos: List[Optional[pyiocp.TLSInfo]] = []

    def on_accept(self, conn: pyiocp.Connection) -> None:
        self.infos.append(conn.tls)
        super().on_accept(conn)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["1.2", "1.3"])
def test_tls_echo_with_the_ssl_module(iocp_manager: ManagerFactory, backend: str, pki: PKI,
                                      version: ssl.TLSVersion) -> None:
    rec = TLSRecorder()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki))
    payload = os.urandom(300 << 10)  # records of every size, several receives
    with tls_client(lst.address, client_context(pki, version)) as s:
        assert s.selected_alpn_protocol() == "pyiocp"
        # One thread, in steps: an SSLSocket cannot read and write at once.
        for off in range(0, len(payload), 40000):
            part = payload[off:off + 40000]
            s.sendall(part)
            assert recv_all(s, len(part)) == part
        conn = rec.first_conn()
        info = conn.tls
        assert isinstance(info, pyiocp.TLSInfo)
        want = "TLSv1.3" if version == ssl.TLSVersion.TLSv1_3 else "TLSv1.2"
        assert (info.version, info.alpn, info.server_name, info.peer_cert, info.resumed) == \
            (want, "pyiocp", "pyiocp.test", None, False)
        assert info.cipher.startswith("TLS_")
        assert rec.infos == [info]  # on_accept came after the handshake
        assert mgr.stats()["tls_connections"] == 1
        conn.close()  # close_notify, then FIN: the client reads a clean end
        assert s.recv(1) == b""
    rec.wait_closed(conn.id)
    st = mgr.stats()
    assert (st["tls_connections"], st["tls_handshake_errors"], st["accepted"]) == (0, 0, 1)
    assert bytes(rec.data[conn.id]) == payload


@pytest.mark.linux  # the openssl command runs on the Linux side only
def test_tls_openssl_s_client(iocp_manager: ManagerFactory, backend: str, pki: PKI) -> None:
    class Greet(pyiocp.Handler):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            conn.send(b"you said " + data)
            conn.close()

    mgr = iocp_manager(Greet(), backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki))
    for flag in ("-tls1_2", "-tls1_3"):
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"{LOOPBACK}:{lst.address[1]}", "-servername", "pyiocp.test",
             "-CAfile", pki.ca, "-verify_return_error", "-alpn", "pyiocp", flag, "-ign_eof"],
            input=b"hello\n", capture_output=True, timeout=TIMEOUT)
        text = out.stdout.decode(errors="replace")
        assert "you said hello" in text, text + out.stderr.decode(errors="replace")
        assert "Verify return code: 0 (ok)" in text
        assert "ALPN protocol: pyiocp" in text


def test_tls_mutual(iocp_manager: ManagerFactory, backend: str, pki: PKI) -> None:
    rec = TLSRecorder()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki, cafile=pki.ca, client_auth="required"))
    with tls_client(lst.address, client_context(pki, cert=True)) as s:
        s.sendall(b"ping")
        assert recv_all(s, 4) == b"ping"
    with open(pki.client) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    assert rec.infos[0] is not None and rec.infos[0].peer_cert == der
    # Without a certificate: refused, and never announced.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with tls_client(lst.address, client_context(pki, ssl.TLSVersion.TLSv1_2)) as s:
            s.sendall(b"ping")
            s.recv(1)
    wait_until(lambda: mgr.stats()["tls_handshake_errors"] == 1, what="the refused handshake counted")
    assert rec.count("accept") == 1


def test_tls_sni_chooses_the_certificate(iocp_manager: ManagerFactory, backend: str, pki: PKI) -> None:
    rec = TLSRecorder()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki, certs=[(pki.other, pki.other_key)]))
    for name in ("pyiocp.test", "other.test"):
        with tls_client(lst.address, client_context(pki), name=name) as s:  # verified against name
            s.sendall(b"x")
            assert recv_all(s, 1) == b"x"
    assert [i.server_name for i in rec.infos if i] == ["pyiocp.test", "other.test"]


def test_tls_reload(iocp_manager: ManagerFactory, backend: str, pki: PKI) -> None:
    rec = TLSRecorder()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki))
    before = tls_client(lst.address, client_context(pki))
    try:
        lst.reload_tls(pyiocp.TLSConfig(pki.other, pki.other_key))
        with tls_client(lst.address, client_context(pki), name="other.test") as s:
            s.sendall(b"new")
            assert recv_all(s, 3) == b"new"
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_client(lst.address, client_context(pki), name="pyiocp.test").close()
        before.sendall(b"old")  # made before the reload: keeps its certificate
        assert recv_all(before, 3) == b"old"
    finally:
        before.close()


def test_tls_failed_handshakes_are_never_announced(iocp_manager: ManagerFactory, backend: str, pki: PKI) -> None:
    rec = TLSRecorder()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki, handshake_timeout=0.3))
    peers = []
    garbage = socket.create_connection(lst.address, timeout=TIMEOUT)
    garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    peers.append(garbage)
    peers.append(socket.create_connection(lst.address, timeout=TIMEOUT))  # says nothing: times out
    try:
        for s in peers:
            try:
                while s.recv(4096):  # the server ends each
                    pass
            except ConnectionResetError:  # with bytes of the peer's unread
                pass
        with pytest.raises(ssl.SSLCertVerificationError):  # wants another name
            tls_client(lst.address, client_context(pki), name="nobody.test").close()
        wait_until(lambda: mgr.stats()["tls_handshake_errors"] == 3, what="three failed handshakes")
    finally:
        for s in peers:
            s.close()
    time.sleep(0.05)
    assert rec.count("accept") == 0 and rec.count("close") == 0
    assert mgr.stats()["connections"] == 0


def test_tls_poll_mode(iocp_manager: ManagerFactory, backend: str, pki: PKI) -> None:
    mgr = iocp_manager(None, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki))
    got: List[Any] = []
    done = threading.Event()

    def client() -> None:
        with tls_client(lst.address, client_context(pki)) as s:
            s.sendall(b"polled")
            got.append(recv_all(s, 6))
        done.set()

    t = threading.Thread(target=client)
    t.start()
    deadline = time.monotonic() + TIMEOUT
    kinds: List[str] = []
    while not done.is_set() and time.monotonic() < deadline:
        for c in mgr.poll(0.05):
            kinds.append(c.kind)
            if c.kind == "accept":
                assert c.conn.tls is not None and c.conn.tls.alpn == "pyiocp"
            elif c.kind == "recv":
                c.conn.send(c.data)
    t.join(TIMEOUT)
    assert got == [b"polled"]
    assert kinds[0] == "accept" and "recv" in kinds


def test_tls_bad_input(iocp_manager: ManagerFactory, pki: PKI, tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        pyiocp.TLSConfig(str(tmp_path / "missing.pem"))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(ValueError, match="PEM"):
        pyiocp.TLSConfig(str(not_pem))
    with pytest.raises(ValueError, match="PEM"):
        pyiocp.TLSConfig(pki.server, pki.server, cafile=None)  # the certificate file holds no key
    with pytest.raises(ValueError, match="cafile"):
        pyiocp.TLSConfig(pki.server, pki.server_key, client_auth="required")
    with pytest.raises(ValueError, match="client_auth"):
        pyiocp.TLSConfig(pki.server, pki.server_key, client_auth="sometimes")
    with pytest.raises(ValueError, match="min_version"):
        pyiocp.TLSConfig(pki.server, pki.server_key, min_version="1.1")
    with pytest.raises(ValueError, match="handshake_timeout"):
        pyiocp.TLSConfig(pki.server, pki.server_key, handshake_timeout=0)
    with pytest.raises(TypeError):
        pyiocp.TLSConfig(pki.server, pki.server_key, alpn="h2")
    with pytest.raises(TypeError):
        pyiocp.TLSConfig(pki.server, pki.server_key, certs=[pki.other])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="cafile"):
        pyiocp.TLSConfig(pki.server, pki.server_key, cafile=pki.server_key)
    mgr = iocp_manager(Recorder())
    with pytest.raises(TypeError, match="TLSConfig"):
        mgr.listen(LOOPBACK, 0, tls="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="certfile or certs"):
        mgr.listen(LOOPBACK, 0, tls=pyiocp.TLSConfig(cafile=pki.ca))
    plain = mgr.listen(LOOPBACK, 0)
    with pytest.raises(ValueError, match="tls="):
        plain.reload_tls(server_config(pki))
    assert mgr.stats()["listeners"] == 1


class SSLEchoServer:
    """Python's ssl module as the server: echoes, one thread per
    connection, and records what each connection got before its end."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.sock = socket.create_server((LOOPBACK, 0))
        self.sock.settimeout(0.05)  # closing it does not wake an accept: look at stop
        self.stop = threading.Event()
        self.address = self.sock.getsockname()[:2]
        self.got: List[bytes] = []
        self.failed: List[BaseException] = []
        self.threads: List[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(TIMEOUT)
        got = bytearray()
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                while chunk := s.recv(65536):
                    got += chunk
                    s.sendall(chunk)
                self.got.append(bytes(got))
        except (OSError, ssl.SSLError) as exc:
            self.failed.append(exc)

    def close(self) -> None:
        self.stop.set()
        self.accepter.join(TIMEOUT)
        self.sock.close()
        for t in self.threads:
            t.join(TIMEOUT)


@pytest.fixture
def ssl_server(pki: PKI) -> Any:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server, pki.server_key)
    ctx.set_alpn_protocols(["pyiocp"])
    server = SSLEchoServer(ctx)
    yield server
    server.close()


def test_tls_client_to_the_ssl_module(iocp_manager: ManagerFactory, backend: str, pki: PKI,
                                      ssl_server: SSLEchoServer) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    tls = pyiocp.TLSConfig(cafile=pki.ca, server_name="pyiocp.test", alpn=("pyiocp",))
    conn = mgr.connect(*ssl_server.address, tls=tls)
    early = os.urandom(50_000)
    conn.send(early)  # before the handshake: written once it is done
    rec.first_conn("connect")
    info = conn.tls
    assert info is not None and info.alpn == "pyiocp" and info.version == "TLSv1.3"
    assert info.peer_cert is not None  # the server's certificate
    conn.send(b"after")
    rec.wait(lambda: len(rec.data[conn.id]) == len(early) + 5, what="the echo")
    assert bytes(rec.data[conn.id]) == early + b"after"
    conn.close()  # close_notify: the ssl server sees a clean end
    assert rec.wait_closed(conn.id) is None
    wait_until(lambda: ssl_server.got == [early + b"after"], what="the server's clean end")
    assert mgr.stats()["tls_connections"] == 0


def test_tls_client_refuses_the_wrong_name(iocp_manager: ManagerFactory, backend: str, pki: PKI,
                                            ssl_server: SSLEchoServer) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    conn = mgr.connect(*ssl_server.address, tls=pyiocp.TLSConfig(cafile=pki.ca, server_name="other.test"))
    err = rec.wait_closed(conn.id)
    assert isinstance(err, pyiocp.TLSError) and isinstance(err, ssl.SSLError), repr(err)
    assert "other.test" in str(err)
    assert rec.count("connect") == 0
    # Without a CA: the system's do not know the test CA.
    conn = mgr.connect(*ssl_server.address, tls=pyiocp.TLSConfig(server_name="pyiocp.test"))
    assert isinstance(rec.wait_closed(conn.id), pyiocp.TLSError)
    # verify=False checks nothing.
    conn = mgr.connect(*ssl_server.address, tls=pyiocp.TLSConfig(verify=False))
    rec.wait(lambda: rec.count("connect") == 1, what="the unchecked connect")
    conn.send(b"x")
    rec.wait(lambda: bytes(rec.data[conn.id]) == b"x", what="the echo")


def test_tls_pyiocp_to_pyiocp_with_client_certificates(iocp_manager: ManagerFactory, backend: str,
                                                       pki: PKI) -> None:
    server = TLSRecorder()
    mgr = iocp_manager(server, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki, cafile=pki.ca, client_auth="required"))
    rec = Recorder()
    cli = iocp_manager(rec, backend=backend)
    tls = pyiocp.TLSConfig(pki.client, pki.client_key, cafile=pki.ca, server_name="pyiocp.test",
                           alpn=("pyiocp",), min_version="1.3")
    conn = cli.connect(*lst.address, tls=tls)
    conn.send(b"hello")
    rec.wait(lambda: bytes(rec.data[conn.id]) == b"hello", what="the echo")
    with open(pki.client) as f:
        assert server.infos[0] is not None and server.infos[0].peer_cert == ssl.PEM_cert_to_DER_cert(f.read())
    assert conn.tls is not None and conn.tls.version == "TLSv1.3"
    # Without its certificate the server refuses it: TLSError, or the
    # connection closed under the handshake.
    conn = cli.connect(*lst.address, tls=pyiocp.TLSConfig(cafile=pki.ca, server_name="pyiocp.test"))
    err = rec.wait_closed(conn.id)
    assert isinstance(err, (pyiocp.TLSError, ConnectionError)), repr(err)
    wait_until(lambda: mgr.stats()["tls_handshake_errors"] == 1, what="the server's count")


def test_tls_session_resumption(iocp_manager: ManagerFactory, backend: str, pki: PKI,
                                ssl_server: SSLEchoServer) -> None:
    """A second connection resumes the first one's session with its ticket:
    Python's ssl as the client of a pyiocp server, and pyiocp's client (one
    TLSConfig, one session cache) against pyiocp's server and ssl's."""
    server = TLSRecorder()
    mgr = iocp_manager(server, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, tls=server_config(pki))
    ctx = client_context(pki)
    with tls_client(lst.address, ctx) as s:
        s.sendall(b"one")
        assert recv_all(s, 3) == b"one"  # the tickets came before the echo
        session = s.session
        assert not s.session_reused
    raw = socket.create_connection(lst.address, timeout=TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname="pyiocp.test", session=session) as s:
        s.sendall(b"two")
        assert recv_all(s, 3) == b"two"
        assert s.session_reused
    assert [i.resumed for i in server.infos if i] == [False, True]

    rec = Recorder()
    cli = iocp_manager(rec, backend=backend)
    for address in (lst.address, ssl_server.address):
        tls = pyiocp.TLSConfig(cafile=pki.ca, server_name="pyiocp.test", alpn=("pyiocp",))
        resumed = []
        for _ in range(2):
            conn = cli.connect(*address, tls=tls)
            conn.send(b"hello")  # its echo comes after the tickets
            rec.wait(lambda: bytes(rec.data[conn.id]) == b"hello", what="the echo")
            assert conn.tls is not None
            resumed.append(conn.tls.resumed)
            conn.close()
            rec.wait_closed(conn.id)
        assert resumed == [False, True], address
    assert [i.resumed for i in server.infos if i][2:] == [False, True]
    # Another configuration's tickets are another's: after reload_tls, a
    # session from before makes a full handshake.
    lst.reload_tls(server_config(pki))
    raw = socket.create_connection(lst.address, timeout=TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname="pyiocp.test", session=session) as s:
        s.sendall(b"three")
        assert recv_all(s, 5) == b"three"
        assert not s.session_reused
    # Another TLSConfig has its own cache: a full handshake.
    conn = cli.connect(*lst.address, tls=pyiocp.TLSConfig(cafile=pki.ca, server_name="pyiocp.test"))
    conn.send(b"x")
    rec.wait(lambda: bytes(rec.data[conn.id]) == b"x", what="the echo")
    assert conn.tls is not None and not conn.tls.resumed


def test_tls_start_tls(iocp_manager: ManagerFactory, backend: str, pki: PKI) -> None:
    """STARTTLS: a plaintext command, the go-ahead, then TLS on the same
    connection: pyiocp as the server (Python's ssl upgrades its socket)
    and as the client (against pyiocp's server)."""

    class Upgrading(Recorder):
        echo = True

        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            if data == b"STARTTLS\n" and conn.tls is None:
                conn.send(b"GO\n")
                conn.start_tls(server_config(pki), server_side=True)
                return
            super().on_recv(conn, data)

    rec = Upgrading()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0)
    with socket.create_connection(lst.address, timeout=TIMEOUT) as raw:
        raw.sendall(b"STARTTLS\n")
        assert recv_all(raw, 3) == b"GO\n"
        with client_context(pki).wrap_socket(raw, server_hostname="pyiocp.test") as s:
            s.sendall(b"secret")
            assert recv_all(s, 6) == b"secret"
            conn = rec.first_conn()
            assert conn.tls is not None and conn.tls.alpn == "pyiocp"
            with pytest.raises(ValueError, match="already"):
                conn.start_tls(server_config(pki), server_side=True)

    class Client(Recorder):
        def on_connect(self, conn: pyiocp.Connection) -> None:
            super().on_connect(conn)
            conn.send(b"STARTTLS\n")

        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            if data == b"GO\n":
                conn.start_tls(pyiocp.TLSConfig(cafile=pki.ca, server_name="pyiocp.test"))
                conn.send(b"private")  # written once the handshake is done

    cli = Client()
    cmgr = iocp_manager(cli, backend=backend)
    c = cmgr.connect(*lst.address)
    cli.wait(lambda: bytes(cli.data[c.id]) == b"GO\nprivate", what="the echo over TLS")
    assert c.tls is not None
    with pytest.raises(TypeError, match="TLSConfig"):
        c.start_tls("yes")
    with pytest.raises(ValueError, match="certfile or certs"):
        cmgr.connect(*lst.address).start_tls(pyiocp.TLSConfig(cafile=pki.ca), server_side=True)
