"""Bad input, through the facade and through raw updates: a specific error, nothing changed.

A rejected update must write nothing: the coordinator's history length, queue,
policies and running recoveries are compared before and after every rejection.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.coordination import coordinator_history
from tests.helpers.policies import blocking_policy
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows.errors import (
    RecoveryConstitutionalError,
    RecoveryOrchestratorError,
    RecoveryValidationError,
)
from workflows.models import RecoveryPolicy

pytestmark = pytest.mark.timeout(120)

HASH = "cdd01ef066bc6cf2"

RAW_BAD_UPDATES: list[tuple[str, Any, str, str]] = [
    ("schedule_recovery", "just text", "RecoveryValidationError", "schedule_recovery takes one JSON object (ScheduleRecoveryInput), got str"),
    ("schedule_recovery", None, "RecoveryValidationError", "schedule_recovery takes one JSON object (ScheduleRecoveryInput), got null"),
    ("schedule_recovery", {"service_name": "ok", "strategy": "sometimes"}, "RecoveryValidationError", "strategy"),
    ("schedule_recovery", {"service_name": "ok", "priority": "high"}, "RecoveryValidationError", "priority"),
    ("schedule_recovery", {"service_name": "ok", "priority": 1.5}, "RecoveryValidationError", "priority"),
    ("schedule_recovery", {"service_name": ""}, "RecoveryValidationError", "service_name"),
    ("schedule_recovery", {"service_name": "x" * 500}, "RecoveryValidationError", "service_name"),
    ("schedule_recovery", {"service_name": "a b"}, "RecoveryValidationError", "service_name"),
    ("schedule_recovery", {}, "RecoveryValidationError", "service_name"),
    ("schedule_recovery", {"service_name": "ok", "policy": {"max_retry_attempts": 0}}, "RecoveryValidationError", "max_retry_attempts must be >= 1"),
    ("schedule_recovery", {"service_name": "ok", "policy": {"backoff_multiplier": 0.5}}, "RecoveryValidationError", "backoff_multiplier must be >= 1.0"),
    ("schedule_recovery", {"service_name": "ok", "policy": {"initial_delay_ms": -1}}, "RecoveryValidationError", "initial_delay_ms must be >= 0"),
    ("schedule_recovery", {"service_name": "ok", "policy": {"initial_delay_ms": 9, "max_delay_ms": 1}}, "RecoveryValidationError", "max_delay_ms must be >= initial_delay_ms"),
    ("schedule_recovery", {"service_name": "ok", "policy": {"health_check": {"kind": "tcp", "host": "h", "port": 0}}}, "RecoveryValidationError", "port"),
    ("schedule_recovery", {"service_name": "ok", "constitutional_hash": "bad"}, "RecoveryConstitutionalError", "'bad'"),
    ("schedule_recovery", {"service_name": "ok", "policy": {"constitutional_hash": "bad"}}, "RecoveryConstitutionalError", "'bad'"),
    ("schedule_recovery", {"service_name": "ok", "surprise": 1}, "RecoveryValidationError", "surprise"),
    ("schedule_recoveries", {"recoveries": []}, "RecoveryValidationError", "recoveries"),
    ("schedule_recoveries", {"recoveries": [{"service_name": "fine"}, {"service_name": "ok", "priority": "x"}]}, "RecoveryValidationError", "priority"),
    ("cancel_recovery", {"service_name": "nobody"}, "RecoveryValidationError", "No active recovery task for service 'nobody'"),
    ("execute_recovery", {"service_name": "nobody"}, "RecoveryValidationError", "No active recovery task for service 'nobody'"),
    ("execute_recovery", {"service_name": "nobody", "constitutional_hash": "bad"}, "RecoveryConstitutionalError", "'bad'"),
    ("set_recovery_policy", {"service_name": "ok", "policy": {"max_retry_attempts": -3}}, "RecoveryValidationError", "max_retry_attempts must be >= 1"),
    ("set_recovery_policy", {"service_name": "ok"}, "RecoveryValidationError", "policy"),
    ("configure", {"max_concurrent_recoveries": 0}, "RecoveryValidationError", "max_concurrent_recoveries"),
    ("configure", {"constitutional_hash": "bad"}, "RecoveryConstitutionalError", "'bad'"),
    ("shutdown", {"constitutional_hash": "bad"}, "RecoveryConstitutionalError", "'bad'"),
]


async def snapshot(orch: RecoveryOrchestrator, service: str) -> tuple[Any, ...]:
    """The coordinator's queue, running set, policies and history length."""
    status = await orch.get_recovery_status()
    status.pop("timestamp")
    policy = await orch.get_recovery_policy(f"{service}-own")
    events = len((await coordinator_history(orch)).events)
    return status, policy.model_dump(mode="json"), events


