"""The asyncio yardsticks of the framing rows: a frame echo server (each
line, or each 4-byte big-endian length-prefixed message, sent back) on the
default loop or on uvloop, written the two ways asyncio code splits
frames: an asyncio.Protocol that splits its buffer in Python (bytes.split,
or struct for the lengths), or streams (StreamReader.readline,
readexactly).

    python bench/servers/aio_frames.py --loop asyncio|uvloop --framing lines|length --style protocol|streams
"""

import argparse
import asyncio
import struct
from typing import Callable, cast

from aio_main import run_with  # beside this file

HEADER = struct.Struct(">I")


class Lines(asyncio.Protocol):
    """Splits with bytes.split; the unfinished last line waits in buf."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            self.transport.write(line + b"\n")


class Lengths(asyncio.Protocol):
    """Takes whole messages off the front of buf."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        at = 0
        while len(buf) - at >= 4:
            (n,) = HEADER.unpack_from(buf, at)
            if len(buf) - at - 4 < n:
                break
            payload = buf[at + 4:at + 4 + n]
            self.transport.write(HEADER.pack(len(payload)) + payload)
            at += 4 + n
        self.buf = buf[at:]


async def lines_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
    writer.close()


async def lengths_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (n,) = HEADER.unpack(await reader.readexactly(4))
            payload = await reader.readexactly(n)
            writer.write(HEADER.pack(len(payload)) + payload)
    except asyncio.IncompleteReadError:
        writer.close()


def protocol_of(args: argparse.Namespace) -> Callable[[], asyncio.BaseProtocol]:
    if args.style == "protocol":
        return Lines if args.framing == "lines" else Lengths
    handle = lines_stream if args.framing == "lines" else lengths_stream
    return lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(), handle)


def options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--framing", choices=["lines", "length"], required=True)
    ap.add_argument("--style", choices=["protocol", "streams"], default="protocol")


if __name__ == "__main__":
    run_with("aio_frames", options, protocol_of)
