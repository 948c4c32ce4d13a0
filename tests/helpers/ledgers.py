"""A coordinator's ledger without a server: build one, schedule, start, report.

The rules (``workflows.coordinator_state.RecoveryLedger``) run as plain Python, at a
fixed clock ``NOW``; these put a ledger in the state a test starts from.
"""

from __future__ import annotations

from datetime import datetime, timezone

from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.coordinator_state import RecoveryLedger
from workflows.models import (
    RecoveryPhase,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def ledger(slots: int = 2, **config: int) -> RecoveryLedger:
    return RecoveryLedger(
        CoordinatorState(config=CoordinatorConfig(max_concurrent_recoveries=slots, **config))
    )


def schedule(book: RecoveryLedger, name: str, priority: int = 1, **fields: object) -> str:
    book.schedule(ScheduleRecoveryInput(service_name=name, priority=priority, **fields), NOW)
    return name


def started(book: RecoveryLedger) -> list[str]:
    """Take what may start now and give each a run id, as the workflow does."""
    names = []
    for active in book.take_startable():
        book.started(active, f"run-{active.task.service_name}")
        names.append(active.task.service_name)
    return names


def report(
    name: str,
    sequence: int,
    state: RecoveryState = RecoveryState.IN_PROGRESS,
    *,
    attempts: int = 1,
    run_id: str | None = None,
    finished: bool = False,
) -> RecoveryReport:
    status = RecoveryStatus(
        service_name=name,
        state=state,
        strategy=RecoveryStrategy.EXPONENTIAL_BACKOFF,
        priority=1,
        attempt_count=attempts,
        max_attempts=5,
        scheduled_at=NOW,
        phase=RecoveryPhase.FINISHED if finished else RecoveryPhase.BACKOFF,
    )
    result = (
        RecoveryResult(
            service_name=name,
            success=state is RecoveryState.SUCCEEDED,
            attempt_number=attempts,
            total_attempts=5,
            elapsed_time_ms=10.0,
            state=state,
            timestamp=NOW,
        )
        if finished
        else None
    )
    return RecoveryReport(
        service_name=name, run_id=run_id or f"run-{name}", sequence=sequence, status=status, result=result
    )
