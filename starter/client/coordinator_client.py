"""The one typed client of the coordinator, shared by the facade and ``recoveryctl``.

One method per operation, each taking the update's (or query's) own input model
and returning its own result model, through method references
(``RecoveryCoordinator.schedule_recovery``), never handler-name strings.

Every update goes through one path that:

- starts the coordinator if it is not running, except ``cancel_recovery``, which has
  nothing to cancel on a coordinator that does not exist yet: a plain update first
  (the common case, and the cheaper send), then update-with-start (``USE_EXISTING``)
  only when the server has no running coordinator;
- gives one logical call ONE update id, generated once and reused by every retry of
  that call: after an RPC timeout the update may already have been applied, and the
  server answers a resend with the same id from that first outcome instead of
  applying it a second time;
- keeps at most ``MAX_IN_FLIGHT`` updates in flight from this process, whatever
  number of clients it holds (Temporal allows 10 per workflow);
- retries Temporal's passing refusals (too many updates in flight, an update aborted
  by continue-as-new, a timed-out RPC);
- refuses a request over ``MAX_REQUEST_BYTES`` encoded before sending it (see there);
- turns a rejection back into ``RecoveryConstitutionalError`` /
  ``RecoveryValidationError`` / ``RecoveryOrchestratorError`` with the server's message.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, overload

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from workflows.carried_state import CoordinatorConfig
from workflows.constants import COORDINATOR_WORKFLOW_ID, TASK_QUEUE
from workflows.coordinator import UNCHANGED, RecoveryCoordinator
from workflows.coordinator_details import SUMMARY as COORDINATOR_SUMMARY
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
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError, from_temporal
from workflows.models import RecoveryPolicy

I = TypeVar("I")
R = TypeVar("R")

# Temporal allows 10 updates in flight per workflow; leave room for other clients.
MAX_IN_FLIGHT = 8
# A passing refusal is sent again after 0.05, 0.1, 0.2 … 3.2, then 5 s (three times):
# ten resends over about 21 s, then its error is raised.
RETRY_SENDS = 10
RETRY_FIRST_DELAY = 0.05
RETRY_MAX_DELAY = 5.0
# The worker's answer to a refused update echoes the request, and the SDK will not send
# an answer over Temporal's 2 MB: the coordinator's workflow tasks then fail until the
# server drops the update, about 20 s later, and every other request waits (the server
# itself admits larger updates). No valid request comes near 1 MB but a batch of very
# large policies; it is refused here, before it is sent.
MAX_REQUEST_BYTES = 1_000_000

CoordinatorUpdate = UpdateMethodMultiParam[[RecoveryCoordinator, I], R]

# What a send to a coordinator that is not running answers (None is an answer).
_NOT_RUNNING = object()


def new_update_id() -> str:
    """Return a fresh update id: one per logical call, shared by all its retries."""
    return str(uuid.uuid4())


class CoordinatorClient:
    """Typed updates and queries of one coordinator workflow.

    Args:
        client: A connected client (with this project's data converter).
        workflow_id: The coordinator to drive; ``recovery-coordinator`` is the
            namespace's pinned one (several coordinators are on the roadmap).
        task_queue: Where the coordinator runs if this client has to start it.
    """

    def __init__(
        self,
        client: Client,
        *,
        workflow_id: str = COORDINATOR_WORKFLOW_ID,
        task_queue: str = TASK_QUEUE,
    ) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.task_queue = task_queue

    # ----- updates ------------------------------------------------------------------

    async def schedule_recovery(self, request: ScheduleRecoveryInput) -> ScheduleRecoveryResult:
        """Queue a recovery, update its queue entry, or learn that it already runs."""
        return await self._update(RecoveryCoordinator.schedule_recovery, request)

    async def schedule_recoveries(
        self, request: ScheduleRecoveriesInput
    ) -> list[ScheduleRecoveryResult]:
        """Schedule many recoveries at once: all accepted or none.

        An automatic batch that would change nothing (every service queued, running or
        held) is refused by the coordinator's validator, so that it writes no history;
        its answers come with the refusal and are returned here as the update's own.
        """
        try:
            return await self._update(RecoveryCoordinator.schedule_recoveries, request)
        except RecoveryOrchestratorError as err:
            answers = err.names.get("outcomes")
            if err.code != UNCHANGED or not isinstance(answers, list):
                raise
            return [ScheduleRecoveryResult.model_validate(answer) for answer in answers]

    async def execute_recovery(self, request: ExecuteRecoveryInput) -> ExecuteRecoveryResult:
        """Start a queued recovery now, or approve one attempt of a waiting MANUAL one."""
        return await self._update(RecoveryCoordinator.execute_recovery, request)

    async def set_recovery_policy(self, request: SetRecoveryPolicyInput) -> RecoveryPolicy:
        """Set a service's policy for its next recoveries; return the policy stored."""
        return await self._update(RecoveryCoordinator.set_recovery_policy, request)

    async def configure(self, request: ConfigureInput) -> CoordinatorConfig:
        """Change the coordinator's settings (or start it again); return them all."""
        return await self._update(RecoveryCoordinator.configure, request)

    async def shutdown(self, request: ShutdownInput) -> ShutdownResult:
        """Stop the orchestrator: cancel every unfinished recovery."""
        return await self._update(RecoveryCoordinator.shutdown, request)

    async def pause_service(self, request: PauseServiceInput) -> PauseServiceResult:
        """Hold automation off one service until the pause ends (operators still may act)."""
        return await self._update(RecoveryCoordinator.pause_service, request)

    async def resume_service(self, request: ResumeServiceInput) -> ResumeServiceResult:
        """Lift a service's pause, failure cool-down or cancel hold; say what was lifted."""
        return await self._update(RecoveryCoordinator.resume_service, request)

    async def cancel_recovery(self, request: CancelRecoveryInput) -> CancelRecoveryResult | None:
        """Cancel a recovery; None when there is no coordinator to ask (nothing to cancel)."""
        return await self._update_if_running(RecoveryCoordinator.cancel_recovery, request)

    # ----- queries ------------------------------------------------------------------

    async def get_recovery_status(self) -> dict[str, Any] | None:
        """Return the status document (SPEC §6); None when the coordinator never ran."""
        return await self._query(lambda h: h.query(RecoveryCoordinator.get_recovery_status))

    async def get_recovery_status_page(self, request: StatusPageInput) -> dict[str, Any] | None:
        """Return a page of the status (``total_services``, ``next_offset``); None as above."""
        return await self._query(
            lambda h: h.query(RecoveryCoordinator.get_recovery_status, request)
        )

    async def get_recovery_policy(self, request: PolicyQueryInput) -> RecoveryPolicy | None:
        """Return the service's policy (else the default); None when the coordinator never ran."""
        return await self._query(lambda h: h.query(RecoveryCoordinator.get_recovery_policy, request))

    async def get_configuration(self) -> dict[str, Any] | None:
        """Return settings, slot use and rejected signals; None when the coordinator never ran."""
        return await self._query(lambda h: h.query(RecoveryCoordinator.get_configuration))

    # ----- plumbing -----------------------------------------------------------------

    async def ensure_running(self) -> None:
        """Start the coordinator unless it already runs."""
        await self.client.start_workflow(
            RecoveryCoordinator.run,
            CoordinatorInput(),
            id=self.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=COORDINATOR_SUMMARY,
        )

    def handle(self) -> WorkflowHandle[RecoveryCoordinator, None]:
        """Return the handle of the coordinator's latest run."""
        return self.client.get_workflow_handle_for(RecoveryCoordinator.run, self.workflow_id)

    # Overloads because the SDK types an ``async`` handler declared with ``name=`` as
    # returning its coroutine: either way the caller gets the handler's result type.
    @overload
    async def _update(
        self, update: CoordinatorUpdate[I, Coroutine[Any, Any, R]], request: I
    ) -> R: ...

    @overload
    async def _update(self, update: CoordinatorUpdate[I, R], request: I) -> R: ...

    async def _update(self, update: CoordinatorUpdate[I, Any], request: I) -> Any:
        """Run one logical update call, starting the coordinator if need be.

        One update id for the call, however many sends it takes.
        """
        self._check_size(update, request)
        update_id = new_update_id()

        async def send() -> Any:
            answer = await self._send_to_running(update, request, update_id)
            if answer is _NOT_RUNNING:
                answer = await self._update_with_start(update, request, update_id)
            return answer

        return await self._retrying(send)

    @overload
    async def _update_if_running(
        self, update: CoordinatorUpdate[I, Coroutine[Any, Any, R]], request: I
    ) -> R | None: ...

    @overload
    async def _update_if_running(self, update: CoordinatorUpdate[I, R], request: I) -> R | None: ...

    async def _update_if_running(self, update: CoordinatorUpdate[I, Any], request: I) -> Any:
        """Run one logical update call on a running coordinator; None if there is none."""
        self._check_size(update, request)
        update_id = new_update_id()
        return await self._retrying(lambda: self._update_existing(update, request, update_id))

    def _check_size(self, update: CoordinatorUpdate[I, Any], request: I) -> None:
        """Refuse a request over ``MAX_REQUEST_BYTES`` encoded, saying what to do instead."""
        payloads = self.client.data_converter.payload_converter.to_payloads([request])
        size = sum(payload.ByteSize() for payload in payloads)
        if size > MAX_REQUEST_BYTES:
            name = getattr(update, "__name__", "update")
            raise RecoveryValidationError(
                f"{name}: the request is {size:,} bytes encoded, over the {MAX_REQUEST_BYTES:,} "
                "a request may take; send fewer recoveries (or smaller policies) per call"
            )

    async def _retrying(self, call: Callable[[], Awaitable[R]]) -> R:
        """Send ``call`` until it passes, resending only Temporal's passing refusals.

        The first send goes out directly: nearly every call passes at once, and the
        retry machinery cost every call of the schedule path about a tenth of a
        millisecond (``make bench``). Resends then wait ``RETRY_FIRST_DELAY``, twice
        that, four times… up to ``RETRY_MAX_DELAY``, ``RETRY_SENDS`` of them at most.
        (Each send holds an in-flight slot; the wait between sends holds none.)
        """
        try:
            async with _in_flight():
                return await call()
        except Exception as err:  # noqa: BLE001 (only a passing refusal is sent again)
            if not _worth_retrying(err):
                raise
        await asyncio.sleep(RETRY_FIRST_DELAY)
        retrying = AsyncRetrying(
            retry=retry_if_exception(_worth_retrying),
            # The resends' waits go on from the first one: twice it, then four times…
            wait=wait_exponential(multiplier=2 * RETRY_FIRST_DELAY, max=RETRY_MAX_DELAY),
            stop=stop_after_attempt(RETRY_SENDS),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with _in_flight():
                    return await call()
        raise AssertionError("unreachable: the last failure is raised")

    async def _update_with_start(
        self, update: CoordinatorUpdate[I, Any], request: I, update_id: str
    ) -> Any:
        # A start operation serves one request only: each send builds its own.
        start: WithStartWorkflowOperation[RecoveryCoordinator, None] = WithStartWorkflowOperation(
            RecoveryCoordinator.run,
            CoordinatorInput(),
            id=self.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=COORDINATOR_SUMMARY,
        )
        try:
            return await self.client.execute_update_with_start_workflow(
                update, request, start_workflow_operation=start, id=update_id
            )
        except WorkflowUpdateFailedError as err:
            raise _ours(err) from None
        finally:
            _settle(start)

    async def _update_existing(
        self, update: CoordinatorUpdate[I, Any], request: I, update_id: str
    ) -> Any:
        answer = await self._send_to_running(update, request, update_id)
        return None if answer is _NOT_RUNNING else answer

    async def _send_to_running(
        self, update: CoordinatorUpdate[I, Any], request: I, update_id: str
    ) -> Any:
        """Send to the running coordinator; ``_NOT_RUNNING`` when there is none.

        The server admits nothing when it answers NOT_FOUND, so the same update id
        may then go out again with a start.
        """
        try:
            return await self.handle().execute_update(update, request, id=update_id)
        except WorkflowUpdateFailedError as err:
            raise _ours(err) from None
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return _NOT_RUNNING
            raise

    async def _query(
        self, ask: Callable[[WorkflowHandle[RecoveryCoordinator, None]], Awaitable[R]]
    ) -> R | None:
        try:
            return await ask(self.handle())
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise


# One limit for the whole process (every facade and client in it), per event loop,
# since an asyncio semaphore belongs to the loop that first waits on it.
_IN_FLIGHT: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _in_flight() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _IN_FLIGHT.get(loop)
    if semaphore is None:
        semaphore = _IN_FLIGHT[loop] = asyncio.Semaphore(MAX_IN_FLIGHT)
    return semaphore


def _settle(start: WithStartWorkflowOperation[RecoveryCoordinator, None]) -> None:
    """Mark a failed start's outcome as seen.

    The SDK sets it on a future that only ``start.workflow_handle()`` reads; unread, it
    is logged with a traceback at exit ("Future exception was never retrieved") on
    every retried send. (A private attribute: guarded, so an SDK change costs a log line.)
    """
    future = getattr(start, "_workflow_handle", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()


def _ours(err: BaseException) -> BaseException:
    """Return our error class for a Temporal rejection, else the error itself."""
    mapped = from_temporal(err)
    return mapped if mapped is not None else err


# Refusals that pass: too many updates in flight, or an update aborted because the
# coordinator was just continuing-as-new (the retry reaches the new run). A resend
# carries the call's update id, so one the server did apply is not applied again.
_TRANSIENT = frozenset(
    {
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.ABORTED,
        RPCStatusCode.FAILED_PRECONDITION,
    }
)


def _worth_retrying(err: BaseException) -> bool:
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        # A timeout is worth another try; our own caller's cancellation is not.
        return not isinstance(err.__cause__, asyncio.CancelledError)
    return isinstance(err, RPCError) and err.status in _TRANSIENT
