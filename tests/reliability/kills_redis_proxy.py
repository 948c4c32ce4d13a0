"""A TCP proxy between the worker and Redis that can hold one service's breaker write.

The worker's breaker store is ``redis://`` at this proxy; the proxy forwards to a real
``redis-server`` and reads the commands going through (RESP arrays, as redis-py sends
them), so a test can

- see every breaker state that reached the store, per service (``writes``), and
- hold a service's next write at a chosen point, to kill the worker with it in flight:
  ``Hold.REQUEST`` keeps it from reaching Redis (the write never lands), and
  ``Hold.REPLY`` lets it land and keeps Redis's answer from the worker (the write
  landed, the workflow never heard of it). After a ``Hold.REPLY`` the service's later
  writes are held as requests, so a worker that times out and retries lands nothing more.

A held connection stays held until its client goes away (a killed worker's sockets
close): what it held is dropped, never delivered late.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from recovery_breakers.redis_store import breaker_key

_CRLF = b"\r\n"
_KEY_INFIX = breaker_key("", "").encode()  # b":pybreaker:", between service and field


class Hold(enum.Enum):
    """Where a held write stops."""

    REQUEST = "request"  # before Redis: the write does not land
    REPLY = "reply"  # after Redis: the write lands, its answer never reaches the worker


@dataclass(frozen=True)
class StoreWrite:
    """One breaker state that reached Redis through the proxy."""

    service_name: str
    state: str


def parse_commands(buffer: bytearray) -> list[list[bytes]]:
    """Remove and return every complete RESP command (an array of bulk strings) in ``buffer``.

    Raises:
        ValueError: the bytes are not RESP arrays of bulk strings.
    """
    commands: list[list[bytes]] = []
    while True:
        parsed = _parse_one(buffer)
        if parsed is None:
            return commands
        command, used = parsed
        del buffer[:used]
        commands.append(command)


def _parse_one(buffer: bytearray) -> tuple[list[bytes], int] | None:
    """Return one complete command and the bytes it took, or None if more must arrive."""
    end = buffer.find(_CRLF)
    if end < 0:
        return None
    if buffer[:1] != b"*":
        raise ValueError(f"not a RESP array: {bytes(buffer[:20])!r}")
    count, at = int(buffer[1:end]), end + 2
    args: list[bytes] = []
    for _ in range(count):
        end = buffer.find(_CRLF, at)
        if end < 0:
            return None
        if buffer[at : at + 1] != b"$":
            raise ValueError(f"not a RESP bulk string: {bytes(buffer[at : at + 20])!r}")
        length = int(buffer[at + 1 : end])
        start = end + 2
        if len(buffer) < start + length + 2:
            return None
        args.append(bytes(buffer[start : start + length]))
        at = start + length + 2
    return args, at


def encode_command(args: list[bytes]) -> bytes:
    """Return ``args`` as the RESP array redis-py would send."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


@dataclass
class _Connection:
    """One client connection's progress through the proxy."""

    held: bool = False  # the client's bytes no longer go to Redis
    reply_held: bool = False  # Redis's bytes no longer go to the client
    queued: list[StoreWrite] = field(default_factory=list)  # SETs inside an open MULTI
    services: set[str] = field(default_factory=set)  # services the open MULTI touches
    landed: asyncio.Event | None = None  # set once Redis answers the held transaction


