"""What a notification says (SPEC §10): the event, built by a workflow, posted by the worker.

A workflow builds a ``NotificationEvent`` from what it knows (service, run, attempt, a
message) and nothing secret: the event is the input of a ``RecoveryNotification``
workflow, so it is history. The worker's delivery activity adds what must not be
history (the signed approve and cancel links) as it posts (``activities.notifications``).

``event_id`` is fixed by the workflow that announces the event, the same on every
replay and every delivery attempt: receivers drop a repeat by it, and it names the
notification's own workflow (``notification_workflow_id``), so the server refuses to
start a second one for the same event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NotificationEventName = Literal[
    "awaiting_operator", "failed", "held_back", "paused", "resumed", "recovered"
]
EVENT_NAMES: tuple[NotificationEventName, ...] = (
    "awaiting_operator",
    "failed",
    "held_back",
    "paused",
    "resumed",
    "recovered",
)
# Who sent it, in every body: a receiver shared with other tools tells ours apart.
SOURCE = "recovery-orchestrator"
NOTIFICATION_ID_PREFIX = "notify-"
MAX_MESSAGE = 1000
# As a policy's approvers (workflows.models.door.MAX_APPROVERS), which the event copies.
MAX_APPROVERS = 20


class NotificationEvent(BaseModel):
    """One event worth telling on-call about; the JSON body's fields (SPEC §10).

    ``run_id`` and ``attempt`` name the ``ServiceRecovery`` run and the attempt the
    event is about; both are null for the coordinator's events (``held_back``,
    ``paused``, ``resumed``), which concern a service, not a run.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: NotificationEventName
    event_id: str = Field(min_length=1, max_length=400)
    service: str = Field(min_length=1, max_length=200)
    run_id: str | None = Field(default=None, max_length=100)
    attempt: int | None = Field(default=None, ge=1, le=1_000_000)
    message: str = Field(max_length=MAX_MESSAGE)
    occurred_at: datetime
    # held_back and paused: until when automation leaves the service alone.
    until: datetime | None = None
    # awaiting_operator of a service whose policy lists approvers: who may approve (not
    # secret). The delivery signs one approve link per name; None: anyone may approve.
    approvers: list[str] | None = Field(default=None, max_length=MAX_APPROVERS)


def run_event_id(event: NotificationEventName, run_id: str, attempt: int) -> str:
    """Return the id of an event of one recovery run: one per run, event and attempt."""
    return f"{event}-{run_id}-{attempt}"


def service_event_id(event: NotificationEventName, service: str, at: datetime) -> str:
    """Return the id of a coordinator's event about a service, fixed by the time it names."""
    return f"{event}-{service}-{at.strftime('%Y%m%dT%H%M%S.%fZ')}"


def notification_workflow_id(event: NotificationEvent) -> str:
    """Return the id of the workflow that delivers ``event`` (one per event)."""
    return f"{NOTIFICATION_ID_PREFIX}{event.event_id}"
