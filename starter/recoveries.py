"""Client-side operations on one ``ServiceRecovery``, shared by the facade and the CLI."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import TypeVar

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.service import RPCError, RPCStatusCode

from starter.coordinator_client import CoordinatorClient
from workflows.constants import recovery_workflow_id
from workflows.coordinator_models import ExecuteRecoveryResult
from workflows.errors import RecoveryValidationError
from workflows.models import (
    ApproveInput,
    AttemptRecord,
    RecoveryPhase,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
    validate_service_name,
)

T = TypeVar("T")

# How often a waiting caller looks at a MANUAL recovery's attempt count.
MANUAL_POLL_SECONDS = 0.2
# How long approve waits for a MANUAL recovery the coordinator has just been asked to start.
APPROVE_GRACE_SECONDS = 10.0


def recovery_handle(
    client: Client, service_name: str, run_id: str | None = None
) -> WorkflowHandle[object, RecoveryResult]:
    """Return the handle of ``recovery-<service_name>`` (the latest run unless ``run_id``)."""
    return client.get_workflow_handle(
        recovery_workflow_id(validate_service_name(service_name)),
        run_id=run_id,
        result_type=RecoveryResult,
    )


async def recovery_status(client: Client, service_name: str) -> RecoveryStatus | None:
    """Return the recovery's own ``status`` query, or None if it never ran."""
    return await _query(client, service_name, "status", RecoveryStatus)


async def recovery_attempts(client: Client, service_name: str) -> list[AttemptRecord] | None:
    """Return the recovery's ``history`` query, or None if it never ran."""
    return await _query(client, service_name, "history", list[AttemptRecord])


async def _query(client: Client, service_name: str, name: str, result_type: type[T]) -> T | None:
    try:
        result: T = await recovery_handle(client, service_name).query(
            name, result_type=result_type
        )
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return result


async def approve(
    coordinator: CoordinatorClient, service_name: str, operator: str, note: str
) -> None:
    """Approve one attempt of a recovery that waits for an operator.

    The recovery itself is the source of truth: the coordinator hears of its state
    a moment later. A MANUAL recovery that has just started and not yet reached
    its first wait may be approved too (the approval waits in its queue); one the
    coordinator lists but has not started yet is awaited ``APPROVE_GRACE_SECONDS``.

    Raises:
        RecoveryValidationError: no recovery of the service waits for an operator.
    """
    client = coordinator.client
    overall = await coordinator.query("get_recovery_status", result_type=dict)
    entry = (overall or {}).get("services", {}).get(service_name)
    starting = entry is not None and entry["strategy"] == RecoveryStrategy.MANUAL.value
    wait_for_start = APPROVE_GRACE_SECONDS if starting else 0.0
    deadline = asyncio.get_running_loop().time() + wait_for_start
    while True:
        status = await recovery_status(client, service_name)
        if status is not None and not status.state.finished:
            break
        if asyncio.get_running_loop().time() >= deadline:
            raise RecoveryValidationError(f"No active recovery task for service '{service_name}'")
        await asyncio.sleep(MANUAL_POLL_SECONDS)
    starting_manual = (
        status.strategy is RecoveryStrategy.MANUAL and status.phase is RecoveryPhase.STARTING
    )
    if status.state is not RecoveryState.AWAITING_MANUAL and not starting_manual:
        raise RecoveryValidationError(
            f"Recovery of '{service_name}' is {status.state.value}, not awaiting_manual"
        )
    await recovery_handle(client, service_name).signal(
        "approve", ApproveInput(operator=operator, note=note)
    )


async def wait_for_result(client: Client, started: ExecuteRecoveryResult) -> RecoveryResult:
    """Wait for what ``execute_recovery`` set going.

    A started recovery is awaited to its end; an approved MANUAL attempt until it
    has run (the recovery may then wait for the next approval).
    """
    handle = recovery_handle(client, started.service_name, started.run_id)
    if started.outcome == "approved":
        while True:
            status = await handle.query("status", result_type=RecoveryStatus)
            if status.state.finished:
                break
            if (
                status.attempt_count > started.attempt_count
                and status.state is not RecoveryState.IN_PROGRESS
            ):
                return result_from_status(status)
            await asyncio.sleep(MANUAL_POLL_SECONDS)
    try:
        return await handle.result()
    except WorkflowFailureError as err:
        if isinstance(err.cause, TemporalCancelledError):
            return result_from_status(await handle.query("status", result_type=RecoveryStatus))
        raise


def result_from_status(status: RecoveryStatus) -> RecoveryResult:
    """Describe a recovery that has no result (yet) as a ``RecoveryResult``."""
    now = datetime.now(timezone.utc)
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
