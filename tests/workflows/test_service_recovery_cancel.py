"""A cancelled recovery leaves the breaker as it found it: open, never half-open."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from tests.helpers.breakers import state_of
from tests.helpers.histories import record_history
from tests.helpers.recoveries import status_of, task_failures
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.constants import recovery_workflow_id
from workflows.models import (
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(60)


async def test_a_cancel_that_arrives_with_the_start_never_touches_the_breaker(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, BreakerState.OPEN)
    async with running_worker(dev_env.client, store, task_queue):
        handle = await dev_env.client.start_workflow(
            "ServiceRecovery",
            {"service_name": service},
            id=recovery_workflow_id(service),
            task_queue=task_queue,
            start_signal="cancel",
            start_signal_args=[{"reason": "false alarm"}],
        )
        result = RecoveryResult.model_validate(await asyncio.wait_for(handle.result(), timeout=20))
        events = [e async for e in handle.fetch_history_events()]
    assert result.state is RecoveryState.CANCELLED and result.attempt_number == 0
    assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in events)
    assert state_of(store, service) is BreakerState.OPEN


async def test_a_cancel_during_the_health_check_reopens_the_breaker(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, BreakerState.OPEN)
    async with health_server(hang=True) as server, running_worker(
        dev_env.client, store, task_queue
    ):
        handle = await dev_env.client.start_workflow(
            ServiceRecovery.run,
            ServiceRecoveryInput(
                service_name=service,
                policy=RecoveryPolicy(
                    health_check=HttpHealthCheck(url=server.url, timeout_ms=2000)
                ),
            ),
            id=recovery_workflow_id(service),
            task_queue=task_queue,
        )
        await eventually(lambda: status_of(handle), lambda s: s.phase is RecoveryPhase.HEALTH_CHECK)
        assert state_of(store, service) is BreakerState.HALF_OPEN
        await handle.signal("cancel", {"reason": "operator gave up"})
        result = await asyncio.wait_for(handle.result(), timeout=20)
        history = await handle.query(ServiceRecovery.history)
        record_history(await handle.fetch_history(), "service_recovery_cancel_during_check")
    assert result.state is RecoveryState.CANCELLED and result.error_message == "cancelled: operator gave up"
    assert history[-1].result == "cancelled"
    assert state_of(store, service) is BreakerState.OPEN
    assert await task_failures(handle) == []
