"""Real loopback servers the tests start: a scripted HTTP health endpoint, ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


def free_port() -> int:
    """Return a loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _respond(writer: asyncio.StreamWriter, status: int) -> None:
    """Write an empty HTTP response with ``status``."""
    writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()


@dataclass
class ScriptedHealthServer:
    """Answers each GET with the next status of ``statuses`` (the last one repeats).

    ``hang=True`` accepts connections and never answers: a hung service.
    """

    statuses: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    requests: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        """Return the health URL."""
        return f"http://127.0.0.1:{self.port}/health"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.hang:
                await asyncio.sleep(3600)
            status = self.statuses[min(self.requests, len(self.statuses) - 1)]
            self.requests += 1
            await _respond(writer, status)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def health_server(
    statuses: list[int] | None = None, *, hang: bool = False
) -> AsyncIterator[ScriptedHealthServer]:
    """Run a ``ScriptedHealthServer`` on a free loopback port."""
    server = ScriptedHealthServer(statuses=statuses or [200], hang=hang)
    tcp = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    server.port = tcp.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        tcp.close()
        await tcp.wait_closed()


@dataclass
class GatedHealthServer:
    """Holds each GET until the test opens the gate, then answers ``status``.

    It lets a test look at a breaker while a recovery's health check is in flight,
    i.e. while the breaker is half-open.
    """

    status: int = 200
    requests: int = 0
    port: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """Return the health URL."""
        return f"http://127.0.0.1:{self.port}/health"

    def release(self, status: int) -> None:
        """Answer the held request (and any later one) with ``status``."""
        self.status = status
        self.gate.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            self.arrived.set()
            await self.gate.wait()
            await _respond(writer, self.status)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def gated_health_server() -> AsyncIterator[GatedHealthServer]:
    """Run a ``GatedHealthServer`` on a free loopback port."""
    server = GatedHealthServer()
    tcp = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    server.port = tcp.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.gate.set()
        tcp.close()
        await tcp.wait_closed()
