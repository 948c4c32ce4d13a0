"""The reference timings, read back from the workflow's own timers (time-skipping server)."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import TcpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.histories import record_history
from tests.helpers.workers import running_worker
from starter.client.recoveries import final_result
from tests.helpers.recoveries import event_types, start_recovery, timers
from tests.helpers.servers import free_port
from workflows.models import RecoveryPolicy, RecoveryState, RecoveryStrategy, ServiceRecoveryInput


def failing_policy(**fields: object) -> RecoveryPolicy:
    """A policy whose health check always fails: a TCP probe of a closed loopback port."""
    check = TcpHealthCheck(host="127.0.0.1", port=free_port(), timeout_ms=500)
    return RecoveryPolicy(health_check=check, **fields)


async def run_failing(
    time_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    strategy: RecoveryStrategy,
    policy: RecoveryPolicy,
    record_as: str | None = None,
) -> list[tuple[int, str]]:
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client,
            task_queue,
            ServiceRecoveryInput(service_name=service, strategy=strategy, policy=policy),
        )
        result = await final_result(handle)
        if record_as:
            record_history(await handle.fetch_history(), record_as)
    assert result.state is RecoveryState.FAILED and not result.success
    assert result.attempt_number == policy.max_retry_attempts
    return await timers(handle)


async def test_exponential_waits_1_2_4_8_16_seconds(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    found = await run_failing(
        time_env, store, task_queue, service, RecoveryStrategy.EXPONENTIAL_BACKOFF,
        failing_policy(max_retry_attempts=6), record_as="service_recovery_exponential_failed",
    )
    assert [ms for ms, _ in found] == [1000, 2000, 4000, 8000, 16000]
    assert [summary for _, summary in found][:2] == [
        "backoff before attempt 2 (1000 ms)",
        "backoff before attempt 3 (2000 ms)",
    ]


async def test_linear_waits_1_to_5_seconds(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    found = await run_failing(
        time_env, store, task_queue, service, RecoveryStrategy.LINEAR_BACKOFF,
        failing_policy(max_retry_attempts=6),
    )
    assert [ms for ms, _ in found] == [1000, 2000, 3000, 4000, 5000]


async def test_immediate_starts_no_timer(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    found = await run_failing(
        time_env, store, task_queue, service, RecoveryStrategy.IMMEDIATE,
        failing_policy(max_retry_attempts=4),
    )
    assert found == []


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (RecoveryStrategy.EXPONENTIAL_BACKOFF, [500, 1000, 1500, 1500, 1500]),
        (RecoveryStrategy.LINEAR_BACKOFF, [500, 1000, 1500, 1500, 1500]),
    ],
)
async def test_max_delay_caps_the_wait(
    time_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    strategy: RecoveryStrategy,
    expected: list[int],
) -> None:
    policy = failing_policy(max_retry_attempts=6, initial_delay_ms=500, max_delay_ms=1500)
    found = await run_failing(time_env, store, task_queue, service, strategy, policy)
    assert [ms for ms, _ in found] == expected


async def test_first_attempt_runs_before_any_timer(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue,
            ServiceRecoveryInput(service_name=service, policy=failing_policy(max_retry_attempts=2)),
        )
        await final_result(handle)
    kinds = await event_types(handle)
    assert kinds.index("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED") < kinds.index(
        "EVENT_TYPE_TIMER_STARTED"
    )
