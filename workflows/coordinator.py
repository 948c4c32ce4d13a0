"""``RecoveryCoordinator``: one per namespace; it enforces priority.

It holds the queue (lower number first, FIFO within a priority), the running
recoveries, per-service policies, the default policy and the recent history, and
starts ``ServiceRecovery`` children whenever a slot is free. Children report their
progress by signal (``recovery_report``) to the coordinator's workflow id, which
still reaches it after it has continued-as-new.

Why updates and not signals for requests: an update's validator rejects bad input
before anything is written to history, and the caller gets a specific error. The
signal ``schedule_recovery`` exists for fire-and-forget fan-in; a bad one is logged
and recorded as rejected.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

from workflows.constants import (
    COORDINATOR_WORKFLOW,
    LOG_PREFIX,
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
    PolicyQueryInput,
    ScheduleOutcome,
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
    SetRecoveryPolicyInput,
    ShutdownInput,
    ShutdownResult,
)
from workflows.errors import (
    RecoveryOrchestratorError,
    RecoveryValidationError,
    to_application_error,
)
from workflows.models import (
    ApproveInput,
    CancelInput,
    RecoveryPolicy,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    RecoveryTask,
    ServiceRecoveryInput,
    describe_validation_error,
    validate_constitutional_hash,
)
from workflows.service_recovery import REPORT_SIGNAL, ServiceRecovery
from workflows.status import idle_entry, status_document, task_entry

with workflow.unsafe.imports_passed_through():
    from activities.workflow_lookup import (
        FindClosedRunsInput,
        RunRef,
        WorkflowLookupActivities,
    )

MAX_REJECTED_SIGNALS = 20
PATCH_START_ALL_FREE_SLOTS = "start-all-free-slots"
LOOKUP_TIMEOUT = timedelta(seconds=30)
LOOKUP_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=5)
MAX_FINISHED_RUNS = 200


def _reject(err: RecoveryOrchestratorError) -> ApplicationError:
    return to_application_error(err)


def _unknown(service_name: str) -> RecoveryValidationError:
    return RecoveryValidationError(f"No active recovery task for service '{service_name}'")


@workflow.defn(name=COORDINATOR_WORKFLOW)
class RecoveryCoordinator:
    """Queue, slots, policies and recent history for every recovery in a namespace."""

    @workflow.init
    def __init__(self, input: CoordinatorInput | None = None) -> None:
        # Started with no input (e.g. `temporal workflow start` without --input): a fresh start.
        input = input or CoordinatorInput()
        self._state = input.state or CoordinatorState(config=input.config or CoordinatorConfig())
        if self._state.started_at is None:
            self._state.started_at = workflow.now()
        # A child that had already reported its finish was only waiting to close: the
        # previous run watched its close, this one cannot, so its slot is free now.
        for name in [n for n, a in self._state.active.items() if a.finished]:
            del self._state.active[name]
        # Children are started from the main loop and from execute_recovery: one at a time.
        self._lock = asyncio.Lock()
        # Children started by this run, whose close this run sees (not carried: a new run
        # learns of older children's finish from their reports, or by looking them up).
        self._watched: set[str] = set()

    @workflow.run
    async def run(self, input: CoordinatorInput | None = None) -> None:
        """Start recoveries as slots free up; continue-as-new before history grows large."""
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._startable() is not None or self._should_continue_as_new(),
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
                    len(self._state.queue),
                    len(self._state.active),
                )
                workflow.continue_as_new(CoordinatorInput(state=self._state))
            async with self._lock:
                await self._start_startable()

    # ----- updates -------------------------------------------------------------------

    @workflow.update(name="schedule_recovery")
    def schedule_recovery(self, input: ScheduleRecoveryInput) -> ScheduleRecoveryResult:
        """Queue a recovery, update its queue entry, or report it already running."""
        return self._schedule(input)

    @schedule_recovery.validator
    def _validate_schedule(self, input: ScheduleRecoveryInput) -> None:
        self._check_schedulable(input)

    @workflow.update(name="schedule_recoveries")
    def schedule_recoveries(self, input: ScheduleRecoveriesInput) -> list[ScheduleRecoveryResult]:
        """Schedule many at once (bulk, and the circuit watch): all or none."""
        return [self._schedule(item) for item in input.recoveries]

    @schedule_recoveries.validator
    def _validate_schedule_many(self, input: ScheduleRecoveriesInput) -> None:
        self._check_hash(input.constitutional_hash, "recovery scheduling")
        for index, item in enumerate(input.recoveries):
            try:
                self._check_schedulable(item)
            except ApplicationError as err:
                raise ApplicationError(
                    f"recoveries[{index}] ({item.service_name}): {err.message}",
                    type=err.type,
                    non_retryable=True,
                ) from None

    @workflow.update(name="cancel_recovery")
    async def cancel_recovery(self, input: CancelRecoveryInput) -> CancelRecoveryResult:
        """Cancel a queued recovery at once, or ask a running one to cancel."""
        queued = self._queued(input.service_name)
        if queued is not None:
            self._state.queue.remove(queued)
            self._record(self._cancelled_result(queued, input.reason), run_id=None)
            return CancelRecoveryResult(
                service_name=input.service_name, cancelled=True, was="scheduled"
            )
        active = self._live(input.service_name)
        if active is None:  # finished between validation and now
            return CancelRecoveryResult(service_name=input.service_name, cancelled=False, was="idle")
        await self._signal_child(input.service_name, ServiceRecovery.cancel, CancelInput(reason=input.reason))
        return CancelRecoveryResult(
            service_name=input.service_name, cancelled=True, was=active.task.state.value
        )

    @cancel_recovery.validator
    def _validate_cancel(self, input: CancelRecoveryInput) -> None:
        self._check_known(input.service_name, input.constitutional_hash, "recovery cancellation")

    @workflow.update(name="execute_recovery")
    async def execute_recovery(self, input: ExecuteRecoveryInput) -> ExecuteRecoveryResult:
        """Start a queued recovery now, or approve one attempt of one awaiting an operator."""
        outcome: ExecuteOutcome
        async with self._lock:
            queued = self._queued(input.service_name)
            if queued is not None:
                self._state.queue.remove(queued)
                active = await self._start_child(queued, outside_slots=True)
                outcome = "started"
            else:
                found = self._live(input.service_name)
                if found is None:
                    raise _reject(_unknown(input.service_name))
                active, outcome = found, "already_running"
            if active.task.state is RecoveryState.AWAITING_MANUAL:
                # On a MANUAL recovery, execute_recovery is the operator's approval.
                await self._signal_child(
                    input.service_name,
                    ServiceRecovery.approve,
                    ApproveInput(operator=input.operator, note="execute_recovery"),
                )
                outcome = "approved" if outcome == "already_running" else outcome
        return ExecuteRecoveryResult(
            service_name=input.service_name,
            workflow_id=recovery_workflow_id(input.service_name),
            run_id=active.run_id,
            outcome=outcome,
            attempt_count=active.task.attempt_count,
        )

    @execute_recovery.validator
    def _validate_execute(self, input: ExecuteRecoveryInput) -> None:
        self._check_known(input.service_name, input.constitutional_hash, "recovery execution")

    @workflow.update(name="set_recovery_policy")
    def set_recovery_policy(self, input: SetRecoveryPolicyInput) -> RecoveryPolicy:
        """Set the policy used for this service's next recoveries."""
        self._state.policies[input.service_name] = input.policy
        workflow.logger.info("%s Set recovery policy for '%s'", LOG_PREFIX, input.service_name)
        return input.policy

    @set_recovery_policy.validator
    def _validate_policy(self, input: SetRecoveryPolicyInput) -> None:
        self._check_hash(input.constitutional_hash, "policy setting")
        self._check_hash(input.policy.constitutional_hash, "policy setting")

    @workflow.update(name="configure")
    def configure(self, input: ConfigureInput) -> CoordinatorConfig:
        """Change slots, history size, default policy, or (re)start the orchestrator."""
        config = self._state.config
        if input.max_concurrent_recoveries is not None:
            config.max_concurrent_recoveries = input.max_concurrent_recoveries
        if input.recent_history_size is not None:
            config.recent_history_size = input.recent_history_size
            self._trim_history()
        if input.default_policy is not None:
            config.default_policy = input.default_policy
        if input.continue_as_new_after_events is not None:
            config.continue_as_new_after_events = input.continue_as_new_after_events
        if input.reconcile_interval_seconds is not None:
            config.reconcile_interval_seconds = input.reconcile_interval_seconds
        if input.orchestrator_running is not None:
            self._state.orchestrator_running = input.orchestrator_running
        return config

    @configure.validator
    def _validate_configure(self, input: ConfigureInput) -> None:
        self._check_hash(input.constitutional_hash, "orchestrator start")
        if input.default_policy is not None:
            self._check_hash(input.default_policy.constitutional_hash, "policy setting")

    @workflow.update(name="shutdown")
    async def shutdown(self, input: ShutdownInput) -> ShutdownResult:
        """Stop: cancel every unfinished recovery; report not running until started again."""
        self._state.orchestrator_running = False
        cancelled = [task.service_name for task in self._state.queue]
        for task in list(self._state.queue):
            self._record(self._cancelled_result(task, input.reason), run_id=None)
        self._state.queue.clear()
        for service_name in [n for n in self._state.active if self._live(n)]:
            cancelled.append(service_name)
            await self._signal_child(service_name, ServiceRecovery.cancel, CancelInput(reason=input.reason))
        workflow.logger.info("%s Recovery orchestrator stopped: %s", LOG_PREFIX, input.reason)
        return ShutdownResult(cancelled=cancelled)

    @shutdown.validator
    def _validate_shutdown(self, input: ShutdownInput) -> None:
        self._check_hash(input.constitutional_hash, "orchestrator stop")

    # ----- signals and queries -------------------------------------------------------

    @workflow.signal(name="schedule_recovery")
    def schedule_recovery_signal(self, payload: Any) -> None:
        """Fire-and-forget scheduling; a bad request is logged and kept as rejected."""
        try:
            input = ScheduleRecoveryInput.model_validate(payload)
            self._check_schedulable(input)
        except (ValidationError, ApplicationError) as err:
            message = (
                describe_validation_error(err) if isinstance(err, ValidationError) else err.message
            )
            self._state.rejected_signals.append(f"{workflow.now().isoformat()} {message}")
            del self._state.rejected_signals[:-MAX_REJECTED_SIGNALS]
            workflow.logger.warning("%s Rejected schedule_recovery signal: %s", LOG_PREFIX, message)
            return
        self._schedule(input)

    @workflow.signal(name=REPORT_SIGNAL)
    def recovery_report(self, report: RecoveryReport) -> None:
        """Apply a child's report, in order; a late or repeated one is dropped."""
        if report.run_id in self._state.finished_runs:
            return
        active = self._state.active.get(report.service_name)
        if active is None or (active.run_id is not None and active.run_id != report.run_id):
            if report.result is not None:
                # A finish whose entry is gone (cancelled by shutdown and re-scheduled, say).
                self._record(report.result, run_id=report.run_id)
            return
        if report.sequence <= active.last_report:
            return
        active.run_id = report.run_id
        active.last_report = report.sequence
        status = report.status
        task = active.task
        task.state = status.state
        task.attempt_count = status.attempt_count
        task.last_attempt_at = status.last_attempt_at
        task.next_attempt_at = status.next_attempt_at
        if status.state is RecoveryState.AWAITING_MANUAL:
            active.outside_slots = True  # operators pace it now, not the queue
        if report.result is not None:
            self._record(report.result, run_id=report.run_id)
            if report.run_id in self._watched:
                # Its slot stays taken until the child has closed (the watcher frees it).
                active.finished = True
            else:
                del self._state.active[report.service_name]

    @workflow.query(name="get_recovery_status")
    def get_recovery_status(self) -> dict[str, Any]:
        """Return the reference document's status shape (SPEC §6)."""
        services = {
            name: idle_entry(policy.max_retry_attempts)
            for name, policy in self._state.policies.items()
        }
        for task in self._state.queue:
            services[task.service_name] = task_entry(task)
        live = [active for active in self._state.active.values() if not active.finished]
        for active in live:
            services[active.task.service_name] = task_entry(active.task)
        return status_document(
            timestamp=workflow.now(),
            orchestrator_running=self._state.orchestrator_running,
            services=services,
            queued=len(self._state.queue),
            unfinished=len(self._state.queue) + len(live),
            recent_history=self._state.recent_history,
        )

    @workflow.query(name="get_recovery_policy")
    def get_recovery_policy(self, input: PolicyQueryInput) -> RecoveryPolicy:
        """Return the service's policy, else the default policy."""
        return self._state.policies.get(input.service_name, self._state.config.default_policy)

    @workflow.query(name="get_configuration")
    def get_configuration(self) -> dict[str, Any]:
        """Return the settings, the slot use and the recently rejected signals."""
        return {
            "config": self._state.config.model_dump(mode="json"),
            "slots_in_use": self._slots_in_use(),
            "rejected_signals": list(self._state.rejected_signals),
        }

    # ----- internals -----------------------------------------------------------------

    def _check_hash(self, value: str, where: str) -> None:
        try:
            validate_constitutional_hash(value, where)
        except RecoveryOrchestratorError as err:
            raise _reject(err) from None

    def _check_known(self, service_name: str, constitutional_hash: str, where: str) -> None:
        """Reject unless the hash matches and the service is queued or running."""
        self._check_hash(constitutional_hash, where)
        if self._queued(service_name) is None and self._live(service_name) is None:
            raise _reject(_unknown(service_name))

    def _check_schedulable(self, input: ScheduleRecoveryInput) -> None:
        self._check_hash(input.constitutional_hash, "recovery scheduling")
        if input.policy is not None:
            self._check_hash(input.policy.constitutional_hash, "recovery scheduling")
        if not self._state.orchestrator_running:
            raise _reject(
                RecoveryOrchestratorError(
                    "Recovery orchestrator is not running (it was stopped): start it with "
                    "RecoveryOrchestrator.start() or `recoveryctl configure --start`"
                )
            )

    def _schedule(self, input: ScheduleRecoveryInput) -> ScheduleRecoveryResult:
        name = input.service_name
        active = self._live(name)
        if active is not None:
            return ScheduleRecoveryResult(
                service_name=name, outcome="already_running", state=active.task.state.value
            )
        policy = input.policy or self._state.policies.get(name) or self._state.config.default_policy
        queued = self._queued(name)
        outcome: ScheduleOutcome
        if queued is not None:
            queued.priority, queued.strategy, queued.policy = input.priority, input.strategy, policy
            outcome = "updated"
        else:
            self._state.next_sequence += 1
            self._state.queue.append(
                RecoveryTask(
                    priority=input.priority,
                    service_name=name,
                    strategy=input.strategy,
                    policy=policy,
                    scheduled_at=workflow.now(),
                    sequence=self._state.next_sequence,
                )
            )
            outcome = "queued"
        workflow.logger.info(
            "%s Scheduled recovery for '%s' with strategy %s and priority %d",
            LOG_PREFIX,
            name,
            input.strategy.value,
            input.priority,
        )
        return ScheduleRecoveryResult(service_name=name, outcome=outcome, state="scheduled")

    def _queued(self, service_name: str) -> RecoveryTask | None:
        return next((t for t in self._state.queue if t.service_name == service_name), None)

    def _live(self, service_name: str) -> ActiveRecovery | None:
        """Return the service's running recovery, unless it has already reported its finish."""
        active = self._state.active.get(service_name)
        return active if active is not None and not active.finished else None

    def _slots_in_use(self) -> int:
        return sum(1 for active in self._state.active.values() if not active.outside_slots)

    def _startable(self) -> RecoveryTask | None:
        """Return the task to start next: a MANUAL one at once, else the best if a slot is free."""
        if not self._state.orchestrator_running or not self._state.queue:
            return None
        manual = [
            t
            for t in self._state.queue
            if t.strategy is RecoveryStrategy.MANUAL and t.service_name not in self._state.active
        ]
        if manual:
            return min(manual)
        if self._slots_in_use() >= self._state.config.max_concurrent_recoveries:
            return None
        # A service whose previous run is still closing waits: one run per workflow id.
        ready = [t for t in self._state.queue if t.service_name not in self._state.active]
        return min(ready) if ready else None

    async def _start_startable(self) -> None:
        """Start every task that may start now (each free slot, every MANUAL one)."""
        if not workflow.patched(PATCH_START_ALL_FREE_SLOTS):
            # Histories recorded before the patch started one child per pass.
            task = self._startable()
            if task is not None:
                self._state.queue.remove(task)
                await self._start_quietly(self._take_slot(task, outside_slots=False))
            return
        starting = []
        while (task := self._startable()) is not None:
            self._state.queue.remove(task)
            starting.append(self._take_slot(task, outside_slots=False))
        # One workflow task starts them all, instead of one round trip each.
        await asyncio.gather(*(self._start_quietly(active) for active in starting))

    async def _start_quietly(self, active: ActiveRecovery) -> None:
        try:
            await self._launch(active)
        except ApplicationError:
            pass  # recorded as rejected; the slot stays free for the next one

    async def _start_child(self, task: RecoveryTask, *, outside_slots: bool) -> ActiveRecovery:
        """Start the task's ``ServiceRecovery``; raise if one already runs outside the coordinator."""
        active = self._take_slot(task, outside_slots=outside_slots)
        await self._launch(active)
        return active

    def _take_slot(self, task: RecoveryTask, *, outside_slots: bool) -> ActiveRecovery:
        """Count the task as running (before its start completes, so slots add up)."""
        manual = task.strategy is RecoveryStrategy.MANUAL
        task.state = RecoveryState.AWAITING_MANUAL if manual else RecoveryState.IN_PROGRESS
        active = ActiveRecovery(task=task, outside_slots=outside_slots or manual)
        self._state.active[task.service_name] = active
        return active

    async def _launch(self, active: ActiveRecovery) -> None:
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
                ),
                id=recovery_workflow_id(task.service_name),
                task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"recover {task.service_name} (priority {task.priority})",
            )
        except WorkflowAlreadyStartedError:
            del self._state.active[task.service_name]
            message = (
                f"recovery-{task.service_name} is already running outside the coordinator; "
                "it is not started twice"
            )
            self._state.rejected_signals.append(f"{workflow.now().isoformat()} {message}")
            workflow.logger.warning("%s %s", LOG_PREFIX, message)
            raise _reject(RecoveryOrchestratorError(message)) from None
        run_id = active.run_id or handle.first_execution_run_id
        assert run_id is not None, "a started child has a run id"
        active.run_id = run_id
        # Reports normally settle a child; this also settles one that dies without reporting.
        self._watched.add(run_id)
        asyncio.create_task(self._watch_child(task.service_name, run_id, handle))

    async def _watch_child(
        self, service_name: str, run_id: str, handle: workflow.ChildWorkflowHandle[Any, RecoveryResult]
    ) -> None:
        try:
            result = await handle
        except ChildWorkflowError as err:
            cancelled = isinstance(err.cause, CancelledError)
            result = self._unreported_result(
                service_name,
                RecoveryState.CANCELLED if cancelled else RecoveryState.FAILED,
                str(err.cause or err),
            )
        self._settle(service_name, run_id, result)

    def _settle(self, service_name: str, run_id: str, result: RecoveryResult) -> None:
        """Free the run's slot (if it still holds one) and record its result once."""
        active = self._state.active.get(service_name)
        if active is not None and active.run_id == run_id:
            del self._state.active[service_name]
        self._record(result, run_id=run_id)

    def _unreported_result(
        self, service_name: str, state: RecoveryState, error: str
    ) -> RecoveryResult:
        """Describe a recovery that ended without reporting its own result."""
        active = self._state.active.get(service_name)
        task = active.task if active else None
        return RecoveryResult(
            service_name=service_name,
            success=False,
            attempt_number=task.attempt_count if task else 0,
            total_attempts=task.policy.max_retry_attempts if task else 0,
            elapsed_time_ms=(
                (workflow.now() - task.scheduled_at).total_seconds() * 1000 if task else 0.0
            ),
            state=state,
            error_message=error,
            timestamp=workflow.now(),
        )

    def _unwatched(self) -> dict[str, str]:
        """Return run id → service of running recoveries this run did not start."""
        return {
            active.run_id: name
            for name, active in self._state.active.items()
            if active.run_id is not None
            and active.run_id not in self._watched
            and not active.finished
        }

    def _reconcile_timeout(self) -> timedelta | None:
        if not self._unwatched():
            return None
        return timedelta(seconds=self._state.config.reconcile_interval_seconds)

    async def _settle_closed_runs(self) -> None:
        """Settle recoveries from before continue-as-new that closed without reporting."""
        unwatched = self._unwatched()
        if not unwatched:
            return
        closed = await workflow.execute_activity_method(
            WorkflowLookupActivities.find_closed_runs,
            FindClosedRunsInput(
                runs=[
                    RunRef(workflow_id=recovery_workflow_id(name), run_id=run_id)
                    for run_id, name in unwatched.items()
                ]
            ),
            start_to_close_timeout=LOOKUP_TIMEOUT,
            retry_policy=LOOKUP_RETRY,
            summary="look up recoveries that may have closed",
        )
        for run in closed:
            name = unwatched[run.run_id]
            if run.result is not None:
                result = RecoveryResult.model_validate(run.result)
            else:
                state = (
                    RecoveryState.CANCELLED if run.status == "CANCELED" else RecoveryState.FAILED
                )
                result = self._unreported_result(
                    name, state, f"recovery workflow ended {run.status} without reporting"
                )
            self._settle(name, run.run_id, result)

    async def _signal_child(self, service_name: str, signal: Any, arg: Any) -> None:
        try:
            await workflow.get_external_workflow_handle(
                recovery_workflow_id(service_name),
                run_id=self._state.active[service_name].run_id,
            ).signal(signal, arg)
        except ApplicationError as err:  # it finished meanwhile: its report settles it
            workflow.logger.warning("%s Could not signal %s: %s", LOG_PREFIX, service_name, err)

    def _record(self, result: RecoveryResult, run_id: str | None) -> None:
        if run_id is not None:
            if run_id in self._state.finished_runs:
                return
            self._state.finished_runs.append(run_id)
            del self._state.finished_runs[:-MAX_FINISHED_RUNS]
        self._state.recent_history.append(result)
        self._trim_history()

    def _trim_history(self) -> None:
        del self._state.recent_history[: -self._state.config.recent_history_size]

    def _cancelled_result(self, task: RecoveryTask, reason: str) -> RecoveryResult:
        return RecoveryResult(
            service_name=task.service_name,
            success=False,
            attempt_number=0,
            total_attempts=task.policy.max_retry_attempts,
            elapsed_time_ms=(workflow.now() - task.scheduled_at).total_seconds() * 1000,
            state=RecoveryState.CANCELLED,
            error_message=f"cancelled: {reason}",
            timestamp=workflow.now(),
        )

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        limit = self._state.config.continue_as_new_after_events
        return limit is not None and info.get_current_history_length() >= limit

