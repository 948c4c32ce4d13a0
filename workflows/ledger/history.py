"""What operators look back at: the recent history, the finished runs, the rejections.

All three are carried across continue-as-new, so each is bounded here.
"""

from __future__ import annotations

from datetime import datetime

from workflows.carried_state import CoordinatorState
from workflows.errors import clipped
from workflows.ledger.lifecycle import ActiveRecovery
from workflows.models import RecoveryResult, RecoveryState, RecoveryTask

MAX_REJECTED_SIGNALS = 20
MAX_FINISHED_RUNS = 200
# What one message, error or reason may take of the carried state.
MAX_MESSAGE = 500


def append(state: CoordinatorState, result: RecoveryResult) -> None:
    """Add a result to the recent history (its message clipped), keeping the last few."""
    if result.error_message is not None and len(result.error_message) > MAX_MESSAGE:
        result = result.model_copy(
            update={"error_message": clipped(result.error_message, MAX_MESSAGE)}
        )
    state.recent_history.append(result)
    trim(state)


def trim(state: CoordinatorState) -> None:
    """Keep the last ``recent_history_size`` results."""
    del state.recent_history[: -state.config.recent_history_size]


def replace_last(state: CoordinatorState, result: RecoveryResult) -> bool:
    """Put ``result`` in place of its service's latest entry if that one ended otherwise.

    Returns whether it did. Used where Temporal's own word on a run's close comes after
    a report (``reports.settle``).
    """
    history = state.recent_history
    for index in range(len(history) - 1, -1, -1):
        if history[index].service_name == result.service_name:
            if history[index].state is result.state:
                return False
            history[index] = result
            return True
    return False


def is_recorded(state: CoordinatorState, run_id: str) -> bool:
    """Return True if the run's end is recorded already."""
    return run_id in state.finished_runs


def note_finished_run(state: CoordinatorState, run_id: str) -> None:
    """Remember that the run's end is recorded, so that a report seen twice counts once."""
    state.finished_runs.append(run_id)
    del state.finished_runs[:-MAX_FINISHED_RUNS]


def reject(state: CoordinatorState, message: str, now: datetime) -> None:
    """Keep a refused request where ``get_configuration`` shows it (the last few)."""
    state.rejected_signals.append(clipped(f"{now.isoformat()} {message}", MAX_MESSAGE))
    del state.rejected_signals[:-MAX_REJECTED_SIGNALS]


def cancelled(task: RecoveryTask, reason: str, now: datetime) -> RecoveryResult:
    """Return how a recovery cancelled now ends, for the history."""
    return RecoveryResult(
        service_name=task.service_name,
        success=False,
        attempt_number=task.attempt_count,
        total_attempts=task.policy.max_retry_attempts,
        elapsed_time_ms=(now - task.scheduled_at).total_seconds() * 1000,
        state=RecoveryState.CANCELLED,
        error_message=f"cancelled: {reason}",
        timestamp=now,
    )


def unreported(
    service_name: str,
    task: RecoveryTask | None,
    state: RecoveryState,
    error: str,
    now: datetime,
) -> RecoveryResult:
    """Describe a recovery that ended without reporting its own result."""
    return RecoveryResult(
        service_name=service_name,
        success=False,
        attempt_number=task.attempt_count if task else 0,
        total_attempts=task.policy.max_retry_attempts if task else 0,
        elapsed_time_ms=(now - task.scheduled_at).total_seconds() * 1000 if task else 0.0,
        state=state,
        error_message=error,
        timestamp=now,
    )


def correct_late_cancel(
    state: CoordinatorState, active: ActiveRecovery, result: RecoveryResult
) -> None:
    """Let the child's own ending replace a cancel that came too late to stop it.

    A cancel is recorded at once (read-your-writes), but a child already closing
    its breaker finishes anyway: the history must then say what really happened.
    """
    if active.cancel_reason is None or result.state is RecoveryState.CANCELLED:
        return
    history = state.recent_history
    for index in range(len(history) - 1, -1, -1):
        entry = history[index]
        if (
            entry.service_name == active.task.service_name
            and entry.state is RecoveryState.CANCELLED
            and entry.error_message == f"cancelled: {active.cancel_reason}"
        ):
            history[index] = result
            return
