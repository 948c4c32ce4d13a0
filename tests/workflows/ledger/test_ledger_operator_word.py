"""``workflows.ledger.operator_word``: pauses, cancel holds, cool-downs, stale hand-overs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from workflows.carried_state import CoordinatorState, HeldBack, Pause
from workflows.coordinator_models import PauseServiceInput, ScheduleRecoveryInput
from workflows.errors import RecoveryValidationError
from workflows.ledger import operator_word as word
from workflows.models import RecoveryPolicy, RecoveryResult, RecoveryState

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def ended(name: str, state: RecoveryState, at: datetime = NOW, attempts: int = 1) -> RecoveryResult:
    return RecoveryResult(
        service_name=name, success=state is RecoveryState.SUCCEEDED, attempt_number=attempts,
        total_attempts=3, elapsed_time_ms=1.0, state=state, timestamp=at,
    )


def test_cool_downs_double_up_to_their_cap() -> None:
    assert [word.cool_down(n) for n in (0, 1, 2, 3)] == [
        timedelta(minutes=5), timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20),
    ]
    assert word.cool_down(100) == word.COOL_DOWN_MAX


def test_each_hold_says_why_automation_leaves_a_service_alone() -> None:
    state = CoordinatorState()
    request = ScheduleRecoveryInput(service_name="svc", breaker_opened_at=NOW - timedelta(minutes=1))
    assert word.automation_held_off(state, request, NOW) is None
    word.note_ending(state, ended("svc", RecoveryState.FAILED), RecoveryPolicy(max_retry_attempts=3))
    outcome, reason = word.automation_held_off(state, request, NOW) or ("", "")
    assert outcome == "already_recovered" and reason.endswith("the hand-over is stale")
    fresh = request.model_copy(update={"breaker_opened_at": NOW})
    outcome, reason = word.automation_held_off(state, fresh, NOW) or ("", "")
    assert outcome == "held_back" and reason.startswith("cool-down: 1 failed recovery in a row")
    assert state.failure_streaks["svc"].policy == RecoveryPolicy(max_retry_attempts=3)
    word.note_operator_cancel(state, "svc", NOW)
    outcome, reason = word.automation_held_off(state, fresh, NOW) or ("", "")
    assert reason.startswith("cancelled by an operator at 2026-12-06 12:00:00 UTC")
    word.set_pause(state, PauseServiceInput(service_name="svc", duration_s=60, reason="deploy"), NOW)
    assert word.automation_held_off(state, fresh, NOW) == (
        "paused", "paused until 2026-12-06 12:01:00 UTC: deploy",
    )


def test_resume_lifts_everything_and_says_what() -> None:
    state = CoordinatorState()
    word.set_pause(state, PauseServiceInput(service_name="svc"), NOW)
    word.note_ending(state, ended("svc", RecoveryState.FAILED), None)
    word.note_operator_cancel(state, "svc", NOW)
    result = word.resume(state, "svc", NOW)
    assert result.lifted == [
        "paused", "cool-down after 1 failed recoveries in a row", "hold after an operator's cancel",
    ]
    assert word.resume(state, "svc", NOW).resumed is False and state.recently_ended == {}


def test_a_success_ends_the_streak_and_a_never_attempted_failure_starts_none() -> None:
    state = CoordinatorState()
    word.note_ending(state, ended("svc", RecoveryState.FAILED), None)
    word.note_ending(state, ended("svc", RecoveryState.SUCCEEDED), None)
    word.note_ending(state, ended("dep", RecoveryState.FAILED, attempts=0), None)
    assert state.failure_streaks == {}


def test_pauses_are_bounded() -> None:
    until = NOW + timedelta(days=1)
    state = CoordinatorState(paused={f"s{n}": Pause(until=until, reason="r") for n in range(word.MAX_PAUSED)})
    word.check_pause(state, "s0", NOW)  # replacing one is fine
    with pytest.raises(RecoveryValidationError, match="500 services are paused") as err:
        word.check_pause(state, "new", NOW)
    assert err.value.code == "too_many_paused"


def test_the_hold_that_ends_last_is_shown_and_none_for_services_in_hand() -> None:
    state = CoordinatorState(
        held_back={
            "svc": HeldBack(reason="storm", until=NOW + timedelta(hours=2), attempts_last_hour=3, max_attempts_per_hour=3)
        }
    )
    word.note_operator_cancel(state, "svc", NOW)
    shown = word.holds(state, NOW, set())
    assert shown["svc"]["reason"] == "storm" and shown["svc"]["until"] == (NOW + timedelta(hours=2)).isoformat()
    assert word.holds(state, NOW, {"svc"}) == {}


def test_a_cool_down_is_answered_with_history_once_and_not_while_a_cancel_holds_instead() -> None:
    from workflows.coordinator_models import ScheduleRecoveryResult

    state = CoordinatorState()
    request = ScheduleRecoveryInput(service_name="svc")
    word.note_ending(state, ended("svc", RecoveryState.FAILED), None)
    word.note_operator_cancel(state, "svc", NOW)
    held = [ScheduleRecoveryResult(service_name="svc", outcome="held_back", state="idle")]
    # The cancel's hold answers (and is not told): the cool-down is not met yet.
    assert not word.cool_down_unanswered(state, request, NOW)
    word.note_cool_downs_answered(state, held, NOW)
    assert not state.failure_streaks["svc"].answered
    # The cancel's hold is over, the cool-down (5 minutes) is not: met now, then answered.
    later = NOW + timedelta(minutes=2)
    state.operator_cancels["svc"] = NOW - word.CANCEL_HOLD
    assert word.cool_down_unanswered(state, request, later)
    word.note_cool_downs_answered(state, held, later)
    assert not word.cool_down_unanswered(state, request, later)
    # A new failure is a new hold, met afresh.
    word.note_ending(state, ended("svc", RecoveryState.FAILED, at=later), None)
    assert word.cool_down_unanswered(state, request, later)
