"""``workflows.ledger.queue``: order, slots, MANUAL tasks, closing runs, the running cap."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.errors import RecoveryOrchestratorError
from workflows.ledger import queue
from workflows.ledger.lifecycle import ActiveRecovery, Lifecycle
from workflows.models import RecoveryPolicy, RecoveryState, RecoveryStrategy

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def state(slots: int = 2) -> CoordinatorState:
    return CoordinatorState(config=CoordinatorConfig(max_concurrent_recoveries=slots))


def add(book: CoordinatorState, name: str, priority: int = 1, **fields: object) -> str:
    queue.schedule(book, ScheduleRecoveryInput(service_name=name, priority=priority, **fields), NOW)
    return name


def names(started: list[ActiveRecovery]) -> list[str]:
    return [active.task.service_name for active in started]


def test_best_priority_first_then_first_come_as_slots_allow() -> None:
    book = state(slots=2)
    for name, priority in [("low", 5), ("first", 1), ("mid", 3), ("second", 1)]:
        add(book, name, priority)
    assert names(queue.take_startable(book, set())) == ["first", "second"]
    assert queue.slots_in_use(book) == 2 and queue.take_startable(book, set()) == []
    assert queue.unfinished_count(book) == 4 and queue.unfinished_names(book) == {"low", "first", "mid", "second"}


def test_a_manual_task_starts_at_once_and_holds_no_slot() -> None:
    book = state(slots=1)
    add(book, "busy")
    add(book, "hands-on", 9, strategy=RecoveryStrategy.MANUAL)
    started = queue.take_startable(book, set())
    assert names(started) == ["hands-on", "busy"]
    manual = started[0]
    assert manual.task.state is RecoveryState.AWAITING_MANUAL and not manual.holds_slot
    assert manual.awaits_operators and queue.slots_in_use(book) == 1


def test_a_rescheduled_entry_is_updated_not_queued_twice() -> None:
    book = state()
    add(book, "svc", 5)
    result = queue.schedule(book, ScheduleRecoveryInput(service_name="svc", priority=1), NOW)
    assert result.outcome == "updated" and len(book.queue) == 1 and book.queue[0].priority == 1
    (active,) = queue.take_startable(book, set())
    again = queue.schedule(book, ScheduleRecoveryInput(service_name="svc"), NOW)
    assert again.outcome == "already_running" and queue.live(book, "svc") is active


def test_a_dependency_holds_its_dependent_back_and_says_why() -> None:
    book = state(slots=1)
    add(book, "db")
    result = queue.schedule(
        book, ScheduleRecoveryInput(service_name="api", policy=RecoveryPolicy(depends_on=["db"])), NOW
    )
    assert result.reason == "waiting for 'db' (scheduled) to recover first (depends_on)"
    with pytest.raises(RecoveryOrchestratorError, match="not started ahead of its dependencies") as err:
        queue.check_dependencies_recovered(book, book.queue[1])
    assert err.value.code == "dependency_pending"
    assert names(queue.take_startable(book, set())) == ["db"]
    book.config.max_concurrent_recoveries = 5
    assert queue.take_startable(book, set()) == []  # db is recovering


def test_a_run_still_closing_elsewhere_waits_and_a_put_back_task_queues_again() -> None:
    book = state()
    add(book, "svc")
    assert queue.next_startable(book, {"svc"}) is None
    (active,) = queue.take_startable(book, set())
    assert active.lifecycle is Lifecycle.STARTING
    queue.requeue(book, active)
    assert book.active == {} and book.queue[0].state is RecoveryState.SCHEDULED


def test_a_stopped_orchestrator_starts_nothing_and_the_running_set_has_a_cap() -> None:
    book = state()
    add(book, "svc")
    book.orchestrator_running = False
    assert queue.next_startable(book, set()) is None
    book.orchestrator_running = True
    for n in range(queue.MAX_RUNNING):
        book.active[f"r{n}"] = ActiveRecovery(task=book.queue[0].model_copy(), run_id=f"run{n}")
    assert queue.next_startable(book, set()) is None
    with pytest.raises(RecoveryOrchestratorError, match="the most one coordinator runs at once"):
        queue.check_can_run_one_more(book)
