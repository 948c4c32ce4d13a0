"""``workflows.ledger.storm_guard``: attempts per rolling hour, and what it holds back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workflows.carried_state import AttemptLog, CoordinatorState, HeldBack
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.ledger import storm_guard
from workflows.models import RecoveryPolicy, RecoveryTask

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
BUDGET = RecoveryPolicy(max_attempts_per_hour=3)


def test_a_spent_budget_says_until_when_one_more_fits() -> None:
    log = AttemptLog(budget=3, started=[NOW, NOW + 10 * MINUTE, NOW + 20 * MINUTE])
    held = storm_guard.spent_budget(log, BUDGET, NOW + 30 * MINUTE)
    assert held is not None
    assert held.until == NOW + timedelta(hours=1) and held.attempts_last_hour == 3
    assert held.reason.startswith("storm guard: 3 attempts in the last hour, budget max_attempts_per_hour=3")
    assert storm_guard.spent_budget(log, BUDGET, NOW + timedelta(hours=1, seconds=1)) is None
    assert storm_guard.spent_budget(log, RecoveryPolicy(), NOW) is None  # no budget asked for
    assert storm_guard.spent_budget(None, BUDGET, NOW) is None


def test_the_log_keeps_the_last_hour_and_at_most_twice_the_budget() -> None:
    state = CoordinatorState()
    task = RecoveryTask(priority=1, service_name="flaky", policy=BUDGET, scheduled_at=NOW)
    storm_guard.log_attempts(state, task, 10, NOW)
    assert state.attempt_logs["flaky"].started == [NOW] * 6
    held = storm_guard.spent_budget(state.attempt_logs["flaky"], BUDGET, NOW)
    assert held is not None and "at least 6 attempts" in held.reason
    plain = RecoveryTask(priority=1, service_name="plain", scheduled_at=NOW)
    storm_guard.log_attempts(state, plain, 1, NOW)
    assert set(state.attempt_logs) == {"flaky"}
    storm_guard.forget_before(state, NOW)
    assert state.attempt_logs == {}


def test_what_waits_on_a_held_service_is_held_too_saying_why() -> None:
    state = CoordinatorState(attempt_logs={"db": AttemptLog(budget=3, started=[NOW] * 3)})
    requests = [
        ScheduleRecoveryInput(service_name="web", policy=RecoveryPolicy(depends_on=["api"])),
        ScheduleRecoveryInput(service_name="api", policy=RecoveryPolicy(depends_on=["db"])),
        ScheduleRecoveryInput(service_name="db", policy=BUDGET),
        ScheduleRecoveryInput(service_name="free"),
    ]
    blocked = storm_guard.held_dependencies(state, requests, set(), NOW)
    assert set(blocked) == {"web", "api"}
    assert blocked["api"].reason.startswith("waits for 'db', held back until 2026-12-06 13:00:00 UTC: storm guard")
    assert blocked["web"].reason.startswith("waits for 'api', held back until")
    assert all(isinstance(hold, HeldBack) for hold in blocked.values())
    assert storm_guard.held_dependencies(state, requests, {"db"}, NOW) == {}
