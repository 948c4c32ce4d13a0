"""Client-side operations on one ``ServiceRecovery``, shared by the facade and the CLI.

Queries and signals go by method reference (``ServiceRecovery.status``), as the
coordinator's do in ``starter.client.coordinator_client``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import cast

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.service import RPCError, RPCStatusCode

from starter.client.connection import unless_not_found
from starter.client.coordinator_client import CoordinatorClient
from workflows.constants import recovery_workflow_id
from workflows.coordinator_models import ExecuteRecoveryInput, ExecuteRecoveryResult
from workflows.errors import (
    RECOVERY_FAILED,
    RecoveryOrchestratorError,
    RecoveryValidationError,
    from_temporal,
)
from workflows.models import (
    ApproveInput,
    ApproveResult,
    AttemptAnswer,
    AttemptRecord,
    AttemptResultInput,
    RecoveryPhase,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
    validate_service_name,
)
from workflows.service_recovery import ServiceRecovery

# How often approve looks for a MANUAL recovery the coordinator has just been asked to
# start (no workflow exists yet to answer), and for how long.
START_POLL_SECONDS = 0.2
APPROVE_GRACE_SECONDS = 10.0
# A query of a closed run needs a worker to replay it: never wait longer than this.
CLOSED_RUN_QUERY_TIMEOUT = timedelta(seconds=10)
# The coordinator's rejection of a name it holds nothing for (SPEC §4).
NO_ACTIVE_TASK = "No active recovery task for service"
# The type of the failure a ServiceRecovery ends with when all attempts failed (SPEC §4).

RecoveryHandle = WorkflowHandle[ServiceRecovery, RecoveryResult]


def recovery_handle(client: Client, service_name: str, run_id: str | None = None) -> RecoveryHandle:
    """Return the handle of ``recovery-<service_name>`` (the latest run unless ``run_id``)."""
    return client.get_workflow_handle_for(
        ServiceRecovery.run,
        recovery_workflow_id(validate_service_name(service_name)),
        run_id=run_id,
    )


async def recovery_status(client: Client, service_name: str) -> RecoveryStatus | None:
    """Return the recovery's own ``status`` query, or None if it never ran."""
    return await unless_not_found(recovery_handle(client, service_name).query(ServiceRecovery.status))


async def recovery_attempts(client: Client, service_name: str) -> list[AttemptRecord] | None:
    """Return the recovery's ``history`` query, or None if it never ran."""
    return await unless_not_found(recovery_handle(client, service_name).query(ServiceRecovery.history))


async def approve(
    coordinator: CoordinatorClient, service_name: str, operator: str, note: str
) -> ApproveResult:
    """Approve one attempt of a recovery that awaits an operator; return the attempt it starts.

    The recovery itself is the source of truth: the coordinator hears of its state
    a moment later. A MANUAL recovery awaits an approval from its very start; one
    the coordinator lists but has not started yet is awaited ``APPROVE_GRACE_SECONDS``,
    unless it waits for a dependency (then it is refused at once). The approval goes
    by the recovery's ``approve_attempt`` update, naming the attempt seen awaiting, so
    the answer says whether it counted: one approval per wait, however many operators
    approve at once.

    Raises:
        RecoveryValidationError: no recovery of the service is scheduled or running.
        RecoveryOrchestratorError: the recovery does not await an operator (the
            message names its state and phase), waits for a dependency, or took
            another approval of the same attempt first.
    """
    client = coordinator.client
    overall = await coordinator.get_recovery_status()
    entry = (overall or {}).get("services", {}).get(service_name)
    if entry is not None and entry.get("waiting_for"):
        raise RecoveryOrchestratorError(
            f"Recovery of '{service_name}' has not started: it is {entry.get('reason')}; "
            "nothing to approve yet",
            code="dependency_pending",
            service=service_name,
        )
    starting = entry is not None and entry["strategy"] == RecoveryStrategy.MANUAL.value
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (APPROVE_GRACE_SECONDS if starting else 0.0)
    while True:
        status = await recovery_status(client, service_name)
        if status is not None and not status.state.finished:
            break
        if loop.time() >= deadline:
            if status is not None:
                raise RecoveryOrchestratorError(
                    f"Recovery of '{service_name}' has already ended {status.state.value}: "
                    f"nothing to approve",
                    code="already_finished",
                    service=service_name,
                    state=status.state.value,
                )
            raise RecoveryValidationError(
                f"{NO_ACTIVE_TASK} '{service_name}'", code="unknown_service", service=service_name
            )
        await asyncio.sleep(START_POLL_SECONDS)
    starting_manual = (
        status.strategy is RecoveryStrategy.MANUAL and status.phase is RecoveryPhase.STARTING
    )
    if status.state is not RecoveryState.AWAITING_MANUAL and not starting_manual:
        raise RecoveryOrchestratorError(
            _not_awaiting(service_name, status) + ": approval not sent",
            code="not_awaiting_approval",
            service=service_name,
            state=status.state.value,
        )
    request = ApproveInput(operator=operator, note=note, attempt=status.attempt_count + 1)
    try:
        return await recovery_handle(client, service_name).execute_update(
            ServiceRecovery.approve_attempt, request
        )
    except WorkflowUpdateFailedError as err:
        # The recovery's own answer (another approval came first, its state changed):
        # the operator hears it as the recovery put it.
        ours = from_temporal(err)
        if ours is None:
            raise
        raise ours from None


