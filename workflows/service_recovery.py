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
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import backoff, metrics, recovery_checks
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
from workflows.models import (
    MAX_TEXT,
    ApproveInput,
    ApproveResult,
    AttemptAnswer,
    AttemptResultInput,
    AttemptRecord,
    CancelInput,
    RecoveryPhase,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
    ServiceRecoveryInput,
    validate_constitutional_hash,
)
from workflows.guard import REQUIRED, misfit
from workflows.recovery_details import (
    approval_refusal,
    current_details,
    not_awaiting_error,
    shown,
)

with workflow.unsafe.imports_passed_through():
    from activities.breaker_store import BreakerState
    from activities.health_check_specs import HealthCheckOutcome

REPORT_SIGNAL = "recovery_report"

# Signals refused or ignored, newest last: the status shows this many.
MAX_IGNORED_SIGNALS = 20
MAX_IGNORED_ENTRY = 500
# The coordinator hears of a state change, not of every phase (the phase stays in the
# recovery's own status). A backoff this long is reported too (one signal), so that the
# coordinator's status shows when a recovery that will sit still for a while tries next;
# a shorter one is over before a status reader would miss it.
REPORTED_BACKOFF = timedelta(seconds=10)
# The patch marker of 0.7's and 0.8's runs (see ``__init__``).
RECOVERY_0_7_BUNDLE = "recovery-0.7"


class _Cancelled(Exception):
    """Raised inside the workflow when the ``cancel`` signal arrives."""


