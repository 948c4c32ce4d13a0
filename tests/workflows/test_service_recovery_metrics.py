"""``recovery_backoff_seconds`` observes the time a backoff really lasted, not its plan."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.connection import connect, metrics_runtime
from starter.client.recoveries import final_result
from tests.helpers.policies import HOUR_MS, blocking_policy
from tests.helpers.prometheus import scrape, value
from tests.helpers.recoveries import start_recovery, status_of
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from worker import build_worker
from workflows.models import CancelInput, RecoveryPhase, RecoveryState, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(90)


async def test_a_backoff_cut_short_by_a_cancel_observes_the_time_waited(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    client = await connect(dev_env.client.service_client.config.target_host, runtime=runtime)
    async with build_worker(client, store, task_queue=task_queue):
        handle = await start_recovery(
            client,
            task_queue,
            ServiceRecoveryInput(service_name=service, policy=blocking_policy(attempts=2)),
        )
        waiting = await eventually(
            lambda: status_of(handle), lambda s: s.phase is RecoveryPhase.BACKOFF
        )
        assert waiting.next_attempt_at is not None  # an hour's backoff has begun
        await asyncio.sleep(1.0)
        await handle.signal(ServiceRecovery.cancel, CancelInput(reason="enough"))
        result = await final_result(handle)
        metrics = await eventually(
            lambda: asyncio.to_thread(scrape, address),
            lambda text: value(text, "recovery_backoff_seconds_count") == 1,
        )
    assert result.state is RecoveryState.CANCELLED
    waited = value(metrics, "recovery_backoff_seconds_sum", strategy="exponential_backoff")
    assert 0.5 <= waited < 30, f"observed {waited} s: the plan was {HOUR_MS / 1000} s"
