"""``RecoveryCoordinator``: one per namespace; it enforces priority.

It holds the queue (lower number first, FIFO within a priority), the running
recoveries, per-service policies, the default policy and the recent history, and
starts ``ServiceRecovery`` children whenever a slot is free. Children report their
progress by signal (``recovery_report``) to the coordinator's workflow id, which
still reaches it after it has continued-as-new. The rules live in
``RecoveryLedger``; this module is the handlers, ``workflows.coordinator_admission``
what their validators refuse, and ``workflows.coordinator_children`` the children's
lifecycle (start, watch, cancel, signal) and its Temporal I/O.

Why updates and not signals for requests: an update's validator rejects bad input
before anything is written to history, and the caller gets a specific error. The
signal ``schedule_recovery`` exists for fire-and-forget fan-in; a bad one is logged
and recorded as rejected.

The coordinator is the namespace's only one, so none of its workflow tasks may
fail: every handler takes one typed argument behind the guard (``workflows.guard``),
which refuses whatever does not fit and turns what a handler still raises into a
refusal; no activity failure escapes ``run``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.constants import COORDINATOR_WORKFLOW, LOG_PREFIX, NUDGE_SIGNAL
from workflows.coordinator_models import (
    CancelRecoveryInput,
    CancelRecoveryResult,
    ConfigureInput,
    CoordinatorInput,
    ExecuteRecoveryInput,
    ExecuteRecoveryResult,
    PauseServiceInput,
    PauseServiceResult,
    PolicyQueryInput,
    ResumeServiceInput,
    ResumeServiceResult,
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
    SetRecoveryPolicyInput,
    ShutdownInput,
    ShutdownResult,
    StatusPageInput,
)
from workflows.coordinator_admission import Admission
from workflows.coordinator_children import Children
from workflows.coordinator_notices import Notices
from workflows.coordinator_state import CANCEL_HOLD, MAX_MESSAGE, RecoveryLedger
from workflows.errors import (
    RecoveryOrchestratorError,
    RecoveryValidationError,
    clipped,
    to_application_error,
)
from workflows.guard import validated
from workflows.models import NoInput, RecoveryPolicy, RecoveryReport, RecoveryTask
from workflows.recovery_run import REPORT_SIGNAL
from workflows.status import status_page
from workflows.versioning import next_run_versioning, version_changed

with workflow.unsafe.imports_passed_through():
    from activities.redaction import redact_patterns

# Automation never overrules an operator: pauses, failure cool-downs, cancel holds until
# resumed or expired, and stale hand-overs refused. A coordinator whose history predates
# the patch keeps its recorded answers on replay, then takes the rule from its next request.
PATCH_AUTOMATION_RESPECTS_OPERATOR = "automation-respects-operator"
PATCH_RECORD_UNDECODABLE_SIGNALS = "record-undecodable-signals"
# The refusal of an automatic batch that would change nothing (its detail has the answers).
UNCHANGED = "unchanged"


@workflow.defn(name=COORDINATOR_WORKFLOW)
class RecoveryCoordinator:
    """Queue, slots, policies and recent history for every recovery in a namespace."""

    @workflow.init
    def __init__(self, input: CoordinatorInput | None = None) -> None:
        # No input (e.g. `temporal workflow start` without --input) is a fresh start. An
        # input that does not fit arrives here as the guard's marker: start empty, and
        # the guard fails the run with the refusal before run's first line.
        if not isinstance(input, CoordinatorInput):
            input = CoordinatorInput()
        state = input.state or CoordinatorState(config=input.config or CoordinatorConfig())
        if state.started_at is None:
            state.started_at = workflow.now()
        self._ledger = RecoveryLedger(state)
        # Every handler that reads then writes the queue or the running set across an
        # await takes this lock, as the main loop does when it starts children.
        self._lock = asyncio.Lock()
        # Starting, watching, cancelling and signalling children (coordinator_children).
        self._children = Children(self._ledger, self._lock)
        # What the validators refuse (coordinator_admission).
        self._admission = Admission(self._ledger)
        # Notifications of holds, pauses and resumes (coordinator_notices).
        self._notices = Notices()
        # What the Web UI page says of a run that is not the live one: refused before its
        # first line (input that does not fit), or handed over at continue-as-new.
        self._not_live: str | None = "this run did not start: its input was refused"

    @workflow.run
    async def run(self, input: CoordinatorInput | None = None) -> None:
        """Start recoveries as slots free up; continue-as-new before history grows large."""
        self._not_live = None
        asyncio.create_task(self._notices.keep_announcing())
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._ledger.next_startable() is not None
                    or self._should_continue_as_new(),
                    timeout=self._children.reconcile_timeout(),
                    timeout_summary="look up recoveries started before continue-as-new",
                )
            except asyncio.TimeoutError:
                await self._children.settle_closed_runs()
                continue
            if self._should_continue_as_new():
                # An event noted is an event announced: the next run would not know of it.
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() and self._notices.idle()
                )
                workflow.logger.info(
                    "%s Coordinator continues as new with %d queued, %d running",
                    LOG_PREFIX,
                    len(self._ledger.state.queue),
                    len(self._ledger.state.active),
                )
                hand_over = self._hand_over()
                at = workflow.now().strftime("%H:%M:%S UTC")
                self._not_live = f"this run handed over to the next one (continue-as-new) at {at}"
                workflow.continue_as_new(hand_over, initial_versioning_behavior=next_run_versioning())
            async with self._lock:
                await self._children.start_startable()

    def _hand_over(self) -> RawValue:
        """The next run's input, encoded once; trimmed and encoded again only if it is too large."""
        converter = workflow.payload_converter()
        payload = converter.to_payload(CoordinatorInput(state=self._ledger.state))
        given_up = self._ledger.fit_for_hand_over(encoded=len(payload.data))
        if given_up:
            warning = "%s To fit the hand-over under 2 MB the coordinator dropped %s"
            workflow.logger.warning(warning, LOG_PREFIX, ", ".join(given_up))
            payload = converter.to_payload(CoordinatorInput(state=self._ledger.state))
        return RawValue(payload)

    def current_details(self) -> str:
        """The Web UI's "Current Details": the queue as an operator wants to see it.

        Written when the metadata query reads it (``workflows.details_on_read``), not on
        every request admitted: that sorted the queue on the coordinator's hottest path.
        A closed run's page says first that it is not the live one.
        """
        page = self._ledger.details(workflow.now())
        return page if self._not_live is None else f"**Not the live run**: {self._not_live}.\n\n{page}"

    # ----- updates -------------------------------------------------------------------

    @workflow.update(name="schedule_recovery")
    def schedule_recovery(self, input: ScheduleRecoveryInput) -> ScheduleRecoveryResult:
        """Queue a recovery, update its queue entry, or report it already running."""
        return self._schedule(input)

    @schedule_recovery.validator
    def _validate_schedule(self, input: ScheduleRecoveryInput) -> None:
        self._admission.check_schedule(input, validating=True)

    @workflow.update(name="schedule_recoveries")
    def schedule_recoveries(self, input: ScheduleRecoveriesInput) -> list[ScheduleRecoveryResult]:
        """Schedule many at once (bulk, and the circuit watch): all or none."""
        if input.automatic:
            results = self._ledger.schedule_automatically(
                input.recoveries,
                workflow.now(),
                respect_operator=workflow.patched(PATCH_AUTOMATION_RESPECTS_OPERATOR),
            )
            self._log_scheduled(input.recoveries, results)
            self._notices.held_back(self._ledger.state, results, workflow.now())
            return results
        index = self._ledger.queue_index()
        return [self._schedule(item, index) for item in input.recoveries]

    @schedule_recoveries.validator
    def _validate_schedule_many(self, input: ScheduleRecoveriesInput) -> None:
        self._admission.check_batch(input)
        if not input.automatic:
            return
        unchanged = self._ledger.unchanged_answers(input.recoveries, workflow.now())
        if unchanged is not None:
            # Refused, so it writes no history: the watch asks about the same breakers every
            # few seconds while they wait, and takes these answers as the update's own.
            raise ApplicationError(
                "nothing to schedule: every request is queued, running or held already",
                {"code": UNCHANGED, "outcomes": [a.model_dump(mode="json") for a in unchanged]},
                type=RecoveryOrchestratorError.__name__,
                non_retryable=True,
            )

    @workflow.update(name="cancel_recovery")
    async def cancel_recovery(self, input: CancelRecoveryInput) -> CancelRecoveryResult:
        """Cancel at once: once this returns, the status holds the service as cancelled."""
        async with self._lock:
            result, child = self._ledger.cancel(input.service_name, input.reason, workflow.now())
            if result.cancelled:  # the watch must not undo an operator's decision
                self._ledger.note_operator_cancel(input.service_name, workflow.now())
                result.automation_held_until = workflow.now() + CANCEL_HOLD
            if child is not None:
                await self._children.tell_to_cancel(child, input.reason)
        return result

    @cancel_recovery.validator
    def _validate_cancel(self, input: CancelRecoveryInput) -> None:
        self._admission.check_known(input.service_name)

    @workflow.update(name="execute_recovery")
    async def execute_recovery(self, input: ExecuteRecoveryInput) -> ExecuteRecoveryResult:
        """Start a queued recovery now, or approve one attempt of one awaiting an operator."""
        return await self._children.execute(input)

    @execute_recovery.validator
    def _validate_execute(self, input: ExecuteRecoveryInput) -> None:
        self._admission.check_execute(input)

    @workflow.update(name="set_recovery_policy")
    def set_recovery_policy(self, input: SetRecoveryPolicyInput) -> RecoveryPolicy:
        """Set the policy used for this service's next recoveries."""
        self._ledger.set_policy(input.service_name, input.policy)
        workflow.logger.info("%s Set recovery policy for '%s'", LOG_PREFIX, input.service_name)
        return input.policy

    @set_recovery_policy.validator
    def _validate_policy(self, input: SetRecoveryPolicyInput) -> None:
        self._admission.check_policy(input)

    @workflow.update(name="pause_service")
    def pause_service(self, input: PauseServiceInput) -> PauseServiceResult:
        """Hold automation off a service until the pause ends; operators still may act."""
        try:
            result = self._ledger.pause(input, workflow.now())
        except RecoveryOrchestratorError as err:  # pauses filled since the validator ran
            raise to_application_error(err) from None
        workflow.logger.info(
            "%s Paused automatic recovery of '%s' until %s: %s",
            LOG_PREFIX,
            input.service_name,
            result.until.isoformat(),
            clipped(input.reason, MAX_MESSAGE),
        )
        self._notices.paused(input.service_name, result.until, input.reason)
        return result

    @pause_service.validator
    def _validate_pause(self, input: PauseServiceInput) -> None:
        self._admission.check_pause(input.service_name, workflow.now())

    @validated  # nothing to refuse beyond the guard's (its hash)
    @workflow.update(name="resume_service")
    def resume_service(self, input: ResumeServiceInput) -> ResumeServiceResult:
        """Lift a pause, a failure's cool-down or a cancel's hold on a service."""
        result = self._ledger.resume(input.service_name, workflow.now())
        workflow.logger.info(
            "%s Resumed automatic recovery of '%s' (lifted: %s)",
            LOG_PREFIX,
            input.service_name,
            ", ".join(result.lifted) or "nothing",
        )
        self._notices.resumed(input.service_name, result.lifted)
        return result

    @validated  # nothing to refuse beyond the guard's (its hashes)
    @workflow.update(name="configure")
    def configure(self, input: ConfigureInput | None = None) -> CoordinatorConfig:
        """Change slots, limits, history size, default policy, or (re)start the orchestrator."""
        return self._ledger.configure(input or ConfigureInput())

    @validated  # nothing to refuse beyond the guard's (its hash)
    @workflow.update(name="shutdown")
    async def shutdown(self, input: ShutdownInput | None = None) -> ShutdownResult:
        """Stop: cancel every unfinished recovery; report not running until started again."""
        input = input or ShutdownInput()
        async with self._lock:
            cancelled, children = self._ledger.shutdown(input.reason, workflow.now())
            # The ledger has already recorded every one: signalling is all that is left,
            # and a child that finished meanwhile is simply not found.
            await asyncio.gather(*(self._children.tell_to_cancel(c, input.reason) for c in children))
        workflow.logger.info("%s Recovery orchestrator stopped: %s", LOG_PREFIX, input.reason)
        return ShutdownResult(cancelled=cancelled)

    # ----- signals and queries -------------------------------------------------------

    @workflow.signal(name="schedule_recovery")
    def schedule_recovery_signal(self, input: ScheduleRecoveryInput) -> None:
        """Fire-and-forget scheduling; the guard keeps a refused one as rejected."""
        self._admission.check_schedule(input, validating=False)
        self._schedule(input)

    @workflow.signal(name=REPORT_SIGNAL)
    def recovery_report(self, report: RecoveryReport) -> None:
        """Apply a child's report, in order; a late, repeated or malformed one changes nothing."""
        future = self._admission.report_from_the_future(report, workflow.now())
        if future is not None:
            raise to_application_error(RecoveryValidationError(future))
        held = self._ledger.holds_run_of(report.service_name)
        self._ledger.apply_report(
            report,
            watched=report.run_id in self._children.watched,
            trust_unknown_run=not workflow.patched(PATCH_AUTOMATION_RESPECTS_OPERATOR),
        )
        if held and not self._ledger.holds_run_of(report.service_name):
            # A child from before a continue-as-new reported its end: it is closing now.
            self._children.maybe_closing.add(report.service_name)

    @workflow.signal(name=NUDGE_SIGNAL)
    def nudge(self, input: NoInput | None = None) -> None:
        """Look again now (the circuit watch sends it when a new version became current).

        An idle coordinator waits on no timer, and an update's task does not tell it of a
        new current version: a signal's task does, and it continues as new onto that
        version before it starts another recovery (children start on their parent's).
        The signal's task is all it takes: the main loop looks again after every task.
        """

    @workflow.query(name="get_recovery_status")
    def get_recovery_status(self, page: StatusPageInput | None = None) -> dict[str, Any]:
        """Return the reference document's status shape (SPEC §6), or a page of it.

        With no argument: every service. With ``{"services", "limit", "offset"}``: the
        selected services in name order, ``limit`` at a time, plus ``total_services``
        and ``next_offset`` (how a client reads 10,000 services inside the message limit).
        """
        document = self._ledger.status(workflow.now())
        if page is None:
            return document
        return status_page(document, names=page.services, limit=page.limit, offset=page.offset)

    @workflow.query(name="get_recovery_policy")
    def get_recovery_policy(self, input: PolicyQueryInput) -> RecoveryPolicy:
        """Return the service's policy, else the default policy."""
        return self._ledger.policy(input.service_name)

    @workflow.query(name="get_configuration")
    def get_configuration(self, input: NoInput | None = None) -> dict[str, Any]:
        """Return the settings, the slot use and the recently rejected requests."""
        return self._ledger.configuration()

    # ----- internals -----------------------------------------------------------------

    def _schedule(
        self, input: ScheduleRecoveryInput, index: dict[str, RecoveryTask] | None = None
    ) -> ScheduleRecoveryResult:
        """Schedule for an operator (or a script): that also lifts earlier holds (not a pause)."""
        self._ledger.operator_scheduled(input.service_name)
        result = self._ledger.schedule(input, workflow.now(), index)
        self._log_scheduled([input], [result])
        return result

    def _log_scheduled(
        self, requests: list[ScheduleRecoveryInput], results: list[ScheduleRecoveryResult]
    ) -> None:
        for request, result in zip(requests, results):
            if result.outcome in ("queued", "updated"):
                workflow.logger.info(
                    "%s Scheduled recovery for '%s' with strategy %s and priority %d",
                    LOG_PREFIX,
                    request.service_name,
                    request.strategy.value,
                    request.priority,
                )
            elif result.reason is not None:
                workflow.logger.info(
                    "%s Not scheduled: '%s': %s", LOG_PREFIX, request.service_name, result.reason
                )

    def refuse_signal(self, signal: str, reason: str) -> None:
        """Keep a signal the guard refused in ``rejected_signals`` (``workflows.guard``)."""
        # Runs whose history holds this marker took its branch at their first refusal of an
        # undecodable signal; this build refuses every one. Deprecated, not dropped, while
        # such runs may replay (CHANGELOG).
        workflow.deprecate_patch(PATCH_RECORD_UNDECODABLE_SIGNALS)
        self._reject(f"{signal} signal rejected: {reason}")

    def _reject(self, message: str) -> None:
        message = redact_patterns(message)  # a refusal is carried state: no credential in it
        self._ledger.reject(message, workflow.now())
        workflow.logger.warning("%s %s", LOG_PREFIX, clipped(message, MAX_MESSAGE))

    def _should_continue_as_new(self) -> bool:
        """History grew large, or a new version became current (the next run starts on it)."""
        info = workflow.info()
        if info.is_continue_as_new_suggested() or version_changed():
            return True
        limit = self._ledger.config.continue_as_new_after_events
        return limit is not None and info.get_current_history_length() >= limit
