"""What a ``ServiceRecovery`` says in the Web UI and to a refused approval.

The Web UI shows a workflow's "Current Details" as markdown: at every step, what the
recovery is doing and, when it waits for an operator, how to approve it. Activity and
timer summaries name a health check by its target. Pure: the workflow passes what it
holds, so the text is read and tested without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.errors import RecoveryOrchestratorError, clipped
from workflows.models import (
    ApproveInput,
    AttemptRecord,
    CancelInput,
    RecoveryPhase,
    RecoveryState,
    RecoveryStrategy,
)

with workflow.unsafe.imports_passed_through():
    from activities.health_check_specs import HealthCheck

# What a summary or the current details may show of a URL, a reason, an error.
MAX_SHOWN = 200
# The code of an approval by an operator the policy's ``approvers`` does not list.
NOT_AN_APPROVER = "not_an_approver"


def shown(text: str | None) -> str:
    """Return text cut to what a summary or the current details should show."""
    return clipped(text or "", MAX_SHOWN)


def check_summary(check: HealthCheck | None) -> str:
    """Name a health check by its target: ``http GET http://…/health``, ``tcp connect db:5432``."""
    return shown(check.target) if check is not None else "no health check"


def current_details(
    *,
    service_name: str,
    strategy: RecoveryStrategy,
    priority: int,
    max_attempts: int,
    health_check: HealthCheck | None,
    trial_s: int,
    state: RecoveryState,
    phase: RecoveryPhase,
    attempts: Sequence[AttemptRecord],
    next_attempt_at: datetime | None,
    last_error: str | None,
    cancel_request: CancelInput | None,
) -> str:
    """Return the Web UI's "Current Details": what the recovery is doing now.

    Args:
        trial_s: How long a breaker trial (no health check) waits in all, in seconds.
    """
    name = service_name
    attempt = len(attempts)
    of = f"{max_attempts}"
    last = f"\n\nLast error: {shown(last_error)}" if last_error else ""
    if phase is RecoveryPhase.AWAITING_APPROVAL:
        return (
            f"**Waiting for an operator** to approve attempt {attempt + 1}/{of} of `{name}`."
            f"\n\nApprove: `recoveryctl approve {name} --operator <you>`, or signal "
            f"`approve` with `{{\"operator\": \"<you>\", \"note\": \"...\"}}`.{last}"
        )
    if phase is RecoveryPhase.BACKOFF and next_attempt_at is not None:
        until = next_attempt_at.strftime("%H:%M:%S UTC")
        return f"Backoff before attempt {attempt + 1}/{of} until {until}.{last}"
    if phase in (
        RecoveryPhase.RESETTING_BREAKER,
        RecoveryPhase.HEALTH_CHECK,
        RecoveryPhase.BREAKER_TRIAL,
        RecoveryPhase.CLOSING_BREAKER,
        RecoveryPhase.REOPENING_BREAKER,
    ):
        unchecked = health_check is None
        step = {
            RecoveryPhase.RESETTING_BREAKER: "resetting the breaker to half-open",
            RecoveryPhase.HEALTH_CHECK: check_summary(health_check),
            RecoveryPhase.BREAKER_TRIAL: (
                "no health check configured: waiting up to "
                f"{trial_s} s for the service's own calls to close its half-open "
                "breaker"
            ),
            RecoveryPhase.CLOSING_BREAKER: (
                "no health check configured: closing the breaker without one"
                if unchecked
                else "health check passed: closing the breaker"
            ),
            RecoveryPhase.REOPENING_BREAKER: "re-opening the breaker",
        }[phase]
        return f"Attempt {attempt}/{of}: {step}.{last}"
    if phase is RecoveryPhase.FINISHED:
        ended = f"Recovery {state.value} after {attempt} attempt(s)"
        if state is RecoveryState.CANCELLED and cancel_request is not None:
            reason = cancel_request.reason or "no reason given"
            return f"{ended}: cancelled: {shown(reason)}."
        if state is RecoveryState.SUCCEEDED and attempts:
            return f"{ended}: {success_basis(attempts[-1])}."
        return f"{ended}.{last}"
    return f"Starting the recovery of `{name}` ({strategy.value}, priority {priority})."


def success_basis(attempt: AttemptRecord) -> str:
    """Say what a successful attempt rests on (the evidence rule, SPEC §4)."""
    found = attempt.breaker_found is not False
    if attempt.evidence == "breaker_trial":
        return "closed by the service's own calls (no health check configured)"
    if attempt.evidence == "none":
        if found:
            return "breaker closed without a health check"
        return "no health check configured, and the store holds no breaker to close"
    if found:
        return "health check passed, breaker closed"
    return "health check passed (the store holds no breaker to close)"


def approval_refusal(
    approval: ApproveInput,
    *,
    awaited: int,
    taken: ApproveInput | None,
    awaiting: bool,
    state: RecoveryState,
    phase: RecoveryPhase,
) -> str | None:
    """Return why ``approval`` counts for nothing now, or None if it starts an attempt.

    Args:
        approval: The approval a client sent.
        awaited: The attempt an approval would start now.
        taken: The approval this wait already took, if any.
        awaiting: Whether the recovery awaits an approval.
    """
    if taken is not None:
        return f"attempt {awaited} already approved by {taken.operator}"
    if not awaiting:
        return f"recovery was {state.value} ({phase.value}), not awaiting_manual"
    if approval.attempt is not None and approval.attempt != awaited:
        return (
            f"it approves attempt {approval.attempt}, but attempt {awaited} awaits "
            "approval now (the approval is stale)"
        )
    return None


def approver_refusal(
    approval: ApproveInput, approvers: Sequence[str] | None, service_name: str
) -> str | None:
    """Return why ``approval``'s operator may not approve this recovery, or None.

    The operator's name is the one the caller gave: the policy's ``approvers`` decide
    whose approvals count, Temporal's namespace permissions who may send one at all.
    """
    if approvers is None or approval.operator in approvers:
        return None
    return (
        f"{shown(approval.operator)!r} is not an approver of '{service_name}' "
        f"(approvers: {shown(', '.join(approvers))})"
    )


def not_an_approver_error(
    refusal: str, *, service_name: str, operator: str, approvers: Sequence[str]
) -> ApplicationError:
    """Return the error an approval by an operator ``approvers`` does not list fails with."""
    return ApplicationError(
        f"approval of '{service_name}' refused: {refusal}",
        {
            "code": NOT_AN_APPROVER,
            "service": service_name,
            "operator": operator,
            "approvers": list(approvers),
        },
        type=RecoveryOrchestratorError.__name__,
        non_retryable=True,
    )


def not_awaiting_error(
    refusal: str,
    *,
    service_name: str,
    state: RecoveryState,
    phase: RecoveryPhase,
    awaiting_attempt: int | None,
) -> ApplicationError:
    """Return the error an ``approve_attempt`` update refused for ``refusal`` fails with."""
    return ApplicationError(
        f"approval of '{service_name}' refused: {refusal}",
        {
            "code": "not_awaiting_approval",
            "service": service_name,
            "state": state.value,
            "phase": phase.value,
            "awaiting_attempt": awaiting_attempt,
        },
        type=RecoveryOrchestratorError.__name__,
        non_retryable=True,
    )