def _not_awaiting(service_name: str, status: RecoveryStatus) -> str:
    return (
        f"Recovery of '{service_name}' is {status.state.value} (phase {status.phase.value}), "
        f"not awaiting_manual"
    )


async def execute(
    coordinator: CoordinatorClient, request: ExecuteRecoveryInput
) -> ExecuteRecoveryResult | RecoveryResult:
    """Ask the coordinator to execute a recovery now.

    Returns what the coordinator set going, or, for a recovery that had already
    finished (or that runs outside the coordinator), that recovery's own result.

    Raises:
        RecoveryValidationError: the service was never scheduled (no workflow
            ``recovery-<name>`` exists), or a bad request.
    """
    try:
        return await coordinator.execute_recovery(request)
    except RecoveryValidationError as err:
        if err.code != "unknown_service":
            raise
        found = await latest_run_result(coordinator.client, request.service_name)
        if found is None:
            raise
        return found


async def execute_and_wait(
    coordinator: CoordinatorClient, request: ExecuteRecoveryInput
) -> RecoveryResult:
    """Execute a recovery now and wait for its result (see ``execute``, ``wait_for_result``)."""
    started = await execute(coordinator, request)
    if isinstance(started, RecoveryResult):
        return started
    return await wait_for_result(coordinator.client, started)


async def latest_run_result(client: Client, service_name: str) -> RecoveryResult | None:
    """Return the final result of the latest ``recovery-<name>`` run; None if none exists.

    A closed run gives its result at once; a run still going (started outside the
    coordinator) is awaited.
    """
    description = await unless_not_found(recovery_handle(client, service_name).describe())
    if description is None:
        return None
    return await final_result(recovery_handle(client, service_name, description.run_id))


async def wait_for_result(client: Client, started: ExecuteRecoveryResult) -> RecoveryResult:
    """Wait for what ``execute_recovery`` set going.

    A started recovery is awaited to its end. An approved MANUAL attempt is awaited
    until it has run (the recovery may then await the next approval), by the
    recovery's ``attempt_result`` update, which answers when it has: the attempt ran,
    the recovery finished, or the approval was never taken up (refused).

    Raises:
        RecoveryOrchestratorError: the recovery is gone, or did not take the approval.
    """
    handle = recovery_handle(client, started.service_name, started.run_id)
    if started.outcome != "approved":
        return await final_result(handle)
    mine = started.attempt_count + 1  # the attempt this call approved, or joined
    try:
        # (The SDK types an async update's answer as its coroutine: cast to what it is.)
        answer = cast(
            AttemptAnswer,
            await handle.execute_update(
                ServiceRecovery.attempt_result, AttemptResultInput(attempt=mine)
            ),
        )
    except WorkflowUpdateFailedError as err:
        ours = from_temporal(err)
        if ours is None:
            raise
        raise ours from None
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        raise RecoveryOrchestratorError(
            f"Recovery of '{started.service_name}' (run {started.run_id}) no longer exists",
            code="unknown_service",
            service=started.service_name,
        ) from None
    if answer.attempt is not None:
        return result_of_attempt(answer.status, answer.attempt)
    return await final_result(handle)


