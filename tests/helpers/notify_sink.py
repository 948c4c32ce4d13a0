"""A loopback HTTP endpoint that receives notifications: a webhook, Slack's or PagerDuty's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    """One POST: its path and JSON body."""

    path: str
    body: dict[str, Any]


@dataclass
class NotifySink:
    """Answers each POST with the next of ``statuses`` (the last repeats); keeps the 2xx ones.

    A POST answered with an error is counted in ``refused`` but not kept: the sender
    must send it again, and ``received`` holds what arrived for good.
    """

    statuses: list[int] = field(default_factory=lambda: [200])
    port: int = 0
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _answered: int = 0

    def url(self, path: str = "/hook") -> str:
        """Return the URL of ``path`` on this endpoint."""
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        """Return the bodies received (at ``path``, if given), in order."""
        return [r.body for r in self.received if path is None or r.path == path]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 30.0) -> None:
        """Wait until ``count`` bodies arrived (at ``path``); fail after ``timeout`` seconds."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.bodies(path)) >= count), timeout
            )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            path = request_line.split(" ")[1]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self.statuses[min(self._answered, len(self.statuses) - 1)]
            self._answered += 1
            if 200 <= status < 300:
                async with self._arrived:
                    self.received.append(Received(path, json.loads(body)))
                    self._arrived.notify_all()
            else:
                self.refused += 1
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def notify_sink(
    statuses: list[int] | None = None, port: int = 0
) -> AsyncIterator[NotifySink]:
    """Run a ``NotifySink`` on loopback (``port``: a chosen one, to come up where one was down)."""
    sink = NotifySink(statuses=statuses or [200])
    server = await asyncio.start_server(sink._handle, "127.0.0.1", port)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
