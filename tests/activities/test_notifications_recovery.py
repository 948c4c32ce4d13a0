"""The recoveries' and the coordinator's notifications, end to end (SPEC §10).

A real worker on the dev server posts to a loopback endpoint the test starts: each
event arrives once with its fields, a notifier that is down holds up no recovery and
gets the event when it is back, and the coordinator tells of pauses, resumes and holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from activities.notifications import NotificationActivities
from activities.notify_targets import NotifyConfig
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.notify_sink import NotifySink, notify_sink
from tests.helpers.recoveries import start_recovery
from tests.helpers.servers import free_port, health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import HEALTH_CHECK_MODULES
from worker import build_worker
from workflows.coordinator import RecoveryCoordinator
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryInput
from workflows.models import (
    ApproveInput,
    RecoveryPolicy,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery

FIELDS = ("event", "service", "run_id", "attempt")


@asynccontextmanager
async def notifying_worker(
    client: Client, store: SQLiteBreakerStore, task_queue: str, *urls: str
) -> AsyncIterator[None]:
    """Run the product's worker posting every notification to ``urls``."""
    notifications = NotificationActivities(NotifyConfig(webhook_urls=urls))
    async with build_worker(
        client, store, task_queue=task_queue, health_check_modules=HEALTH_CHECK_MODULES,
        notifications=notifications,
    ):
        yield


async def delivered(client: Client, sink: NotifySink) -> list[dict[str, Any]]:
    """Wait until each received event's notification workflow has closed; return the bodies.

    Once every one has closed, nothing more can arrive: a count taken then is final.
    """
    for body in sink.bodies():
        handle = client.get_workflow_handle(f"notify-{body['event_id']}")
        await eventually(
            lambda: handle.describe(), lambda d: d.status is WorkflowExecutionStatus.COMPLETED
        )
    return sink.bodies()


def checked(policy_url: str, attempts: int) -> RecoveryPolicy:
    return RecoveryPolicy(
        max_retry_attempts=attempts,
        initial_delay_ms=10,
        max_delay_ms=20,
        health_check=HttpHealthCheck(url=policy_url),
    )


