"""The demo's services: four tiny HTTP services, and their client behind pybreaker breakers.

``recoveryctl demo`` (``starter.devtools.demo``) breaks and repairs them; the orchestrator
only ever sees their breakers in the shared store and their ``/health`` answers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pybreaker

from starter.breakers import breaker
from workflows.models import RecoveryStrategy

FAIL_MAX = 3
# Far longer than the demo: the orchestrator closes the breakers, never pybreaker's own timer.
RESET_TIMEOUT = 3600
CALL_INTERVAL = 0.3
CALL_TIMEOUT = 2.0
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


@dataclass(frozen=True)
class DemoSpec:
    """One demo service: how the watch schedules it and how it comes back after the break."""

    name: str
    priority: int
    note: str
    strategy: RecoveryStrategy = RecoveryStrategy.EXPONENTIAL_BACKOFF
    depends_on: tuple[str, ...] = ()
    # Seconds after the breakers open until the service works again.
    repair_after: float = 0.0
    # Health checks it fails after the break, however early its repair: retries show.
    min_failed_checks: int = 0

    @property
    def manual(self) -> bool:
        """Return True when an operator approves each attempt."""
        return self.strategy is RecoveryStrategy.MANUAL


SPECS = (
    DemoSpec("demo-db", 1, "back ~2 s after the break", repair_after=2.0),
    DemoSpec("demo-api", 2, "depends on demo-db; back at once", depends_on=("demo-db",)),
    DemoSpec(
        "demo-search", 3, "fails its first checks; back after ~6 s",
        repair_after=6.0, min_failed_checks=2,
    ),
    DemoSpec(
        "demo-payments", 1, "MANUAL: waits for an operator", strategy=RecoveryStrategy.MANUAL
    ),
)
DEMO_NAMES = frozenset(spec.name for spec in SPECS)
MANUAL_NAMES = frozenset(spec.name for spec in SPECS if spec.manual)


def approve_command(service: str) -> str:
    """Return the command an operator runs to approve one attempt, runnable as printed.

    ``recoveryctl`` is often only in the venv (``make dev``'s ``.venv/bin``), not on PATH.
    """
    beside = Path(sys.executable).parent / "recoveryctl"
    program = "recoveryctl"
    if shutil.which("recoveryctl") is None and beside.exists():
        relative = os.path.relpath(beside)
        program = str(beside) if relative.startswith("..") else relative
    return f"{program} approve {service} --operator <you>"


class DemoService:
    """A tiny HTTP service on loopback: ``/health`` and ``/work`` answer 200 up, 503 broken."""

    def __init__(self, spec: DemoSpec) -> None:
        self.spec = spec
        self.port = 0
        self.broken = False
        self.failed_checks = 0
        self._repair_at: float | None = None

    @property
    def name(self) -> str:
        """Return the service's name (also its breaker's)."""
        return self.spec.name

    def url(self, path: str) -> str:
        """Return the URL of ``path`` on this service."""
        return f"http://127.0.0.1:{self.port}{path}"

    def break_down(self) -> None:
        """Break the service until a repair is scheduled and has come due."""
        self.broken, self.failed_checks, self._repair_at = True, 0, None

    def schedule_repair(self, now: float) -> None:
        """Repair the service ``repair_after`` seconds from ``now`` (monotonic clock)."""
        self._repair_at = now + self.spec.repair_after

    def is_up(self) -> bool:
        """Return whether it answers 200; a repair that has come due takes effect here."""
        if (
            self.broken
            and self._repair_at is not None
            and time.monotonic() >= self._repair_at
            and self.failed_checks >= self.spec.min_failed_checks
        ):
            self.broken = False
        return not self.broken

    def answer(self, path: str) -> int:
        """Return the status for a GET of ``path``; a failed health check is counted."""
        if path not in ("/health", "/work"):
            return 404
        if self.is_up():
            return 200
        if path == "/health":
            self.failed_checks += 1
        return 503

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one request, then close: every call is a connection of its own."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b" ", 2)
            path = parts[1].decode("latin-1").split("?")[0] if len(parts) > 1 else ""
            status = self.answer(path)
            body = _REASONS[status].encode()
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(specs: Iterable[DemoSpec]) -> AsyncIterator[list[DemoService]]:
    """Run one ``DemoService`` per spec on a free loopback port."""
    services = [DemoService(spec) for spec in specs]
    servers: list[asyncio.Server] = []
    try:
        for service in services:
            server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
            service.port = int(server.sockets[0].getsockname()[1])
            servers.append(server)
        yield services
    finally:
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


class Caller:
    """The services' client: calls each ``/work`` through its pybreaker breaker.

    pybreaker and the stores are synchronous, so calls run in a thread, one at a
    time under a lock: once ``close`` holds the lock, no call can touch a breaker
    again (a breaker read re-creates a forgotten breaker in the store).
    """

    def __init__(self, services: list[DemoService], store_url: str) -> None:
        self._services = services
        self._breakers = {
            s.name: breaker(s.name, fail_max=FAIL_MAX, reset_timeout=RESET_TIMEOUT, store_url=store_url)
            for s in services
        }
        # trust_env=False: a proxy setting must not send loopback calls elsewhere.
        self._http = httpx.Client(timeout=CALL_TIMEOUT, trust_env=False)
        self._lock = threading.Lock()
        self._closed = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last: dict[str, str] = {}

    def call(self, service: DemoService) -> bool:
        """Call the service's ``/work`` through its breaker; return whether it worked."""
        with self._lock:
            if self._closed:
                return False
            try:
                self._breakers[service.name].call(self._work, service.url("/work"))
                outcome = "ok"
            except pybreaker.CircuitBreakerError:
                outcome = "breaker open"
            except httpx.HTTPStatusError as err:
                outcome = f"failed ({err.response.status_code})"
            except Exception as err:  # the client of a demo keeps calling, whatever went wrong
                outcome = f"failed ({type(err).__name__})"
        self.last[service.name] = outcome
        return outcome == "ok"

    def _work(self, url: str) -> None:
        self._http.get(url).raise_for_status()

    def start(self) -> None:
        """Start calling every service every ``CALL_INTERVAL`` seconds."""
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            for service in self._services:
                await asyncio.to_thread(self.call, service)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), CALL_INTERVAL)

    async def close(self) -> None:
        """Stop calling; return once no call is in flight or can start."""
        self._stop.set()
        if self._task is not None:
            await self._task
        await asyncio.to_thread(self._shut)

    def _shut(self) -> None:
        with self._lock:
            self._closed = True
            self._http.close()
