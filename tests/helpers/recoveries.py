"""Helpers to start recoveries and read what their histories say."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from tests.helpers.waiting import eventually
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryResult, RecoveryStatus, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery


async def start_recovery(
    client: Client, task_queue: str, input: ServiceRecoveryInput
) -> WorkflowHandle[ServiceRecovery, RecoveryResult]:
    """Start ``ServiceRecovery`` under its pinned id on the test's task queue."""
    return await client.start_workflow(
        ServiceRecovery.run,
        input,
        id=recovery_workflow_id(input.service_name),
        task_queue=task_queue,
        execution_timeout=timedelta(days=2),
    )


async def timers(handle: WorkflowHandle[ServiceRecovery, RecoveryResult]) -> list[tuple[int, str]]:
    """Return each timer the workflow started: (duration in ms, summary)."""
    found: list[tuple[int, str]] = []
    async for event in handle.fetch_history_events():
        if event.HasField("timer_started_event_attributes"):
            duration = event.timer_started_event_attributes.start_to_fire_timeout.ToMilliseconds()
            summary = json.loads(event.user_metadata.summary.data or b'""')
            found.append((duration, summary))
    return found


# The server fails a task with this cause when an event reaches the workflow while its
# worker completes the task (a signal at continue-as-new, a notification child finishing
# as its parent ends): benign, retried at once with the event, not our code failing.
BENIGN_CAUSES = frozenset({WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND})


async def task_failures(
    handle: WorkflowHandle[Any, Any], benign: frozenset[int] = BENIGN_CAUSES
) -> list[str]:
    """Return each failed workflow task's cause and message, leaving out ``benign`` causes."""
    return [
        f"{WorkflowTaskFailedCause.Name(e.workflow_task_failed_event_attributes.cause)}: "
        f"{e.workflow_task_failed_event_attributes.failure.message}"
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_task_failed_event_attributes")
        and e.workflow_task_failed_event_attributes.cause not in benign
    ]


async def event_types(handle: WorkflowHandle[ServiceRecovery, RecoveryResult]) -> list[str]:
    """Return the names of every event in the workflow's history."""
    from temporalio.api.enums.v1 import EventType

    return [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]


async def quiescent(handle: WorkflowHandle[Any, Any], timeout: float = 15.0) -> None:
    """Wait until the workflow has nothing in flight: no workflow task, no activity.

    From then on it moves only when something new reaches it (a signal, a timer), so
    a step it has not taken by now it will not take by itself: the condition a test
    needs to show a step is *not* taken, instead of sleeping "long enough".
    """

    async def in_flight() -> tuple[bool, int]:
        raw = (await handle.describe()).raw_description
        return raw.HasField("pending_workflow_task"), len(raw.pending_activities)

    await eventually(in_flight, lambda found: found == (False, 0), timeout=timeout)


async def status_of(handle: WorkflowHandle[ServiceRecovery, RecoveryResult]) -> RecoveryStatus:
    """Query the recovery's ``status``."""
    return await handle.query(ServiceRecovery.status)


def patch_markers(history: WorkflowHistory) -> set[str]:
    """Return the ids of the ``workflow.patched`` markers in a history: its branches.

    A ``workflow.deprecate_patch`` marker (``deprecated``) names no branch: it only lets
    older runs that recorded the patch replay on code that has just the new side.
    """
    found: set[str] = set()
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        if marker.marker_name == "core_patch":
            data = json.loads(marker.details["patch-data"].payloads[0].data)
            if not data.get("deprecated"):
                found.add(data["id"])
    return found


async def is_running(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the workflow runs yet (False while it is not started or not visible)."""
    try:
        description = await handle.describe()
    except Exception:
        return False
    return description.status is not None and description.status.name == "RUNNING"
