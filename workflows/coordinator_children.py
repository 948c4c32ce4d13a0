"""The coordinator's children: start, watch, cancel, signal, and settle them.

``RecoveryCoordinator`` holds one ``Children``; this is its child lifecycle and the
Temporal I/O it takes (the rules stay in ``RecoveryLedger``). It starts
``ServiceRecovery`` children as slots free up, retries a start that finds the previous
run still closing, starts one at once or approves its attempt (``execute_recovery``),
watches the children it started for their close, cancels them through Temporal,
signals them, and, after a continue-as-new, looks up the runs it no longer watches to
settle those that closed without reporting.

The commands and the ``workflow.patched`` calls are the coordinator's own, in the same
order as before they moved here: recorded histories replay unchanged.
"""

from __future__ import annotations

import asyncio
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

from workflows.constants import LOG_PREFIX, recovery_workflow_id
from workflows.coordinator_details import policy_details
from workflows.coordinator_models import ExecuteOutcome, ExecuteRecoveryInput, ExecuteRecoveryResult
from workflows.coordinator_state import ChildRef, RecoveryLedger, unknown_service
from workflows.errors import RECOVERY_FAILED, RecoveryOrchestratorError, to_application_error
from workflows.ledger.lifecycle import ActiveRecovery
from workflows.models import (
    ApproveInput,
    CancelInput,
    RecoveryResult,
    RecoveryState,
    ServiceRecoveryInput,
)
from workflows.recovery_details import approver_refusal, not_an_approver_error
from workflows.service_recovery import ServiceRecovery

with workflow.unsafe.imports_passed_through():
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
# execute_recovery whose start finds the previous run still closing waits it out once and
# tries again (0.8 refused: "starts in a moment"); its wait ends when the entry leaves the
# queue (0.8 waited out its 30 s, then said "it stays queued").
PATCH_EXECUTE_WAITS_OUT_CLOSING = "execute-waits-out-closing"
CLOSING_RETRY = timedelta(seconds=1)
# How long execute_recovery waits for the service's previous run to close before it
# starts the queued one (a cancelled run closes within a workflow task or two).
CLOSING_WAIT = timedelta(seconds=30)
START_BATCH = 50
# Runs looked up per activity call; the activity heartbeats between its own batches.
LOOKUP_BATCH = 500
LOOKUP_TIMEOUT = timedelta(minutes=2)
LOOKUP_HEARTBEAT = timedelta(seconds=20)
LOOKUP_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=5)


