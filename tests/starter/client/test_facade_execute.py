"""``execute_recovery`` and ``approve_recovery`` through the facade, on the real dev server.

A recovery that finished before the call gives its final result; concurrent
executes of one MANUAL recovery share one attempt and all return; an approval
that cannot count tells the operator the state the recovery was in.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.recoveries import recovery_attempts, recovery_status
from tests.helpers.policies import blocking_policy
from tests.helpers.recoveries import start_recovery
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import (
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryState,
    RecoveryStrategy,
    ServiceRecoveryInput,
)

pytestmark = pytest.mark.timeout(120)


def failing_check(attempts: int) -> RecoveryPolicy:
    """A policy whose health check is refused at once (nothing listens on the port)."""
    return blocking_policy(attempts=attempts, check_timeout_ms=500)


async def finished(orchestrator: RecoveryOrchestrator, service: str) -> None:
    await eventually(
        orchestrator.get_recovery_status,
        lambda s: service not in s["services"]
        and any(r["service_name"] == service for r in s["recent_history"]),
    )


async def scheduled_into_backoff(
    orchestrator: RecoveryOrchestrator, env: WorkflowEnvironment, service: str
) -> None:
    """Schedule a recovery whose first attempt fails, and wait until it backs off."""
    await orchestrator.schedule_recovery(service, policy=failing_check(3))
    await eventually(
        lambda: recovery_status(env.client, service),
        lambda s: s is not None and s.phase is RecoveryPhase.BACKOFF,
    )


async def test_execute_after_an_immediate_recovery_finished_returns_its_result(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(service, RecoveryStrategy.IMMEDIATE)
        await finished(orchestrator, service)
        result = await orchestrator.execute_recovery(service)
    assert result.service_name == service and result.success
    assert result.state is RecoveryState.SUCCEEDED and result.attempt_number == 1


async def test_approve_after_a_recovery_finished_names_its_ending(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(service, RecoveryStrategy.IMMEDIATE)
        await finished(orchestrator, service)
        with pytest.raises(RecoveryOrchestratorError) as caught:
            await orchestrator.approve_recovery(service, operator="late")
    assert not isinstance(caught.value, RecoveryValidationError)
    assert str(caught.value) == f"Recovery of '{service}' has already ended succeeded: nothing to approve"


async def test_execute_after_a_recovery_failed_returns_its_failed_result(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    policy = failing_check(1)
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(service, RecoveryStrategy.IMMEDIATE, policy=policy)
        await finished(orchestrator, service)
        result = await orchestrator.execute_recovery(service)
    assert result.success is False and result.state is RecoveryState.FAILED
    assert result.attempt_number == 1 and result.total_attempts == 1
    assert result.error_message and "refused" in result.error_message


async def test_execute_after_a_recovery_was_cancelled_returns_cancelled(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await scheduled_into_backoff(orchestrator, dev_env, service)
        assert await orchestrator.cancel_recovery(service)
        result = await orchestrator.execute_recovery(service)
    assert result.success is False and result.state is RecoveryState.CANCELLED
    assert result.attempt_number == 1


async def test_execute_waits_for_a_recovery_started_outside_the_coordinator(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await start_recovery(
            dev_env.client,
            task_queue,
            ServiceRecoveryInput(service_name=service, strategy=RecoveryStrategy.IMMEDIATE),
        )
        result = await orchestrator.execute_recovery(service)
    assert result.service_name == service and result.success


async def test_execute_of_a_service_never_scheduled_still_raises(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        with pytest.raises(RecoveryValidationError, match=f"No active recovery task for service '{service}'"):
            await orchestrator.execute_recovery(service)


async def test_five_concurrent_executes_of_one_manual_recovery_share_one_attempt(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(
            service, RecoveryStrategy.MANUAL, policy=failing_check(3)
        )
        await eventually(
            lambda: recovery_status(dev_env.client, service),
            lambda s: s is not None and s.state is RecoveryState.AWAITING_MANUAL,
        )
        results = await asyncio.wait_for(
            asyncio.gather(*(orchestrator.execute_recovery(service) for _ in range(5))),
            timeout=60,
        )
        attempts = await recovery_attempts(dev_env.client, service)
        status = await recovery_status(dev_env.client, service)
        assert await orchestrator.cancel_recovery(service)
    assert attempts is not None and len(attempts) == 1, "one approval for five callers"
    assert status is not None and status.state is RecoveryState.AWAITING_MANUAL
    assert len(results) == 5
    for result in results:
        assert result.attempt_number == 1 and result.success is False
        assert result.state is RecoveryState.AWAITING_MANUAL


async def test_a_caller_who_looks_late_still_gets_the_attempt_it_waited_for(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """Another operator approved the next attempt before this caller saw its own end."""
    from starter.client.recoveries import wait_for_result
    from workflows.coordinator_models import ExecuteRecoveryResult

    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(service, RecoveryStrategy.MANUAL, policy=failing_check(3))
        first = await orchestrator.execute_recovery(service)
        second = await orchestrator.execute_recovery(service)
        late = await asyncio.wait_for(
            wait_for_result(
                dev_env.client,
                ExecuteRecoveryResult(
                    service_name=service, workflow_id=f"recovery-{service}", run_id=None,
                    outcome="approved", attempt_count=0,
                ),
            ),
            timeout=30,
        )
        assert await orchestrator.cancel_recovery(service)
    assert (first.attempt_number, second.attempt_number, late.attempt_number) == (1, 2, 1)
    assert late.state is RecoveryState.AWAITING_MANUAL and late.success is False
    assert late.error_message and "refused" in late.error_message


async def test_approve_outside_a_wait_names_the_state_and_sends_nothing(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await scheduled_into_backoff(orchestrator, dev_env, service)
        with pytest.raises(RecoveryOrchestratorError) as refused:
            await orchestrator.approve_recovery(service, operator="alice")
        status = await recovery_status(dev_env.client, service)
        assert await orchestrator.cancel_recovery(service)
    assert not isinstance(refused.value, RecoveryValidationError), "a refusal, not bad input"
    assert str(refused.value) == (
        f"Recovery of '{service}' is in_progress (phase backoff), not awaiting_manual: "
        "approval not sent"
    )
    assert status is not None and status.attempt_count == 1 and status.ignored_signals == []



async def test_a_policy_given_as_a_dict_is_taken_and_anything_else_named(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.set_recovery_policy(service, {"max_retry_attempts": 4})  # type: ignore[arg-type]  # a dict, as untyped callers pass one
        assert (await orchestrator.get_recovery_policy(service)).max_retry_attempts == 4
        with pytest.raises(RecoveryValidationError, match="policy must be a RecoveryPolicy"):
            await orchestrator.schedule_recovery(service, policy="fast")  # type: ignore[arg-type]  # wrong on purpose: the refusal is the test
        with pytest.raises(RecoveryValidationError, match="policy must be a RecoveryPolicy"):
            await orchestrator.set_recovery_policy(service, None)  # type: ignore[arg-type]  # wrong on purpose: the refusal is the test
