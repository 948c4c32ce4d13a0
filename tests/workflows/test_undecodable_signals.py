"""A signal whose payload does not decode is recorded, not dropped by the SDK unseen.

The SDK drops such a signal before any handler and says so only in the worker's
log. The product's worker decodes with ``worker_data_converter``, which hands the
guard an ``UndecodedInput`` (``workflows.guard``): the coordinator records it in
``rejected_signals`` and a recovery in ``ignored_signals``, where an operator looks.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.histories import record_history
from tests.helpers.recoveries import start_recovery, status_of
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.constants import COORDINATOR_WORKFLOW, recovery_workflow_id
from workflows.models import RecoveryState, RecoveryStrategy, ServiceRecoveryInput

pytestmark = pytest.mark.timeout(120)

UNDECODABLE = {
    "unknown-encoding": Payload(metadata={"encoding": b"binary/garbage"}, data=b"\x00\xff"),
    "not-json": Payload(metadata={"encoding": b"json/plain"}, data=b'{"service_name": '),
    "duplicate-key": Payload(
        metadata={"encoding": b"json/plain"},
        data=b'{"service_name": "a", "service_name": "b"}',
    ),
}
WHY = {
    "unknown-encoding": "Unknown payload encoding binary/garbage",
    "not-json": "Invalid JSON",
    "duplicate-key": "duplicate key 'service_name'",
}


async def rejected_signals(client: Client, workflow_id: str, count: int) -> list[str]:
    handle = client.get_workflow_handle(workflow_id)

    async def configuration() -> dict[str, Any]:
        answer: dict[str, Any] = await handle.query("get_configuration")
        return answer

    info = await eventually(configuration, lambda c: len(c["rejected_signals"]) >= count)
    return list(info["rejected_signals"])


async def test_undecodable_coordinator_signals_are_recorded_as_rejected(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with running_worker(client, store, task_queue):
        handle = await client.start_workflow(
            COORDINATOR_WORKFLOW, id=f"coordinator-{uuid.uuid4()}", task_queue=task_queue
        )
        for payload in UNDECODABLE.values():
            await handle.signal("schedule_recovery", args=[RawValue(payload)])
        await handle.signal("recovery_report", args=[RawValue(UNDECODABLE["not-json"])])
        rejected = await rejected_signals(client, handle.id, 4)
        for line, case in zip(rejected, UNDECODABLE):
            assert " schedule_recovery signal rejected: schedule_recovery signal: " in line
            assert WHY[case] in line
        assert "recovery_report signal rejected" in rejected[3] and "Invalid JSON" in rejected[3]
        # Nothing else changed, and a good signal still schedules.
        await handle.signal(
            "schedule_recovery", {"service_name": service, "strategy": "manual", "priority": 1}
        )

        async def status() -> dict[str, Any]:
            answer: dict[str, Any] = await handle.query("get_recovery_status")
            return answer

        now = await eventually(status, lambda s: service in s["services"])
        assert list(now["services"]) == [service]
        await handle.terminate("test over")
    record_history(await handle.fetch_history(), "coordinator_records_undecodable_signals")


async def test_a_payload_for_a_handler_that_takes_nothing_is_refused_not_dropped(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    """The SDK drops what a parameterless handler is given: ``NoInput`` lets the guard see it."""
    from temporalio.client import WorkflowQueryFailedError

    client = dev_env.client
    async with running_worker(client, store, task_queue):
        handle = await client.start_workflow(
            COORDINATOR_WORKFLOW, id=f"coordinator-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.signal("nudge", {"look": "again"})
        await handle.signal("nudge", 5)
        await handle.signal("nudge")  # nothing: still fine, and recorded nowhere
        await handle.signal("nudge", {})
        rejected = await rejected_signals(client, handle.id, 2)
        assert "nudge signal: look: Extra inputs are not permitted" in rejected[0]
        assert "nudge signal takes one JSON object (NoInput) or nothing, got int" in rejected[1]
        with pytest.raises(WorkflowQueryFailedError, match="get_configuration query: a: Extra"):
            await handle.query("get_configuration", {"a": 1})
        assert len((await handle.query("get_configuration", {}))["rejected_signals"]) == 2
        await handle.terminate("test over")


async def test_an_undecodable_approve_is_ignored_and_the_recovery_still_waits(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with running_worker(dev_env.client, store, task_queue):
        handle = await start_recovery(
            dev_env.client,
            task_queue,
            ServiceRecoveryInput(service_name=service, strategy=RecoveryStrategy.MANUAL),
        )
        await handle.signal("approve", args=[RawValue(UNDECODABLE["unknown-encoding"])])
        await handle.signal("cancel", args=[RawValue(UNDECODABLE["duplicate-key"])])
        status = await eventually(
            lambda: status_of(handle), lambda s: len(s.ignored_signals) == 2
        )
        assert "approve: rejected: approve signal:" in status.ignored_signals[0]
        assert WHY["unknown-encoding"] in status.ignored_signals[0]
        assert WHY["duplicate-key"] in status.ignored_signals[1]
        assert status.state is RecoveryState.AWAITING_MANUAL and status.attempt_count == 0
        await handle.terminate("test over")
    assert handle.id == recovery_workflow_id(service)
    record_history(await handle.fetch_history(), "service_recovery_ignores_undecodable_signals")
