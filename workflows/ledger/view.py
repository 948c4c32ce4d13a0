"""What ``get_recovery_status`` answers: the reference document (SPEC §6), and more.

The reference shape stays exact for what the reference knows; a queue entry gains
``waiting_for`` only with ``depends_on``, an automatic recovery with no health check
says so, and ``held_back`` and ``paused`` appear only when something is held or paused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflows.carried_state import CoordinatorState
from workflows.ledger import operator_word, queue
from workflows.models import RecoveryTask
from workflows.status import idle_entry, status_document, task_entry

# What the status says of an automatic recovery whose policy has no health check.
NO_CHECK_REASON = (
    "no health check: automation closes its breaker only if the service's own calls "
    "close it while half-open"
)


def status(state: CoordinatorState, now: datetime) -> dict[str, Any]:
    """Return the reference document's status shape (SPEC §6)."""
    services = {
        name: idle_entry(policy.max_retry_attempts) for name, policy in state.policies.items()
    }
    unfinished = queue.unfinished_names(state)
    for task in state.queue:
        entry = services[task.service_name] = _entry(task)
        waiting = queue.waiting_for(state, task, unfinished)
        if waiting:  # only with depends_on: the reference shape stays exact without it
            entry["waiting_for"] = waiting
            entry["reason"] = queue.waiting_reason(state, waiting)
    live = queue.live_ones(state)
    for active in live:
        entry = services[active.task.service_name] = _entry(active.task)
        next_at = active.task.next_attempt_at
        if next_at is not None and next_at <= now:
            # Its reported backoff is over: the attempt is under way, its time unknown here.
            entry["next_attempt_at"] = None
    document = status_document(
        timestamp=now,
        orchestrator_running=state.orchestrator_running,
        services=services,
        queued=len(state.queue),
        unfinished=len(state.queue) + len(live),
        recent_history=state.recent_history,
    )
    held_back = operator_word.holds(state, now, unfinished)
    if held_back:  # only when something holds automation back, as above
        document["held_back"] = held_back
    paused = operator_word.paused_now(state, now)
    if paused:
        document["paused"] = paused
    return document


def _entry(task: RecoveryTask) -> dict[str, Any]:
    """Return a queued or running task's entry; automation's with no check says so."""
    entry = task_entry(task)
    if task.automatic and task.policy.health_check is None:
        # Only for automation's recoveries: the evidence rule (SPEC §4).
        entry["health_check"] = None
        entry["reason"] = NO_CHECK_REASON
    return entry
