"""``workflows.ledger.reports``, ``.history`` and ``.cancels``: reports, endings, cancels."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.ledger import cancels, history, queue, reports
from workflows.ledger.lifecycle import ActiveRecovery, Lifecycle
from workflows.models import (
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def result(name: str, state: RecoveryState) -> RecoveryResult:
    return RecoveryResult(
        service_name=name, success=state is RecoveryState.SUCCEEDED, attempt_number=1,
        total_attempts=5, elapsed_time_ms=1.0, state=state, timestamp=NOW,
    )


def report(name: str, sequence: int, state: RecoveryState, *, final: bool = False) -> RecoveryReport:
    status = RecoveryStatus(
        service_name=name, state=state, strategy=RecoveryStrategy.IMMEDIATE, priority=1,
        attempt_count=1, max_attempts=5, scheduled_at=NOW, last_attempt_at=NOW,
        phase=RecoveryPhase.FINISHED if final else RecoveryPhase.BACKOFF,
    )
    return RecoveryReport(
        service_name=name, run_id=f"run-{name}", sequence=sequence, status=status,
        result=result(name, state) if final else None,
    )


def stage(active: ActiveRecovery) -> Lifecycle:
    """Its lifecycle now (a call, so that a checker does not keep an earlier answer)."""
    return active.lifecycle


def running(*names: str, **policy: object) -> tuple[CoordinatorState, list[ActiveRecovery]]:
    state = CoordinatorState(config=CoordinatorConfig(max_concurrent_recoveries=10))
    for name in names:
        queue.schedule(state, ScheduleRecoveryInput(service_name=name, policy=RecoveryPolicy(**policy)), NOW)
    started = queue.take_startable(state, set())
    for active in started:
        reports.started(state, active, f"run-{active.task.service_name}")
    return state, started


def test_reports_apply_in_order_and_a_foreign_one_changes_nothing() -> None:
    state, (active,) = running("svc", max_attempts_per_hour=5)
    reports.apply_report(state, report("svc", 2, RecoveryState.IN_PROGRESS), watched=True)
    assert active.last_report == 2 and active.task.attempt_count == 1
    assert state.attempt_logs["svc"].started == [NOW]
    reports.apply_report(state, report("svc", 1, RecoveryState.FAILED, final=True), watched=True)
    assert active.live and state.recent_history == []  # older than what it has
    foreign = report("svc", 9, RecoveryState.FAILED, final=True).model_copy(update={"run_id": "forged"})
    reports.apply_report(state, foreign, watched=True)
    assert active.live and state.recent_history == []


def test_a_final_report_records_once_and_a_watched_child_keeps_its_slot_until_it_closes() -> None:
    state, (active,) = running("svc")
    final = report("svc", 3, RecoveryState.SUCCEEDED, final=True)
    reports.apply_report(state, final, watched=True)
    reports.apply_report(state, final, watched=True)
    assert active.lifecycle is Lifecycle.CLOSING and queue.slots_in_use(state) == 1
    assert [r.state for r in state.recent_history] == [RecoveryState.SUCCEEDED]
    reports.settle(state, "svc", "run-svc", result("svc", RecoveryState.SUCCEEDED))
    assert state.active == {} and len(state.recent_history) == 1


def test_an_unwatched_child_is_let_go_at_its_final_report() -> None:
    state, _ = running("svc")
    assert reports.unwatched(state, set()) == {"run-svc": "svc"}
    assert reports.unwatched(state, {"run-svc"}) == {}
    reports.apply_report(state, report("svc", 1, RecoveryState.FAILED, final=True), watched=False)
    assert state.active == {} and state.failure_streaks["svc"].failures == 1


def test_a_cancel_too_late_to_stop_a_child_is_replaced_by_how_it_ended() -> None:
    state, (active,) = running("svc")
    answer, child = cancels.cancel(state, "svc", "maintenance", NOW)
    assert answer.cancelled and child == cancels.ChildRef("svc", "run-svc")
    assert stage(active) is Lifecycle.CANCELLING and queue.live(state, "svc") is None
    assert state.recent_history[-1].error_message == "cancelled: maintenance"
    assert reports.forget_closing(state) == []
    reports.apply_report(state, report("svc", 4, RecoveryState.SUCCEEDED, final=True), watched=True)
    assert stage(active) is Lifecycle.CLOSING
    assert [r.state for r in state.recent_history] == [RecoveryState.SUCCEEDED]


def test_a_run_cancelled_while_it_starts_is_recorded_once_it_has_a_run_id() -> None:
    state = CoordinatorState()
    queue.schedule(state, ScheduleRecoveryInput(service_name="svc"), NOW)
    (active,) = queue.take_startable(state, set())
    _, child = cancels.cancel(state, "svc", "never mind", NOW)
    assert child == cancels.ChildRef("svc", None)
    reports.started(state, active, "run-svc")
    assert active.lifecycle is Lifecycle.CANCELLING and "run-svc" in state.finished_runs


def test_shutdown_cancels_the_queue_and_what_waits_on_it_then_the_running() -> None:
    state, _ = running("busy")
    state.config.max_concurrent_recoveries = 1
    queue.schedule(state, ScheduleRecoveryInput(service_name="db"), NOW)
    queue.schedule(state, ScheduleRecoveryInput(service_name="api", policy=RecoveryPolicy(depends_on=["db"])), NOW)
    cancelled, children = cancels.shutdown(state, "stop", NOW)
    assert cancelled == ["db", "api", "busy"] and children == [cancels.ChildRef("busy", "run-busy")]
    assert [r.error_message for r in state.recent_history] == [
        "cancelled: stop", "not attempted: dependency 'db' was cancelled", "cancelled: stop",
    ]
    assert not state.orchestrator_running and state.queue == []


def test_shutdown_names_a_service_once_when_its_cancelled_run_closes_and_it_is_queued_again() -> None:
    state, (active,) = running("svc")
    cancels.cancel(state, "svc", "operator", NOW)
    assert active.lifecycle is Lifecycle.CANCELLING
    queue.schedule(state, ScheduleRecoveryInput(service_name="svc"), NOW)
    cancelled, children = cancels.shutdown(state, "stop", NOW)
    assert cancelled == ["svc"] and children == []
    assert [r.error_message for r in state.recent_history] == ["cancelled: operator", "cancelled: stop"]


def test_history_and_rejections_stay_bounded_and_clipped() -> None:
    state = CoordinatorState(config=CoordinatorConfig(recent_history_size=2))
    for name in ("a", "b", "c"):
        history.append(state, result(name, RecoveryState.FAILED).model_copy(update={"error_message": "x" * 900}))
    assert [r.service_name for r in state.recent_history] == ["b", "c"]
    assert all(len(r.error_message or "") <= history.MAX_MESSAGE for r in state.recent_history)
    for n in range(history.MAX_REJECTED_SIGNALS + 5):
        history.reject(state, f"refused {n}", NOW + timedelta(seconds=n))
    assert len(state.rejected_signals) == history.MAX_REJECTED_SIGNALS
    assert state.rejected_signals[-1].endswith("refused 24")
