"""The original orchestrator's API as its own users call it (SPEC §3, §7; issue 6 part C).

Written afresh from the contract: defaults, ordering, the backoff helper's timings,
errors and import paths, each as the original's callers relied on them. Only the
status shape needs a server.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from datetime import datetime, timedelta, timezone

import pytest
from temporalio.testing import WorkflowEnvironment

from enhanced_agent_bus.recovery_orchestrator import (
    CONSTITUTIONAL_HASH,
    RecoveryConstitutionalError,
    RecoveryOrchestrator,
    RecoveryOrchestratorError,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    RecoveryTask,
    RecoveryValidationError,
)
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.workers import orchestrator_on

EXP = RecoveryStrategy.EXPONENTIAL_BACKOFF
LIN = RecoveryStrategy.LINEAR_BACKOFF
# How far apart two clock readings in one test may be (a slow CI machine included).
CLOCK_SLACK_MS = 100


def close_to_now(moment: datetime) -> bool:
    """Return True when ``moment`` is aware UTC and within the slack of now."""
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    return abs((datetime.now(timezone.utc) - moment).total_seconds() * 1000) < CLOCK_SLACK_MS


def ms_from_now(moment: datetime) -> float:
    return (moment - datetime.now(timezone.utc)).total_seconds() * 1000


# ----- the names and values ---------------------------------------------------------


def test_the_constitutional_hash_is_the_originals() -> None:
    assert CONSTITUTIONAL_HASH == "cdd01ef066bc6cf2"


def test_strategies_and_states_are_upper_case_members_with_lower_case_values() -> None:
    assert [s.value for s in RecoveryStrategy] == [
        "exponential_backoff", "linear_backoff", "immediate", "manual",
    ]
    assert {s.name for s in RecoveryState} == {
        "IDLE", "SCHEDULED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "CANCELLED", "AWAITING_MANUAL",
    }
    assert RecoveryState.AWAITING_MANUAL.value == "awaiting_manual"
    assert json.dumps(RecoveryStrategy.MANUAL.value) == '"manual"'


def test_the_errors_form_the_originals_hierarchy() -> None:
    assert issubclass(RecoveryConstitutionalError, RecoveryOrchestratorError)
    assert issubclass(RecoveryValidationError, RecoveryOrchestratorError)
    assert issubclass(RecoveryValidationError, ValueError)


# ----- RecoveryPolicy ---------------------------------------------------------------


def test_a_bare_policy_has_the_original_defaults() -> None:
    policy = RecoveryPolicy()
    assert policy.max_retry_attempts == 5
    assert policy.backoff_multiplier == 2.0
    assert policy.initial_delay_ms == 1000
    assert policy.max_delay_ms == 60000
    assert policy.health_check_fn is None
    assert policy.constitutional_hash == CONSTITUTIONAL_HASH


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_retry_attempts": 0}, "max_retry_attempts must be >= 1"),
        ({"backoff_multiplier": 0.99}, "backoff_multiplier must be >= 1.0"),
        ({"initial_delay_ms": -5}, "initial_delay_ms must be >= 0"),
        ({"initial_delay_ms": 2000, "max_delay_ms": 1999}, "max_delay_ms must be >= initial_delay_ms"),
    ],
)
def test_each_policy_constraint_raises_the_original_message(
    fields: dict[str, float], message: str
) -> None:
    with pytest.raises(RecoveryValidationError) as caught:
        RecoveryPolicy(**fields)
    assert str(caught.value) == message


def test_a_policy_at_the_edges_of_its_constraints_is_accepted() -> None:
    policy = RecoveryPolicy(
        max_retry_attempts=1, backoff_multiplier=1.0, initial_delay_ms=0, max_delay_ms=0
    )
    assert (policy.max_retry_attempts, policy.max_delay_ms) == (1, 0)


class Service:
    """A service object whose method is its health check, as applications write them."""

    def __init__(self) -> None:
        self.healthy = True

    def is_healthy(self) -> bool:
        return self.healthy

    async def ping(self) -> bool:
        await asyncio.sleep(0)
        return self.healthy


def test_health_check_fn_takes_any_callable_and_keeps_it_as_given() -> None:
    service = Service()
    threshold = 3

    def closure() -> bool:
        return threshold > 2

    for fn in (lambda: True, closure, service.is_healthy, service.ping, Service):
        policy = RecoveryPolicy(max_retry_attempts=10, health_check_fn=fn)
        assert policy.health_check_fn is fn
        assert policy.health_check is None, "turned into a check only when sent"
        assert "health_check_fn" not in policy.model_dump(mode="json")
    kept = RecoveryPolicy(health_check_fn=closure).health_check_fn
    assert kept is not None and kept() is True


# ----- RecoveryResult ---------------------------------------------------------------


def test_a_result_built_without_timestamp_gets_now_and_the_original_defaults() -> None:
    result = RecoveryResult(
        service_name="policy_service",
        success=True,
        attempt_number=1,
        total_attempts=5,
        elapsed_time_ms=12.5,
        state=RecoveryState.SUCCEEDED,
    )
    assert close_to_now(result.timestamp)
    assert result.error_message is None
    assert result.health_check_passed is False
    assert result.constitutional_hash == CONSTITUTIONAL_HASH


def test_to_dict_gives_the_original_keys_with_string_state_and_iso_time() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    result = RecoveryResult(
        service_name="db",
        success=False,
        attempt_number=5,
        total_attempts=5,
        elapsed_time_ms=31000.0,
        state=RecoveryState.FAILED,
        error_message="health check failed",
        timestamp=when,
    )
    assert result.to_dict() == {
        "service_name": "db",
        "success": False,
        "attempt_number": 5,
        "total_attempts": 5,
        "elapsed_time_ms": 31000.0,
        "state": "failed",
        "error_message": "health check failed",
        "health_check_passed": False,
        "constitutional_hash": CONSTITUTIONAL_HASH,
        "timestamp": "2026-01-02T03:04:05+00:00",
    }


# ----- RecoveryTask -----------------------------------------------------------------


def test_a_task_built_without_scheduled_at_gets_now_and_starts_scheduled() -> None:
    task = RecoveryTask(priority=3, service_name="cache", strategy=EXP, policy=RecoveryPolicy())
    assert close_to_now(task.scheduled_at)
    assert task.attempt_count == 0
    assert task.state is RecoveryState.SCHEDULED
    assert task.last_attempt_at is None and task.next_attempt_at is None
    assert task.constitutional_hash == CONSTITUTIONAL_HASH


def test_tasks_compare_by_priority_alone() -> None:
    urgent = RecoveryTask(priority=1, service_name="zeta", strategy=LIN, policy=RecoveryPolicy())
    later = RecoveryTask(priority=10, service_name="alpha", strategy=EXP, policy=RecoveryPolicy())
    twin = RecoveryTask(priority=1, service_name="omega", strategy=EXP, policy=RecoveryPolicy())
    assert urgent < later and later > urgent
    assert urgent <= twin and urgent >= twin
    assert not urgent < twin and not twin < urgent, "names never break a tie"


def test_a_heap_of_tasks_pops_the_most_urgent_first() -> None:
    heap: list[RecoveryTask] = []
    for name, priority in [("metrics", 10), ("auth", 1), ("cache", 4), ("gateway", 2)]:
        heapq.heappush(
            heap, RecoveryTask(priority=priority, service_name=name, strategy=EXP, policy=RecoveryPolicy())
        )
    assert [heapq.heappop(heap).service_name for _ in range(4)] == [
        "auth", "gateway", "cache", "metrics",
    ]


# ----- the orchestrator, without a server ---------------------------------------------


def test_a_new_orchestrator_exposes_the_original_attributes_without_connecting() -> None:
    orchestrator = RecoveryOrchestrator()
    assert orchestrator.constitutional_hash == CONSTITUTIONAL_HASH
    assert orchestrator.default_policy == RecoveryPolicy()
    custom = RecoveryPolicy(max_retry_attempts=10, backoff_multiplier=1.5)
    assert RecoveryOrchestrator(default_policy=custom).default_policy is custom


async def test_scheduling_and_executing_need_start() -> None:
    orchestrator = RecoveryOrchestrator()
    with pytest.raises(RecoveryOrchestratorError, match="start"):
        await orchestrator.schedule_recovery("policy_service")
    with pytest.raises(RecoveryOrchestratorError, match="start"):
        await orchestrator.execute_recovery("policy_service")


async def test_a_wrong_hash_is_refused_before_anything_is_sent() -> None:
    orchestrator = RecoveryOrchestrator(constitutional_hash="invalid")
    with pytest.raises(RecoveryConstitutionalError):
        await orchestrator.start()
    with pytest.raises(RecoveryConstitutionalError):
        await orchestrator.set_recovery_policy("auth_service", RecoveryPolicy())


def task_for(
    strategy: RecoveryStrategy, attempt_count: int, policy: RecoveryPolicy | None = None
) -> RecoveryTask:
    return RecoveryTask(
        priority=1,
        service_name="svc",
        strategy=strategy,
        policy=policy or RecoveryPolicy(),
        attempt_count=attempt_count,
    )


@pytest.mark.parametrize(
    ("strategy", "attempt_count", "expected_ms"),
    [
        (EXP, 1, 1000),
        (EXP, 2, 2000),
        (EXP, 3, 4000),
        (LIN, 1, 1000),
        (LIN, 2, 2000),
        (LIN, 3, 3000),
    ],
)
def test_calculate_next_attempt_follows_the_reference_delays(
    strategy: RecoveryStrategy, attempt_count: int, expected_ms: int
) -> None:
    orchestrator = RecoveryOrchestrator()
    due = orchestrator._calculate_next_attempt(task_for(strategy, attempt_count))
    assert due.tzinfo is not None
    assert abs(ms_from_now(due) - expected_ms) < CLOCK_SLACK_MS


def test_calculate_next_attempt_is_capped_at_max_delay() -> None:
    policy = RecoveryPolicy(initial_delay_ms=1000, max_delay_ms=5000)
    orchestrator = RecoveryOrchestrator()
    exponential = orchestrator._calculate_next_attempt(task_for(EXP, 10, policy))  # 512 s raw
    linear = orchestrator._calculate_next_attempt(task_for(LIN, 10, policy))  # 10 s raw
    assert abs(ms_from_now(exponential) - 5000) < CLOCK_SLACK_MS
    assert abs(ms_from_now(linear) - 5000) < CLOCK_SLACK_MS


@pytest.mark.parametrize(
    ("strategy", "attempt_count"),
    [
        (RecoveryStrategy.IMMEDIATE, 1),
        (RecoveryStrategy.IMMEDIATE, 4),
        (RecoveryStrategy.MANUAL, 2),
        (EXP, 0),
        (LIN, 0),
    ],
)
def test_calculate_next_attempt_is_now_without_a_timer(
    strategy: RecoveryStrategy, attempt_count: int
) -> None:
    due = RecoveryOrchestrator()._calculate_next_attempt(task_for(strategy, attempt_count))
    assert 0 <= -ms_from_now(due) < CLOCK_SLACK_MS


def test_the_public_name_gives_the_same_time_as_the_originals() -> None:
    orchestrator = RecoveryOrchestrator()
    task = task_for(EXP, 2)
    private = orchestrator._calculate_next_attempt(task)
    public = orchestrator.next_attempt_at(task)
    assert abs((public - private).total_seconds() * 1000) < CLOCK_SLACK_MS
    assert abs(ms_from_now(public) - 2000) < CLOCK_SLACK_MS


# ----- the status shape, on a real server ---------------------------------------------


async def test_status_has_the_reference_shape(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        await orchestrator.schedule_recovery(service, RecoveryStrategy.MANUAL, priority=3)
        status = await orchestrator.get_recovery_status()
    assert set(status) == {
        "constitutional_hash", "timestamp", "orchestrator_running", "active_recoveries",
        "queued_recoveries", "services", "recent_history",
    }
    assert status["constitutional_hash"] == CONSTITUTIONAL_HASH
    assert status["orchestrator_running"] is True and status["active_recoveries"] == 1
    entry = status["services"][service]
    assert set(entry) == {
        "state", "strategy", "priority", "attempt_count", "max_attempts",
        "scheduled_at", "last_attempt_at", "next_attempt_at",
    }
    assert (entry["strategy"], entry["priority"], entry["max_attempts"]) == ("manual", 3, 5)
    assert datetime.fromisoformat(status["timestamp"]).utcoffset() == timedelta(0)


async def test_the_original_import_pauses_and_resumes_a_service(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """Beyond the reference: a pause shows as a top-level ``paused`` only while it holds."""
    async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
        assert isinstance(orchestrator, RecoveryOrchestrator)
        pause = await orchestrator.pause_service(service, timedelta(minutes=30), "window")
        status = await orchestrator.get_recovery_status()
        assert status["paused"] == {service: {"until": pause.until.isoformat(), "reason": "window"}}
        assert (await orchestrator.resume_service(service)).lifted == ["paused"]
        assert "paused" not in await orchestrator.get_recovery_status()
        with pytest.raises(RecoveryValidationError, match="duration"):
            await orchestrator.pause_service(service, timedelta(days=31))
