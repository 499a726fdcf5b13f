"""examples/http_server.py: HTTP/1.1 keep-alive, pipelining, limits; driven
by curl, http.client, wrk and raw sockets."""

from __future__ import annotations

import http.client
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Dict, Iterator, Tuple

import pytest

from conftest import BACKENDS
from example_procs import Server, env_for, example, path_of, running
from iocp_helpers import PYTHON, recv_until_eof
from pyiocp.testing import Client, faults
from tls_pki import make_pki

# Linux: the servers run as subprocesses stopped with SIGINT or SIGTERM,
# which Windows cannot send to a child process.
# (curl and wrk, which drive them, are Linux programs too).
pytestmark = pytest.mark.linux

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
HELLO = b"hello, world\n"


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One server per backend for the module (each test opens its own
    connections)."""
    with running(example("http_server.py", "--workers", "2", "--backend", request.param)) as server:
        yield server


def read_response(c: Client) -> Tuple[int, Dict[str, str], bytes]:
    head = c.recv_until(b"\r\n\r\n").decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = c.recv_exactly(int(headers.get("content-length", "0")))
    return status, headers, body


def test_curl_keep_alive_and_post(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}"
    r = subprocess.run(["curl", "-sS", "-v", f"{url}/", f"{url}/", f"{url}/nope"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello, world\nhello, world\nnot found\n"
    assert r.stderr.count("Re-using existing connection") == 2, r.stderr
    r = subprocess.run(["curl", "-sS", "--data-binary", "some body", f"{url}/echo"],
                       capture_output=True, text=True, timeout=20)
    assert (r.returncode, r.stdout) == (0, "some body")
    # curl waits up to a second for the 100 Continue it asks for, then
    # says so and sends the body anyway.
    body = "b" * 5000
    r = subprocess.run(["curl", "-sS", "-v", "-H", "Expect: 100-continue", "--data-binary", body, f"{url}/echo"],
                       capture_output=True, text=True, timeout=20)
    assert (r.returncode, r.stdout) == (0, body)
    assert "Expect: 100-continue" in r.stderr and "< HTTP/1.1 100 Continue" in r.stderr
    assert "Done waiting for 100-continue" not in r.stderr
    # HTTP/1.0: the server closes after the response.
    r = subprocess.run(["curl", "-sS", "-v", "--http1.0", f"{url}/"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout == "hello, world\n"
    assert re.search(r"< Connection: close", r.stderr), r.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_https_with_curl(tmp_path: pathlib.Path, backend: str) -> None:
    """--tls-cert: curl, checking the certificate against the test CA, gets
    its answers over one TLS connection, HTTP/1.1 agreed by ALPN."""
    pki = make_pki(tmp_path)
    argv = example("http_server.py", "--backend", backend, "--tls-cert", pki.server, "--tls-key", pki.server_key)
    with running(argv) as server:
        url = f"https://pyiocp.test:{server.port}"
        opts = ["-sS", "-v", "--cacert", pki.ca, "--resolve", f"pyiocp.test:{server.port}:127.0.0.1"]
        r = subprocess.run(["curl", *opts, f"{url}/", "--next", *opts, "--data-binary", "over tls", f"{url}/echo"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello, world\nover tls", r.stderr
        assert "SSL certificate verify ok" in r.stderr
        assert "ALPN: server accepted http/1.1" in r.stderr or "ALPN, server accepted to use http/1.1" in r.stderr
        assert r.stderr.count("Re-using existing connection") == 1, r.stderr
        r = subprocess.run(["curl", "-sS", f"https://127.0.0.1:{server.port}/", "--cacert", pki.ca],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 60 and "127.0.0.1" in r.stderr  # the certificate names another host


def test_http_client_reuses_the_connection(server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, HELLO)
        sock = conn.sock
        for i in range(20):
            body = b"x" * i * 1000
            conn.request("POST", "/echo", body=body)
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, body)
            conn.request("HEAD", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.getheader("Content-Length"), resp.read()) == (200, "13", b"")
        assert conn.sock is sock  # one connection all along
        conn.request("DELETE", "/")
        resp = conn.getresponse()
        assert resp.status == 405
        assert resp.getheader("Connection") is None
        resp.read()
    finally:
        conn.close()


def test_wrk(server: Server) -> None:
    assert shutil.which("wrk"), "wrk is missing: `make deps` installs it"
    r = subprocess.run(["wrk", "-t1", "-c10", "-d1s", f"http://127.0.0.1:{server.port}/"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) requests in", r.stdout)
    assert m and int(m.group(1)) > 0, r.stdout
    assert "Socket errors" not in r.stdout, r.stdout
    assert "Non-2xx" not in r.stdout, r.stdout


def test_pipelined_requests_in_one_write_are_answered_in_order(server: Server) -> None:
    bodies = [b"first", b"second" * 100, b"", b"fourth"]
    batch = b"".join(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
                     for b in bodies) + GET
    with Client(server.address) as c:
        c.send(batch)
        for body in bodies:
            assert read_response(c)[::2] == (200, body)
        assert read_response(c)[::2] == (200, HELLO)


def test_a_request_trickled_one_byte_at_a_time(server: Server) -> None:
    request = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello" + GET
    reply = faults.trickle(server.address, request, delay=0.0005, until=HELLO)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n\r\nhello" in reply and reply.endswith(HELLO)
    assert reply.count(b"HTTP/1.1 200 OK") == 2


def test_connection_close_ends_after_the_response_and_ignores_the_rest(server: Server) -> None:
    with Client(server.address) as c:
        c.send(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + GET)
        reply = c.recv_until_eof()
    assert reply.count(b"HTTP/1.1") == 1
    assert b"Connection: close\r\n" in reply and reply.endswith(HELLO)


def test_http10_keep_alive_on_request_only(server: Server) -> None:
    with Client(server.address) as c:
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, body = read_response(c)
        assert (status, headers["connection"], body) == (200, "keep-alive", HELLO)
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        assert c.recv_until_eof().endswith(HELLO)


def test_request_then_fin_still_gets_its_responses(server: Server) -> None:
    reply = faults.half_close(server.address, GET + GET)
    assert reply.count(b"HTTP/1.1 200 OK") == 2 and reply.endswith(HELLO)


@pytest.mark.parametrize("request_bytes, status", [
    (b"garbage\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nX-Endless: " + b"a" * 20000, 431),
])
def test_bad_requests_get_an_error_and_a_close(server: Server, request_bytes: bytes, status: int) -> None:
    with Client(server.address) as c:
        c.send(GET + request_bytes + GET)  # a good one before: answered; after: ignored
        reply = c.recv_until_eof()
    assert reply.count(b"HTTP/1.1 ") == 2, reply
    assert reply.startswith(b"HTTP/1.1 200 OK")
    second = reply[reply.index(b"HTTP/1.1 ", 1):]
    assert second.startswith(b"HTTP/1.1 %d " % status), second
    assert b"Connection: close\r\n" in second


def test_a_client_that_pipelines_without_reading_is_paced(server: Server) -> None:
    """Thousands of pipelined requests while the client reads nothing: the
    server's send buffer fills, it stops reading, and once the client
    reads every response arrives, in order."""
    n = 8000  # 16 MB: more than the server's buffers and the kernel's hold
    body = b"y" * 2000
    req = b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with Client(server.address, rcvbuf=8192, timeout=20) as c:
        writer = threading.Thread(target=c.send, args=(req * n + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",))
        writer.start()
        writer.join(0.5)
        assert writer.is_alive()  # the server pushes back
        got = c.recv_until_eof()
        writer.join(10)
    assert got.count(b"HTTP/1.1 200 OK") == n + 1
    assert got.count(body) == n
    assert got.endswith(HELLO)


def test_sigterm_with_a_connection_open() -> None:
    """A server of its own: stopped by SIGTERM while a keep-alive
    connection is open, exit code 0."""
    with running(example("http_server.py"), stop_signal=signal.SIGTERM) as own:
        with socket.create_connection(own.address, timeout=5) as s:
            s.sendall(GET)
            assert s.recv(1000).endswith(HELLO)
            own.stop(signal.SIGTERM)
            assert recv_until_eof(s) == b""


@pytest.mark.parametrize("backend", BACKENDS)
def test_curl_over_a_unix_socket(tmp_path: pathlib.Path, backend: str) -> None:
    """--unix PATH: the server on a Unix domain socket, as behind a local
    proxy; curl --unix-socket speaks HTTP to it; the file goes with it."""
    path = str(tmp_path / "http.sock")
    argv = [PYTHON, str(path_of("http_server.py")), "--unix", path, "--backend", backend]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(argv[1:]))
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert line.strip() == f"http_server: listening on unix:{path}", (line, proc.stderr.read()
                                                                         if proc.poll() is not None else "")
        r = subprocess.run(["curl", "-sS", "--unix-socket", path, "http://localhost/", "http://localhost/"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout == HELLO * 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert not pathlib.Path(path).exists()
