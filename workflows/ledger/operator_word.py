"""The operator's word sticks: pauses, cancel holds, failure cool-downs, stale hand-overs.

Automation never overrules an operator (SPEC §4). What holds it off a service is
carried state, each kind bounded: a pause (until it ends or is resumed), an
operator's cancel (an hour), a failed recovery's cool-down (doubling with each
failure in a row), and a recovery's recent end (a hand-over listed before it is
stale). An operator may act at any time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from workflows.carried_state import CoordinatorState, FailureStreak, Pause
from workflows.coordinator_models import (
    PauseServiceInput,
    ResumeServiceResult,
    ScheduleOutcome,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryValidationError
from workflows.ledger.clock import clock
from workflows.models import RecoveryPolicy, RecoveryResult, RecoveryState

# Operator cancels remembered for automation to respect (each about 60 bytes).
MAX_OPERATOR_CANCELS = 500
# A cancelled recovery re-opens the breaker it had reset, which renews ``opened_at``
# (breaker writes retry for up to 2 minutes): an opening this soon after the cancel is
# that clean-up, not the service failing anew.
CANCEL_SETTLING = timedelta(minutes=5)
# After a recovery fails, automation waits this long before trying the service again,
# doubling with each failure in a row up to the cap (an operator may act at any time).
COOL_DOWN_BASE = timedelta(minutes=5)
COOL_DOWN_MAX = timedelta(hours=6)
# An operator's cancel holds automation off the service this long (or until resumed).
CANCEL_HOLD = timedelta(hours=1)
# Services paused at once, and failure streaks remembered (each carries a policy).
MAX_PAUSED = 500
MAX_FAILURE_STREAKS = 200
# Services remembered as failed last (each a name), whose next success is told of.
MAX_FAILED_LAST = 1000
# How long a recovery's end is remembered to recognise a stale hand-over: longer than
# a watch run (its listing, then its hand-over) ever takes.
RECENTLY_ENDED_WINDOW = timedelta(minutes=10)
# Stores keep ``opened_at`` to the second (pybreaker's Redis layout): an opening in the
# same second as a recovery's end may be a new one, so only earlier ones count as stale.
STORE_CLOCK_GRAIN = timedelta(seconds=1)

# Why automation leaves a service alone: the answer's outcome, and its reason.
Left = tuple[ScheduleOutcome, str]


def cool_down(failures: int) -> timedelta:
    """Return how long automation waits after ``failures`` failed recoveries in a row."""
    doublings = min(max(failures, 1) - 1, 16)
    longer: timedelta = COOL_DOWN_BASE * (1 << doublings)
    return min(longer, COOL_DOWN_MAX)


def cool_down_reason(streak: FailureStreak) -> str:
    """Say why a failed service is left alone, until when, and what an operator may do."""
    return (
        f"cool-down: {streak.failures} failed recover{'y' if streak.failures == 1 else 'ies'} "
        f"in a row; automation leaves it alone until {clock(streak.until)}, then tries "
        f"again with the same policy if its breaker is still open (an operator may "
        f"schedule, execute or resume it now)"
    )


def cancel_hold_reason(cancelled_at: datetime) -> str:
    """Say why a cancelled service is left alone, and until when."""
    return (
        f"cancelled by an operator at {clock(cancelled_at)}: automation holds off until "
        f"{clock(cancelled_at + CANCEL_HOLD)} or `recoveryctl resume`"
    )


def automation_held_off(state: CoordinatorState, input: ScheduleRecoveryInput, now: datetime) -> Left | None:
    """Return why automation must leave the service alone, or None."""
    name = input.service_name
    pause = state.paused.get(name)
    if pause is not None and pause.until > now:
        return "paused", f"paused until {clock(pause.until)}: {pause.reason}"
    ended = state.recently_ended.get(name)
    opened_at = input.breaker_opened_at
    if ended is not None and opened_at is not None and opened_at + STORE_CLOCK_GRAIN <= ended:
        return "already_recovered", (
            f"its recovery ended at {clock(ended)}, after this breaker opened at "
            f"{clock(opened_at)}: the hand-over is stale"
        )
    cancelled_at = state.operator_cancels.get(name)
    if cancelled_at is not None and cancelled_at + CANCEL_HOLD > now:
        return "held_back", cancel_hold_reason(cancelled_at)
    streak = state.failure_streaks.get(name)
    if streak is not None and streak.until > now:
        return "held_back", cool_down_reason(streak)
    return None


def cool_down_unanswered(state: CoordinatorState, input: ScheduleRecoveryInput, now: datetime) -> bool:
    """Whether a failure's cool-down holds automation off this request, first time met.

    The first answer it gives is history, so the coordinator tells of the hold once
    (``held_back``, SPEC §10); the validator refuses the answered ones without history.
    """
    streak = state.failure_streaks.get(input.service_name)
    if streak is None or streak.answered:
        return False
    return automation_held_off(state, input, now) == ("held_back", cool_down_reason(streak))


def note_cool_downs_answered(
    state: CoordinatorState, results: list[ScheduleRecoveryResult], now: datetime
) -> None:
    """Remember the cool-downs automation's answers met (``cool_down_unanswered``).

    Not while an operator's cancel holds the service: that hold answers, and is not
    told (the operator knows); the cool-down is, once the cancel's hold is over.
    """
    for result in results:
        streak = state.failure_streaks.get(result.service_name)
        cancelled_at = state.operator_cancels.get(result.service_name)
        if cancelled_at is not None and cancelled_at + CANCEL_HOLD > now:
            continue
        if result.outcome == "held_back" and streak is not None and streak.until > now:
            streak.answered = True


def cancelled_since_opening(state: CoordinatorState, input: ScheduleRecoveryInput) -> Left | None:
    """The older rule: a cancel held until the breaker opened again.

    Only histories from before the patch ``automation-respects-operator`` replay through it.
    """
    cancelled_at = state.operator_cancels.get(input.service_name)
    opened_at = input.breaker_opened_at
    if cancelled_at is not None and (opened_at is None or opened_at <= cancelled_at + CANCEL_SETTLING):
        return "held_back", (
            f"cancelled by an operator at {clock(cancelled_at)}: left alone until its "
            "breaker opens again or someone schedules it"
        )
    return None


def check_pause(state: CoordinatorState, service_name: str, now: datetime) -> None:
    """Refuse a pause past ``MAX_PAUSED`` services at once (each is carried state).

    Raises:
        RecoveryValidationError: saying how many are paused and how to make room.
    """
    live = [n for n, pause in state.paused.items() if pause.until > now]
    if service_name not in state.paused and len(live) >= MAX_PAUSED:
        raise RecoveryValidationError(
            f"{len(live)} services are paused, the most the coordinator holds: resume "
            f"some (recoveryctl resume NAME) or pause the whole watch instead "
            f"(recoveryctl watch-breakers disable)",
            code="too_many_paused",
            service=service_name,
        )


def set_pause(state: CoordinatorState, input: PauseServiceInput, now: datetime) -> Pause:
    """Pause automation for the service (a new pause replaces the last); return it."""
    pause = Pause(until=now + timedelta(seconds=input.duration_s), reason=input.reason)
    state.paused.pop(input.service_name, None)
    state.paused[input.service_name] = pause
    return pause


def drop_expired_pauses(state: CoordinatorState, now: datetime) -> None:
    """Forget pauses that have ended."""
    for name in [n for n, pause in state.paused.items() if pause.until <= now]:
        del state.paused[name]


def resume(state: CoordinatorState, service_name: str, now: datetime) -> ResumeServiceResult:
    """Lift whatever an operator's word or a failure put on the service."""
    drop_expired_pauses(state, now)
    lifted: list[str] = []
    if state.paused.pop(service_name, None) is not None:
        lifted.append("paused")
    streak = state.failure_streaks.pop(service_name, None)
    if streak is not None and streak.until > now:
        lifted.append(f"cool-down after {streak.failures} failed recoveries in a row")
    cancelled_at = state.operator_cancels.pop(service_name, None)
    if cancelled_at is not None and cancelled_at + CANCEL_HOLD > now:
        lifted.append("hold after an operator's cancel")
    # The operator's word: the next open breaker is a new one, whatever was listed.
    state.recently_ended.pop(service_name, None)
    return ResumeServiceResult(service_name=service_name, resumed=bool(lifted), lifted=lifted)


