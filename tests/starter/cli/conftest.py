"""The ``cli`` fixture: ``recoveryctl`` aimed at the test's server, coordinator and task queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.recoveryctl import Cli
from tests.helpers.workers import running_worker


@pytest_asyncio.fixture
async def cli(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> AsyncIterator[Cli]:
    address = dev_env.client.service_client.config.target_host
    async with running_worker(dev_env.client, store, task_queue):
        yield Cli(address, f"coordinator-{task_queue}", task_queue)
