"""Looking up recovery runs from inside the coordinator's world.

The coordinator learns of a finish from the recovery's own report, or, for the
children it started in its current run, from Temporal's child-completion event.
A recovery started before a continue-as-new that then ends without reporting
(terminated by an operator, timed out) would hold its slot forever; this
activity lets the coordinator ask the server what became of such runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

# The failure type of a failed recovery (``workflows.errors.RECOVERY_FAILED``; activities
# import nothing of ours).
RECOVERY_FAILED = "RecoveryFailed"
# Runs described at once; the activity heartbeats after each batch, so a worker that
# dies in the middle of a long lookup is noticed in seconds, not at the timeout.
DESCRIBE_BATCH = 20


class RunRef(BaseModel):
    """One workflow run."""

    workflow_id: str
    run_id: str


class FindClosedRunsInput(BaseModel):
    """Input of ``find_closed_runs``."""

    runs: list[RunRef]


class ClosedRun(BaseModel):
    """A run that is no longer running: how it closed, and its result if it completed."""

    workflow_id: str
    run_id: str
    status: str
    result: dict[str, Any] | None = None


class WorkflowLookupActivities:
    """Activities that read workflow runs through the worker's own client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name="find_closed_runs")
    async def find_closed_runs(self, input: FindClosedRunsInput) -> list[ClosedRun]:
        """Return the runs among ``input.runs`` that have closed (or no longer exist)."""
        closed: list[ClosedRun] = []
        for start in range(0, len(input.runs), DESCRIBE_BATCH):
            batch = input.runs[start : start + DESCRIBE_BATCH]
            found = await asyncio.gather(*(self._closed(run) for run in batch))
            closed.extend(run for run in found if run is not None)
            activity.heartbeat(start + len(batch))
        return closed

    async def _closed(self, run: RunRef) -> ClosedRun | None:
        handle = self._client.get_workflow_handle(
            run.workflow_id, run_id=run.run_id, result_type=dict
        )
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return ClosedRun(**run.model_dump(), status="NOT_FOUND")
        status = description.status
        if status is None or status is WorkflowExecutionStatus.RUNNING:
            return None
        result = None
        if status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED):
            try:
                result = await handle.result(follow_runs=False)
            except WorkflowFailureError as err:
                # A failed recovery carries its result in its failure's details.
                result = _result_in_details(err)
        return ClosedRun(**run.model_dump(), status=status.name, result=result)


def _result_in_details(err: WorkflowFailureError) -> dict[str, Any] | None:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == RECOVERY_FAILED and cause.details:
        found = cause.details[0]
        return found if isinstance(found, dict) else None
    return None
