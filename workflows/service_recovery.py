"""``ServiceRecovery``: one recovery of one service, as one durable workflow.

Attempt 1 runs at once; after failed attempt n the workflow waits ``delay(n)`` on
a durable timer whose summary the Web UI shows, then tries again. An attempt is
three activities: reset the breaker to half-open, run the health check (if any),
then close the breaker or re-open it. Signals ``approve`` and ``cancel`` and
Temporal cancellation are honoured at once, in the middle of any wait.

Temporal's own status tells the outcome: ``succeeded`` ends Completed, ``failed``
ends Failed (an ``ApplicationError`` of type ``RecoveryFailed`` whose details carry
the ``RecoveryResult``), and a Temporal cancellation (which the coordinator's cancel
paths request, with the operator's reason) ends Canceled. The bare ``cancel`` signal
still ends the recovery at once, as ``cancelled``, but its workflow Completed: only a
cancellation requested through Temporal may end a workflow Canceled. The current
details (the Web UI's "Current Details") say at every step what the recovery is doing
and, when it waits for an operator, how to approve it.

Whatever a client sends never fails a workflow task: the input and every message
take one typed argument behind the guard (``workflows.guard``). A bad input fails the
workflow with a ``RecoveryValidationError``; a bad, stale or duplicate signal is
recorded in the status's ``ignored_signals`` and otherwise changes nothing.

This module is the workflow's doors (its input, signals, updates and queries); the
attempt loop they steer is ``workflows.recovery_run``.
"""

from __future__ import annotations

import asyncio
import re

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import metrics, recovery_checks
from workflows.constants import (
    LOG_PREFIX,
    RECOVERY_ID_PREFIX,
    SA_PRIORITY,
    SA_SERVICE,
    SA_STATE,
    SA_STRATEGY,
    SERVICE_RECOVERY_WORKFLOW,
    recovery_workflow_id,
)
from workflows.errors import (
    RECOVERY_FAILED,
    RecoveryOrchestratorError,
    RecoveryValidationError,
    clipped,
    to_application_error,
)
from workflows.guard import REQUIRED, misfit
from workflows.models import (
    MAX_TEXT,
    NoInput,
    ApproveInput,
    ApproveResult,
    AttemptAnswer,
    AttemptRecord,
    AttemptResultInput,
    CancelInput,
    RecoveryPhase,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    ServiceRecoveryInput,
    check_constitutional_hashes,
)
from workflows.recovery_details import (
    NOT_AN_APPROVER,
    approval_refusal,
    approver_refusal,
    not_an_approver_error,
    not_awaiting_error,
    shown,
)
from workflows.recovery_run import REPORT_SIGNAL, CancelRequested, RecoveryRun

with workflow.unsafe.imports_passed_through():
    from recovery_breakers.store import BreakerState

# Signals refused or ignored, newest last: the status shows this many.
MAX_IGNORED_SIGNALS = 20
MAX_IGNORED_ENTRY = 500
# The one patch marker that runs of earlier builds recorded (see ``__init__``).
RECOVERY_0_7_BUNDLE = "recovery-0.7"

__all__ = ["MAX_IGNORED_SIGNALS", "REPORT_SIGNAL", "ServiceRecovery"]


