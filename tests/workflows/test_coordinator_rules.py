"""The coordinator's rules without a server: queue order, slots, reports, cancels, limits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers.ledgers import NOW, ledger, report, schedule, started
from workflows.carried_state import CoordinatorState
from workflows.coordinator_models import ConfigureInput, ScheduleRecoveryInput
from workflows.coordinator_state import (
    CARRIED_STATE_BUDGET,
    HAND_OVER_LIMIT,
    MAX_MESSAGE,
    MAX_REJECTED_SIGNALS,
    MAX_RUNNING,
    RecoveryLedger,
    json_bytes,
)
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryState, RecoveryStrategy

MANUAL = RecoveryStrategy.MANUAL


def test_a_free_slot_goes_to_the_best_priority_then_first_come() -> None:
    book = ledger(slots=2)
    for name, priority in [("low", 5), ("first-1", 1), ("mid", 3), ("second-1", 1)]:
        schedule(book, name, priority)
    assert started(book) == ["first-1", "second-1"]
    book.apply_report(report("first-1", 1, RecoveryState.SUCCEEDED, finished=True), watched=False)
    assert started(book) == ["mid"]


def test_no_more_than_the_slots_run_and_a_watched_child_holds_its_slot_until_it_closes() -> None:
    book = ledger(slots=1)
    schedule(book, "a")
    schedule(book, "b")
    assert started(book) == ["a"] and started(book) == []
    book.apply_report(report("a", 1, RecoveryState.FAILED, finished=True), watched=True)
    assert started(book) == [], "the child has reported but not closed: its slot is still taken"
    assert "a" not in book.status(NOW)["services"]
    book.settle("a", "run-a", book.state.recent_history[-1])
    assert started(book) == ["b"]


def test_manual_recoveries_start_at_once_and_hold_no_slot() -> None:
    book = ledger(slots=1)
    schedule(book, "busy")
    assert started(book) == ["busy"]
    for name in ["m1", "m2", "m3"]:
        schedule(book, name, strategy=MANUAL)
    schedule(book, "auto")
    assert started(book) == ["m1", "m2", "m3"]
    assert book.slots_in_use() == 1
    assert book.status(NOW)["services"]["m1"]["state"] == "awaiting_manual"


def test_scheduling_twice_updates_the_queue_entry_and_never_starts_a_running_one_again() -> None:
    book = ledger(slots=1)
    schedule(book, "run")
    started(book)
    schedule(book, "q", priority=4)
    result = book.schedule(ScheduleRecoveryInput(service_name="q", priority=2), NOW)
    queued = book.queued("q")
    assert result.outcome == "updated" and queued is not None and queued.priority == 2
    again = book.schedule(ScheduleRecoveryInput(service_name="run"), NOW)
    assert again.outcome == "already_running" and len(book.state.queue) == 1


def test_a_stale_or_foreign_report_changes_nothing() -> None:
    book = ledger()
    schedule(book, "a")
    started(book)
    book.apply_report(report("a", 3, attempts=3), watched=True)
    book.apply_report(report("a", 2, attempts=2), watched=True)
    assert book.status(NOW)["services"]["a"]["attempt_count"] == 3
    book.apply_report(report("a", 9, attempts=9, run_id="someone-else"), watched=True)
    assert book.status(NOW)["services"]["a"]["attempt_count"] == 3


def test_a_reported_backoff_that_has_ended_shows_no_next_attempt() -> None:
    """Only long backoffs are reported: once one is over, the attempt runs, its time unknown."""
    book = ledger()
    schedule(book, "a")
    started(book)
    backoff = report("a", 2)
    backoff.status.next_attempt_at = NOW + timedelta(minutes=1)
    book.apply_report(backoff, watched=True)
    assert book.status(NOW)["services"]["a"]["next_attempt_at"] == backoff.status.next_attempt_at.isoformat()
    assert book.status(NOW + timedelta(minutes=2))["services"]["a"]["next_attempt_at"] is None


def test_a_finish_is_recorded_once_however_often_it_is_reported() -> None:
    book = ledger()
    schedule(book, "a")
    started(book)
    finish = report("a", 4, RecoveryState.SUCCEEDED, finished=True)
    book.apply_report(finish, watched=True)
    book.apply_report(finish, watched=True)
    assert finish.result is not None
    book.settle("a", "run-a", finish.result)
    assert [r.service_name for r in book.state.recent_history] == ["a"]


def test_cancel_is_visible_at_once_and_the_child_keeps_its_slot_until_it_closes() -> None:
    book = ledger(slots=1)
    schedule(book, "a")
    schedule(book, "b")
    started(book)
    result, child = book.cancel("a", "operator said so", NOW)
    assert result.cancelled and result.was == "in_progress"
    assert child is not None and child.run_id == "run-a"
    status = book.status(NOW)
    assert "a" not in status["services"] and status["active_recoveries"] == 1
    assert status["recent_history"][-1]["state"] == "cancelled"
    assert started(book) == []
    # The child's own final report is not recorded a second time.
    book.apply_report(report("a", 2, RecoveryState.CANCELLED, finished=True), watched=True)
    assert len(book.state.recent_history) == 1
    book.settle("a", "run-a", book.state.recent_history[-1])
    assert started(book) == ["b"]


def test_a_run_cancelled_before_its_start_completed_is_recorded_under_its_run_id() -> None:
    book = ledger()
    schedule(book, "a")
    [active] = book.take_startable()  # its start is in flight: no run id yet
    _, child = book.cancel("a", "too late", NOW)
    assert child is not None and child.run_id is None
    book.started(active, "run-a")
    book.apply_report(report("a", 1, RecoveryState.CANCELLED, finished=True), watched=True)
    assert len(book.state.recent_history) == 1


def test_an_unwatched_cancelled_child_frees_its_slot_with_its_final_report() -> None:
    book = ledger(slots=1)
    schedule(book, "a")
    schedule(book, "b")
    started(book)
    book.cancel("a", "stop", NOW)
    assert book.unwatched(set()) == {"run-a": "a"}, "looked up until it is seen to close"
    book.apply_report(report("a", 2, RecoveryState.CANCELLED, finished=True), watched=False)
    assert started(book) == ["b"]


def test_shutdown_cancels_everything_and_counts_nothing_unfinished() -> None:
    book = ledger(slots=1)
    for name in ["run", "q1", "q2"]:
        schedule(book, name)
    started(book)
    cancelled, children = book.shutdown("maintenance", NOW)
    assert cancelled == ["q1", "q2", "run"]
    assert [c.service_name for c in children] == ["run"]
    status = book.status(NOW)
    assert (status["active_recoveries"], status["queued_recoveries"]) == (0, 0)
    assert not status["orchestrator_running"] and book.next_startable() is None


def test_one_approval_per_wait_however_many_ask() -> None:
    book = ledger()
    schedule(book, "m", strategy=MANUAL)
    [active] = book.take_startable()
    book.started(active, "run-m")
    assert book.approval_to_send(active) is True
    assert book.approval_to_send(active) is False
    book.apply_report(report("m", 1, RecoveryState.IN_PROGRESS, attempts=1), watched=True)
    book.apply_report(report("m", 2, RecoveryState.AWAITING_MANUAL, attempts=1), watched=True)
    assert book.approval_to_send(active) is True


def test_the_queue_limit_counts_unfinished_recoveries_and_says_so() -> None:
    book = ledger(slots=1, queue_limit=3)
    for name in ["a", "b", "c"]:
        book.check_room([ScheduleRecoveryInput(service_name=name)])
        schedule(book, name)
    book.check_room([ScheduleRecoveryInput(service_name="b")])  # already queued: no room needed
    with pytest.raises(RecoveryValidationError, match="queue_limit is 3"):
        book.check_room([ScheduleRecoveryInput(service_name="d")])
    book.configure(ConfigureInput(queue_limit=4))
    book.check_room([ScheduleRecoveryInput(service_name="d")])


def test_the_budget_counts_each_distinct_policy_once() -> None:
    """The hand-over writes each distinct policy once: a large default costs once, own ones each."""
    book = ledger()

    def big(index: int) -> RecoveryPolicy:
        url = f"http://127.0.0.1/{index}/" + "x" * 1900
        return RecoveryPolicy(health_check={"kind": "http", "url": url})

    book.configure(ConfigureInput(default_policy=big(-1)))
    sharing = [ScheduleRecoveryInput(service_name=f"s{i}") for i in range(1000)]
    book.check_room(sharing)  # 1,000 entries on the large default policy fit
    own = [ScheduleRecoveryInput(service_name=f"o{i}", policy=big(i)) for i in range(1000)]
    with pytest.raises(RecoveryValidationError, match="budget"):
        book.check_room(own)
    fits = own[:300]
    book.check_room(fits)
    for request in fits:
        book.schedule(request, NOW)
    assert book.carried_bytes() <= CARRIED_STATE_BUDGET


def test_rejections_and_history_stay_bounded() -> None:
    book = ledger(recent_history_size=3)
    for index in range(MAX_REJECTED_SIGNALS + 5):
        book.reject(f"bad {index}", NOW + timedelta(seconds=index))
    assert len(book.state.rejected_signals) == MAX_REJECTED_SIGNALS
    assert book.state.rejected_signals[-1].endswith(f"bad {MAX_REJECTED_SIGNALS + 4}")
    for name in "abcde":
        schedule(book, name)
        book.cancel(name, "x", NOW)
    assert [r.service_name for r in book.state.recent_history] == ["c", "d", "e"]


def test_policy_precedence_passed_then_service_then_default() -> None:
    book = ledger()
    book.set_policy("own", RecoveryPolicy(max_retry_attempts=7))
    schedule(book, "own")
    schedule(book, "given", policy=RecoveryPolicy(max_retry_attempts=2))
    schedule(book, "plain")
    attempts = {t.service_name: t.policy.max_retry_attempts for t in book.state.queue}
    assert attempts == {"own": 7, "given": 2, "plain": 5}


def test_a_hand_over_frees_a_cancelled_child_that_has_reported_but_keeps_one_that_has_not() -> None:
    book = ledger(slots=2)
    schedule(book, "reported")
    schedule(book, "silent")
    started(book)
    book.cancel("reported", "x", NOW)
    book.cancel("silent", "x", NOW)
    book.apply_report(report("reported", 2, RecoveryState.CANCELLED, finished=True), watched=True)
    after = RecoveryLedger(CoordinatorState.model_validate(book.state.model_dump(mode="json")))
    after.forget_closing()
    assert set(after.state.active) == {"silent"}
    assert after.unwatched(set()) == {"run-silent": "silent"}


def test_a_cancel_too_late_to_stop_the_child_gives_way_to_what_really_happened() -> None:
    book = ledger()
    schedule(book, "a")
    started(book)
    book.cancel("a", "stop", NOW)
    assert book.state.recent_history[-1].state is RecoveryState.CANCELLED
    book.apply_report(report("a", 5, RecoveryState.SUCCEEDED, finished=True), watched=True)
    assert [r.state for r in book.state.recent_history] == [RecoveryState.SUCCEEDED]
    book.settle("a", "run-a", book.state.recent_history[-1])
    assert len(book.state.recent_history) == 1


def test_the_carried_state_never_outgrows_what_a_hand_over_can_carry() -> None:
    book = ledger()
    policy = RecoveryPolicy(health_check={"kind": "http", "url": "http://127.0.0.1/" + "x" * 2000})
    refused = None
    for index in range(2000):
        try:
            book.check_size(len(policy.model_dump_json()) + 20)
        except RecoveryValidationError as err:
            refused = err
            break
        book.set_policy(f"svc-{index}", policy)
    assert refused is not None and "budget" in str(refused)
    assert book.carried_bytes() <= CARRIED_STATE_BUDGET


def test_no_more_than_max_running_start_whatever_their_strategy() -> None:
    book = ledger(slots=1)
    for index in range(MAX_RUNNING + 5):
        schedule(book, f"m{index}", strategy=MANUAL)
    assert len(started(book)) == MAX_RUNNING
    assert len(book.state.queue) == 5
    with pytest.raises(RecoveryOrchestratorError, match="2,000 pending children"):
        book.check_can_run_one_more()


def test_starting_goes_in_batches_when_asked() -> None:
    book = ledger(slots=10)
    for index in range(7):
        schedule(book, f"s{index}")
    assert len(book.take_startable(limit=3)) == 3
    assert len(book.take_startable(limit=3)) == 3
    assert len(book.take_startable(limit=3)) == 1


def test_a_report_from_a_run_it_does_not_hold_changes_nothing() -> None:
    book = ledger()
    book.apply_report(report("ghost", 1, RecoveryState.SUCCEEDED, finished=True), watched=False)
    assert book.state.recent_history == [] and book.state.active == {}


def test_messages_kept_in_the_carried_state_are_capped() -> None:
    book = ledger()
    book.reject("x" * 100_000, NOW)
    assert len(book.state.rejected_signals[-1]) == MAX_MESSAGE
    schedule(book, "a")
    book.cancel("a", "y" * 2000, NOW)
    assert len(book.state.recent_history[-1].error_message or "") == MAX_MESSAGE


def test_a_refused_start_ends_in_the_history_where_operators_look() -> None:
    book = ledger()
    schedule(book, "a")
    [active] = book.take_startable()
    book.start_refused("a", "recovery-a is already running outside the coordinator", NOW)
    ended = book.state.recent_history[-1]
    assert ended.service_name == "a" and ended.state is RecoveryState.FAILED
    assert "outside the coordinator" in (ended.error_message or "")
    assert "a" not in book.status(NOW)["services"]


def test_a_hand_over_trims_old_history_before_it_could_outgrow_two_megabytes() -> None:
    book = ledger(recent_history_size=10)
    book.state.config.recent_history_size = 10_000  # as an older, unbounded run may carry it
    for index in range(5000):
        schedule(book, f"s{index}")
        book.cancel(f"s{index}", "r" * 400, NOW)
    assert book.carried_bytes() > HAND_OVER_LIMIT
    book.fit_for_hand_over()
    assert book.carried_bytes() <= HAND_OVER_LIMIT and book.state.recent_history


def test_a_start_that_finds_the_old_run_still_closing_goes_back_to_the_queue_and_waits() -> None:
    book = ledger(slots=2)
    schedule(book, "a")
    [active] = book.take_startable()
    book.requeue(active)
    book.closing_elsewhere.add("a")
    queued = book.queued("a")
    assert queued is not None and queued.state is RecoveryState.SCHEDULED
    assert "a" not in book.state.active and book.take_startable() == []
    book.closing_elsewhere.discard("a")
    assert [a.task.service_name for a in book.take_startable()] == ["a"]


def _filled_to_within(book: RecoveryLedger, room: int) -> None:
    """Set policies until the carried state has about ``room`` bytes left in its budget."""
    index = 0
    while CARRIED_STATE_BUDGET - book.carried_bytes() > room + 3000:
        book.set_policy(f"filler-{index}", _big_policy(index, 2000))
        index += 1
    book.set_policy("last-filler", _big_policy(index, 0))
    pad = CARRIED_STATE_BUDGET - book.carried_bytes() - room
    book.set_policy("last-filler", _big_policy(index, max(0, pad)))
    assert abs(CARRIED_STATE_BUDGET - book.carried_bytes() - room) < 50


def _big_policy(index: int, padding: int) -> RecoveryPolicy:
    url = f"http://127.0.0.1/{index}/" + "x" * padding
    return RecoveryPolicy(health_check={"kind": "http", "url": url})


def test_a_size_check_gives_the_same_answer_whatever_was_checked_before() -> None:
    """An update's validator is not replayed: nothing it measures may change a later answer.

    Before, the last policy sized was remembered across calls, so a refused update primed
    the estimate and a signal with the same policy then passed live but failed on replay.
    """
    book = ledger()
    _filled_to_within(book, room=1000)
    request = ScheduleRecoveryInput(service_name="new", policy=_big_policy(-1, 1500))
    for _ in range(2):  # a validator's check, then a replayed signal handler's
        with pytest.raises(RecoveryValidationError, match="budget"):
            book.check_room([request])
    small = ScheduleRecoveryInput(service_name="small")
    book.check_room([small])  # the default policy adds only its entry


def test_automation_does_not_count_a_refused_requests_policy_as_carried() -> None:
    book = ledger()
    _filled_to_within(book, room=1000)
    policy = _big_policy(-1, 1500)
    batch = [ScheduleRecoveryInput(service_name=name, policy=policy) for name in ("a", "b")]
    results = book.schedule_automatically(batch, NOW)
    assert [r.outcome for r in results] == ["no_room", "no_room"]
    assert book.carried_bytes() <= CARRIED_STATE_BUDGET


def test_the_budget_counts_utf_8_bytes_not_characters() -> None:
    """Temporal's 2 MB limit is in bytes: an emoji is one character and four bytes."""
    book = ledger()
    refused = None
    for index in range(2000):
        policy = RecoveryPolicy(
            health_check={"kind": "http", "url": f"http://127.0.0.1/{index}/" + "😀" * 2000}
        )
        try:
            book.check_size(json_bytes(policy) + 20)
        except RecoveryValidationError as err:
            refused = err
            break
        book.set_policy(f"svc-{index}", policy)
    assert refused is not None and "budget" in str(refused)
    assert len(book.state.model_dump_json().encode()) <= CARRIED_STATE_BUDGET
    assert book.carried_bytes() == len(book.state.model_dump_json().encode())


