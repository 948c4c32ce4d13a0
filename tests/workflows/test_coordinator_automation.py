"""Automation never overrules an operator: pauses, cool-downs, cancel holds, stale hand-overs.

The ledger's rules without a server (SPEC §4, "The operator's word sticks" and "Pause").
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.coordinator_details import queue_details
from workflows.coordinator_models import PauseServiceInput, ScheduleRecoveryInput
from workflows.coordinator_state import (
    CANCEL_HOLD,
    COOL_DOWN_BASE,
    COOL_DOWN_MAX,
    MAX_PAUSED,
    RecoveryLedger,
    cool_down,
)
from workflows.errors import RecoveryValidationError
from activities.health_check_specs import HttpHealthCheck
from workflows.models import (
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
CHECKED = RecoveryPolicy(
    max_retry_attempts=3, health_check=HttpHealthCheck(url="http://127.0.0.1:8080/health")
)


def ledger() -> RecoveryLedger:
    return RecoveryLedger(CoordinatorState(config=CoordinatorConfig(max_concurrent_recoveries=4)))


def automatic(name: str, opened_at: datetime | None = None, **fields: object) -> ScheduleRecoveryInput:
    return ScheduleRecoveryInput(service_name=name, breaker_opened_at=opened_at, **fields)


def run_to_end(
    book: RecoveryLedger,
    name: str,
    state: RecoveryState,
    at: datetime,
    policy: RecoveryPolicy | None = None,
    *,
    by_operator: bool = True,
) -> None:
    """Schedule, start and finish one recovery of ``name`` as the workflow would."""
    request = ScheduleRecoveryInput(service_name=name, policy=policy)
    if by_operator:
        book.schedule(request, at)
    else:
        assert book.schedule_automatic(request, at).outcome == "queued"
    for active in book.take_startable():
        book.started(active, f"run-{name}-{at.timestamp()}")
        result = RecoveryResult(
            service_name=name,
            success=state is RecoveryState.SUCCEEDED,
            attempt_number=active.task.policy.max_retry_attempts,
            total_attempts=active.task.policy.max_retry_attempts,
            elapsed_time_ms=1.0,
            state=state,
            timestamp=at + timedelta(seconds=5),
        )
        book.settle(name, f"run-{name}-{at.timestamp()}", result)


def test_a_failed_recovery_is_not_followed_by_an_automatic_one_at_once() -> None:
    book = ledger()
    run_to_end(book, "orders", RecoveryState.FAILED, NOW, CHECKED)
    held = book.schedule_automatic(automatic("orders", NOW + timedelta(seconds=6)), NOW + timedelta(seconds=7))
    assert held.outcome == "held_back"
    assert "cool-down: 1 failed recovery in a row" in (held.reason or "")
    status = book.status(NOW + timedelta(seconds=7))
    hold = status["held_back"]["orders"]
    assert hold["failures_in_a_row"] == 1
    assert hold["until"] == (NOW + timedelta(seconds=5) + COOL_DOWN_BASE).isoformat()
    assert book.queued("orders") is None


def test_after_the_cool_down_automation_retries_with_the_policy_it_failed_with() -> None:
    book = ledger()
    run_to_end(book, "orders", RecoveryState.FAILED, NOW, CHECKED)
    after = NOW + timedelta(seconds=6) + COOL_DOWN_BASE
    # The watch would use the default policy (no check): the failed one is kept instead.
    result = book.schedule_automatic(automatic("orders", after), after)
    assert result.outcome == "queued" and not result.no_health_check
    queued = book.queued("orders")
    assert queued is not None and queued.policy == CHECKED and queued.automatic


def test_the_cool_down_grows_with_each_failure_in_a_row_and_a_success_ends_it() -> None:
    assert cool_down(1) == COOL_DOWN_BASE
    assert cool_down(2) == 2 * COOL_DOWN_BASE
    assert cool_down(3) == 4 * COOL_DOWN_BASE
    assert cool_down(10**6) == COOL_DOWN_MAX
    book = ledger()
    at = NOW
    for failures in (1, 2, 3):
        run_to_end(book, "db", RecoveryState.FAILED, at, CHECKED)
        assert book.state.failure_streaks["db"].failures == failures
        at = book.state.failure_streaks["db"].until + timedelta(seconds=1)
    run_to_end(book, "db", RecoveryState.SUCCEEDED, at, CHECKED)
    assert "db" not in book.state.failure_streaks


def test_an_operator_schedule_lifts_the_cool_down_at_once() -> None:
    book = ledger()
    run_to_end(book, "orders", RecoveryState.FAILED, NOW, CHECKED)
    book.operator_scheduled("orders")
    result = book.schedule(ScheduleRecoveryInput(service_name="orders"), NOW + timedelta(seconds=10))
    assert result.outcome == "queued"
    assert "orders" not in book.state.failure_streaks


def test_a_pause_holds_automation_not_operators_and_resume_releases_it() -> None:
    book = ledger()
    paused = book.pause(PauseServiceInput(service_name="api", duration_s=3600, reason="deploy"), NOW)
    assert paused.until == NOW + timedelta(hours=1) and paused.reason == "deploy"
    held = book.schedule_automatic(automatic("api", NOW), NOW + timedelta(minutes=1))
    assert held.outcome == "paused" and "deploy" in (held.reason or "")
    assert book.status(NOW)["paused"] == {"api": {"until": paused.until.isoformat(), "reason": "deploy"}}
    # An operator still can.
    assert book.schedule(ScheduleRecoveryInput(service_name="api"), NOW).outcome == "queued"
    book.cancel("api", "not now", NOW)
    resumed = book.resume("api", NOW + timedelta(minutes=2))
    assert resumed.resumed and resumed.lifted == ["paused"]
    assert "paused" not in book.status(NOW + timedelta(minutes=2))
    again = book.schedule_automatic(automatic("api", NOW + timedelta(minutes=2)), NOW + timedelta(minutes=2))
    assert again.outcome == "queued"


def test_every_pause_expires() -> None:
    book = ledger()
    book.pause(PauseServiceInput(service_name="api", duration_s=60), NOW)
    assert book.schedule_automatic(automatic("api"), NOW + timedelta(seconds=59)).outcome == "paused"
    assert "paused" not in book.status(NOW + timedelta(seconds=60))
    assert book.schedule_automatic(automatic("api"), NOW + timedelta(seconds=60)).outcome == "queued"


def test_resume_of_a_service_nothing_holds_says_so() -> None:
    result = ledger().resume("never-seen", NOW)
    assert not result.resumed and result.lifted == []


def test_resume_lifts_an_operators_cancel_hold() -> None:
    book = ledger()
    book.schedule(ScheduleRecoveryInput(service_name="db"), NOW)
    book.cancel("db", "maintenance", NOW)
    book.note_operator_cancel("db", NOW)
    assert "cancelled by an operator" in book.status(NOW)["held_back"]["db"]["reason"]
    assert book.resume("db", NOW + timedelta(minutes=1)).lifted == ["hold after an operator's cancel"]
    assert book.schedule_automatic(automatic("db"), NOW + timedelta(minutes=1)).outcome == "queued"
    assert CANCEL_HOLD >= timedelta(minutes=30)


def test_pauses_are_bounded_and_say_how_to_make_room() -> None:
    book = ledger()
    for index in range(MAX_PAUSED):
        book.pause(PauseServiceInput(service_name=f"svc-{index}"), NOW)
    with pytest.raises(RecoveryValidationError, match="services are paused"):
        book.pause(PauseServiceInput(service_name="one-more"), NOW)
    # Pausing one already paused again only renews it.
    book.pause(PauseServiceInput(service_name="svc-0", reason="longer"), NOW)


def test_a_stale_hand_over_about_a_breaker_recovered_since_changes_nothing() -> None:
    book = ledger()
    opened = NOW - timedelta(seconds=2)
    run_to_end(book, "cart", RecoveryState.SUCCEEDED, NOW, by_operator=False)
    stale = book.schedule_automatic(automatic("cart", opened), NOW + timedelta(seconds=9))
    assert stale.outcome == "already_recovered" and "stale" in (stale.reason or "")
    assert book.queued("cart") is None
    # A breaker that opened after the recovery ended is a new failure.
    anew = book.schedule_automatic(
        automatic("cart", NOW + timedelta(seconds=8)), NOW + timedelta(seconds=9)
    )
    assert anew.outcome == "queued"


def test_an_opening_in_the_second_a_recovery_ended_is_not_taken_for_stale() -> None:
    book = ledger()
    run_to_end(book, "cart", RecoveryState.SUCCEEDED, NOW, by_operator=False)
    ended = NOW + timedelta(seconds=5)
    # Redis keeps opened_at to the second: 12:00:05 may be 12:00:05.9, after the end.
    same_second = book.schedule_automatic(automatic("cart", ended), ended + timedelta(seconds=1))
    assert same_second.outcome == "queued"


def test_a_request_whose_policy_has_no_check_is_marked() -> None:
    book = ledger()
    assert book.schedule_automatic(automatic("bare"), NOW).no_health_check
    assert not book.schedule_automatic(automatic("checked", policy=CHECKED), NOW).no_health_check


def test_an_automatic_request_on_an_operators_queued_entry_leaves_it_theirs() -> None:
    book = ledger()
    book.schedule(ScheduleRecoveryInput(service_name="db"), NOW)
    assert book.schedule_automatic(automatic("db"), NOW).outcome == "already_queued"
    task = book.queued("db")
    assert task is not None and not task.automatic


def test_replays_from_before_keep_the_old_rule() -> None:
    book = ledger()
    run_to_end(book, "orders", RecoveryState.FAILED, NOW, CHECKED)
    old = book.schedule_automatic(
        automatic("orders", NOW + timedelta(seconds=6)), NOW + timedelta(seconds=7),
        respect_operator=False,
    )
    assert old.outcome == "queued"
    task = book.queued("orders")
    assert task is not None and not task.automatic


def test_the_queue_page_names_what_runs_waits_is_held_and_paused() -> None:
    book = ledger()
    run_to_end(book, "orders", RecoveryState.FAILED, NOW, CHECKED)
    for name, priority in [("low", 9), ("urgent", 1), ("mid", 5)]:
        book.schedule(ScheduleRecoveryInput(service_name=name, priority=priority), NOW)
    book.state.config.max_concurrent_recoveries = 1
    for active in book.take_startable():
        book.started(active, "run-1")
    book.pause(PauseServiceInput(service_name="api", reason="deploy"), NOW)
    text = queue_details(
        now=NOW,
        running=True,
        slots=(book.slots_in_use(), 1),
        queue=book.state.queue,
        queued=len(book.state.queue),
        active=book.state.active.values(),
        holds=book.holds(NOW),
        paused=book.status_paused(NOW),
    )
    assert "**1 running**, **2 waiting**" in text
    assert text.index("`mid`") < text.index("`low`")
    assert "`urgent` in_progress" in text
    assert "`api`" in text and "deploy" in text
    assert "`orders`" in text and "cool-down" in text


def test_the_status_names_an_automatic_recovery_that_has_no_health_check() -> None:
    book = ledger()
    book.schedule_automatic(automatic("bare"), NOW)
    book.schedule_automatic(automatic("checked", policy=CHECKED), NOW)
    book.schedule(ScheduleRecoveryInput(service_name="by-hand"), NOW)
    services = book.status(NOW)["services"]
    assert services["bare"]["health_check"] is None and "no health check" in services["bare"]["reason"]
    assert "health_check" not in services["checked"]
    assert "health_check" not in services["by-hand"]  # the reference shape, exactly


def test_a_batch_that_would_change_nothing_is_answered_without_being_applied() -> None:
    book = ledger()
    run_to_end(book, "failed", RecoveryState.FAILED, NOW, CHECKED)
    book.schedule(ScheduleRecoveryInput(service_name="queued"), NOW)
    book.pause(PauseServiceInput(service_name="paused", reason="deploy"), NOW)
    later = NOW + timedelta(seconds=30)
    batch = [automatic(name, later) for name in ("failed", "queued", "paused")]
    # A cool-down's first answer is history (on-call is told of the hold); then no longer.
    assert book.unchanged_answers(batch, later) is None
    assert [a.outcome for a in book.schedule_automatically(batch, later)] == [
        "held_back", "already_queued", "paused",
    ]
    answers = book.unchanged_answers(batch, later)
    assert answers is not None
    assert [a.outcome for a in answers] == ["held_back", "already_queued", "paused"]
    # One request that would change something: the batch must be applied.
    assert book.unchanged_answers([*batch, automatic("new", later)], later) is None


def test_a_pause_takes_a_queued_automatic_recovery_off_the_queue() -> None:
    book = ledger()
    book.schedule_automatic(automatic("api"), NOW)
    book.schedule(ScheduleRecoveryInput(service_name="by-hand"), NOW)
    book.pause(PauseServiceInput(service_name="api", reason="deploy"), NOW)
    book.pause(PauseServiceInput(service_name="by-hand", reason="deploy"), NOW)
    assert book.queued("api") is None
    assert book.state.recent_history[-1].error_message == "cancelled: paused: deploy"
    assert book.queued("by-hand") is not None  # an operator's stays: their word


def test_a_report_naming_a_run_the_coordinator_does_not_know_yet_changes_nothing() -> None:
    from workflows.models import RecoveryPhase, RecoveryReport, RecoveryStatus, RecoveryStrategy

    book = ledger()
    book.schedule(ScheduleRecoveryInput(service_name="api"), NOW)
    [active] = book.take_startable()  # its start is in flight: no run id yet
    status = RecoveryStatus(
        service_name="api", state=RecoveryState.SUCCEEDED, strategy=RecoveryStrategy.IMMEDIATE,
        priority=1, attempt_count=1, max_attempts=5, scheduled_at=NOW, phase=RecoveryPhase.FINISHED,
    )
    forged = RecoveryReport(service_name="api", run_id="forged", sequence=9, status=status)
    book.apply_report(forged, watched=True)
    assert active.run_id is None and book.live("api") is active
    book.apply_report(forged, watched=True, trust_unknown_run=True)  # as before 0.8
    assert active.run_id == "forged"
