"""One recovery's state, and the attempt loop that moves it.

``RecoveryRun`` is what ``ServiceRecovery`` runs once its input has been accepted:
attempts 1..max with the backoff (or an operator's approval) between them, the cancel
rules that never leave a breaker half-open, the Web UI's current details, and the
reports to the coordinator. The workflow class (``workflows.service_recovery``) adds
the doors: the input, the signals, updates and queries that read and steer this state.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import backoff, metrics, recovery_checks, recovery_notices
from workflows.constants import LOG_PREFIX, SA_STATE
from workflows.models import (
    ApproveInput,
    AttemptRecord,
    CancelInput,
    RecoveryPhase,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.recovery_details import current_details

with workflow.unsafe.imports_passed_through():
    from activities.health_check_specs import HealthCheckOutcome
    from recovery_breakers.store import BreakerState

REPORT_SIGNAL = "recovery_report"

# The coordinator hears of a state change, not of every phase (the phase stays in the
# recovery's own status). A backoff this long is reported too (one signal), so that the
# coordinator's status shows when a recovery that will sit still for a while tries next;
# a shorter one is over before a status reader would miss it.
REPORTED_BACKOFF = timedelta(seconds=10)


class CancelRequested(Exception):
    """Raised inside the workflow when the ``cancel`` signal arrives."""


class RecoveryRun:
    """The state of one recovery, and the loop of attempts that moves it to an end."""

    def __init__(self, input: ServiceRecoveryInput, *, refused: bool) -> None:
        """Begin in progress (awaiting an operator, for MANUAL), nothing attempted yet.

        Args:
            input: The recovery, or the stand-in shown for one whose input was refused.
            refused: The input was refused: the run will fail before any attempt.
        """
        self._input = input
        self._policy = input.effective_policy
        self._started_at = workflow.now()
        self._state = RecoveryState.IN_PROGRESS
        self._phase = RecoveryPhase.STARTING
        self._attempts: list[AttemptRecord] = []
        self._next_attempt_at: datetime | None = None
        self._last_error: str | None = None
        # A MANUAL recovery awaits its first approval from its very start.
        self._awaiting_approval = not refused and input.strategy is RecoveryStrategy.MANUAL
        self._approval: ApproveInput | None = None
        self._cancel_request: CancelInput | None = None
        self._report_sequence = 0
        # Reports sent and not yet in the coordinator's history (``attempt_result`` waits).
        self._reports_in_flight = 0
        # The state the coordinator holds for this run: it counts a recovery it starts
        # as awaiting an operator (MANUAL) or in progress (any other), unreported.
        self._state_known_to_coordinator = (
            RecoveryState.AWAITING_MANUAL
            if input.strategy is RecoveryStrategy.MANUAL
            else RecoveryState.IN_PROGRESS
        )
        # What a cancel must undo, and whether the store holds a breaker to write at all.
        self._breaker = recovery_checks.Breaker(input.service_name, self._set_phase)
        # An automatic recovery with no check and no breaker: no attempt could ever be
        # evidence that the service answers, so it fails at once.
        self._no_evidence_possible = False

    def _status(self, *, ignored_signals: list[str]) -> RecoveryStatus:
        """Return the service's status entry with ``phase`` and ``last_error``."""
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
            ignored_signals=ignored_signals,
        )

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
        await recovery_notices.awaiting_operator(self._input, len(self._attempts) + 1, self._last_error)
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
        except asyncio.CancelledError:
            self._next_attempt_at = None
            raise
        # Not in a ``finally``: on eviction the coroutine is closed outside the workflow's
        # event loop, where ``workflow.now()`` raises.
        self._next_attempt_at = None
        # The time really waited (workflow clock): a cancel cuts a backoff short.
        metrics.backoff_waited(self._input.strategy.value, (workflow.now() - began).total_seconds())
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
            raise CancelRequested()

    async def _reopen_if_cancelled(self) -> None:
        """Honour a cancel that arrived after the reset: re-open the breaker, then stop.

        A cancelled recovery leaves the breaker as it found it (open), never half-open
        with the service unproven.
        """
        if self._cancel_request is None:
            return
        if self._breaker.exists:
            await self._breaker.set(BreakerState.OPEN)
        raise CancelRequested()

    def _raise_if_cancelled(self) -> None:
        if self._cancel_request is not None:
            raise CancelRequested()

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
        await recovery_notices.ended(self._input, state, self._attempts, self._last_error)
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
            status=self._status(ignored_signals=[]),
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
