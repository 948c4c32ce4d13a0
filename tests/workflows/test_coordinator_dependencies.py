"""Dependency order, automatic scheduling and the storm guard, as the ledger's rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers.ledgers import NOW, ledger, report, schedule, started
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.coordinator_state import RecoveryLedger
from workflows.errors import RecoveryValidationError
from workflows.coordinator_models import ConfigureInput
from workflows.models import RecoveryPolicy, RecoveryReport, RecoveryState, RecoveryStrategy

HOUR = timedelta(hours=1)


def needs(*names: str, **fields: object) -> RecoveryPolicy:
    return RecoveryPolicy(depends_on=list(names), **fields)


def ended(book: RecoveryLedger, name: str, state: RecoveryState) -> None:
    book.apply_report(report(name, 99, state, finished=True), watched=False)


def history(book: RecoveryLedger) -> dict[str, tuple[str, str | None]]:
    return {r.service_name: (r.state.value, r.error_message) for r in book.state.recent_history}


def test_a_dependent_waits_in_the_queue_with_its_reason_until_its_dependency_succeeds() -> None:
    book = ledger(slots=4)
    schedule(book, "db", priority=5)
    schedule(book, "api", priority=1, policy=needs("db"))
    assert started(book) == ["db"], "api has the better priority but waits for db"
    entry = book.status(NOW)["services"]["api"]
    assert entry["state"] == "scheduled"
    assert entry["waiting_for"] == ["db"]
    assert "'db' (in_progress)" in entry["reason"]
    ended(book, "db", RecoveryState.SUCCEEDED)
    assert started(book) == ["api"]
    assert "waiting_for" not in book.status(NOW)["services"]["api"]


def test_without_depends_on_the_status_entry_keeps_the_reference_shape() -> None:
    book = ledger()
    schedule(book, "solo")
    assert set(book.status(NOW)["services"]["solo"]) == {
        "state", "strategy", "priority", "attempt_count", "max_attempts",
        "scheduled_at", "last_attempt_at", "next_attempt_at",
    }
    assert "held_back" not in book.status(NOW)


def test_a_failed_dependency_ends_its_dependents_unattempted_and_transitively() -> None:
    book = ledger(slots=4)
    schedule(book, "db")
    schedule(book, "api", policy=needs("db"))
    schedule(book, "web", policy=needs("api"))
    schedule(book, "other")
    assert started(book) == ["db", "other"]
    ended(book, "db", RecoveryState.FAILED)
    assert history(book)["api"] == ("failed", "not attempted: dependency 'db' failed")
    assert history(book)["web"] == ("failed", "not attempted: dependency 'api' failed")
    assert book.state.queue == [] and started(book) == []


def test_a_cancelled_dependency_cancels_its_waiting_dependents() -> None:
    book = ledger(slots=4)
    schedule(book, "db")
    schedule(book, "api", policy=needs("db"))
    book.cancel("db", "fixing it by hand", NOW)
    assert history(book)["api"] == ("cancelled", "not attempted: dependency 'db' was cancelled")


def test_a_dependency_not_being_recovered_holds_nothing_back() -> None:
    book = ledger()
    schedule(book, "api", policy=needs("db"))
    assert started(book) == ["api"]


def test_cycles_and_self_dependencies_are_refused_naming_the_path() -> None:
    book = ledger()
    schedule(book, "db", policy=needs("api"))
    with pytest.raises(RecoveryValidationError, match="depends_on cycle: api -> db -> api"):
        book.check_dependencies([ScheduleRecoveryInput(service_name="api", policy=needs("db"))])
    with pytest.raises(RecoveryValidationError, match="api: depends_on names the service itself"):
        book.check_dependencies([ScheduleRecoveryInput(service_name="api", policy=needs("api"))])
    # Within one batch too.
    batch = [
        ScheduleRecoveryInput(service_name="x", policy=needs("y")),
        ScheduleRecoveryInput(service_name="y", policy=needs("x")),
    ]
    with pytest.raises(RecoveryValidationError, match="depends_on cycle: x -> y -> x"):
        ledger().check_dependencies(batch)


def test_automatic_requests_leave_queued_and_running_recoveries_as_they_are() -> None:
    book = ledger(slots=1)
    schedule(book, "a", priority=3)
    schedule(book, "b", priority=7)
    assert started(book) == ["a"]
    again = [
        book.schedule_automatic(ScheduleRecoveryInput(service_name=n, priority=1), NOW)
        for n in ("a", "b")
    ]
    assert [(r.outcome, r.reason) for r in again] == [
        ("already_running", "already recovering (in_progress)"),
        ("already_queued", "already queued"),
    ]
    queued = book.queued("b")
    assert queued is not None and queued.priority == 7


def attempt(name: str, sequence: int, attempts: int, at: timedelta) -> RecoveryReport:
    message = report(name, sequence, attempts=attempts)
    message.status.last_attempt_at = NOW + at
    return message


def test_the_storm_guard_holds_back_an_automatic_request_and_says_until_when() -> None:
    book = ledger()
    budget = RecoveryPolicy(max_attempts_per_hour=3, max_retry_attempts=3)
    schedule(book, "flaky", policy=budget)
    assert started(book) == ["flaky"]
    for n, minutes in ((1, 0), (2, 10), (3, 20)):
        book.apply_report(attempt("flaky", n, n, timedelta(minutes=minutes)), watched=False)
    ended(book, "flaky", RecoveryState.FAILED)

    later = NOW + timedelta(minutes=30)
    held = book.schedule_automatic(ScheduleRecoveryInput(service_name="flaky", policy=budget), later)
    assert held.outcome == "held_back"
    assert "3 attempts in the last hour" in (held.reason or "")
    status = book.status(later)
    assert status["held_back"]["flaky"]["until"] == (NOW + HOUR).isoformat()
    assert status["held_back"]["flaky"]["max_attempts_per_hour"] == 3

    # An operator may still schedule it by hand, and that clears the hold.
    assert book.schedule(ScheduleRecoveryInput(service_name="flaky"), later).outcome == "queued"
    assert "held_back" not in book.status(later)
    book.cancel("flaky", "operator changed their mind", later)

    # Once the first attempt has left the window, the watch may schedule it again.
    after = NOW + HOUR + timedelta(seconds=1)
    again = book.schedule_automatic(ScheduleRecoveryInput(service_name="flaky", policy=budget), after)
    assert again.outcome == "queued"


def test_services_without_a_budget_keep_no_attempt_log() -> None:
    book = ledger()
    schedule(book, "plain")
    started(book)
    book.apply_report(attempt("plain", 1, 1, timedelta(0)), watched=False)
    assert book.state.attempt_logs == {}


def test_a_long_dependency_chain_is_checked_without_recursion() -> None:
    book = ledger()
    for index in range(1, 3000):
        schedule(book, f"s{index}", policy=needs(f"s{index - 1}"))
    book.check_dependencies([ScheduleRecoveryInput(service_name="s0")])
    with pytest.raises(RecoveryValidationError, match=r"depends_on cycle: s0 -> s2999 -> "):
        book.check_dependencies([ScheduleRecoveryInput(service_name="s0", policy=needs("s2999"))])


def test_attempt_logs_and_holds_an_hour_old_are_forgotten() -> None:
    book = ledger()
    budget = RecoveryPolicy(max_attempts_per_hour=1)
    schedule(book, "old", policy=budget)
    started(book)
    book.apply_report(attempt("old", 1, 1, timedelta(0)), watched=False)
    ended(book, "old", RecoveryState.FAILED)
    book.resume("old", NOW)  # lift the failure's cool-down: the storm guard still holds
    book.schedule_automatic(ScheduleRecoveryInput(service_name="old", policy=budget), NOW)
    assert set(book.state.attempt_logs) == {"old"} and set(book.state.held_back) == {"old"}

    schedule(book, "new", policy=budget)
    started(book)
    book.apply_report(attempt("new", 1, 1, 2 * HOUR), watched=False)
    assert set(book.state.attempt_logs) == {"new"} and book.state.held_back == {}


def test_a_request_without_a_budget_is_not_held_back_by_an_old_one() -> None:
    book = ledger()
    schedule(book, "svc", policy=RecoveryPolicy(max_attempts_per_hour=1))
    started(book)
    book.apply_report(attempt("svc", 1, 1, timedelta(0)), watched=False)
    ended(book, "svc", RecoveryState.FAILED)
    book.resume("svc", NOW)  # an operator lifts the cool-down and the failed policy with it
    result = book.schedule_automatic(ScheduleRecoveryInput(service_name="svc"), NOW)
    assert result.outcome == "queued"


def test_a_failure_at_the_root_of_a_long_chain_ends_every_dependent_without_recursion() -> None:
    book = ledger()
    schedule(book, "root", strategy=RecoveryStrategy.MANUAL)
    for index in range(1, 3000):
        schedule(book, f"c{index}", policy=needs("root" if index == 1 else f"c{index - 1}"))
    book.configure(ConfigureInput(recent_history_size=200))
    cancelled, _ = book.shutdown("maintenance", NOW)
    assert len(cancelled) == 3000, "the result names the dependents it cancelled too"
    assert book.state.queue == [] and book.status(NOW)["active_recoveries"] == 0
    assert book.state.recent_history[-1].error_message == "not attempted: dependency 'c2998' was cancelled"


def test_many_dependents_are_checked_in_linear_time() -> None:
    """The deadlock detector allows a workflow task 2 s: 1,500 entries of 50 dependencies each.

    Ten rounds must take under 2 s of this process's CPU (not of the wall clock, which
    other test workers on the same two cores stretch).
    """
    import time

    book = ledger()
    for index in range(1500):
        schedule(book, f"w{index}", policy=needs(*(f"d{k}" for k in range(50))))
    for k in range(50):
        schedule(book, f"d{k}")
    began = time.process_time()
    for _ in range(10):
        book.next_startable()
        book.status(NOW)
    assert time.process_time() - began < 2.0


def test_automation_gets_what_fits_best_priority_first() -> None:
    book = ledger(queue_limit=3)
    batch = [ScheduleRecoveryInput(service_name=f"p{p}", priority=p) for p in (5, 1, 4, 2, 3)]
    results = book.schedule_automatically(batch, NOW)
    assert [(r.service_name, r.outcome) for r in results] == [
        ("p5", "no_room"), ("p1", "queued"), ("p4", "no_room"), ("p2", "queued"), ("p3", "queued"),
    ]
    assert "queue_limit is 3" in (results[0].reason or "")


def test_a_dependent_does_not_go_ahead_of_a_dependency_the_storm_guard_holds_back() -> None:
    book = ledger()
    budget = RecoveryPolicy(max_attempts_per_hour=2, max_retry_attempts=2)
    schedule(book, "sa", policy=budget)
    started(book)
    for n in (1, 2):
        book.apply_report(attempt("sa", n, n, timedelta(minutes=n)), watched=False)
    ended(book, "sa", RecoveryState.FAILED)

    later = NOW + timedelta(minutes=5)
    batch = [
        ScheduleRecoveryInput(service_name="sb", policy=needs("sa")),
        ScheduleRecoveryInput(service_name="sc", policy=needs("sb")),
        ScheduleRecoveryInput(service_name="sa", policy=budget),
    ]
    results = {r.service_name: r for r in book.schedule_automatically(batch, later)}
    assert {n: r.outcome for n, r in results.items()} == {
        "sa": "held_back", "sb": "held_back", "sc": "held_back",
    }
    assert (results["sb"].reason or "").startswith("waits for 'sa', held back until 2026-11-28 13:01:00 UTC")
    assert (results["sc"].reason or "").startswith("waits for 'sb'")
    assert book.state.queue == []
    # Next run, sa's breaker is still open: still held, dependents too.
    again = book.schedule_automatically(batch[:2] + [batch[2]], later + timedelta(minutes=1))
    assert [r.outcome for r in again] == ["held_back"] * 3
    # sa's breaker was reset by hand, so the watch no longer asks for it: sb may go.
    freed = book.schedule_automatically(batch[:2], later + timedelta(minutes=2))
    assert [r.outcome for r in freed] == ["queued", "queued"]


def test_the_storm_guard_counts_past_the_budget() -> None:
    book = ledger()
    budget = RecoveryPolicy(max_attempts_per_hour=3, max_retry_attempts=4)
    schedule(book, "sa", policy=budget)
    started(book)
    for n in (1, 2, 3, 4):
        book.apply_report(attempt("sa", n, n, timedelta(minutes=n)), watched=False)
    ended(book, "sa", RecoveryState.FAILED)
    held = book.schedule_automatic(ScheduleRecoveryInput(service_name="sa", policy=budget), NOW + timedelta(minutes=5))
    assert "storm guard: 4 attempts in the last hour" in (held.reason or "")


def test_automation_leaves_alone_a_service_an_operator_cancelled_until_the_hold_expires() -> None:
    book = ledger()
    schedule(book, "db")
    book.cancel("db", "maintenance", NOW)
    book.note_operator_cancel("db", NOW)
    # Even a breaker that opened anew since: the operator's word holds until the hold ends.
    anew = ScheduleRecoveryInput(service_name="db", breaker_opened_at=NOW + timedelta(minutes=30))
    held = book.schedule_automatic(anew, NOW + timedelta(minutes=31))
    assert held.outcome == "held_back" and "cancelled by an operator" in (held.reason or "")
    later = ScheduleRecoveryInput(service_name="db", breaker_opened_at=NOW + timedelta(hours=1))
    assert book.schedule_automatic(later, NOW + timedelta(hours=1, seconds=1)).outcome == "queued"
