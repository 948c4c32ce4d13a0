"""What a running recovery answers and is told: approvals, cancels, its status, its reports.

The ``approve`` and ``cancel`` signals and the ``approve_attempt`` and ``attempt_result``
updates of ``ServiceRecovery``, the ``status`` and ``history`` queries' answers, and the
``RecoveryReport`` a recovery signals to its coordinator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, StrictInt, model_validator
from temporalio import workflow

from workflows.models.door import (
    MAX_OPERATOR,
    MAX_REPORT_NUMBER,
    MAX_TEXT,
    DoorInput,
    OperatorText,
    StrictModel,
    check_door_time,
)
from workflows.models.recovery import RecoveryPhase, RecoveryResult, RecoveryState, RecoveryStrategy

with workflow.unsafe.imports_passed_through():
    from activities.health_check_specs import HealthCheckOutcome


class ApproveInput(StrictModel, DoorInput):
    """Signal ``approve`` (and update ``approve_attempt``): an operator allows one attempt.

    ``attempt`` names the attempt the operator saw awaiting approval: an approval sent
    for an attempt that has meanwhile run is stale and counts for nothing, so that five
    callers who saw attempt 1 waiting start one attempt, not two.
    """

    operator: str = Field(default="unknown", max_length=MAX_OPERATOR)
    note: OperatorText = Field(default="", max_length=MAX_TEXT)
    attempt: StrictInt | None = Field(default=None, ge=1, le=MAX_REPORT_NUMBER)


class ApproveResult(BaseModel):
    """What an approval admitted: the attempt it starts."""

    service_name: str
    attempt: int
    operator: str


class CancelInput(StrictModel, DoorInput):
    """Signal ``cancel``: stop the recovery at once."""

    reason: OperatorText = Field(default="", max_length=MAX_TEXT)


class AttemptRecord(BaseModel):
    """One attempt, as the ``history`` query returns it."""

    attempt: int
    started_at: datetime
    finished_at: datetime | None = None
    delay_ms: int = 0
    approved_by: str | None = None
    approval_note: str | None = None
    breaker_reset: bool = False
    # Whether the reset found the service's breaker in the store (None: no reset ran to
    # an answer). A recovery never creates a breaker: with none, nothing is reset,
    # closed or re-opened (SPEC §4).
    breaker_found: bool | None = None
    health_check: HealthCheckOutcome | None = None
    result: Literal["success", "failure", "cancelled"] | None = None
    error: str | None = None
    # What a successful attempt rests on (SPEC §4, the evidence rule): ``health_check``
    # (a configured check passed), ``breaker_trial`` (no check: the service's own calls
    # closed its half-open breaker) or ``none`` (an operator's recovery with no check:
    # closed without a health check). None while running and for an attempt that failed.
    evidence: Literal["health_check", "breaker_trial", "none"] | None = None


class RecoveryStatus(BaseModel):
    """The ``status`` query: the per-service status entry plus ``phase`` and ``last_error``."""

    service_name: str
    state: RecoveryState
    strategy: RecoveryStrategy
    priority: int
    attempt_count: int
    max_attempts: int
    scheduled_at: datetime
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    phase: RecoveryPhase
    last_error: str | None = None
    # The last 20 signals refused or ignored: "<iso time> <signal>: <why>", newest last.
    ignored_signals: list[str] = Field(default_factory=list)


class AttemptResultInput(StrictModel, DoorInput):
    """Update ``attempt_result``: the attempt whose end the caller waits for."""

    attempt: StrictInt = Field(ge=1, le=MAX_REPORT_NUMBER)


class AttemptAnswer(BaseModel):
    """Update ``attempt_result``'s answer: the recovery's status when the attempt ended,
    and that attempt's record (None: the recovery ended before it ran)."""

    status: RecoveryStatus
    attempt: AttemptRecord | None = None


class RecoveryReport(BaseModel, DoorInput):
    """What a ``ServiceRecovery`` tells its coordinator: its status, and its result at the end.

    ``sequence`` rises with every report of one run, so a coordinator can drop a
    report that arrives after a newer one.
    """

    service_name: str
    run_id: str = Field(max_length=200)
    sequence: StrictInt = Field(ge=0, le=MAX_REPORT_NUMBER)
    status: RecoveryStatus
    result: RecoveryResult | None = None

    def past_times(self) -> list[datetime]:
        """Return the times the report says things happened (not the next attempt's, ahead)."""
        times = [self.status.scheduled_at, self.status.last_attempt_at]
        if self.result is not None:
            times.append(self.result.timestamp)
        return [time for time in times if time is not None]

    @model_validator(mode="after")
    def _within_bounds(self) -> RecoveryReport:
        """Refuse what no recovery reports: a forged report may only misstate its service.

        Its times are compared with the coordinator's own (aware) times and its counts
        fill the storm guard's log: a naive time or a count of 2^70 failed every later
        workflow task of the coordinator.
        """
        status, result = self.status, self.result
        for time in [*self.past_times(), status.next_attempt_at]:
            if time is not None:
                check_door_time(time, "a report's times")
        counts = [status.attempt_count, status.max_attempts]
        if result is not None:
            counts += [result.attempt_number, result.total_attempts]
        if any(not 0 <= count <= MAX_REPORT_NUMBER for count in counts):
            raise ValueError(f"a report's attempt counts must be between 0 and {MAX_REPORT_NUMBER}")
        if status.service_name != self.service_name or (
            result is not None and result.service_name != self.service_name
        ):
            raise ValueError("a report speaks of one service only")
        return self
