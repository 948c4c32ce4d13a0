"""Talking to the coordinator: update-with-start, the in-flight limit, error mapping.

Every update goes through ``CoordinatorClient.update``: it starts the coordinator
if it is not running (update-with-start, ``USE_EXISTING``), keeps at most
``MAX_IN_FLIGHT`` updates in flight from this process, retries Temporal's passing
refusals (too many updates in flight, an update aborted by continue-as-new), and turns a rejection back into
``RecoveryConstitutionalError`` / ``RecoveryValidationError`` with the server's message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from workflows.constants import COORDINATOR_WORKFLOW, COORDINATOR_WORKFLOW_ID, TASK_QUEUE
from workflows.coordinator_models import CoordinatorInput
from workflows.errors import from_temporal

T = TypeVar("T")
R = TypeVar("R")

# Temporal allows 10 updates in flight per workflow; leave room for other clients.
MAX_IN_FLIGHT = 8
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0)


class CoordinatorClient:
    """Updates and queries of one coordinator workflow."""

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
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def ensure_running(self) -> None:
        """Start the coordinator unless it already runs."""
        await self.client.start_workflow(
            COORDINATOR_WORKFLOW,
            CoordinatorInput(),
            id=self.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def update(self, name: str, arg: BaseModel, result_type: type[T]) -> T:
        """Run one update, starting the coordinator first if it is not running."""
        return await self._retrying(lambda: self._update_with_start(name, arg, result_type))

    async def update_existing(self, name: str, arg: BaseModel, result_type: type[T]) -> T | None:
        """Run one update on a running coordinator; None if there is none to ask."""
        return await self._retrying(lambda: self._update_existing(name, arg, result_type))

    async def _retrying(self, call: Callable[[], Awaitable[R]]) -> R:
        for delay in (*RETRY_DELAYS, None):
            try:
                async with self._in_flight:
                    return await call()
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
                if delay is None or not _worth_retrying(err):
                    raise
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def query(self, name: str, *args: Any, result_type: type[T]) -> T | None:
        """Run a query; None when the coordinator has never been started."""
        handle = self.client.get_workflow_handle(self.workflow_id)
        try:
            result: T = await handle.query(name, *args, result_type=result_type)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        return result

    async def _update_existing(self, name: str, arg: BaseModel, result_type: type[T]) -> T | None:
        handle = self.client.get_workflow_handle(self.workflow_id)
        try:
            result: T = await handle.execute_update(name, arg, result_type=result_type)
            return result
        except WorkflowUpdateFailedError as err:
            raise _ours(err) from None
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _update_with_start(self, name: str, arg: BaseModel, result_type: type[T]) -> T:
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            COORDINATOR_WORKFLOW,
            CoordinatorInput(),
            id=self.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        try:
            result: T = await self.client.execute_update_with_start_workflow(
                name, arg, start_workflow_operation=start, result_type=result_type
            )
            return result
        except WorkflowUpdateFailedError as err:
            raise _ours(err) from None


def _ours(err: BaseException) -> BaseException:
    """Return our error class for a Temporal rejection, else the error itself."""
    mapped = from_temporal(err)
    return mapped if mapped is not None else err


# Refusals that pass: too many updates in flight, or an update aborted because the
# coordinator was just continuing-as-new (the retry reaches the new run). Every
# coordinator update is idempotent, so sending one again is safe.
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

