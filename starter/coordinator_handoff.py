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
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from starter.coordinator_client import CoordinatorClient
from workflows.circuit_watch_models import HAND_OVER_ACTIVITY, HandOverInput
from workflows.coordinator_models import ScheduleRecoveryResult
from workflows.errors import RecoveryOrchestratorError


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
        try:
            return await coordinator.schedule_recoveries(input.request)
        except RecoveryOrchestratorError as err:
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from None
