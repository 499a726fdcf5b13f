"""The asyncio yardstick of the HTTP benchmark: examples/http_server.py's
request handling (its parser, router and response writer, imported from
it, so both servers do the same work per request) as an asyncio Protocol,
on the default loop or on uvloop.

    python bench/servers/aio_http.py --loop asyncio|uvloop [--port 0]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional, cast

from aio_main import run  # beside this file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from http_server import BadRequest, parse_request, response, route, wants_continue  # noqa: E402


class Http(asyncio.Protocol):
    """The same rules as examples/http_server.py's Http handler: answer
    complete requests in order; stop reading while the transport's buffer
    is over its high-water mark; close after Connection: close or an error."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.inbuf = bytearray()
        self.ending = False
        self.eof = False
        self.continued = False

    def data_received(self, data: bytes) -> None:
        if self.ending:
            return
        self.inbuf += data
        self.answer()

    def eof_received(self) -> Optional[bool]:
        self.eof = True
        self.answer()
        self.transport.close()  # flushes what is pending first
        return None

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.ending and not self.eof:
            self.transport.resume_reading()

    def answer(self) -> None:
        while not self.ending:
            try:
                parsed = parse_request(self.inbuf)
            except BadRequest as exc:
                self.ending = True
                self.inbuf.clear()
                self.transport.write(response(exc.status, f"{exc}\n".encode(), keep_alive=False))
                break
            if parsed is None:
                if not self.continued and wants_continue(self.inbuf):
                    self.continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                break
            req, used = parsed
            del self.inbuf[:used]
            self.continued = False
            status, body = route(req)
            keep = req.keep_alive and not self.eof
            if not keep:
                self.ending = True
            self.transport.write(response(status, body, keep_alive=keep, version=req.version,
                                          head_only=req.method == "HEAD"))
        if self.ending:
            self.transport.close()


if __name__ == "__main__":
    run("aio_http", Http)
