"""An operator's cancel, and shutdown: recorded at once, children told to stop after.

A cancel is read-your-writes: once the update returns, the status no longer lists
the recovery and the history holds it cancelled. A running child still holds its
slot until it has closed (one run per workflow id); the caller tells it to stop.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from workflows import dependencies
from workflows.carried_state import CoordinatorState
from workflows.coordinator_models import CancelRecoveryResult
from workflows.ledger import history, queue, reports
from workflows.ledger.lifecycle import Lifecycle


class ChildRef(NamedTuple):
    """A running recovery to signal: its service and run (the run id may not be known yet)."""

    service_name: str
    run_id: str | None


def cancel(
    state: CoordinatorState, service_name: str, reason: str, now: datetime
) -> tuple[CancelRecoveryResult, ChildRef | None]:
    """Cancel at once: the status stops listing it and the history holds it cancelled.

    Returns:
        The update's result, and the child to tell to stop (None if it never started).
    """
    queued = queue.queued(state, service_name)
    if queued is not None:
        state.queue.remove(queued)
        reports.record(state, history.cancelled(queued, reason, now), run_id=None)
        result = CancelRecoveryResult(service_name=service_name, cancelled=True, was="scheduled")
        return result, None
    active = queue.live(state, service_name)
    if active is None:
        return CancelRecoveryResult(service_name=service_name, cancelled=False, was="idle"), None
    was = active.task.state.value
    # It still holds its slot until the child has closed: one run per workflow id.
    active.advance(Lifecycle.CANCELLING)
    active.cancel_reason = reason
    reports.record(state, history.cancelled(active.task, reason, now), run_id=active.run_id)
    result = CancelRecoveryResult(service_name=service_name, cancelled=True, was=was)
    return result, ChildRef(service_name, active.run_id)


def shutdown(state: CoordinatorState, reason: str, now: datetime) -> tuple[list[str], list[ChildRef]]:
    """Stop: cancel every unfinished recovery; report not running until started again.

    Returns:
        Every cancelled service, and the running children to tell to stop.
    """
    state.orchestrator_running = False
    # The whole queue in one pass (one by one, each cancel would search it again);
    # a dependent ends as "not attempted", as when its dependency is cancelled alone.
    queued, waiting, ended = state.queue, dependencies.waiting_on(state.queue), set[str]()
    state.queue = []
    for task in queued:
        if task.service_name in ended:
            continue
        ended.add(task.service_name)
        cancelled = history.cancelled(task, reason, now)
        history.append(state, cancelled)
        for dependent in dependencies.cascade(cancelled, waiting, ended):
            history.append(state, dependent)
    # Live ones only: a run already cancelled and closing (its service queued again, say)
    # was cancelled before, and its name is in the queue's part of the answer.
    running = [name for name, active in state.active.items() if active.live]
    children: list[ChildRef] = []
    for name in running:
        _, child = cancel(state, name, reason, now)
        if child is not None:
            children.append(child)
    return [task.service_name for task in queued] + running, children