class Children:
    """The ``ServiceRecovery`` children of one coordinator run, and their lifecycle."""

    def __init__(self, ledger: RecoveryLedger, lock: asyncio.Lock) -> None:
        self._ledger = ledger
        # The coordinator's lock: held by whoever reads then writes the queue or the
        # running set across an await (settle_closed_runs takes it itself).
        self._lock = lock
        # Services whose run this coordinator stopped holding before seeing it close (it
        # had reported its end): a start that finds one still running waits and retries.
        self.maybe_closing = set(ledger.forget_closing())
        # Children started by this run, whose close this run sees (not carried: a new run
        # learns of older children's finish from their reports, or by looking them up).
        self.watched: set[str] = set()

    async def execute(self, input: ExecuteRecoveryInput) -> ExecuteRecoveryResult:
        """Start a queued recovery now, or approve one attempt of one awaiting an operator."""
        name = input.service_name
        outcome: ExecuteOutcome
        deadline = workflow.now() + CLOSING_WAIT
        retried = False
        while True:
            await self._previous_run_closed(name, deadline)
            async with self._lock:
                queued = self._ledger.queued(name)
                if queued is not None:
                    try:
                        self._ledger.check_can_run_one_more()
                    except RecoveryOrchestratorError as err:
                        raise to_application_error(err) from None
                    active = self._ledger.take(queued, outside_slots=True)
                    await self.launch(active)
                    if self._ledger.live(name) is not active:  # put back: its old run still closes
                        # Waited out once more (a run closes within a task or two), not until
                        # the deadline: each try is history, and a hand-over waits for this.
                        if not retried and workflow.patched(PATCH_EXECUTE_WAITS_OUT_CLOSING):
                            retried = True
                            continue
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
                return await self._executed_now(input, active, outcome)

    async def _previous_run_closed(self, name: str, deadline: datetime) -> None:
        """Wait while the service is queued and its previous run (cancelled, say) still closes.

        Since ``execute-waits-out-closing`` the wait also ends when the entry leaves the
        queue (cancelled, or started by the main loop): the caller is answered at once.
        """

        def closing() -> bool:
            return self._ledger.is_closing(name)

        if self._ledger.queued(name) is None or not closing():
            return
        leaves = workflow.patched(PATCH_EXECUTE_WAITS_OUT_CLOSING)
        left = deadline - workflow.now()
        try:
            if left <= timedelta(0):
                raise asyncio.TimeoutError
            await workflow.wait_condition(
                lambda: not closing() or (leaves and self._ledger.queued(name) is None),
                timeout=left,
                timeout_summary=f"wait for the previous run of {name} to close",
            )
        except asyncio.TimeoutError:
            raise to_application_error(
                RecoveryOrchestratorError(
                    f"the previous run of '{name}' has not closed within "
                    f"{CLOSING_WAIT.total_seconds():g} s; it stays queued"
                )
            ) from None

    async def _executed_now(
        self, input: ExecuteRecoveryInput, active: ActiveRecovery, outcome: ExecuteOutcome
    ) -> ExecuteRecoveryResult:
        """Answer ``execute_recovery`` for a recovery running now (held under the lock)."""
        name = input.service_name
        if active.awaits_operators and active.task.state is RecoveryState.IN_PROGRESS:
            # An approved attempt is running: the caller waits for it, not for the
            # whole recovery, whose later attempts need approvals of their own.
            return self._executed(active, "approved", max(0, active.task.attempt_count - 1))
        if active.task.state is RecoveryState.AWAITING_MANUAL:
            # On a MANUAL recovery, execute_recovery is the operator's approval: one per
            # wait, however many callers ask at once; each waits for that attempt.
            baseline = active.task.attempt_count
            # The attempt it approves: stale (and ignored) if another approval has
            # started that attempt meanwhile.
            approval = ApproveInput(
                operator=input.operator, note="execute_recovery", attempt=baseline + 1
            )
            approvers = active.task.policy.approvers
            not_listed = approver_refusal(approval, approvers, name)
            if not_listed is not None:
                # Sent all the same: the recovery records the refusal where operators look.
                await self.signal(ChildRef(name, active.run_id), ServiceRecovery.approve, approval)
                raise not_an_approver_error(
                    not_listed, service_name=name, operator=input.operator, approvers=approvers or []
                )
            if self._ledger.approval_to_send(active):
                await self.signal(ChildRef(name, active.run_id), ServiceRecovery.approve, approval)
            outcome = "approved"
            return self._executed(active, outcome, baseline)
        return self._executed(active, outcome, active.task.attempt_count)

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

    async def start_startable(self) -> None:
        """Start every task that may start now (each free slot, every MANUAL one)."""
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
            await self.launch(active)
        except ApplicationError:
            pass  # recorded as rejected; the slot stays free for the next one

    async def launch(self, active: ActiveRecovery) -> None:
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
                    follows_failure=task.service_name in self._ledger.state.failed_last,
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
            if task.service_name in self.maybe_closing and workflow.patched(
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
        self.watched.add(run_id)
        asyncio.create_task(self._watch_child(task.service_name, run_id, handle))
        if active.cancel_reason is not None:  # cancelled while its start was in flight
            await self.tell_to_cancel(ChildRef(task.service_name, run_id), active.cancel_reason)

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

    def reconcile_timeout(self) -> timedelta | None:
        if not self._ledger.unwatched(self.watched):
            return None
        return timedelta(seconds=self._ledger.config.reconcile_interval_seconds)

    async def settle_closed_runs(self) -> None:
        """Settle recoveries from before continue-as-new that closed without reporting.

        A lookup that keeps failing is logged and tried again at the next interval:
        no activity failure may end the namespace's only coordinator.
        """
        unwatched = list(self._ledger.unwatched(self.watched).items())
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

    async def tell_to_cancel(self, child: ChildRef, reason: str) -> None:
        if child.run_id is None:
            return  # its start is in flight: launch tells it once it has started
        if not workflow.patched(PATCH_CANCEL_THROUGH_TEMPORAL):
            await self.signal(child, ServiceRecovery.cancel, CancelInput(reason=reason))
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

    async def signal(self, child: ChildRef, signal: Any, arg: Any) -> None:
        """Signal one run of a child; one that has finished meanwhile is settled by its report."""
        try:
            await workflow.get_external_workflow_handle(
                recovery_workflow_id(child.service_name), run_id=child.run_id
            ).signal(signal, arg)
        except FailureError as err:
            workflow.logger.warning(
                "%s Could not signal %s: %s", LOG_PREFIX, child.service_name, err
            )



def _result_in_failure(err: ChildWorkflowError) -> RecoveryResult | None:
    """Return the ``RecoveryResult`` a failed recovery carries in its failure, if any."""
    cause = err.cause
    if not (isinstance(cause, ApplicationError) and cause.type == RECOVERY_FAILED):
        return None
    try:
        return RecoveryResult.model_validate(cause.details[0])
    except (IndexError, ValueError):
        return None