@workflow.defn(name=SERVICE_RECOVERY_WORKFLOW)
class ServiceRecovery(RecoveryRun):
    """Recover one service: backoff, reset, check, close or re-open, retry."""

    @workflow.init
    def __init__(self, input: ServiceRecoveryInput = REQUIRED) -> None:
        # Never raise here: an input that does not fit (the guard's marker, or none) is
        # kept and raised by ``run`` as a workflow failure; this first task's queries
        # already see the recovery failed.
        self._refusal: RecoveryOrchestratorError | None = _input_refusal(input)
        # Runs whose history holds this marker took every branch it named; they move onto
        # this build when it becomes current (docs/versioning.md), whose code is those
        # branches alone. Deprecated, not dropped, while such runs may replay (CHANGELOG).
        workflow.deprecate_patch(RECOVERY_0_7_BUNDLE)
        super().__init__(
            input if isinstance(input, ServiceRecoveryInput) else _stand_in_input(),
            refused=self._refusal is not None,
        )
        self._ignored_signals: list[str] = []
        if self._refusal is not None:
            # Signals and queries of this first task already see the recovery as failed.
            self._state = RecoveryState.FAILED
            self._phase = RecoveryPhase.FINISHED
            self._last_error = str(self._refusal)

    @workflow.run
    async def run(self, input: ServiceRecoveryInput = REQUIRED) -> RecoveryResult:
        """Run attempts until one succeeds, they are used up, or the recovery is cancelled.

        Args:
            input: The recovery (read by ``__init__``); ``REQUIRED`` only lets a start
                with no payload reach the guard's clear refusal.

        Returns:
            The whole recovery's ``RecoveryResult``.

        Raises:
            ApplicationError: non-retryable, type ``RecoveryValidationError`` for a bad
                input or a workflow id other than ``recovery-<service_name>``, type
                ``RecoveryConstitutionalError`` for a wrong hash; both before any activity.
        """
        if self._refusal is not None:
            raise self._refuse(self._refusal)
        input = self._input
        expected_id = recovery_workflow_id(input.service_name)
        actual_id = workflow.info().workflow_id
        if actual_id != expected_id:
            raise self._refuse(
                RecoveryValidationError(
                    f"ServiceRecovery of '{input.service_name}' must run as workflow id "
                    f"'{expected_id}', not '{actual_id}'"
                )
            )
        try:
            check_constitutional_hashes(input)
        except RecoveryOrchestratorError as err:
            raise self._refuse(err) from None
        workflow.upsert_search_attributes(
            [
                SA_SERVICE.value_set(input.service_name),
                SA_PRIORITY.value_set(input.priority),
                SA_STRATEGY.value_set(input.strategy.value),
                SA_STATE.value_set(self._state.value),
            ]
        )
        metrics.recovery_started(input.strategy.value)
        self._show_details()
        try:
            final_state = await self._recover()
        except CancelRequested:
            final_state = RecoveryState.CANCELLED
        except asyncio.CancelledError:
            # Temporal cancellation: leave the breaker as it was found, record the outcome,
            # then end as Canceled in Temporal too. A cancel signal's reason came first.
            if self._cancel_request is None:
                self._cancel_request = CancelInput(reason=_cancellation_reason())
            if self._breaker.maybe_half_open:
                await self._breaker.set(BreakerState.OPEN, cleaning_up=True)
            await self._finish(RecoveryState.CANCELLED)
            raise
        result = await self._finish(final_state)
        if final_state is RecoveryState.CANCELLED and recovery_checks.temporal_cancel_pending():
            # A cancel signal and a Temporal cancellation both came: end Canceled in
            # Temporal too, whichever the workflow noticed first.
            raise asyncio.CancelledError()
        if final_state is RecoveryState.FAILED:
            # Failed in Temporal too (the Web UI colours it, ExecutionStatus='Failed' finds it);
            # the coordinator has its result already, every client reads it from the details.
            raise ApplicationError(
                f"recovery of '{input.service_name}' failed after {result.attempt_number} "
                f"attempt(s): {shown(result.error_message or 'no error recorded')}",
                result,
                type=RECOVERY_FAILED,
                non_retryable=True,
            )
        return result

    @workflow.signal(name="approve")
    def approve(self, approval: ApproveInput | None = None) -> None:
        """Allow one attempt of a recovery that awaits an operator (``ApproveInput``).

        Counts only while the recovery awaits an approval, once per wait, and only from
        an operator the policy's ``approvers`` lists (when it lists any); any other
        approval is recorded in ``ignored_signals``, never kept for later.
        """
        approval = approval or ApproveInput()
        not_listed = self._approver_refusal(approval)
        if not_listed is not None:
            self._ignore("approve", f"refused ({NOT_AN_APPROVER}): {not_listed}")
            return
        refusal = self._approval_refusal(approval)
        if refusal is not None:
            self._ignore("approve", f"approve from {approval.operator} ignored: {refusal}")
        else:
            self._approval = approval

    @workflow.update(name="approve_attempt")
    def approve_attempt(self, approval: ApproveInput | None = None) -> ApproveResult:
        """Approve one attempt as the ``approve`` signal does, and answer which one it starts.

        What the facade and ``recoveryctl`` use: the caller learns at once whether its
        approval counted (``code`` ``not_awaiting_approval`` when not), instead of
        signalling and then searching ``ignored_signals``. An operator ``approvers``
        does not list is refused with ``not_an_approver`` here, not in the validator, so
        that the refusal is in the history and in ``ignored_signals``.
        """
        approval = approval or ApproveInput()
        not_listed = self._approver_refusal(approval)
        if not_listed is not None:
            self._ignore("approve_attempt", f"refused ({NOT_AN_APPROVER}): {not_listed}")
            raise not_an_approver_error(
                not_listed,
                service_name=self._input.service_name,
                operator=approval.operator,
                approvers=self._policy.approvers or [],
            )
        refusal = self._approval_refusal(approval)
        if refusal is not None:  # another approval of the same task came first
            raise self._not_awaiting(refusal)
        self._approval = approval
        workflow.logger.info(
            "%s Recovery of '%s': attempt %d approved by %s",
            LOG_PREFIX,
            self._input.service_name,
            len(self._attempts) + 1,
            approval.operator,
        )
        return ApproveResult(
            service_name=self._input.service_name,
            attempt=len(self._attempts) + 1,
            operator=approval.operator,
        )

    @approve_attempt.validator
    def _validate_approve_attempt(self, approval: ApproveInput | None = None) -> None:
        approval = approval or ApproveInput()
        if self._approver_refusal(approval) is not None:
            return  # admitted, to be refused and recorded by the handler
        refusal = self._approval_refusal(approval)
        if refusal is not None:
            raise self._not_awaiting(refusal)

    @workflow.update(name="attempt_result")
    async def attempt_result(self, input: AttemptResultInput) -> AttemptAnswer:
        """Answer when attempt ``input.attempt`` has a result, or the recovery has ended.

        What a caller who approved an attempt waits on (``execute_recovery`` on a MANUAL
        recovery, ``recoveryctl execute``) instead of polling the status. The
        validator admits only a wait that ends by itself: an attempt that ran, runs, or
        comes next without anyone's word (the server holds ten updates in flight per
        workflow: a wait for nothing would hold back the approvals themselves).
        """
        number = input.attempt

        def ran() -> bool:
            return len(self._attempts) >= number and self._attempts[number - 1].result is not None

        def settled() -> bool:
            # It ran and the recovery moved on (awaits the next approval, or ended), and
            # the coordinator has been told: the caller's next request finds it current.
            moved_on = self._state is not RecoveryState.IN_PROGRESS or len(self._attempts) > number
            done = (ran() and moved_on) or self._state.finished
            return done and self._reports_in_flight == 0

        await workflow.wait_condition(settled)
        return AttemptAnswer(status=self.status(), attempt=self._attempts[number - 1] if ran() else None)

    @attempt_result.validator
    def _validate_attempt_result(self, input: AttemptResultInput) -> None:
        number, upcoming = input.attempt, len(self._attempts) + 1
        if number > upcoming or number > self._policy.max_retry_attempts:
            raise to_application_error(
                RecoveryValidationError(
                    f"attempt: {number} has not begun; attempt {upcoming} of "
                    f"{self._policy.max_retry_attempts} is the next",
                    field="attempt",
                    service=self._input.service_name,
                )
            )
        if number == upcoming and self._awaiting_approval and self._approval is None:
            raise to_application_error(
                RecoveryOrchestratorError(
                    f"attempt {number} of '{self._input.service_name}' awaits an approval "
                    "nobody gave: the approval was not taken (stale, or never sent)",
                    code="approval_not_taken",
                    service=self._input.service_name,
                    state=self._state.value,
                )
            )

    def _approver_refusal(self, approval: ApproveInput) -> str | None:
        """Return why ``approval``'s operator may not approve, or None (SPEC §10)."""
        return approver_refusal(approval, self._policy.approvers, self._input.service_name)

    def _approval_refusal(self, approval: ApproveInput) -> str | None:
        """Return why ``approval`` counts for nothing now, or None if it starts an attempt."""
        return approval_refusal(
            approval,
            awaited=len(self._attempts) + 1,
            taken=self._approval,
            awaiting=self._awaiting_approval,
            state=self._state,
            phase=self._phase,
        )

    def _not_awaiting(self, refusal: str) -> ApplicationError:
        return not_awaiting_error(
            refusal,
            service_name=self._input.service_name,
            state=self._state,
            phase=self._phase,
            awaiting_attempt=len(self._attempts) + 1 if self._awaiting_approval else None,
        )

    @workflow.signal(name="cancel")
    def cancel(self, request: CancelInput | None = None) -> None:
        """Stop the recovery at once, in the middle of any wait (``CancelInput``)."""
        request = request or CancelInput()
        if self._state.finished:
            self._ignore("cancel", f"cancel ignored: recovery already {self._state.value}")
        elif self._cancel_request is not None:
            self._ignore(
                "cancel",
                f"cancel ignored: already cancelling "
                f"({self._cancel_request.reason or 'no reason given'})",
            )
        else:
            self._cancel_request = request

    @workflow.query(name="status")
    def status(self, input: NoInput | None = None) -> RecoveryStatus:
        """Return the service's status entry with ``phase``, ``last_error``, ``ignored_signals``."""
        return self._status(ignored_signals=list(self._ignored_signals))

    @workflow.query(name="history")
    def history(self, input: NoInput | None = None) -> list[AttemptRecord]:
        """Return every attempt made so far."""
        return list(self._attempts)

    def refuse_signal(self, signal: str, reason: str) -> None:
        """Keep a signal the guard refused in ``ignored_signals`` (``workflows.guard``)."""
        self._ignore(signal, f"rejected: {reason}")

    def _ignore(self, signal: str, why: str) -> None:
        """Record a signal that was refused or changed nothing (the last few are kept)."""
        entry = f"{workflow.now().isoformat()} {signal}: {why}"
        self._ignored_signals.append(clipped(entry, MAX_IGNORED_ENTRY))
        del self._ignored_signals[:-MAX_IGNORED_SIGNALS]
        workflow.logger.warning(
            "%s Recovery of '%s': signal %s: %s",
            LOG_PREFIX,
            self._input.service_name,
            signal,
            clipped(why, MAX_IGNORED_ENTRY),
        )

    def _refuse(self, err: RecoveryOrchestratorError) -> ApplicationError:
        """End a recovery that must not run: record why, return the error to raise."""
        self._state = RecoveryState.FAILED
        self._phase = RecoveryPhase.FINISHED
        self._awaiting_approval = False
        self._last_error = str(err)
        workflow.logger.warning("%s Recovery refused: %s", LOG_PREFIX, err)
        return to_application_error(err)


def _input_refusal(input: object) -> RecoveryValidationError | None:
    """Why ``input`` cannot start a recovery (None when it can); the guard says the same."""
    return misfit([input], ServiceRecovery.run, "ServiceRecovery input")


def _stand_in_input() -> ServiceRecoveryInput:
    """Return what the ``status`` query shows of a recovery whose input was refused.

    The service name is read from the workflow id (``recovery-<service_name>``);
    every other field keeps its default. Never used to run anything.
    """
    name = workflow.info().workflow_id.removeprefix(RECOVERY_ID_PREFIX)
    return ServiceRecoveryInput.model_construct(service_name=name)


# How the server words a cancellation one workflow asked of another (the coordinator's).
_FORWARDED_REASON = re.compile(r"^Cancel requested by workflow with run id \S+ with reason: (.*)$", re.S)


def _cancellation_reason() -> str:
    """Return the reason a Temporal cancellation gave, as the operator wrote it."""
    reason = workflow.cancellation_reason() or ""
    forwarded = _FORWARDED_REASON.match(reason)
    if forwarded is not None:
        reason = forwarded.group(1)
    return (reason or "workflow cancellation requested")[:MAX_TEXT]
