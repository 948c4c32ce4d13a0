"""``RecoveryCoordinator``: one per namespace; it enforces priority.

It holds the queue (lower number first, FIFO within a priority), the running
recoveries, per-service policies, the default policy and the recent history, and
starts ``ServiceRecovery`` children whenever a slot is free. Children report their
progress by signal (``recovery_report``) to the coordinator's workflow id, which
still reaches it after it has continued-as-new. The rules live in
``RecoveryLedger``; this module is the handlers and the Temporal I/O.

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
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

from workflows.constants import (
    COORDINATOR_WORKFLOW,
    LOG_PREFIX,
    NUDGE_SIGNAL,
    recovery_workflow_id,
)
from workflows.coordinator_models import (
    ActiveRecovery,
    CancelRecoveryInput,
    CancelRecoveryResult,
    ConfigureInput,
    CoordinatorConfig,
    CoordinatorInput,
    CoordinatorState,
    ExecuteOutcome,
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
from workflows.coordinator_details import policy_details
from workflows.coordinator_state import (
    CANCEL_HOLD,
    MAX_MESSAGE,
    ChildRef,
    RecoveryLedger,
    json_bytes,
    unknown_service,
)
from workflows.errors import (
    RECOVERY_FAILED,
    RecoveryOrchestratorError,
    RecoveryValidationError,
    clipped,
    to_application_error,
)
from workflows.models import (
    ApproveInput,
    CancelInput,
    RecoveryPolicy,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryTask,
    ServiceRecoveryInput,
    validate_constitutional_hash,
)
from workflows.status import status_page
from workflows.service_recovery import REPORT_SIGNAL, ServiceRecovery
from workflows.versioning import next_run_versioning, version_changed

with workflow.unsafe.imports_passed_through():
    from activities.redaction import redact_patterns
    from activities.workflow_lookup import (
        ClosedRun,
        FindClosedRunsInput,
        RunRef,
        WorkflowLookupActivities,
    )

PATCH_START_ALL_FREE_SLOTS = "start-all-free-slots"
PATCH_START_IN_BATCHES = "start-in-batches"
# Cancel a recovery through Temporal (it then ends Canceled), not by the bare signal.
PATCH_CANCEL_THROUGH_TEMPORAL = "cancel-through-temporal"
# A start that finds the previous run (forgotten at continue-as-new) still closing retries.
PATCH_RETRY_START_AFTER_CLOSING = "retry-start-after-closing"
# Automation never overrules an operator (0.8): pauses, failure cool-downs, cancel holds
# until resumed or expired, and stale hand-overs refused. A coordinator running since
# before keeps its recorded answers on replay, then takes the rule from its next request.
PATCH_AUTOMATION_RESPECTS_OPERATOR = "automation-respects-operator"
PATCH_RECORD_UNDECODABLE_SIGNALS = "record-undecodable-signals"
CLOSING_RETRY = timedelta(seconds=1)
# The refusal of an automatic batch that would change nothing (its detail has the answers).
UNCHANGED = "unchanged"
START_BATCH = 50
# How long execute_recovery waits for the service's previous run to close before it
# starts the queued one (a cancelled run closes within a workflow task or two).
CLOSING_WAIT = timedelta(seconds=30)
# Runs looked up per activity call; the activity heartbeats between its own batches.
LOOKUP_BATCH = 500
LOOKUP_TIMEOUT = timedelta(minutes=2)
LOOKUP_HEARTBEAT = timedelta(seconds=20)
LOOKUP_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=5)


def _check_hash(value: str, where: str) -> None:
    try:
        validate_constitutional_hash(value, where)
    except RecoveryOrchestratorError as err:
        raise to_application_error(err) from None


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
        # Services whose run this coordinator stopped holding before seeing it close (it
        # had reported its end): a start that finds one still running waits and retries.
        self._maybe_closing = set(self._ledger.forget_closing())
        # Every handler that reads then writes the queue or the running set across an
        # await takes this lock, as the main loop does when it starts children.
        self._lock = asyncio.Lock()
        # Children started by this run, whose close this run sees (not carried: a new run
        # learns of older children's finish from their reports, or by looking them up).
        self._watched: set[str] = set()
        # (workflow task, size): see _carried_in_this_task.
        self._carried_measure: tuple[int, int] | None = None
        # Bumped by whatever may change the queue page (the Web UI's current details),
        # which is written again at most once per workflow task.
        self._revision = 0
        self._shown_revision = -1

    @workflow.run
    async def run(self, input: CoordinatorInput | None = None) -> None:
        """Start recoveries as slots free up; continue-as-new before history grows large."""
        self._changed()
        asyncio.create_task(self._keep_details())
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._ledger.next_startable() is not None
                    or self._should_continue_as_new(),
                    timeout=self._reconcile_timeout(),
                    timeout_summary="look up recoveries started before continue-as-new",
                )
            except asyncio.TimeoutError:
                await self._settle_closed_runs()
                continue
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.logger.info(
                    "%s Coordinator continues as new with %d queued, %d running",
                    LOG_PREFIX,
                    len(self._ledger.state.queue),
                    len(self._ledger.state.active),
                )
                given_up = self._ledger.fit_for_hand_over()
                if given_up:
                    workflow.logger.warning(
                        "%s To fit the hand-over under 2 MB the coordinator dropped %s",
                        LOG_PREFIX,
                        ", ".join(given_up),
                    )
                workflow.continue_as_new(
                    CoordinatorInput(state=self._ledger.state),
                    initial_versioning_behavior=next_run_versioning(),
                )
            async with self._lock:
                await self._start_startable()

    async def _keep_details(self) -> None:
        """Keep the Web UI's "Current Details" telling the queue (metadata, not history)."""
        while True:
            await workflow.wait_condition(lambda: self._revision != self._shown_revision)
            self._shown_revision = self._revision
            workflow.set_current_details(self._ledger.details(workflow.now()))

    def _changed(self) -> None:
        """Note that the queue page must be written again."""
        self._revision += 1

    # ----- updates -------------------------------------------------------------------

    @workflow.update(name="schedule_recovery")
    def schedule_recovery(self, input: ScheduleRecoveryInput) -> ScheduleRecoveryResult:
        """Queue a recovery, update its queue entry, or report it already running."""
        return self._schedule(input)

    @schedule_recovery.validator
    def _validate_schedule(self, input: ScheduleRecoveryInput) -> None:
        self._check_schedulable(input)
        self._check_dependencies([input])
        self._check_room([input], validating=True)

    @workflow.update(name="schedule_recoveries")
    def schedule_recoveries(self, input: ScheduleRecoveriesInput) -> list[ScheduleRecoveryResult]:
        """Schedule many at once (bulk, and the circuit watch): all or none."""
        self._changed()
        if input.automatic:
            results = self._ledger.schedule_automatically(
                input.recoveries,
                workflow.now(),
                respect_operator=workflow.patched(PATCH_AUTOMATION_RESPECTS_OPERATOR),
            )
            self._log_scheduled(input.recoveries, results)
            return results
        index = self._ledger.queue_index()
        return [self._schedule(item, index) for item in input.recoveries]

    @schedule_recoveries.validator
    def _validate_schedule_many(self, input: ScheduleRecoveriesInput) -> None:
        _check_hash(input.constitutional_hash, "recovery scheduling")
        self._check_running()  # once, for the whole batch
        for index, item in enumerate(input.recoveries):
            try:
                self._check_schedulable(item)
            except ApplicationError as err:
                # Which request: the watch drops that one and sends the rest again.
                detail = err.details[0] if err.details and isinstance(err.details[0], dict) else {}
                raise ApplicationError(
                    f"recoveries[{index}] ({item.service_name}): {err.message}",
                    {**detail, "index": index, "service": item.service_name},
                    type=err.type,
                    non_retryable=True,
                ) from None
        if not input.automatic:
            # Automation's batch takes what fits, and refuses a cycle per request (the ledger).
            self._check_dependencies(input.recoveries)
            self._check_room(input.recoveries, validating=True)
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
        self._changed()
        async with self._lock:
            result, child = self._ledger.cancel(input.service_name, input.reason, workflow.now())
            if result.cancelled:  # the watch must not undo an operator's decision
                self._ledger.note_operator_cancel(input.service_name, workflow.now())
                result.automation_held_until = workflow.now() + CANCEL_HOLD
            if child is not None:
                await self._tell_to_cancel(child, input.reason)
        return result

    @cancel_recovery.validator
    def _validate_cancel(self, input: CancelRecoveryInput) -> None:
        self._check_known(input.service_name, input.constitutional_hash, "recovery cancellation")

    @workflow.update(name="execute_recovery")
    async def execute_recovery(self, input: ExecuteRecoveryInput) -> ExecuteRecoveryResult:
        """Start a queued recovery now, or approve one attempt of one awaiting an operator."""
        self._changed()
        name = input.service_name
        outcome: ExecuteOutcome
        def closing() -> bool:
            return self._ledger.is_closing(name)

        if self._ledger.queued(name) is not None and closing():
            # Its previous run (cancelled, say) is still closing: one run per workflow id.
            try:
                await workflow.wait_condition(
                    lambda: not closing(),
                    timeout=CLOSING_WAIT,
                    timeout_summary=f"wait for the previous run of {name} to close",
                )
            except asyncio.TimeoutError:
                raise to_application_error(
                    RecoveryOrchestratorError(
                        f"the previous run of '{name}' has not closed within "
                        f"{CLOSING_WAIT.total_seconds():g} s; it stays queued"
                    )
                ) from None
        async with self._lock:
            queued = self._ledger.queued(name)
            if queued is not None:
                try:
                    self._ledger.check_can_run_one_more()
                except RecoveryOrchestratorError as err:
                    raise to_application_error(err) from None
                active = self._ledger.take(queued, outside_slots=True)
                await self._launch(active)
                if self._ledger.live(name) is not active:  # put back: its old run still closes
                    raise to_application_error(
                        RecoveryOrchestratorError(
                            f"the previous run of '{name}' is still closing; it stays queued "
                            f"and starts in a moment"
                        )
                    )
                outcome = "started"
            else:
                found = self._ledger.live(name)
                if found is None:  # it finished while this update waited for the lock
                    raise to_application_error(unknown_service(name))
                active, outcome = found, "already_running"
            if active.awaits_operators and active.task.state is RecoveryState.IN_PROGRESS:
                # An approved attempt is running: the caller waits for it, not for the
                # whole recovery, whose later attempts need approvals of their own.
                return self._executed(active, "approved", max(0, active.task.attempt_count - 1))
            if active.task.state is RecoveryState.AWAITING_MANUAL:
                # On a MANUAL recovery, execute_recovery is the operator's approval: one per
                # wait, however many callers ask at once; each waits for that attempt.
                baseline = active.task.attempt_count
                if self._ledger.approval_to_send(active):
                    await self._signal(
                        ChildRef(name, active.run_id),
                        ServiceRecovery.approve,
                        # The attempt it approves: stale (and ignored) if another
                        # approval has started that attempt meanwhile.
                        ApproveInput(
                            operator=input.operator, note="execute_recovery", attempt=baseline + 1
                        ),
                    )
                outcome = "approved"
                return self._executed(active, outcome, baseline)
        return self._executed(active, outcome, active.task.attempt_count)

    @execute_recovery.validator
    def _validate_execute(self, input: ExecuteRecoveryInput) -> None:
        self._check_known(input.service_name, input.constitutional_hash, "recovery execution")
        queued = self._ledger.queued(input.service_name)
        if queued is not None:
            try:
                self._ledger.check_dependencies_recovered(queued)
            except RecoveryOrchestratorError as err:
                raise to_application_error(err) from None

    @workflow.update(name="set_recovery_policy")
    def set_recovery_policy(self, input: SetRecoveryPolicyInput) -> RecoveryPolicy:
        """Set the policy used for this service's next recoveries."""
        self._ledger.set_policy(input.service_name, input.policy)
        workflow.logger.info("%s Set recovery policy for '%s'", LOG_PREFIX, input.service_name)
        return input.policy

    @set_recovery_policy.validator
    def _validate_policy(self, input: SetRecoveryPolicyInput) -> None:
        _check_hash(input.constitutional_hash, "policy setting")
        _check_hash(input.policy.constitutional_hash, "policy setting")
        size = json_bytes(input)
        try:
            self._ledger.check_policy_dependencies(input.service_name, input.policy)
            self._ledger.check_size(size, carried=self._carried_in_this_task())
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None
        self._accepted_in_this_task(size)

    @workflow.update(name="pause_service")
    def pause_service(self, input: PauseServiceInput) -> PauseServiceResult:
        """Hold automation off a service until the pause ends; operators still may act."""
        self._changed()
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
        return result

    @pause_service.validator
    def _validate_pause(self, input: PauseServiceInput) -> None:
        _check_hash(input.constitutional_hash, "service pause")
        try:
            self._ledger.check_pause(input.service_name, workflow.now())
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None

    @workflow.update(name="resume_service")
    def resume_service(self, input: ResumeServiceInput) -> ResumeServiceResult:
        """Lift a pause, a failure's cool-down or a cancel's hold on a service."""
        self._changed()
        result = self._ledger.resume(input.service_name, workflow.now())
        workflow.logger.info(
            "%s Resumed automatic recovery of '%s' (lifted: %s)",
            LOG_PREFIX,
            input.service_name,
            ", ".join(result.lifted) or "nothing",
        )
        return result

    @resume_service.validator
    def _validate_resume(self, input: ResumeServiceInput) -> None:
        _check_hash(input.constitutional_hash, "service resume")

    @workflow.update(name="configure")
    def configure(self, input: ConfigureInput | None = None) -> CoordinatorConfig:
        """Change slots, limits, history size, default policy, or (re)start the orchestrator."""
        self._changed()
        return self._ledger.configure(input or ConfigureInput())

    @configure.validator
    def _validate_configure(self, input: ConfigureInput | None = None) -> None:
        input = input or ConfigureInput()
        _check_hash(input.constitutional_hash, "orchestrator start")
        if input.default_policy is not None:
            _check_hash(input.default_policy.constitutional_hash, "policy setting")

    @workflow.update(name="shutdown")
    async def shutdown(self, input: ShutdownInput | None = None) -> ShutdownResult:
        """Stop: cancel every unfinished recovery; report not running until started again."""
        self._changed()
        input = input or ShutdownInput()
        async with self._lock:
            cancelled, children = self._ledger.shutdown(input.reason, workflow.now())
            # The ledger has already recorded every one: signalling is all that is left,
            # and a child that finished meanwhile is simply not found.
            await asyncio.gather(*(self._tell_to_cancel(c, input.reason) for c in children))
        workflow.logger.info("%s Recovery orchestrator stopped: %s", LOG_PREFIX, input.reason)
        return ShutdownResult(cancelled=cancelled)

    @shutdown.validator
    def _validate_shutdown(self, input: ShutdownInput | None = None) -> None:
        _check_hash((input or ShutdownInput()).constitutional_hash, "orchestrator stop")

    # ----- signals and queries -------------------------------------------------------

    @workflow.signal(name="schedule_recovery")
    def schedule_recovery_signal(self, input: ScheduleRecoveryInput) -> None:
        """Fire-and-forget scheduling; the guard keeps a refused one as rejected."""
        self._check_schedulable(input)
        self._check_dependencies([input])
        self._check_room([input])
        self._schedule(input)

    @workflow.signal(name=REPORT_SIGNAL)
    def recovery_report(self, report: RecoveryReport) -> None:
        """Apply a child's report, in order; a late, repeated or malformed one changes nothing."""
        self._changed()
        future = _from_the_future(report, workflow.now())
        if future is not None:
            raise to_application_error(RecoveryValidationError(future))
        held = self._ledger.holds_run_of(report.service_name)
        self._ledger.apply_report(
            report,
            watched=report.run_id in self._watched,
            trust_unknown_run=not workflow.patched(PATCH_AUTOMATION_RESPECTS_OPERATOR),
        )
        if held and not self._ledger.holds_run_of(report.service_name):
            # A child from before a continue-as-new reported its end: it is closing now.
            self._maybe_closing.add(report.service_name)

    @workflow.signal(name=NUDGE_SIGNAL)
    def nudge(self) -> None:
        """Look again now (the circuit watch sends it when a new version became current).

        An idle coordinator waits on no timer, and an update's task does not tell it of a
        new current version: a signal's task does, and it continues as new onto that
        version before it starts another recovery (children start on their parent's).
        """
        self._changed()

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
    def get_configuration(self) -> dict[str, Any]:
        """Return the settings, the slot use and the recently rejected requests."""
        return self._ledger.configuration()

    # ----- validation ----------------------------------------------------------------

    def _check_known(self, service_name: str, constitutional_hash: str, where: str) -> None:
        """Reject unless the hash matches and the service is queued or running."""
        _check_hash(constitutional_hash, where)
        if not self._ledger.is_unfinished(service_name):
            raise to_application_error(unknown_service(service_name))

    def _check_schedulable(self, input: ScheduleRecoveryInput) -> None:
        _check_hash(input.constitutional_hash, "recovery scheduling")
        if input.policy is not None:
            _check_hash(input.policy.constitutional_hash, "recovery scheduling")
        self._check_running()

    def _check_running(self) -> None:
        if not self._ledger.state.orchestrator_running:
            raise to_application_error(
                RecoveryOrchestratorError(
                    "Recovery orchestrator is not running (it was stopped): start it with "
                    "RecoveryOrchestrator.start() or `recoveryctl configure --start`",
                    code="stopped",
                )
            )

    def _check_dependencies(self, requests: Iterable[ScheduleRecoveryInput]) -> None:
        try:
            self._ledger.check_dependencies(requests)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None

    def _check_room(
        self, requests: Iterable[ScheduleRecoveryInput], *, validating: bool = False
    ) -> None:
        """Refuse what does not fit; an update's validator may use this task's measure."""
        try:
            carried = self._carried_in_this_task() if validating else None
            added = self._ledger.check_room(requests, carried=carried)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None
        if validating:
            self._accepted_in_this_task(added)

    def _carried_in_this_task(self) -> int:
        """Return the carried state's size, measured once per workflow task.

        Plus what the updates validated since in the same task will add (their handlers
        run after the validators): two batches of about 1 MB in one task must not both
        pass against the same measure. Only for update validators, which are not
        replayed: nothing replayed may depend on when this was measured.
        """
        task = workflow.info().get_current_history_length()
        if self._carried_measure is None or self._carried_measure[0] != task:
            self._carried_measure = (task, self._ledger.carried_bytes())
        return self._carried_measure[1]

    def _accepted_in_this_task(self, added: int) -> None:
        """Count an update just validated into this task's measure."""
        if self._carried_measure is not None:
            task, size = self._carried_measure
            self._carried_measure = (task, size + added)

    # ----- internals -----------------------------------------------------------------

    def _schedule(
        self, input: ScheduleRecoveryInput, index: dict[str, RecoveryTask] | None = None
    ) -> ScheduleRecoveryResult:
        """Schedule for an operator (or a script): that also lifts earlier holds (not a pause)."""
        self._changed()
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
        # 0.7 and 0.8 marked their first refusal of an undecodable signal so: this build
        # refuses every one. Drop once no coordinator run began before 0.9 (at 0.10).
        workflow.deprecate_patch(PATCH_RECORD_UNDECODABLE_SIGNALS)
        self._reject(f"{signal} signal rejected: {reason}")

    def _reject(self, message: str) -> None:
        message = redact_patterns(message)  # a refusal is carried state: no credential in it
        self._ledger.reject(message, workflow.now())
        workflow.logger.warning("%s %s", LOG_PREFIX, clipped(message, MAX_MESSAGE))

    def _executed(
        self, active: ActiveRecovery, outcome: ExecuteOutcome, attempt_count: int
    ) -> ExecuteRecoveryResult:
        return ExecuteRecoveryResult(
            service_name=active.task.service_name,
            workflow_id=recovery_workflow_id(active.task.service_name),
            run_id=active.run_id,
            outcome=outcome,
            attempt_count=attempt_count,
        )

    async def _start_startable(self) -> None:
        """Start every task that may start now (each free slot, every MANUAL one)."""
        self._changed()
        if not workflow.patched(PATCH_START_ALL_FREE_SLOTS):
            # Histories recorded before the patch started one child per pass.
            task = self._ledger.next_startable()
            if task is not None:
                await self._start_quietly(self._ledger.take(task, outside_slots=False))
            return
        # One workflow task starts a batch, instead of one round trip each; the lock is
        # let go between batches, so that operators are not kept waiting behind them.
        limit = START_BATCH if workflow.patched(PATCH_START_IN_BATCHES) else None
        starting = self._ledger.take_startable(limit)
        await asyncio.gather(*(self._start_quietly(active) for active in starting))

    async def _start_quietly(self, active: ActiveRecovery) -> None:
        try:
            await self._launch(active)
        except ApplicationError:
            pass  # recorded as rejected; the slot stays free for the next one

    async def _launch(self, active: ActiveRecovery) -> None:
        """Start the task's ``ServiceRecovery``; refuse if one already runs outside the coordinator."""
        task = active.task
        try:
            handle = await workflow.start_child_workflow(
                ServiceRecovery.run,
                ServiceRecoveryInput(
                    service_name=task.service_name,
                    strategy=task.strategy,
                    priority=task.priority,
                    policy=task.policy,
                    coordinator_workflow_id=workflow.info().workflow_id,
                    automatic=task.automatic,
                ),
                id=recovery_workflow_id(task.service_name),
                task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=(
                    f"recover {task.service_name}: {task.strategy.value}, priority {task.priority}"
                ),
                static_details=policy_details(task),
            )
        except WorkflowAlreadyStartedError:
            if task.service_name in self._maybe_closing and workflow.patched(
                PATCH_RETRY_START_AFTER_CLOSING
            ):
                # Its previous run reported its end and is still closing: start this one
                # again in a moment, not as a failure.
                self._ledger.requeue(active)
                self._ledger.closing_elsewhere.add(task.service_name)
                asyncio.create_task(self._retry_later(task.service_name))
                return
            message = (
                f"recovery-{task.service_name} is already running outside the coordinator; "
                "it is not started twice"
            )
            self._ledger.start_refused(task.service_name, message, workflow.now())
            workflow.logger.warning("%s %s", LOG_PREFIX, message)
            raise to_application_error(RecoveryOrchestratorError(message)) from None
        run_id = active.run_id or handle.first_execution_run_id
        if run_id is None:  # the SDK always knows a started child's run: keep the task alive
            raise ApplicationError("child start returned no run id", non_retryable=True)
        self._ledger.started(active, run_id)
        # Reports normally settle a child; this also settles one that dies without reporting.
        self._watched.add(run_id)
        asyncio.create_task(self._watch_child(task.service_name, run_id, handle))
        if active.cancel_reason is not None:  # cancelled while its start was in flight
            await self._tell_to_cancel(ChildRef(task.service_name, run_id), active.cancel_reason)

    async def _retry_later(self, service_name: str) -> None:
        await workflow.sleep(CLOSING_RETRY, summary=f"wait for the previous run of {service_name} to close")
        self._ledger.closing_elsewhere.discard(service_name)

    async def _watch_child(
        self, service_name: str, run_id: str, handle: workflow.ChildWorkflowHandle[Any, RecoveryResult]
    ) -> None:
        try:
            result = await handle
        except ChildWorkflowError as err:
            carried = _result_in_failure(err)
            if carried is not None:  # a failed recovery: its result is in the details
                self._ledger.settle(service_name, run_id, carried)
                self._changed()
                return
            cancelled = isinstance(err.cause, CancelledError)
            result = self._ledger.unreported_result(
                service_name,
                RecoveryState.CANCELLED if cancelled else RecoveryState.FAILED,
                str(err.cause or err),
                workflow.now(),
            )
        except FailureError as err:  # e.g. a result that does not decode: still free the slot
            result = self._ledger.unreported_result(
                service_name, RecoveryState.FAILED, str(err), workflow.now()
            )
        self._ledger.settle(service_name, run_id, result)
        self._changed()

    def _reconcile_timeout(self) -> timedelta | None:
        if not self._ledger.unwatched(self._watched):
            return None
        return timedelta(seconds=self._ledger.config.reconcile_interval_seconds)

    async def _settle_closed_runs(self) -> None:
        """Settle recoveries from before continue-as-new that closed without reporting.

        A lookup that keeps failing is logged and tried again at the next interval:
        no activity failure may end the namespace's only coordinator.
        """
        unwatched = list(self._ledger.unwatched(self._watched).items())
        for start in range(0, len(unwatched), LOOKUP_BATCH):
            batch = dict(unwatched[start : start + LOOKUP_BATCH])
            try:
                closed = await workflow.execute_activity_method(
                    WorkflowLookupActivities.find_closed_runs,
                    FindClosedRunsInput(
                        runs=[
                            RunRef(workflow_id=recovery_workflow_id(name), run_id=run_id)
                            for run_id, name in batch.items()
                        ]
                    ),
                    start_to_close_timeout=LOOKUP_TIMEOUT,
                    heartbeat_timeout=LOOKUP_HEARTBEAT,
                    retry_policy=LOOKUP_RETRY,
                    summary="look up recoveries that may have closed",
                )
            except ActivityError as err:
                workflow.logger.warning(
                    "%s Looking up %d recoveries failed; trying again in %d s: %s",
                    LOG_PREFIX,
                    len(batch),
                    self._ledger.config.reconcile_interval_seconds,
                    err.cause or err,
                )
                return
            async with self._lock:
                for run in closed:
                    name = batch.get(run.run_id)
                    if name is not None:
                        self._ledger.settle(name, run.run_id, self._closed_result(name, run))
                        self._changed()

    def _closed_result(self, service_name: str, run: ClosedRun) -> RecoveryResult:
        """Return a closed run's own result, or describe how it ended."""
        if run.result is not None:
            try:
                return RecoveryResult.model_validate(run.result)
            except ValueError:
                pass  # not ours to trust: describe it instead
        state = RecoveryState.CANCELLED if run.status == "CANCELED" else RecoveryState.FAILED
        return self._ledger.unreported_result(
            service_name,
            state,
            f"recovery workflow ended {run.status} without reporting",
            workflow.now(),
        )

    async def _tell_to_cancel(self, child: ChildRef, reason: str) -> None:
        if child.run_id is None:
            return  # its start is in flight: _launch tells it once it has started
        if not workflow.patched(PATCH_CANCEL_THROUGH_TEMPORAL):
            await self._signal(child, ServiceRecovery.cancel, CancelInput(reason=reason))
            return
        # The reason travels with the request: the recovery reads it, records it, re-opens
        # a breaker it had reset, and ends Canceled in Temporal.
        try:
            await workflow.get_external_workflow_handle(
                recovery_workflow_id(child.service_name), run_id=child.run_id
            ).cancel(reason=reason)
        except FailureError as err:
            workflow.logger.warning(
                "%s Could not cancel %s: %s", LOG_PREFIX, child.service_name, err
            )

    async def _signal(self, child: ChildRef, signal: Any, arg: Any) -> None:
        """Signal one run of a child; one that has finished meanwhile is settled by its report."""
        try:
            await workflow.get_external_workflow_handle(
                recovery_workflow_id(child.service_name), run_id=child.run_id
            ).signal(signal, arg)
        except FailureError as err:
            workflow.logger.warning(
                "%s Could not signal %s: %s", LOG_PREFIX, child.service_name, err
            )

    def _should_continue_as_new(self) -> bool:
        """History grew large, or a new version became current (the next run starts on it)."""
        info = workflow.info()
        if info.is_continue_as_new_suggested() or version_changed():
            return True
        limit = self._ledger.config.continue_as_new_after_events
        return limit is not None and info.get_current_history_length() >= limit


# How far ahead of the coordinator's clock a report's times may be: clocks of workers
# differ a little; a report from days ahead is forged, and would hold its service for ever.
REPORT_CLOCK_SKEW = timedelta(hours=1)


def _from_the_future(report: RecoveryReport, now: datetime) -> str | None:
    """Return why a report's times cannot be a recovery's, or None if they can."""
    # Not next_attempt_at: it may lie ahead by a whole backoff (up to a day, the longest).
    latest = max(report.past_times(), default=now)
    if latest > now + REPORT_CLOCK_SKEW:
        return f"a report dated {latest.isoformat()} is from the future (now {now.isoformat()})"
    return None


def _result_in_failure(err: ChildWorkflowError) -> RecoveryResult | None:
    """Return the ``RecoveryResult`` a failed recovery carries in its failure, if any."""
    cause = err.cause
    if not (isinstance(cause, ApplicationError) and cause.type == RECOVERY_FAILED):
        return None
    try:
        return RecoveryResult.model_validate(cause.details[0])
    except (IndexError, ValueError):
        return None
