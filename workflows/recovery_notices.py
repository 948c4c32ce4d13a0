"""What a ``ServiceRecovery`` tells on-call: ``awaiting_operator``, ``failed``, ``recovered``.

Each is announced as its own ``RecoveryNotification`` (``workflows.notification``):
the recovery waits for the server to start it, never for the notifier.

Behind ``workflow.patched(PATCH_RECOVERY_NOTIFICATIONS)``, the one patch a recovery
keeps: runs begun on a versioned build stay pinned to it, but 0.8's runs were
unversioned and move onto this build mid-run (docs/versioning.md), where an
announcement would be a command their history never issued
(``service_recovery_started_on_0_8``). Every run begun here records the marker; the
next release deprecates it.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.models import AttemptRecord, RecoveryState, RecoveryStrategy, ServiceRecoveryInput
from workflows.notification import announce, run_event

PATCH_RECOVERY_NOTIFICATIONS = "recovery-notifications"


async def awaiting_operator(
    input: ServiceRecoveryInput, attempt: int, last_error: str | None
) -> None:
    """Tell that attempt ``attempt`` waits for an operator's approval."""
    if not workflow.patched(PATCH_RECOVERY_NOTIFICATIONS):
        return
    name, max_attempts = input.service_name, input.effective_policy.max_retry_attempts
    message = f"recovery of '{name}' awaits an operator's approval of attempt {attempt}"
    message += f" of {max_attempts}" if attempt <= max_attempts else " (escalated to manual)"
    if last_error:
        message += f"; last error: {last_error}"
    approvers = input.effective_policy.approvers
    await announce(run_event("awaiting_operator", name, attempt, message, approvers))


async def ended(
    input: ServiceRecoveryInput,
    state: RecoveryState,
    attempts: list[AttemptRecord],
    last_error: str | None,
) -> None:
    """Tell that the recovery failed, or that it recovered after a failure (SPEC §10).

    After a failure: an attempt of this run failed, it waited for an operator, or the
    service's last recovery failed (``follows_failure``, set by the coordinator). So
    whatever opened an incident at PagerDuty, a ``recovered`` resolves it; a first-try
    success of a service that was not failing is no news. A cancelled recovery tells
    no one: an operator ended it.
    """
    name, count = input.service_name, len(attempts)
    if state is RecoveryState.FAILED:
        why = last_error or "no error recorded"
        message = f"recovery of '{name}' failed after {count} attempt(s): {why}"
        event = run_event("failed", name, max(count, 1), message)
    elif state is RecoveryState.SUCCEEDED:
        failed = sum(1 for attempt in attempts if attempt.result == "failure")
        if failed:
            after = f"after {failed} failed attempt(s)"
        elif input.strategy is RecoveryStrategy.MANUAL:
            after = "approved by an operator"
        elif input.follows_failure:
            after = "after its last recovery failed"
        else:
            return
        message = f"recovery of '{name}' succeeded at attempt {count}, {after}"
        event = run_event("recovered", name, count, message)
    else:
        return
    if workflow.patched(PATCH_RECOVERY_NOTIFICATIONS):
        await announce(event)