@workflow.defn(name=SERVICE_RECOVERY_WORKFLOW)
class ServiceRecovery:
    """Recover one service: backoff, reset, check, close or re-open, retry."""

    @workflow.init
    def __init__(self, input: ServiceRecoveryInput = REQUIRED) -> None:
        # Never raise here: an input that does not fit (the guard's marker, or none) is
        # kept and raised by ``run`` as a workflow failure; this first task's queries
        # already see the recovery failed.
        self._refusal: RecoveryOrchestratorError | None = _input_refusal(input)
        # Runs started on 0.7 and 0.8 recorded this one marker and took every branch it
        # named; they move onto this build when it becomes current (docs/versioning.md),
        # whose code is those branches alone. Pinned since 0.9: drop this line in 0.10.
        workflow.deprecate_patch(RECOVERY_0_7_BUNDLE)
        self._input = input if isinstance(input, ServiceRecoveryInput) else _stand_in_input()
        self._policy = self._input.effective_policy
        self._started_at = workflow.now()
        self._state = RecoveryState.IN_PROGRESS
        self._phase = RecoveryPhase.STARTING
        self._attempts: list[AttemptRecord] = []
        self._next_attempt_at: datetime | None = None
        self._last_error: str | None = None
        # A MANUAL recovery awaits its first approval from its very start.
        self._awaiting_approval = (
            self._refusal is None and self._input.strategy is RecoveryStrategy.MANUAL
        )
        self._approval: ApproveInput | None = None
        self._cancel_request: CancelInput | None = None
        self._ignored_signals: list[str] = []
        self._report_sequence = 0
        # Reports sent and not yet in the coordinator's history (``attempt_result`` waits).
        self._reports_in_flight = 0
        # The state the coordinator holds for this run: it counts a recovery it starts
        # as awaiting an operator (MANUAL) or in progress (any other), unreported.
        self._state_known_to_coordinator = (
            RecoveryState.AWAITING_MANUAL
            if self._input.strategy is RecoveryStrategy.MANUAL
            else RecoveryState.IN_PROGRESS
        )
        # What a cancel must undo, and whether the store holds a breaker to write at all.
        self._breaker = recovery_checks.Breaker(self._input.service_name, self._set_phase)
        # An automatic recovery with no check and no breaker: no attempt could ever be
        # evidence that the service answers, so it fails at once.
        self._no_evidence_possible = False
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
            validate_constitutional_hash(input.constitutional_hash, "recovery execution")
            validate_constitutional_hash(self._policy.constitutional_hash, "recovery policy")
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
        except _Cancelled:
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

        Counts only while the recovery awaits an approval, once per wait; any other
        approval is recorded in ``ignored_signals``, never kept for later.
        """
        approval = approval or ApproveInput()
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
        signalling and then searching ``ignored_signals``.
        """
        approval = approval or ApproveInput()
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
        refusal = self._approval_refusal(approval or ApproveInput())
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
    def status(self) -> RecoveryStatus:
        """Return the service's status entry with ``phase``, ``last_error``, ``ignored_signals``."""
        last = self._attempts[-1] if self._attempts else None
        return RecoveryStatus(
            service_name=self._input.service_name,
            state=self._state,
            strategy=self._input.strategy,
            priority=self._input.priority,
            attempt_count=len(self._attempts),
            max_attempts=self._policy.max_retry_attempts,
            scheduled_at=self._started_at,
            last_attempt_at=last.started_at if last else None,
            next_attempt_at=self._next_attempt_at,
            phase=self._phase,
            last_error=self._last_error,
            ignored_signals=list(self._ignored_signals),
        )

    @workflow.query(name="history")
    def history(self) -> list[AttemptRecord]:
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

    async def _recover(self) -> RecoveryState:
        manual = self._input.strategy is RecoveryStrategy.MANUAL
        escalated = False
        attempt = 0
        while True:
            delay = 0
            approval: ApproveInput | None = None
            if manual or escalated:
                approval = await self._wait_for_approval()
            elif attempt > 0:
                delay = backoff.delay_ms(
                    self._policy, self._input.strategy, attempt, workflow.random()
                )
                await self._backoff(delay, attempt + 1)
            attempt += 1
            if await self._attempt(attempt, delay, approval):
                return RecoveryState.SUCCEEDED
            if self._no_evidence_possible:
                return RecoveryState.FAILED
            if attempt >= self._policy.max_retry_attempts and not escalated:
                if manual or not self._policy.escalate_to_manual:
                    return RecoveryState.FAILED
                workflow.logger.warning(
                    "%s Recovery of '%s' used all %d attempts: escalating to manual",
                    LOG_PREFIX,
                    self._input.service_name,
                    attempt,
                )
                escalated = True

    async def _wait_for_approval(self) -> ApproveInput:
        """Wait for the one approval this wait counts (taken by the ``approve`` handler)."""
        self._awaiting_approval = True
        await self._enter(RecoveryState.AWAITING_MANUAL, RecoveryPhase.AWAITING_APPROVAL)
        await workflow.wait_condition(
            lambda: self._approval is not None or self._cancel_request is not None
        )
        self._raise_if_cancelled()
        approval = self._approval
        assert approval is not None
        # The attempt starts now, before any await: a later approve is ignored, not kept.
        self._approval = None
        self._awaiting_approval = False
        workflow.logger.info(
            "%s Recovery of '%s' approved by %s", LOG_PREFIX, self._input.service_name,
            approval.operator,
        )
        return approval

    async def _backoff(self, delay_ms: int, next_attempt: int) -> None:
        if delay_ms <= 0:
            self._raise_if_cancelled()
            return
        duration = timedelta(milliseconds=delay_ms)
        began = workflow.now()
        self._next_attempt_at = began + duration
        try:
            await self._enter(
                RecoveryState.IN_PROGRESS,
                RecoveryPhase.BACKOFF,
                worth_reporting=duration >= REPORTED_BACKOFF,
            )
            await workflow.wait_condition(
                lambda: self._cancel_request is not None,
                timeout=duration,
                timeout_summary=f"backoff before attempt {next_attempt} ({delay_ms} ms)",
            )
        except asyncio.TimeoutError:
            pass
        finally:
            self._next_attempt_at = None
            # The time really waited (workflow clock): a cancel cuts a backoff short.
            metrics.backoff_waited(
                self._input.strategy.value, (workflow.now() - began).total_seconds()
            )
        self._raise_if_cancelled()

    async def _attempt(self, number: int, delay_ms: int, approval: ApproveInput | None) -> bool:
        self._stop_before_touching_the_breaker()
        record = AttemptRecord(
            attempt=number,
            started_at=workflow.now(),
            delay_ms=delay_ms,
            approved_by=approval.operator if approval else None,
            approval_note=(approval.note or None) if approval else None,
        )
        self._attempts.append(record)
        await self._enter(RecoveryState.IN_PROGRESS, RecoveryPhase.RESETTING_BREAKER)
        self._stop_before_touching_the_breaker()
        error = await self._breaker.set(BreakerState.HALF_OPEN)
        found = self._breaker.exists
        record.breaker_found = found if error is None else None
        record.breaker_reset = error is None and found
        passed = False
        if error is None:
            await self._reopen_if_cancelled()
            if self._policy.health_check is None and self._input.automatic:
                # The evidence rule: with no check, only the service's own calls can prove
                # it answers, and only through a breaker; with no breaker, nothing can.
                if found:
                    self._set_phase(RecoveryPhase.BREAKER_TRIAL)
                    passed, error = await recovery_checks.observe_trial(
                        self._breaker,
                        lambda: self._cancel_request is not None,
                        self._reopen_if_cancelled,
                    )
                    record.evidence = "breaker_trial" if passed else None
                else:
                    self._no_evidence_possible = True
                    error = (
                        f"nothing could show that '{self._input.service_name}' answers: no "
                        "health check is configured and the store holds no breaker for it "
                        "(an automatic recovery closes nothing without evidence; nothing "
                        "was changed)"
                    )
            else:
                outcome, error = await self._health_check()
                record.health_check = outcome
                passed = error is None and (outcome is None or outcome.passed)
                if error is None and outcome is not None and not outcome.passed:
                    error = f"health check failed: {outcome.detail}"
                await self._reopen_if_cancelled()
                if passed and self._breaker.exists:
                    close_error = await self._breaker.set(BreakerState.CLOSED)
                    passed, error = close_error is None, close_error
                if not passed and self._breaker.exists:
                    await self._breaker.set(BreakerState.OPEN)
                if passed:
                    record.evidence = "health_check" if outcome is not None else "none"
        record.finished_at = workflow.now()
        record.result = "success" if passed else "failure"
        metrics.attempt_made(self._input.strategy.value, passed)
        record.error = error
        if error:
            self._last_error = error
        self._show_details()
        workflow.logger.info(
            "%s Recovery attempt %d/%d for '%s': %s",
            LOG_PREFIX,
            number,
            self._policy.max_retry_attempts,
            self._input.service_name,
            "SUCCESS" if passed else f"FAILED ({error})",
        )
        return passed

    async def _health_check(self) -> tuple[HealthCheckOutcome | None, str | None]:
        """Run the policy's check; return its outcome, or the error that prevented it."""
        check = self._policy.health_check
        if check is None:
            return None, None
        self._set_phase(RecoveryPhase.HEALTH_CHECK)
        return await recovery_checks.health_check(self._input.service_name, check)

    async def _enter(
        self, state: RecoveryState, phase: RecoveryPhase, *, worth_reporting: bool = False
    ) -> None:
        """Move to a state and phase; publish a state change to search attributes and coordinator.

        The phase itself stays in the ``status`` query and the Web UI's details: the
        coordinator hears of a state change (what it shows and how it counts slots), and
        of progress only when ``worth_reporting`` (a long backoff: see ``_backoff``).
        """
        self._set_phase(phase)
        if state is not self._state:
            self._state = state
            workflow.upsert_search_attributes([SA_STATE.value_set(state.value)])
        if state is self._state_known_to_coordinator and not worth_reporting:
            return
        self._state_known_to_coordinator = state
        await self._report()
        # A Temporal cancellation that arrives while the report is being signalled is not
        # raised by that await (the signal is already on its way): honour it here.
        recovery_checks.raise_if_workflow_cancelled()

    def _set_phase(self, phase: RecoveryPhase) -> None:
        self._phase = phase
        self._show_details()

    def _show_details(self) -> None:
        """Keep the Web UI's "Current Details" saying what the recovery is doing now.

        Not history: the details are workflow metadata, so they may change freely.
        """
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        return current_details(
            service_name=self._input.service_name,
            strategy=self._input.strategy,
            priority=self._input.priority,
            max_attempts=self._policy.max_retry_attempts,
            health_check=self._policy.health_check,
            trial_s=recovery_checks.BREAKER_TRIAL_S,
            state=self._state,
            phase=self._phase,
            attempts=self._attempts,
            next_attempt_at=self._next_attempt_at,
            last_error=self._last_error,
            cancel_request=self._cancel_request,
        )

    def _stop_before_touching_the_breaker(self) -> None:
        """Honour a cancel that arrived before the attempt reset the breaker.

        Seen only after the reset, it would leave a cancelled recovery's breaker half-open.
        """
        if self._cancel_request is not None:
            raise _Cancelled()

    async def _reopen_if_cancelled(self) -> None:
        """Honour a cancel that arrived after the reset: re-open the breaker, then stop.

        A cancelled recovery leaves the breaker as it found it (open), never half-open
        with the service unproven.
        """
        if self._cancel_request is None:
            return
        if self._breaker.exists:
            await self._breaker.set(BreakerState.OPEN)
        raise _Cancelled()

    def _raise_if_cancelled(self) -> None:
        if self._cancel_request is not None:
            raise _Cancelled()

    async def _finish(self, state: RecoveryState) -> RecoveryResult:
        self._state = state
        self._awaiting_approval = False
        self._approval = None
        self._next_attempt_at = None
        if state is RecoveryState.CANCELLED and self._cancel_request is not None:
            reason = self._cancel_request.reason or "no reason given"
            self._last_error = f"cancelled: {reason}"
            if self._attempts and self._attempts[-1].result is None:
                self._attempts[-1].result = "cancelled"
                self._attempts[-1].finished_at = workflow.now()
        # After the reason is recorded: the final details name it.
        self._set_phase(RecoveryPhase.FINISHED)
        workflow.upsert_search_attributes([SA_STATE.value_set(state.value)])
        metrics.recovery_ended(self._input.strategy.value, state.value)
        last_check = self._attempts[-1].health_check if self._attempts else None
        result = RecoveryResult(
            service_name=self._input.service_name,
            success=state is RecoveryState.SUCCEEDED,
            attempt_number=len(self._attempts),
            total_attempts=self._policy.max_retry_attempts,
            elapsed_time_ms=(workflow.now() - self._started_at).total_seconds() * 1000,
            state=state,
            error_message=None if state is RecoveryState.SUCCEEDED else self._last_error,
            health_check_passed=last_check.passed if last_check else False,
            timestamp=workflow.now(),
        )
        workflow.logger.info(
            "%s Recovery of '%s' ended %s after %d attempt(s)",
            LOG_PREFIX,
            self._input.service_name,
            state.value,
            len(self._attempts),
        )
        await self._report(result)
        # Callers waiting on an attempt (``attempt_result``) get their answer first.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _report(self, result: RecoveryResult | None = None) -> None:
        """Tell the coordinator (if any) where this recovery stands, in order."""
        coordinator_id = self._input.coordinator_workflow_id
        if coordinator_id is None:
            return
        self._report_sequence += 1
        report = RecoveryReport(
            service_name=self._input.service_name,
            run_id=workflow.info().run_id,
            sequence=self._report_sequence,
            # The coordinator has no use for ignored signals: keep every report small.
            status=self.status().model_copy(update={"ignored_signals": []}),
            result=result,
        )
        self._reports_in_flight += 1
        try:
            await workflow.get_external_workflow_handle(coordinator_id).signal(
                REPORT_SIGNAL, report
            )
        except ApplicationError as err:
            # The coordinator is gone: the recovery itself must still go on.
            workflow.logger.warning(
                "%s Could not report to %s: %s", LOG_PREFIX, coordinator_id, err
            )
        finally:
            self._reports_in_flight -= 1



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
