"""A slow loopback health endpoint that counts requests per path (one path per service)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tests.helpers.servers import _respond


@dataclass
class SlowHealthServer:
    """Answers every GET with ``status`` after ``delay`` seconds; counts GETs by path."""

    delay: float
    status: int = 200
    port: int = 0
    requests: Counter[str] = field(default_factory=Counter)

    def url(self, service: str) -> str:
        """Return the health URL of ``service`` (its own path, so its own count)."""
        return f"http://127.0.0.1:{self.port}/{service}"

    def requests_of(self, service: str) -> int:
        """Return how many GETs ``service``'s path received."""
        return self.requests[f"/{service}"]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests[head.split(b" ", 2)[1].decode()] += 1
            await asyncio.sleep(self.delay)
            await _respond(writer, self.status)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def slow_health_server(delay: float, status: int = 200) -> AsyncIterator[SlowHealthServer]:
    """Run a ``SlowHealthServer`` on a free loopback port."""
    server = SlowHealthServer(delay=delay, status=status)
    tcp = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    server.port = tcp.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        tcp.close()
        await tcp.wait_closed()
