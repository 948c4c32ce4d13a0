"""Handing open breakers to the coordinator, from the circuit watch.

A workflow cannot send an update to another workflow, and the watch needs the
update's answer (queued, already running, held back by the storm guard) and its
all-or-none validation. So the hand-over is an activity that is a client of the
coordinator, exactly as ``recoveryctl`` is, through the same typed client; the
worker registers it, and the watch calls it by name, so ``workflows/`` never
imports client code. The worker hands this module that client (``CoordinatorDoor``,
built by ``worker.py`` from ``starter.client``), so ``activities/`` never imports
the client side either. A retried hand-over is harmless: an automatic request leaves
a service that is already queued or running as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError, RPCStatusCode

from workflows.circuit_watch_models import HAND_OVER_ACTIVITY, HandOverInput
from workflows.constants import COORDINATOR_WORKFLOW, COORDINATOR_WORKFLOW_ID
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryResult
from workflows.errors import RecoveryOrchestratorError, to_application_error


class CoordinatorDoor(Protocol):
    """What the hand-over needs of the typed coordinator client (``starter.client``)."""

    @property
    def workflow_id(self) -> str: ...

    def handle(self) -> WorkflowHandle[Any, None]: ...

    async def schedule_recoveries(
        self, request: ScheduleRecoveriesInput
    ) -> list[ScheduleRecoveryResult]: ...


class CoordinatorHandoffActivities:
    """The circuit watch's way to the coordinator.

    ``coordinator`` opens the door to the coordinator with a given workflow id.
    """

    def __init__(self, coordinator: Callable[[str], CoordinatorDoor]) -> None:
        self._coordinator = coordinator

    @activity.defn(name=HAND_OVER_ACTIVITY)
    async def hand_over_open_breakers(self, input: HandOverInput) -> list[ScheduleRecoveryResult]:
        """Schedule the batch; the coordinator's refusal comes back as a non-retryable error."""
        coordinator = self._coordinator(input.coordinator_workflow_id)
        await self._check_is_a_running_coordinator(coordinator)
        try:
            return await coordinator.schedule_recoveries(input.request)
        except RecoveryOrchestratorError as err:
            refusal = to_application_error(err)  # with its code, and which request
            raise _refusal(refusal.message, *refusal.details, kind=refusal.type) from None

    @staticmethod
    async def _check_is_a_running_coordinator(coordinator: CoordinatorDoor) -> None:
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


def _refusal(
    message: str, *details: Any, kind: str | None = "RecoveryOrchestratorError"
) -> ApplicationError:
    """The coordinator's answer "no", as the watch records it in its look.

    Benign: an answer, not a fault (the orchestrator stopped, say), so the worker logs
    no traceback for it on every look, as it would for a failing activity.
    """
    return ApplicationError(
        message,
        *details,
        type=kind,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )
