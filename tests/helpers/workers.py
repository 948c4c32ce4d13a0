"""The product's worker run inside the test, alone or under a started facade.

Both take the client, store and task queue of the test (the ``dev_env`` or ``time_env``,
``store`` and ``task_queue`` fixtures in ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from recovery_breakers.store import CircuitBreakerStore
from worker import build_worker

if TYPE_CHECKING:
    from starter.client.orchestrator import RecoveryOrchestrator

# The module whose functions a test's callable health checks may name (``tests.helpers.checks:…``).
HEALTH_CHECK_MODULES = ["tests.helpers.checks"]


@asynccontextmanager
async def running_worker(
    client: Client, store: CircuitBreakerStore, task_queue: str
) -> AsyncIterator[Worker]:
    """Run the product's worker (callable checks allowed from ``tests.helpers.checks``)."""
    async with build_worker(
        client, store, task_queue=task_queue, health_check_modules=HEALTH_CHECK_MODULES
    ) as worker:
        yield worker


@asynccontextmanager
async def orchestrator_on(
    env: WorkflowEnvironment,
    store: CircuitBreakerStore,
    task_queue: str,
    **options: Any,
) -> AsyncIterator[RecoveryOrchestrator]:
    """A worker plus a started facade driving a coordinator of this test's own."""
    from starter.client.orchestrator import RecoveryOrchestrator

    orchestrator = RecoveryOrchestrator(
        client=env.client,
        task_queue=task_queue,
        coordinator_workflow_id=f"coordinator-{task_queue}",
        **options,
    )
    async with running_worker(env.client, store, task_queue):
        await orchestrator.start()
        yield orchestrator
        if orchestrator.is_running:
            await orchestrator.stop()
