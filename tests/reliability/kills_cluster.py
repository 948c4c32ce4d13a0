"""A real dev server and real worker processes that the kill tests SIGKILL and start again.

``Cluster`` drives ``tests.helpers.processes``: ``temporal server start-dev`` on a SQLite file
(``DevServer``) and ``python -m worker`` (``WorkerProcess``), one worker at a time, on
the pinned task queue. It notes when each worker was killed and when its successor was
ready (polling), so a test can tell "late because no worker was up" from "late".

The circuit watch is kept out of the way (a day's interval, and paused):
the tests open breakers on purpose and must not see recoveries they did not start.
``own_redis`` is a module's own ``redis-server``, for tests that stop or proxy it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from temporalio.client import Client

from recovery_breakers.store import BreakerState
from recovery_breakers.stores import open_store
from starter.client.watch_control import set_watch_paused
from starter.devtools.dev import wait_for_server
from tests.helpers.processes import DevServer, WorkerProcess
from tests.helpers.redis_server import RedisServer

# The worker writes this once it polls its task queue and the coordinator runs.
WORKER_READY_LINE = "circuit watch every"
WORKER_START_TIMEOUT_S = 60.0
SERVER_START_TIMEOUT_S = 60.0
WATCH_INTERVAL_S = "86400"


@dataclass(frozen=True)
class Outage:
    """Something the recoveries need gone at ``down_at`` and back at ``back_at``.

    A killed worker (back: its successor polls) or a breaker store taken away.
    """

    down_at: datetime
    back_at: datetime

    def due(self, when: datetime) -> datetime:
        """Return when a step due at ``when`` could run at the earliest: after the outage."""
        return self.back_at if self.down_at <= when < self.back_at else when


def now() -> datetime:
    """Return the current UTC time (the server on this machine stamps events by the same clock)."""
    return datetime.now(timezone.utc)


class Cluster:
    """One dev server on ``directory/temporal`` and one worker process at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = DevServer(directory / "temporal")
        self._client: Client | None = None
        self.worker: WorkerProcess | None = None
        self.store_url = f"sqlite:///{directory / 'breakers.db'}"
        self._watch_paused = False

    @property
    def client(self) -> Client:
        """Return the client of the running server."""
        assert self._client is not None, "the server is not started"
        return self._client

    @property
    def worker_log(self) -> Path:
        """Return the file every worker of this cluster logs to, in turn."""
        return self.directory / "worker.log"

    async def start_server(self) -> Client:
        """Start the server (again, on the same database and ports); return a new client."""
        self.server.start()
        assert self.server.process is not None
        self._client = await wait_for_server(
            self.server.address, timeout=SERVER_START_TIMEOUT_S, server=self.server.process
        )
        return self._client

    def kill_server(self) -> datetime:
        """SIGKILL the server; return when."""
        self.server.kill()
        return now()

    async def start_worker(self, store_url: str | None = None) -> datetime:
        """Start a worker on ``store_url`` (default: the last one given) and wait until it polls.

        Returns:
            When it was ready.

        Raises:
            AssertionError: it exited or was not ready within ``WORKER_START_TIMEOUT_S``.
        """
        if store_url is not None:
            self.store_url = store_url
        worker = WorkerProcess(self.server.address, self.directory / "breakers.db")
        worker.env["RECOVERY_CIRCUIT_STORE"] = self.store_url
        worker.env["RECOVERY_WATCH_INTERVAL"] = WATCH_INTERVAL_S
        before = self._ready_lines()
        worker.start()
        self.worker = worker
        deadline = asyncio.get_running_loop().time() + WORKER_START_TIMEOUT_S
        while self._ready_lines() == before:
            assert worker.process is not None
            if worker.process.poll() is not None or asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the worker did not start:\n{self.log_tail()}")
            await asyncio.sleep(0.05)
        ready = now()
        if not self._watch_paused:
            await set_watch_paused(self.client, True, "kill tests: only the recoveries they start")
            self._watch_paused = True
        return ready

    def open_breakers(self, services: Iterable[str]) -> None:
        """Give each service an open breaker in the worker's store, as its own pybreaker would.

        A recovery touches only breakers that exist (it never creates one), and the
        verdicts read the breaker writes from the history.
        """
        store = open_store(self.store_url)
        try:
            for name in services:
                store.set_state(name, BreakerState.OPEN)
        finally:
            store.close()

    async def use_store(self, store_url: str) -> None:
        """Run the worker on ``store_url``: a new worker if the running one uses another store."""
        if store_url != self.store_url:
            self.kill_worker()
            await self.start_worker(store_url)

    def kill_worker(self) -> datetime:
        """SIGKILL the running worker; return when."""
        assert self.worker is not None, "no worker started"
        self.worker.kill()
        return now()

    async def restart_worker(self, pause_s: float = 0.0) -> Outage:
        """Kill the worker, wait ``pause_s``, start a new one; return the outage."""
        killed = self.kill_worker()
        await asyncio.sleep(pause_s)
        return Outage(down_at=killed, back_at=await self.start_worker())

    def stop(self) -> None:
        """Kill whatever still runs (a test's end, passed or not)."""
        if self.worker is not None:
            self.worker.kill()
        self.server.kill()

    def log_tail(self, chars: int = 3000) -> str:
        """Return the end of the worker log (for assertion messages)."""
        text = self.worker_log.read_text(errors="replace") if self.worker_log.exists() else ""
        return text[-chars:]

    def _ready_lines(self) -> int:
        if not self.worker_log.exists():
            return 0
        return self.worker_log.read_text(errors="replace").count(WORKER_READY_LINE)


@asynccontextmanager
async def running_cluster(directory: Path, store_url: str | None = None) -> AsyncIterator[Cluster]:
    """A started server and worker, killed on exit."""
    cluster = Cluster(directory)
    try:
        await cluster.start_server()
        await cluster.start_worker(store_url)
        yield cluster
    finally:
        with suppress(Exception):
            cluster.stop()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of the test module's own, which its tests may stop (import it as a fixture)."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server
