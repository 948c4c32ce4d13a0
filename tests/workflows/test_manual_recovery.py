"""MANUAL recoveries on the real dev server: status query, search attribute, approvals."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.histories import record_history
from tests.helpers.recoveries import start_recovery, status_of
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.models import (
    ApproveInput,
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryState,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery


async def visible_state(client: Client, workflow_id: str) -> str | None:
    """Return the ``RecoveryState`` search attribute as visibility reports it."""
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        values = execution.search_attributes.get("RecoveryState")
        return str(values[0]) if values else None
    return None


async def test_manual_waits_for_approve_and_each_approval_runs_one_attempt(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with health_server([503, 200]) as server:
        policy = RecoveryPolicy(max_retry_attempts=3, health_check=HttpHealthCheck(url=server.url))
        async with running_worker(client, store, task_queue):
            handle = await start_recovery(
                client,
                task_queue,
                ServiceRecoveryInput(
                    service_name=service, strategy=RecoveryStrategy.MANUAL, policy=policy
                ),
            )
            status = await eventually(
                lambda: status_of(handle), lambda s: s.state is RecoveryState.AWAITING_MANUAL
            )
            assert status.attempt_count == 0 and status.phase is RecoveryPhase.AWAITING_APPROVAL
            assert await eventually(
                lambda: visible_state(client, handle.id), lambda v: v == "awaiting_manual"
            )
            assert server.requests == 0, "no attempt may run before an approval"

            await handle.signal(ServiceRecovery.approve, ApproveInput(operator="alice", note="go"))
            status = await eventually(
                lambda: status_of(handle),
                lambda s: s.attempt_count == 1 and s.state is RecoveryState.AWAITING_MANUAL,
            )
            assert server.requests == 1 and status.last_error and "503" in status.last_error

            await handle.signal(ServiceRecovery.approve, ApproveInput(operator="bob"))
            result = await handle.result()
            history = await handle.query(ServiceRecovery.history)
            record_history(await handle.fetch_history(), "service_recovery_manual")
    assert result.success and result.attempt_number == 2
    assert [a.approved_by for a in history] == ["alice", "bob"]
    assert await eventually(lambda: visible_state(client, handle.id), lambda v: v == "succeeded")


async def test_escalate_to_manual_waits_for_an_operator_after_the_last_attempt(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with health_server([500, 500, 200]) as server:
        policy = RecoveryPolicy(
            max_retry_attempts=2,
            initial_delay_ms=10,
            escalate_to_manual=True,
            health_check=HttpHealthCheck(url=server.url),
        )
        async with running_worker(client, store, task_queue):
            handle = await start_recovery(
                client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            status = await eventually(
                lambda: status_of(handle), lambda s: s.state is RecoveryState.AWAITING_MANUAL
            )
            assert status.attempt_count == 2 and server.requests == 2
            await handle.signal(ServiceRecovery.approve, ApproveInput(operator="oncall"))
            result = await handle.result()
    assert result.success and result.attempt_number == 3
