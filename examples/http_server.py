"""An HTTP/1.1 server on pyiocp: keep-alive, pipelining, bounded requests.

    python examples/http_server.py [--host 127.0.0.1] [--port 8080] [--workers 1] [--backend auto]
                                   [--tls-cert server.pem --tls-key server.key]

    curl http://127.0.0.1:8080/
    curl -d 'some body' http://127.0.0.1:8080/echo
    wrk -t1 -c10 -d5s http://127.0.0.1:8080/
    curl --cacert ca.pem https://localhost:8080/     (with --tls-cert: HTTPS)

Routes: ``GET /`` (and ``HEAD /``) says hello; ``POST /echo`` answers with
the request body. Anything else is a 404 (or 405 for a wrong method).

How it stays correct with any client:

- Requests are parsed from a per-connection buffer, so a request split
  over many reads and several requests in one read (pipelining) both work;
  responses go out in request order.
- HTTP/1.1 keeps the connection open unless the client says
  ``Connection: close``; HTTP/1.0 closes after the response unless the
  client asks for ``keep-alive``.
- A request head over 8 KiB gets 431, a body over 1 MiB 413, a malformed
  request 400, chunked bodies 501; each of those then closes the connection.
- A client that pipelines requests without reading the responses fills the
  send buffer: the server then stops reading from it (``pause_reading``)
  until the buffer drains (``on_drain``), so memory stays bounded.
- A client that half-closes after its request (HTTP/1.0 style) still gets
  its response: ``on_eof`` answers what is complete, then closes.
- ``Expect: 100-continue`` (curl sends it with larger bodies) gets its
  ``100 Continue`` as soon as the head is in.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

import pyiocp
from _serving import arguments, serve, stop_on_signals, tls_config

log = logging.getLogger("pyiocp.examples.http")

MAX_HEAD = 8 << 10
MAX_BODY = 1 << 20
HELLO = b"hello, world\n"

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           413: "Content Too Large", 431: "Request Header Fields Too Large", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}
TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class BadRequest(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class Request:
    def __init__(self, method: str, target: str, version: str, headers: Dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def parse_request(buf: bytearray) -> Optional[Tuple[Request, int]]:
    """The first complete request in buf and the bytes it takes, None if
    it is not complete yet; BadRequest if it never will be valid."""
    start = 0
    while buf.startswith(b"\r\n", start):  # empty lines before a request are allowed
        start += 2
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        if len(buf) - start > MAX_HEAD:
            raise BadRequest(431, "request head too large")
        return None
    if end - start > MAX_HEAD:
        raise BadRequest(431, "request head too large")
    lines = bytes(buf[start:end]).split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= TOKEN or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if not version.startswith("HTTP/") or len(version) != 8 or version[6] != ".":
        raise BadRequest(400, "malformed HTTP version")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505, f"{version} not supported")
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not set(name) <= TOKEN:
            raise BadRequest(400, "malformed header line")
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if "transfer-encoding" in headers:
        raise BadRequest(501, "chunked request bodies are not supported")
    length = 0
    if "content-length" in headers:
        raw = headers["content-length"]
        if not raw.isdigit() or len(raw) > 10:
            raise BadRequest(400, "malformed Content-Length")
        length = int(raw)
        if length > MAX_BODY:
            raise BadRequest(413, "request body too large")
    total = end + 4 + length
    if len(buf) < total:
        return None
    return Request(method, target, version, headers, bytes(buf[end + 4:total])), total


def wants_continue(buf: bytearray) -> bool:
    """The head in buf is complete and asks for 100 Continue before its body."""
    end = buf.find(b"\r\n\r\n")
    return end >= 0 and b"\r\nexpect: 100-continue" in bytes(buf[:end]).lower()


def response(status: int, body: bytes, *, keep_alive: bool, version: str = "HTTP/1.1",
             head_only: bool = False, content_type: str = "text/plain; charset=utf-8") -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS[status]}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}"]
    if not keep_alive:
        lines.append("Connection: close")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def route(req: Request) -> Tuple[int, bytes]:
    path = req.target.split("?", 1)[0]
    if path == "/":
        return (200, HELLO) if req.method in ("GET", "HEAD") else (405, b"method not allowed\n")
    if path == "/echo":
        return (200, req.body) if req.method == "POST" else (405, b"method not allowed\n")
    return 404, b"not found\n"


class Http(pyiocp.Handler):
    """Per connection: ``inbuf`` (bytes not yet parsed), ``unsent`` (a
    response send() refused with BufferFull), ``ending`` (close once the
    responses are out), ``eof`` (the client half-closed)."""

    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.inbuf = bytearray()
        conn.unsent = None
        conn.ending = False
        conn.eof = False
        conn.continued = False  # 100 Continue sent for the request in inbuf

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        if conn.ending:
            return  # after Connection: close or an error, the rest is ignored
        conn.inbuf += data
        self.answer(conn)

    def on_eof(self, conn: pyiocp.Connection) -> None:
        conn.eof = True
        self.answer(conn)
        if conn.unsent is None:
            conn.close()  # flushes what is pending first

    def on_drain(self, conn: pyiocp.Connection) -> None:
        data = conn.unsent
        if data is None:
            return
        conn.unsent = None
        if not self.send(conn, data):
            return
        if not conn.ending and not conn.eof:
            conn.resume_reading()
        self.answer(conn)
        if conn.eof and conn.unsent is None:
            conn.close()

    def send(self, conn: pyiocp.Connection, data: bytes) -> bool:
        """Send, or keep data and stop reading until on_drain: False then."""
        try:
            conn.send(data)
            return True
        except pyiocp.BufferFull:
            conn.unsent = data
            conn.pause_reading()
            return False
        except pyiocp.ConnectionClosed:
            return False

    def answer(self, conn: pyiocp.Connection) -> None:
        """Answer the complete requests in the buffer, in order; stop while
        a response waits for the send buffer to drain."""
        while not conn.ending and conn.unsent is None:
            try:
                parsed = parse_request(conn.inbuf)
            except BadRequest as exc:
                log.debug("%r: %s", conn, exc)
                conn.ending = True
                conn.inbuf.clear()
                self.send(conn, response(exc.status, f"{exc}\n".encode(), keep_alive=False))
                break
            if parsed is None:
                if not conn.continued and wants_continue(conn.inbuf):
                    conn.continued = True
                    self.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                break
            req, used = parsed
            del conn.inbuf[:used]
            conn.continued = False
            status, body = route(req)
            keep = req.keep_alive and not conn.eof
            if not keep:
                conn.ending = True
            self.send(conn, response(status, body, keep_alive=keep, version=req.version,
                                     head_only=req.method == "HEAD"))
        if conn.ending and conn.unsent is None:
            conn.close()


def main(argv: Optional[List[str]] = None) -> None:
    args = arguments(__doc__, port=8080, tls=True).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    tls = tls_config(args, alpn=("http/1.1",))
    stop_on_signals()
    mgr = pyiocp.SocketManager(Http(), workers=args.workers, backend=args.backend)
    serve(mgr, "http_server", args.host, args.port, args.unix, tls=tls)


if __name__ == "__main__":
    main()