async def final_result(handle: RecoveryHandle) -> RecoveryResult:
    """Return a run's ``RecoveryResult``, waiting for it to close.

    Completed runs return theirs. A run that failed with ``RecoveryFailed`` carries
    its result in the failure's details. Any other ending (cancelled, terminated,
    timed out) is described from the run's ``status`` query.
    """
    try:
        return await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == RECOVERY_FAILED and cause.details:
            try:
                return RecoveryResult.model_validate(cause.details[0])
            except ValueError:
                pass
        ended = (
            RecoveryState.CANCELLED
            if isinstance(cause, TemporalCancelledError)
            else RecoveryState.FAILED
        )
        return await _ended_result(handle, ended, str(cause or err))


async def _ended_result(
    handle: RecoveryHandle, ended: RecoveryState, why: str
) -> RecoveryResult:
    """Describe a run that closed without a result of its own."""
    try:
        status = await handle.query(ServiceRecovery.status, rpc_timeout=CLOSED_RUN_QUERY_TIMEOUT)
    except RPCError:
        status = None  # no worker to replay it: say what Temporal says
    # The run's end as the server recorded it, not this client's clock when it asks.
    description = await handle.describe()
    end = description.close_time or datetime.now(timezone.utc)
    if status is None:
        start = description.start_time
        return RecoveryResult(
            service_name=handle.id.removeprefix("recovery-"),
            success=False,
            attempt_number=0,
            total_attempts=0,
            elapsed_time_ms=(end - start).total_seconds() * 1000,
            state=ended,
            error_message=f"recovery workflow ended {_status_name(description.status)}: {why}",
            timestamp=end,
        )
    result = result_from_status(status, now=end)
    if not status.state.finished:  # terminated or timed out mid-way
        result.state = ended
        result.success = False
        result.error_message = f"recovery workflow ended before it finished: {why}"
    return result


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name if status is not None else "UNKNOWN"


def result_of_attempt(status: RecoveryStatus, attempt: AttemptRecord) -> RecoveryResult:
    """Describe one finished attempt of a MANUAL recovery as a ``RecoveryResult``.

    After a failed attempt a MANUAL recovery awaits its next approval, unless that
    attempt was its last.
    """
    success = attempt.result == "success"
    if success:
        state = RecoveryState.SUCCEEDED
    elif attempt.attempt >= status.max_attempts:
        state = RecoveryState.FAILED
    else:
        state = RecoveryState.AWAITING_MANUAL
    finished = attempt.finished_at or datetime.now(timezone.utc)
    return RecoveryResult(
        service_name=status.service_name,
        success=success,
        attempt_number=attempt.attempt,
        total_attempts=status.max_attempts,
        elapsed_time_ms=(finished - status.scheduled_at).total_seconds() * 1000,
        state=state,
        error_message=attempt.error,
        health_check_passed=attempt.health_check.passed if attempt.health_check else False,
        timestamp=finished,
    )


def result_from_status(status: RecoveryStatus, now: datetime | None = None) -> RecoveryResult:
    """Describe a recovery that has no result (yet) as a ``RecoveryResult``.

    Args:
        status: Its ``status`` query.
        now: When it stands so (a closed run: its close time); default the clock now.
    """
    now = now or datetime.now(timezone.utc)
    return RecoveryResult(
        service_name=status.service_name,
        success=status.state is RecoveryState.SUCCEEDED,
        attempt_number=status.attempt_count,
        total_attempts=status.max_attempts,
        elapsed_time_ms=(now - status.scheduled_at).total_seconds() * 1000,
        state=status.state,
        error_message=status.last_error,
        timestamp=now,
    )