@dataclass
class BreakerStoreProxy:
    """Forward ``127.0.0.1:port`` to Redis at ``upstream_port``; see the module docstring."""

    upstream_port: int
    port: int = 0
    writes: list[StoreWrite] = field(default_factory=list, repr=False)
    _holds: dict[str, tuple[Hold, asyncio.Event]] = field(default_factory=dict, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        """Return the ``redis://`` URL the worker uses."""
        return f"redis://127.0.0.1:{self.port}/0"

    def hold(self, service_name: str, how: Hold) -> asyncio.Event:
        """Hold the service's next breaker write.

        Returns:
            An event set once a write is held: for ``Hold.REQUEST`` when it reaches the
            proxy, for ``Hold.REPLY`` when Redis has answered it (it is in the store).
        """
        held = asyncio.Event()
        self._holds[service_name] = (how, held)
        return held

    def release(self) -> None:
        """Hold nothing new (connections already held stay so until their client goes)."""
        self._holds.clear()

    def states_written(self, service_name: str) -> list[str]:
        """Return the states written to the service's breaker, in order."""
        return [w.state for w in self.writes if w.service_name == service_name]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        connection = _Connection()
        replies = asyncio.create_task(self._pump_replies(redis_r, client_w, connection))
        try:
            await self._pump_requests(client_r, redis_w, connection)
        finally:
            replies.cancel()
            with suppress(asyncio.CancelledError):
                await replies
            redis_w.close()
            client_w.close()

    async def _pump_requests(
        self, client_r: asyncio.StreamReader, redis_w: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        buffer = bytearray()
        while chunk := await client_r.read(65536):
            if conn.held:
                continue  # dropped: a held write never lands late
            buffer += chunk
            out = bytearray()
            for command in parse_commands(buffer):
                if self._consider(command, conn):
                    out += encode_command(command)
                if conn.held:
                    break
            if out:
                redis_w.write(bytes(out))
                await redis_w.drain()

    def _consider(self, command: list[bytes], conn: _Connection) -> bool:
        """Return whether to forward ``command``; note writes and holds on the way."""
        name = command[0].upper() if command else b""
        service = _service_of(command)
        if service is not None and service in self._holds:
            how, held = self._holds[service]
            if how is Hold.REQUEST:
                conn.held = True
                held.set()
                return False
            conn.services.add(service)
        if name == b"MULTI":
            conn.queued, conn.services = [], set()
        elif name == b"SET" and service is not None and command[1].endswith(b":pybreaker:state"):
            conn.queued.append(StoreWrite(service, command[2].decode()))
        elif name == b"EXEC":
            self.writes.extend(conn.queued)
            self._landing(conn, conn.services)
            conn.queued, conn.services = [], set()
        elif name in (b"EVAL", b"EVALSHA") and service is not None:
            # The store's write of an existing breaker: one script, as atomic as MULTI/EXEC.
            keys = int(command[2])
            self.writes.append(StoreWrite(service, command[3 + keys].decode()))
            self._landing(conn, {service})
        return True

    def _landing(self, conn: _Connection, services: set[str]) -> None:
        """A write of ``services`` goes to Redis: hold its reply where a test asked to."""
        for touched in services & set(self._holds):
            how, held = self._holds[touched]
            if how is Hold.REPLY:
                conn.reply_held, conn.landed = True, held
                # Landed once: any retry of the dead worker's is held before Redis.
                self._holds[touched] = (Hold.REQUEST, asyncio.Event())

    async def _pump_replies(
        self, redis_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, conn: _Connection
    ) -> None:
        with suppress(ConnectionError):
            while chunk := await redis_r.read(65536):
                if conn.reply_held:
                    if conn.landed is not None:
                        conn.landed.set()  # Redis answered: the write is in the store
                    continue
                client_w.write(chunk)
                await client_w.drain()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _service_of(command: list[bytes]) -> str | None:
    """Return the service whose pybreaker key the command names first, if any."""
    for arg in command[1:]:
        at = arg.find(_KEY_INFIX)
        if at > 0:
            return arg[:at].decode("utf-8", "replace")
    return None


@asynccontextmanager
async def breaker_store_proxy(upstream_port: int) -> AsyncIterator[BreakerStoreProxy]:
    """Run a ``BreakerStoreProxy`` to Redis on ``upstream_port`` on a free loopback port."""
    proxy = BreakerStoreProxy(upstream_port=upstream_port)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        proxy._track(task)
        with suppress(ConnectionError, ValueError):
            await proxy._serve(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        for task in list(proxy._tasks):
            task.cancel()
        await server.wait_closed()
