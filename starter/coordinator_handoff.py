"""Handing open breakers to the coordinator, from the circuit watch.

A workflow cannot send an update to another workflow, and the watch needs the
update's answer (queued, already running, held back by the storm guard) and its
all-or-none validation. So the hand-over is an activity that is a client of the
coordinator, exactly as ``recoveryctl`` is, through the same typed client; the
worker registers it, and the watch calls it by name, so ``workflows/`` never
imports client code. A retried
hand-over is harmless: an automatic request leaves a service that is already queued
or running as it is.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from starter.coordinator_client import CoordinatorClient
from workflows.circuit_watch_models import HAND_OVER_ACTIVITY, HandOverInput
from workflows.constants import COORDINATOR_WORKFLOW, COORDINATOR_WORKFLOW_ID
from workflows.coordinator_models import ScheduleRecoveryResult
from workflows.errors import RecoveryOrchestratorError, to_application_error


class CoordinatorHandoffActivities:
    """The circuit watch's way to the coordinator."""

    def __init__(self, client: Client, *, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name=HAND_OVER_ACTIVITY)
    async def hand_over_open_breakers(self, input: HandOverInput) -> list[ScheduleRecoveryResult]:
        """Schedule the batch; the coordinator's refusal comes back as a non-retryable error."""
        coordinator = CoordinatorClient(
            self._client, workflow_id=input.coordinator_workflow_id, task_queue=self._task_queue
        )
        await self._check_is_a_running_coordinator(coordinator)
        try:
            return await coordinator.schedule_recoveries(input.request)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None  # with its code, and which request

    @staticmethod
    async def _check_is_a_running_coordinator(coordinator: CoordinatorClient) -> None:
        """Refuse to hand over to anything but a coordinator; start none but the pinned one.

        Starting one under any id (as update-with-start would) could put a coordinator
        where a recovery belongs, say ``recovery-payments``, and block that service for
        good. Only the namespace's own ``recovery-coordinator`` is started if missing
        (an operator may have terminated it); any other id must already run one.
        """
        try:
            description = await coordinator.handle().describe()
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise  # the server is unreachable: retried
            description = None
        if description is not None and description.workflow_type != COORDINATOR_WORKFLOW:
            raise _refusal(
                f"{coordinator.workflow_id!r} is a {description.workflow_type} workflow, "
                "not a RecoveryCoordinator"
            )
        running = description is not None and description.status is WorkflowExecutionStatus.RUNNING
        if not running and coordinator.workflow_id != COORDINATOR_WORKFLOW_ID:
            raise _refusal(
                f"no RecoveryCoordinator is running as {coordinator.workflow_id!r}; the watch "
                f"starts none but {COORDINATOR_WORKFLOW_ID!r}"
            )


def _refusal(message: str) -> ApplicationError:
    return ApplicationError(message, type="RecoveryOrchestratorError", non_retryable=True)