def operator_scheduled(state: CoordinatorState, service_name: str) -> None:
    """An operator scheduled the service: their word replaces earlier holds (not a pause)."""
    state.operator_cancels.pop(service_name, None)
    state.failure_streaks.pop(service_name, None)


def note_operator_cancel(state: CoordinatorState, service_name: str, now: datetime) -> None:
    """Remember that an operator cancelled the service: automation leaves it alone."""
    cancels = state.operator_cancels
    cancels.pop(service_name, None)
    cancels[service_name] = now
    for name in list(cancels)[: max(0, len(cancels) - MAX_OPERATOR_CANCELS)]:
        del cancels[name]


def note_ending(state: CoordinatorState, result: RecoveryResult, policy: RecoveryPolicy | None) -> None:
    """Remember a run's end: for stale hand-overs, a failure's cool-down, the next success's news."""
    name = result.service_name
    ended = state.recently_ended
    ended.pop(name, None)
    ended[name] = result.timestamp
    cutoff = result.timestamp - RECENTLY_ENDED_WINDOW
    for old in [n for n, at in ended.items() if at <= cutoff]:
        del ended[old]
    # A cancelled run leaves it: whatever its failure opened is still open.
    if result.state in (RecoveryState.FAILED, RecoveryState.SUCCEEDED) and name in state.failed_last:
        state.failed_last.remove(name)
    if result.state is RecoveryState.FAILED:
        state.failed_last = [*state.failed_last[-(MAX_FAILED_LAST - 1) :], name]
    if result.state is RecoveryState.SUCCEEDED:
        state.failure_streaks.pop(name, None)
    elif result.state is RecoveryState.FAILED and result.attempt_number > 0:
        earlier = state.failure_streaks.pop(name, None)
        failures = (earlier.failures if earlier is not None else 0) + 1
        state.failure_streaks[name] = FailureStreak(
            failures=failures, until=result.timestamp + cool_down(failures), policy=policy
        )
        streaks = state.failure_streaks
        for old in list(streaks)[: max(0, len(streaks) - MAX_FAILURE_STREAKS)]:
            del streaks[old]