async def test_a_manual_recovery_tells_each_wait_and_its_recovery_once(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with health_server([503, 200]) as check, notify_sink() as sink:
        async with notifying_worker(client, store, task_queue, sink.url()):
            handle = await start_recovery(
                client,
                task_queue,
                ServiceRecoveryInput(
                    service_name=service,
                    strategy=RecoveryStrategy.MANUAL,
                    policy=checked(check.url, 2),
                ),
            )
            await sink.wait_for(1)
            await handle.signal(ServiceRecovery.approve, ApproveInput(operator="alice"))
            await sink.wait_for(2)
            await handle.signal(ServiceRecovery.approve, ApproveInput(operator="bob"))
            assert (await handle.result()).success
            await sink.wait_for(3)
            bodies = await delivered(client, sink)
    run_id = handle.first_execution_run_id
    assert [tuple(b[f] for f in FIELDS) for b in bodies] == [
        ("awaiting_operator", service, run_id, 1),
        ("awaiting_operator", service, run_id, 2),
        ("recovered", service, run_id, 2),
    ]
    assert len({b["event_id"] for b in bodies}) == 3
    assert "attempt 2 of 2" in bodies[1]["message"] and "503" in bodies[1]["message"]
    assert bodies[2]["message"].endswith("succeeded at attempt 2, after 1 failed attempt(s)")


async def test_a_failed_recovery_is_told_once_and_a_first_try_success_tells_no_one(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with health_server([503]) as down, health_server([200]) as up, notify_sink() as sink:
        async with notifying_worker(client, store, task_queue, sink.url()):
            failing = await start_recovery(
                client,
                task_queue,
                ServiceRecoveryInput(service_name=service, policy=checked(down.url, 2)),
            )
            with pytest.raises(WorkflowFailureError):
                await failing.result()
            await sink.wait_for(1)
            healthy = await start_recovery(
                client,
                task_queue,
                ServiceRecoveryInput(service_name=f"{service}-ok", policy=checked(up.url, 2)),
            )
            assert (await healthy.result()).success
            bodies = await delivered(client, sink)
            with pytest.raises(RPCError):  # no news, no notification
                await client.get_workflow_handle(
                    f"notify-recovered-{healthy.first_execution_run_id}-1"
                ).describe()
    assert [tuple(b[f] for f in FIELDS) for b in bodies] == [
        ("failed", service, failing.first_execution_run_id, 2),
    ]
    assert "failed after 2 attempt(s)" in bodies[0]["message"]


async def test_a_notifier_that_is_down_delays_no_recovery_and_gets_the_event_when_back(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    port = free_port()  # nothing listens there yet: connection refused
    async with health_server([503, 200]) as check:
        async with notifying_worker(client, store, task_queue, f"http://127.0.0.1:{port}/hook"):
            handle = await start_recovery(
                client,
                task_queue,
                ServiceRecoveryInput(service_name=service, policy=checked(check.url, 3)),
            )
            result = await asyncio.wait_for(handle.result(), 15)
            assert result.success and result.attempt_number == 2
            notification = client.get_workflow_handle(
                f"notify-recovered-{handle.first_execution_run_id}-2"
            )
            described = await notification.describe()
            assert described.status is WorkflowExecutionStatus.RUNNING, "kept, being retried"
            async with notify_sink(port=port) as sink:
                await sink.wait_for(1)
                bodies = await delivered(client, sink)
    assert [(b["event"], b["attempt"]) for b in bodies] == [("recovered", 2)]


async def test_the_coordinator_tells_of_pauses_resumes_and_each_hold_once(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    coordinator_id = f"coordinator-{task_queue}"
    async with health_server([200]) as check, notify_sink() as sink:
        async with notifying_worker(client, store, task_queue, sink.url()):
            orchestrator = RecoveryOrchestrator(
                client=client, task_queue=task_queue, coordinator_workflow_id=coordinator_id
            )
            await orchestrator.start()
            await orchestrator.pause_service(service, duration=600, reason="deploying")
            await sink.wait_for(1)
            await orchestrator.resume_service(service)
            await sink.wait_for(2)
            await orchestrator.resume_service(service)  # nothing to lift: nothing told

            # The storm guard: one attempt an hour, spent by the first automatic recovery.
            budget = checked(check.url, 1).model_copy(update={"max_attempts_per_hour": 1})
            request = ScheduleRecoveryInput(service_name=service, policy=budget)
            coordinator = client.get_workflow_handle(coordinator_id)

            async def automatic(*requests: ScheduleRecoveryInput) -> list[str]:
                results = await coordinator.execute_update(
                    RecoveryCoordinator.schedule_recoveries,
                    ScheduleRecoveriesInput(recoveries=list(requests), automatic=True),
                )
                return [r.outcome for r in results]

            assert await automatic(request) == ["queued"]
            await eventually(
                lambda: orchestrator.get_recovery_status(),
                lambda s: service not in s["services"] and s["recent_history"],
            )
            assert await automatic(request) == ["held_back"]
            await sink.wait_for(3)
            # The same hold again, beside a new request: told once only.
            other = ScheduleRecoveryInput(service_name=f"{service}-b", policy=checked(check.url, 1))
            assert await automatic(request, other) == ["held_back", "queued"]
            await orchestrator.stop()
            bodies = await delivered(client, sink)
    assert [(b["event"], b["service"], b["run_id"], b["attempt"]) for b in bodies] == [
        ("paused", service, None, None),
        ("resumed", service, None, None),
        ("held_back", service, None, None),
    ]
    assert "deploying" in bodies[0]["message"] and bodies[0]["until"]
    assert "paused" in bodies[1]["message"]
    assert "storm guard" in bodies[2]["message"] and bodies[2]["until"]


async def test_a_failures_cool_down_is_told_once_and_its_repeats_write_no_history(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    coordinator_id = f"coordinator-{task_queue}"
    async with health_server([503]) as check, notify_sink() as sink:
        async with notifying_worker(client, store, task_queue, sink.url()):
            orchestrator = RecoveryOrchestrator(
                client=client, task_queue=task_queue, coordinator_workflow_id=coordinator_id
            )
            await orchestrator.start()
            coordinator = client.get_workflow_handle(coordinator_id)
            request = ScheduleRecoveriesInput(
                recoveries=[ScheduleRecoveryInput(service_name=service, policy=checked(check.url, 1))],
                automatic=True,
            )
            [queued] = await coordinator.execute_update(RecoveryCoordinator.schedule_recoveries, request)
            assert queued.outcome == "queued"
            await sink.wait_for(1)  # the recovery failed: its cool-down begins
            await eventually(
                lambda: orchestrator.get_recovery_status(),
                lambda s: service not in s["services"] and s["recent_history"],
            )
            # The first hand-over that meets the cool-down is answered, and told.
            [held] = await coordinator.execute_update(RecoveryCoordinator.schedule_recoveries, request)
            assert held.outcome == "held_back" and "cool-down" in (held.reason or "")
            await sink.wait_for(2)
            # Again: refused by the validator (no history), with the same answer; not told.
            for _ in range(3):
                with pytest.raises(WorkflowUpdateFailedError) as again:
                    await coordinator.execute_update(RecoveryCoordinator.schedule_recoveries, request)
                cause = again.value.cause
                assert isinstance(cause, ApplicationError) and cause.details
                [outcome] = cause.details[0]["outcomes"]
                assert outcome["outcome"] == "held_back" and "cool-down" in outcome["reason"]
            await orchestrator.stop()
            bodies = await delivered(client, sink)
    assert [(b["event"], b["service"]) for b in bodies] == [("failed", service), ("held_back", service)]
    assert "cool-down: 1 failed recovery in a row" in bodies[1]["message"] and bodies[1]["until"]


async def test_the_next_success_after_a_failed_recovery_is_told_even_at_its_first_try(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with health_server([503, 503, 200]) as check, notify_sink() as sink:
        async with notifying_worker(client, store, task_queue, sink.url()):
            orchestrator = RecoveryOrchestrator(
                client=client,
                task_queue=task_queue,
                coordinator_workflow_id=f"coordinator-{task_queue}",
            )
            await orchestrator.start()
            await orchestrator.schedule_recovery(service, policy=checked(check.url, 2))
            await sink.wait_for(1)
            # An operator schedules it again (which lifts the cool-down): it succeeds at once.
            await eventually(
                lambda: orchestrator.get_recovery_status(),
                lambda s: service not in s["services"] and s["recent_history"],
            )
            await orchestrator.schedule_recovery(service, policy=checked(check.url, 2))
            await sink.wait_for(2)
            bodies = await delivered(client, sink)
            await orchestrator.stop()
    assert [(b["event"], b["attempt"]) for b in bodies] == [("failed", 2), ("recovered", 1)]
    assert bodies[1]["message"].endswith("succeeded at attempt 1, after its last recovery failed")