def test_a_hand_over_gives_up_attempt_logs_rather_than_fail() -> None:
    """Attempt logs grow with reports, not requests: forged reports filled them past 2 MB."""
    book = ledger(slots=5)
    budget = RecoveryPolicy(max_attempts_per_hour=10_000, max_retry_attempts=1000)
    names = [schedule(book, f"s{index}", policy=budget) for index in range(5)]
    started(book)
    for name in names:  # a run's report claiming 20,000 attempts: nothing bounds the claim
        forged = report(name, 1, attempts=20_000)
        forged.status.last_attempt_at = NOW
        book.apply_report(forged, watched=True)
    assert book.carried_bytes() > HAND_OVER_LIMIT
    given_up = book.fit_for_hand_over()
    assert "attempt times past each hourly budget" in given_up
    assert book.carried_bytes() <= HAND_OVER_LIMIT
    assert all(len(log.started) <= log.budget for log in book.state.attempt_logs.values())
    assert set(book.state.active) == set(names)  # the running recoveries are all kept


def test_giving_queued_entries_new_policies_counts_against_the_budget() -> None:
    """An 'updated' entry carries its new policy: a batch of them can grow the state too."""
    book = ledger(slots=0, queue_limit=5000)
    names = [f"q{index}" for index in range(1000)]
    book.check_room([ScheduleRecoveryInput(service_name=n) for n in names])
    for name in names:
        schedule(book, name)
    renewed = [
        ScheduleRecoveryInput(service_name=name, policy=_big_policy(index, 1500))
        for index, name in enumerate(names)
    ]
    with pytest.raises(RecoveryValidationError, match="budget"):
        book.check_room(renewed)
    same = [ScheduleRecoveryInput(service_name=name, priority=2) for name in names]
    assert book.check_room(same) == 0  # a new priority adds nothing