def holds(state: CoordinatorState, now: datetime, unfinished: set[str]) -> dict[str, dict[str, Any]]:
    """Return what holds automation off each service now: storm guard, cool-down, cancel.

    Each as ``{"reason", "until", ...}``; where several hold a service, the one that
    ends last is shown. A service queued or running (``unfinished``) is in hand, not
    held back.
    """
    shown: dict[str, dict[str, Any]] = {}
    hold = _holder(shown, now, unfinished)
    for name, held in state.held_back.items():
        hold(name, held.until, held.model_dump(mode="json"))
    for name, streak in state.failure_streaks.items():
        hold(name, streak.until, {"reason": cool_down_reason(streak), "failures_in_a_row": streak.failures})
    for name, cancelled_at in state.operator_cancels.items():
        hold(name, cancelled_at + CANCEL_HOLD, {"reason": cancel_hold_reason(cancelled_at)})
    return shown


def _holder(
    shown: dict[str, dict[str, Any]], now: datetime, unfinished: set[str]
) -> Callable[[str, datetime, dict[str, Any]], None]:
    def hold(name: str, until: datetime, entry: dict[str, Any]) -> None:
        current = shown.get(name)
        later = current is None or current["until"] < until.isoformat()
        if name not in unfinished and until > now and later:
            shown[name] = {**entry, "until": until.isoformat()}

    return hold


def paused_now(state: CoordinatorState, now: datetime) -> dict[str, dict[str, Any]]:
    """Return the pauses in force, as the status shows them: ``{service: {until, reason}}``."""
    return {
        name: {"until": pause.until.isoformat(), "reason": pause.reason}
        for name, pause in state.paused.items()
        if pause.until > now
    }
