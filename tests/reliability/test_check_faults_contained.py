"""A check's fault costs only its own attempt (issue 19, rows 4 and 5).

A synchronous check that hangs for ever used to hold a thread of the default
executor, which the breaker store's calls share: six of them stalled every recovery
of the worker and its shutdown. A check that raised with 1.2 MB of text carried it
into the final report, past Temporal's 2 MB, and the recovery's task failed for ever.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.health_check_specs import (
    MAX_DETAIL,
    CallableHealthCheck,
    HealthCheckInput,
    HealthCheckOutcome,
)
from activities.health_checks import HealthCheckActivities
from activities.target_vetting import TargetAllowList
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.recoveries import start_recovery
from tests.helpers.workers import running_worker
from workflows.models import RecoveryPolicy, RecoveryStrategy, ServiceRecoveryInput

pytestmark = pytest.mark.timeout(60)


async def run_check(ref: str, timeout_ms: int = 200) -> HealthCheckOutcome:
    activities = HealthCheckActivities(["tests.helpers.checks"], TargetAllowList())
    check = CallableHealthCheck(ref=ref, timeout_ms=timeout_ms)
    outcome: HealthCheckOutcome = await ActivityEnvironment().run(
        activities.run_health_check, HealthCheckInput(service_name="svc", check=check)
    )
    return outcome


async def test_hung_synchronous_checks_leave_the_workers_threads_free() -> None:
    # More hung checks than the default executor has threads (min(32, cores + 4)).
    outcomes = await asyncio.gather(*(run_check("tests.helpers.checks:hangs_for_ever") for _ in range(12)))
    assert all(not o.passed and "timed out after 200 ms" in o.detail for o in outcomes)
    started = time.monotonic()
    # What the breaker store's activities do: a call on the default executor.
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), timeout=2) == 42
    assert time.monotonic() - started < 1


async def test_a_check_that_raises_a_megabyte_is_clipped() -> None:
    outcome = await run_check("tests.helpers.checks:raises_a_megabyte")
    assert not outcome.passed
    assert len(outcome.detail) <= MAX_DETAIL
    assert outcome.detail.startswith("tests.helpers.checks:raises_a_megabyte raised RuntimeError: xxx")


async def test_a_recovery_whose_check_raises_a_megabyte_fails_cleanly(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    policy = RecoveryPolicy(
        max_retry_attempts=2,
        health_check=CallableHealthCheck(ref="tests.helpers.checks:raises_a_megabyte", timeout_ms=2000),
    )
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client,
            task_queue,
            ServiceRecoveryInput(
                service_name=service, policy=policy, strategy=RecoveryStrategy.IMMEDIATE
            ),
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
    assert "RuntimeError: xxx" in str(failed.value.cause)
    assert len(str(failed.value.cause)) < 2000
