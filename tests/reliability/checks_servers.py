"""Misbehaving HTTP servers on loopback, for the health-check fault tests.

One server plays a script: each GET gets the next behaviour of the script (the
last one repeats), so one recovery can meet a different fault on each attempt.
``/loop/<n>`` always redirects to ``/loop/<n + 1>``: a redirect loop.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

BIG_BODY = 10 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """Answer ``status`` with ``body`` (and a ``Location``) after ``delay`` seconds."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    location: str | None = None


# The faults, by name. An ``Answer`` is a well-behaved (if slow) server.
HANG = "hang"  # read the request, never answer
RESET = "reset"  # read the request, reset the connection (RST)
REDIRECT_LOOP = "redirect_loop"  # 302 to /loop/1, which redirects forever
BIG_BODY_DECLARED = "big_body_declared"  # 200 with Content-Length: 10 MB, then the bytes
BIG_BODY_CHUNKED = "big_body_chunked"  # 200, 10 MB chunked: no length announced

Behaviour = Answer | str


@dataclass
class Request:
    """What the server saw of one request."""

    path: str
    headers: dict[str, str]


@dataclass
class FaultServer:
    """A loopback HTTP server that plays ``script`` on ``/health``."""

    script: list[Behaviour]
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    health_requests: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/health") -> str:
        """Return the URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def _next_behaviour(self, path: str) -> Behaviour:
        """Return what ``path`` gets now; count the GETs that follow the script."""
        if path.startswith("/loop/"):
            return REDIRECT_LOOP
        behaviour = self.script[min(self.health_requests, len(self.script) - 1)]
        self.health_requests += 1
        return behaviour

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: one request, one behaviour."""
        self._writers.add(writer)
        try:
            request = _parse(await reader.readuntil(b"\r\n\r\n"))
            self.requests.append(request)
            await self._play(self._next_behaviour(request.path), request, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _play(
        self, behaviour: Behaviour, request: Request, writer: asyncio.StreamWriter
    ) -> None:
        if isinstance(behaviour, Answer):
            await asyncio.sleep(behaviour.delay)
            await _respond(writer, behaviour.status, behaviour.body, location=behaviour.location)
        elif behaviour == HANG:
            await self._closing.wait()
        elif behaviour == RESET:
            _reset(writer)
        elif behaviour == REDIRECT_LOOP:
            hop = int(request.path.rsplit("/", 1)[1]) + 1 if request.path.startswith("/loop/") else 1
            await _respond(writer, 302, b"", location=f"/loop/{hop}")
        elif behaviour == BIG_BODY_DECLARED:
            await _big_body(writer, chunked=False)
        elif behaviour == BIG_BODY_CHUNKED:
            await _big_body(writer, chunked=True)
        else:
            raise ValueError(f"unknown behaviour {behaviour!r}")

    async def close(self) -> None:
        """Release hung handlers and drop every open connection."""
        self._closing.set()
        for writer in list(self._writers):
            writer.close()


def _parse(head: bytes) -> Request:
    """Return the path and headers (names in lower case) of a request's head."""
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return Request(path=path, headers=headers)


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, *, location: str | None = None
) -> None:
    """Write a complete response and close."""
    extra = f"Location: {location}\r\n" if location else ""
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN: the client sees "connection reset"."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _big_body(writer: asyncio.StreamWriter, *, chunked: bool) -> None:
    """Send 10 MB, announced by Content-Length or chunked; stop when the client leaves."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG_BODY}"
    writer.write(f"HTTP/1.1 200 OK\r\n{framing}\r\nConnection: close\r\n\r\n".encode())
    block = b"x" * _CHUNK
    for _ in range(BIG_BODY // _CHUNK):
        writer.write(b"%x\r\n%s\r\n" % (_CHUNK, block) if chunked else block)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


@asynccontextmanager
async def fault_server(
    *script: Behaviour, tls: ssl.SSLContext | None = None
) -> AsyncIterator[FaultServer]:
    """Run a ``FaultServer`` playing ``script`` on a free loopback port (over TLS if given)."""
    server = FaultServer(script=list(script) or [Answer()])
    tcp = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = tcp.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        await server.close()
        tcp.close()
        await tcp.wait_closed()