async def populated(orch: RecoveryOrchestrator, service: str) -> None:
    """One running, two queued, one policy."""
    await orch.set_recovery_policy(f"{service}-own", RecoveryPolicy(max_retry_attempts=4))
    await orch.schedule_recovery(f"{service}-run", policy=blocking_policy())
    await orch.schedule_recovery(f"{service}-q1", priority=2)
    await orch.schedule_recovery(f"{service}-q2", priority=3)
    await eventually(
        orch.get_recovery_status,
        lambda s: s["services"][f"{service}-run"]["next_attempt_at"] is not None,
    )


async def test_raw_updates_with_bad_input_are_rejected_and_change_nothing(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await populated(orch, service)
        handle = dev_env.client.get_workflow_handle(orch.coordinator_workflow_id)
        before = await snapshot(orch, service)
        for name, payload, error_type, fragment in RAW_BAD_UPDATES:
            with pytest.raises(WorkflowUpdateFailedError) as caught:
                await handle.execute_update(name, payload)
            cause = caught.value.cause
            assert isinstance(cause, ApplicationError), (name, payload)
            assert cause.type == error_type, (name, payload, cause.message)
            assert fragment in cause.message, (name, payload, cause.message)
            assert await snapshot(orch, service) == before, (name, payload)


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda o, s: o.schedule_recovery(s, strategy="sometimes"), RecoveryValidationError, "strategy"),
        (lambda o, s: o.schedule_recovery(s, priority="high"), RecoveryValidationError, "priority"),
        (lambda o, s: o.schedule_recovery(""), RecoveryValidationError, "service_name"),
        (lambda o, s: o.schedule_recovery("x" * 500), RecoveryValidationError, "service_name"),
        (lambda o, s: o.set_recovery_policy(s, RecoveryPolicy.model_construct(max_retry_attempts=0)), RecoveryValidationError, "max_retry_attempts must be >= 1"),
        (lambda o, s: o.cancel_recovery("bad name"), RecoveryValidationError, "service_name"),
        (lambda o, s: o.approve_recovery(f"{s}-nobody"), RecoveryValidationError, "No active recovery task"),
        (lambda o, s: o.execute_recovery(f"{s}-nobody"), RecoveryValidationError, "No active recovery task"),
    ],
)
async def test_facade_bad_input_gets_a_specific_error_and_changes_nothing(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    call: Any,
    error: type[Exception],
    fragment: str,
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await populated(orch, service)
        before = await snapshot(orch, service)
        with pytest.raises(error, match=fragment):
            await call(orch, service)
        assert await snapshot(orch, service) == before


async def test_a_wrong_hash_is_refused_at_every_validation_point(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await populated(orch, service)
        before = await snapshot(orch, service)
        orch.constitutional_hash = "invalid"
        for call in (
            orch.schedule_recovery(service),
            orch.execute_recovery(f"{service}-q1"),
            orch.set_recovery_policy(service, RecoveryPolicy()),
        ):
            with pytest.raises(RecoveryConstitutionalError, match="'invalid'"):
                await call
        orch.constitutional_hash = HASH
        assert await snapshot(orch, service) == before
    with pytest.raises(RecoveryConstitutionalError):
        await RecoveryOrchestrator(client=dev_env.client, constitutional_hash="nope").start()


async def test_schedule_signal_fan_in_queues_good_ones_and_records_bad_ones(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await populated(orch, service)
        handle = dev_env.client.get_workflow_handle(orch.coordinator_workflow_id)
        await handle.signal("schedule_recovery", {"service_name": f"{service}-sig", "priority": 1})
        await handle.signal("schedule_recovery", {"service_name": "no spaces", "priority": 1})
        await handle.signal("schedule_recovery", {"service_name": f"{service}-h", "constitutional_hash": "x"})
        await handle.signal("schedule_recovery", "not even an object")
        status = await eventually(
            orch.get_recovery_status, lambda s: f"{service}-sig" in s["services"]
        )
        info = await handle.query("get_configuration")
    assert status["services"][f"{service}-sig"]["state"] == "scheduled"
    assert f"{service}-h" not in status["services"]
    rejected = info["rejected_signals"]
    assert len(rejected) == 3
    assert "service_name 'no spaces' is invalid" in rejected[0]
    assert "'x'" in rejected[1]


async def test_scheduling_after_stop_is_refused_through_raw_updates_too(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.stop()
        handle = dev_env.client.get_workflow_handle(orch.coordinator_workflow_id)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update("schedule_recovery", {"service_name": service})
        assert isinstance(caught.value.cause, ApplicationError)
        assert caught.value.cause.type == "RecoveryOrchestratorError"
        assert "not running" in caught.value.cause.message
        with pytest.raises(RecoveryOrchestratorError, match="not running"):
            await orch.schedule_recovery(service)
