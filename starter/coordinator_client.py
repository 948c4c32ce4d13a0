"""Talking to the coordinator: update-with-start, the in-flight limit, error mapping.

Every update goes through ``CoordinatorClient.update``: it starts the coordinator
if it is not running (update-with-start, ``USE_EXISTING``), keeps at most
``MAX_IN_FLIGHT`` updates in flight from this process, retries Temporal's refusal
when too many updates are in flight anyway, and turns a rejection back into
``RecoveryConstitutionalError`` / ``RecoveryValidationError`` with the server's message.
"""

from __future__ import annotations

import asyncio
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
from workflows.errors import RecoveryOrchestratorError, from_temporal

T = TypeVar("T")

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

    async def update(
        self, name: str, arg: BaseModel, result_type: type[T], *, start: bool = True
    ) -> T | None:
        """Run one update and return its result.

        With ``start`` the coordinator is started if it is not running; without it,
        a missing coordinator gives None.
        """
        for delay in (*RETRY_DELAYS, None):
            try:
                async with self._in_flight:
                    if start:
                        return await self._update_with_start(name, arg, result_type)
                    return await self._update_existing(name, arg, result_type)
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
                if delay is None or not _too_many_in_flight(err):
                    raise
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def query(self, name: str, *args: Any, result_type: type[T]) -> T | None:
        """Run a query; None when the coordinator has never been started."""
        handle = self.client.get_workflow_handle(self.workflow_id)
        try:
            return await handle.query(name, *args, result_type=result_type)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _update_existing(self, name: str, arg: BaseModel, result_type: type[T]) -> T | None:
        handle = self.client.get_workflow_handle(self.workflow_id)
        try:
            return await handle.execute_update(name, arg, result_type=result_type)
        except WorkflowUpdateFailedError as err:
            raise _ours(err) from None
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def _update_with_start(self, name: str, arg: BaseModel, result_type: type[T]) -> T:
        start = WithStartWorkflowOperation(
            COORDINATOR_WORKFLOW,
            CoordinatorInput(),
            id=self.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        try:
            return await self.client.execute_update_with_start_workflow(
                name, arg, start_workflow_operation=start, result_type=result_type
            )
        except WorkflowUpdateFailedError as err:
            raise _ours(err) from None


def _ours(err: BaseException) -> BaseException:
    """Return our error class for a Temporal rejection, else the error itself."""
    mapped = from_temporal(err)
    return mapped if mapped is not None else err


def _too_many_in_flight(err: BaseException) -> bool:
    current: BaseException | None = err
    while current is not None:
        if isinstance(current, RPCError) and current.status is RPCStatusCode.RESOURCE_EXHAUSTED:
            return True
        current = current.__cause__
    return False


__all__ = ["CoordinatorClient", "RecoveryOrchestratorError"]
