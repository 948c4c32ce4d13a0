"""The operator's word on the real dev server: pause, resume, cool-down, the queue page.

Automatic requests go through the coordinator's ``schedule_recoveries`` update with
``automatic: true``, as the circuit watch sends them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import TcpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.coordinator_client import CoordinatorClient
from tests.helpers.policies import blocking_policy
from tests.helpers.recoveries import quiescent
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on, running_worker
from workflows.coordinator_models import (
    PauseServiceInput,
    ResumeServiceInput,
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
)
from workflows.models import RecoveryPolicy

pytestmark = pytest.mark.timeout(90)


def coordinator_of(env: WorkflowEnvironment, task_queue: str) -> CoordinatorClient:
    return CoordinatorClient(env.client, workflow_id=f"coordinator-{task_queue}", task_queue=task_queue)


async def automatic(client: CoordinatorClient, name: str) -> str:
    request = ScheduleRecoveriesInput(
        recoveries=[ScheduleRecoveryInput(service_name=name, breaker_opened_at=datetime.now(timezone.utc))],
        automatic=True,
    )
    [result] = await client.schedule_recoveries(request)
    return result.outcome


async def test_a_pause_holds_automation_and_a_resume_releases_it(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = coordinator_of(dev_env, task_queue)
    async with running_worker(dev_env.client, store, task_queue):
        paused = await client.pause_service(
            PauseServiceInput(service_name=service, duration_s=600, reason="db failover")
        )
        assert (paused.until - datetime.now(timezone.utc)).total_seconds() > 590
        assert await automatic(client, service) == "paused"
        status = await client.get_recovery_status()
        assert status is not None
        assert status["paused"][service]["reason"] == "db failover"
        assert service not in status["services"]
        resumed = await client.resume_service(ResumeServiceInput(service_name=service))
        assert resumed.resumed and resumed.lifted == ["paused"]
        again = await client.resume_service(ResumeServiceInput(service_name=service))
        assert not again.resumed
        assert await automatic(client, service) == "queued"


async def test_a_failed_recovery_holds_automation_off_and_the_queue_page_says_why(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    refused = RecoveryPolicy(
        max_retry_attempts=1,
        health_check=TcpHealthCheck(host="127.0.0.1", port=free_port(), timeout_ms=300),
    )
    waiting = f"{service}-waiting"
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        store.set_state(service, BreakerState.OPEN)
        await orch.schedule_recovery(service, policy=refused)
        await eventually(
            orch.get_recovery_status,
            lambda s: any(r["service_name"] == service for r in s["recent_history"]),
        )
        client = coordinator_of(dev_env, task_queue)
        assert await automatic(client, service) == "held_back"
        status = await orch.get_recovery_status(max_staleness=0)
        hold = status["held_back"][service]
        assert "cool-down: 1 failed recovery in a row" in hold["reason"] and hold["until"]
        # The queue page (the Web UI's current details) tells what runs, waits and is held.
        await orch.schedule_recovery(f"{service}-blocker", policy=blocking_policy())
        await orch.schedule_recovery(waiting, priority=3)
        handle = dev_env.client.get_workflow_handle(f"coordinator-{task_queue}")

        async def details() -> str:
            metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            return str(metadata.current_details)

        text = await eventually(details, lambda d: waiting in d and "cool-down" in d)
        assert "**Waiting, in priority order**" in text and f"`{service}`" in text
        description = await handle.describe()
        assert "queue of service recoveries" in (await description.static_summary() or "")


async def test_handing_over_held_services_again_and_again_writes_no_coordinator_history(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """The watch hands the same open breakers over every look: a no-op is refused, not recorded."""
    from temporalio.testing import ActivityEnvironment

    from activities.coordinator_handoff import CoordinatorHandoffActivities
    from workflows.circuit_watch_models import HandOverInput

    client = coordinator_of(dev_env, task_queue)
    async with running_worker(dev_env.client, store, task_queue):
        await client.pause_service(PauseServiceInput(service_name=service, reason="db failover"))
        handoff = CoordinatorHandoffActivities(lambda _: client)
        request = HandOverInput(
            coordinator_workflow_id=client.workflow_id,
            request=ScheduleRecoveriesInput(
                recoveries=[ScheduleRecoveryInput(service_name=service)], automatic=True
            ),
        )
        handle = client.handle()
        # The pause's notification is a child, whose close the coordinator hears of.
        await eventually(handle.fetch_history, _child_completed)
        await quiescent(handle)
        before = len((await handle.fetch_history()).events)
        for _ in range(5):
            [answer] = await ActivityEnvironment().run(handoff.hand_over_open_breakers, request)
            assert answer.outcome == "paused" and "db failover" in (answer.reason or "")
        assert len((await handle.fetch_history()).events) == before


def _child_completed(history: WorkflowHistory) -> bool:
    return any(
        event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED
        for event in history.events
    )


async def test_an_operators_cancel_says_how_long_it_holds_automation_off(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    from workflows.coordinator_models import CancelRecoveryInput
    from workflows.coordinator_state import CANCEL_HOLD

    client = coordinator_of(dev_env, task_queue)
    async with running_worker(dev_env.client, store, task_queue):
        await client.schedule_recovery(ScheduleRecoveryInput(service_name=service, policy=blocking_policy()))
        before = datetime.now(timezone.utc)
        result = await client.cancel_recovery(CancelRecoveryInput(service_name=service, reason="maintenance"))
        assert result is not None and result.cancelled
        assert result.automation_held_until is not None
        assert before + CANCEL_HOLD - timedelta(seconds=5) < result.automation_held_until
        assert await automatic(client, service) == "held_back"
