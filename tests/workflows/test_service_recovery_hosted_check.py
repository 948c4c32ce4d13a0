"""Hosted health checks: run on the task queue of the process that scheduled the recovery.

The host here is a small worker of the test's own serving ``run_hosted_health_check``
(the facade's in-process host is tested with the facade). When no host serves the
queue, the attempt fails after ``host_wait_ms`` with a message naming the host.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.health_check_specs import (
    HOSTED_CHECK_ACTIVITY,
    HealthCheckInput,
    HealthCheckOutcome,
    HostedHealthCheck,
)
from activities.health_checks import HealthCheckActivities
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.histories import record_history
from tests.helpers.workers import running_worker
from starter.client.recoveries import final_result
from tests.helpers.recoveries import start_recovery, task_failures
from workflows.models import RecoveryPolicy, RecoveryState, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery



class TestHost:
    """Serves hosted checks in the test process and remembers what it was asked."""

    __test__ = False

    def __init__(self, passed: bool) -> None:
        self.passed = passed
        self.seen: list[HealthCheckInput] = []

    @activity.defn(name=HOSTED_CHECK_ACTIVITY)
    async def check(self, input: HealthCheckInput) -> HealthCheckOutcome:
        """Answer with the scripted outcome."""
        self.seen.append(input)
        detail = f"host says {self.passed}"
        return HealthCheckOutcome(passed=self.passed, detail=detail, duration_ms=1)


def hosted(task_queue: str, host_wait_ms: int = 10_000) -> HostedHealthCheck:
    """A hosted check served (or not) on ``<task_queue>-host``."""
    return HostedHealthCheck(
        task_queue=f"{task_queue}-host",
        function="tests:probe",
        host="test-host pid 4242",
        host_wait_ms=host_wait_ms,
    )


@pytest.mark.parametrize("passed", [True, False])
async def test_a_hosted_check_runs_on_its_hosts_task_queue(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, passed: bool
) -> None:
    client = dev_env.client
    check = hosted(task_queue)
    host = TestHost(passed)
    policy = RecoveryPolicy(max_retry_attempts=1, health_check=check)
    async with running_worker(client, store, task_queue), Worker(
        client, task_queue=check.task_queue, activities=[host.check]
    ):
        handle = await start_recovery(
            client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        result = await asyncio.wait_for(final_result(handle), timeout=30)
        history = await handle.query(ServiceRecovery.history)
        if passed:
            record_history(await handle.fetch_history(), "service_recovery_hosted_check")
    assert [seen.service_name for seen in host.seen] == [service]
    assert host.seen[0].check == check
    assert result.success is passed and result.health_check_passed is passed
    assert history[0].health_check is not None
    assert history[0].health_check.detail == f"host says {passed}"
    if not passed:
        assert result.error_message == f"health check failed: host says {passed}"
    queues = [
        event.activity_task_scheduled_event_attributes.task_queue.name
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert check.task_queue in queues
    assert await task_failures(handle) == []


@pytest.mark.timeout(60)
async def test_a_hosted_check_whose_host_is_gone_fails_the_attempt_after_host_wait_ms(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    check = hosted(task_queue, host_wait_ms=2000)
    policy = RecoveryPolicy(max_retry_attempts=1, health_check=check)
    async with running_worker(client, store, task_queue):
        started = time.monotonic()
        handle = await start_recovery(
            client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        result = await asyncio.wait_for(final_result(handle), timeout=20)
        elapsed = time.monotonic() - started
    assert result.state is RecoveryState.FAILED and result.health_check_passed is False
    assert result.error_message == (
        f"health check host 'test-host pid 4242' (task queue '{check.task_queue}') did not "
        f"pick the check up within 2000 ms: the process that scheduled this recovery is gone"
    )
    assert 2.0 <= elapsed < 2.0 + 5.0
    assert await task_failures(handle) == []


async def test_the_recovery_workers_own_check_activity_refuses_a_hosted_check() -> None:
    check = HostedHealthCheck(task_queue="elsewhere", function="f", host="h")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            HealthCheckActivities().run_health_check,
            HealthCheckInput(service_name="svc", check=check),
        )
    assert caught.value.type == "HealthCheckNotHosted" and caught.value.non_retryable
    assert "'h'" in caught.value.message and "'elsewhere'" in caught.value.message
