"""``RecoveryNotification``: one event delivered to every target, as its own workflow.

Why a workflow of its own, started by the announcing workflow as a child it abandons
(``announce``), rather than an activity the recovery or the coordinator runs:

- **it delays nothing**: the announcer waits only for the server to start the child
  (one round trip to Temporal, never to the notifier), then goes on; a notifier that
  is down for an hour holds up no attempt, no backoff, no approval;
- **it loses nothing**: a workflow's pending activities are dropped when it closes or
  continues as new, which a failed recovery does right after its ``failed`` event and
  the coordinator does every few thousand events; an abandoned child outlives both,
  and retries each target for up to ``DELIVERY_DEADLINE``;
- **once per event**: the child's id is the event's (``notify-<event_id>``), fixed by
  the announcer's own history, so a replay after a worker restart starts nothing new
  and the server refuses a second start of the same id; a delivery Temporal recorded
  as done is not made again, whichever worker resumes the child. (At least once, as
  any retried post is: a worker that dies between the target's answer and the record
  of it posts again, with the same ``event_id`` for the receiver to drop.)

Each target is one activity, retried alone: a target that is down never makes
another receive a second copy. A target that refuses (HTTP 4xx) is not retried; one
still failing at the deadline is given up; either leaves this workflow Failed,
naming the targets, so the Web UI shows which notification did not arrive.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows.constants import LOG_PREFIX
from workflows.errors import clipped
from workflows.guard import REQUIRED

with workflow.unsafe.imports_passed_through():
    from activities.notification_event import (
        MAX_MESSAGE,
        NotificationEvent,
        NotificationEventName,
        notification_workflow_id,
        run_event_id,
        service_event_id,
    )
    from activities.notifications import (
        GIVEN_UP,
        NOTIFICATION_REFUSED,
        Delivery,
        NotificationActivities,
        count_notification,
    )

NOTIFICATION_WORKFLOW = "RecoveryNotification"
NOTIFICATION_UNDELIVERED = "NotificationUndelivered"
# How long a target that is down is tried: past it, an event is stale to on-call.
DELIVERY_DEADLINE = timedelta(days=1)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=[NOTIFICATION_REFUSED],
)
LOOKUP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


@workflow.defn(name=NOTIFICATION_WORKFLOW)
class RecoveryNotification:
    """Deliver one ``NotificationEvent`` to each target the worker has for it."""

    @workflow.run
    async def run(self, event: NotificationEvent = REQUIRED) -> dict[str, str]:
        """Return what each target's delivery did (``{label: "sent: HTTP 200"}``).

        Raises:
            ApplicationError: ``NotificationUndelivered`` naming each target that
                refused the event or was still failing at ``DELIVERY_DEADLINE``.
        """
        targets = await workflow.execute_activity_method(
            NotificationActivities.notification_targets,
            event,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOOKUP_RETRY,
        )
        outcomes = await asyncio.gather(*(self._deliver(event, target) for target in targets))
        results = dict(zip(targets, outcomes))
        undelivered = {target: why for target, (sent, why) in results.items() if not sent}
        if undelivered:
            raise ApplicationError(
                f"{event.event} of '{event.service}' not delivered to "
                + "; ".join(f"{target} ({why})" for target, why in undelivered.items()),
                type=NOTIFICATION_UNDELIVERED,
                non_retryable=True,
            )
        return {target: why for target, (_, why) in results.items()}

    async def _deliver(self, event: NotificationEvent, target: str) -> tuple[bool, str]:
        try:
            answer = await workflow.execute_activity_method(
                NotificationActivities.deliver_notification,
                Delivery(target=target, event=event),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=DELIVERY_DEADLINE,
                retry_policy=DELIVERY_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            why = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            if not (isinstance(cause, ApplicationError) and cause.type == NOTIFICATION_REFUSED):
                count_notification(workflow.metric_meter(), event.event, target, GIVEN_UP)
            workflow.logger.warning(
                "%s Notification %s not delivered to %s: %s",
                LOG_PREFIX,
                event.event_id,
                target,
                why,
            )
            return False, why
        return True, answer


async def announce(event: NotificationEvent) -> None:
    """Start the event's ``RecoveryNotification`` and go on without waiting for delivery.

    The child is abandoned: it finishes whether the announcer waits, ends or continues
    as new. A second announcement of the same event (the coordinator's memory of what
    it announced does not survive its continue-as-new) is refused by the server and
    ignored here.
    """
    try:
        await workflow.start_child_workflow(
            RecoveryNotification.run,
            event,
            id=notification_workflow_id(event),
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"notify {event.event} of {event.service}",
        )
    except WorkflowAlreadyStartedError:
        workflow.logger.info("%s Notification %s was sent already", LOG_PREFIX, event.event_id)


def run_event(
    event: NotificationEventName,
    service: str,
    attempt: int,
    message: str,
    approvers: list[str] | None = None,
) -> NotificationEvent:
    """Return an event of the running ``ServiceRecovery`` (its run id, ``attempt``).

    ``approvers``: who may approve an ``awaiting_operator`` attempt (the policy's list),
    so that the delivery signs a link for each of them.
    """
    run_id = workflow.info().run_id
    return NotificationEvent(
        event=event,
        event_id=run_event_id(event, run_id, attempt),
        service=service,
        run_id=run_id,
        attempt=attempt,
        message=clipped(message, MAX_MESSAGE),
        occurred_at=workflow.now(),
        approvers=approvers,
    )


def service_event(
    event: NotificationEventName, service: str, message: str, until: datetime | None = None
) -> NotificationEvent:
    """Return a coordinator's event about a service, now (no run, no attempt).

    A held-back event is fixed by when the hold ends (``until``): the coordinator
    hears of the same hold on every look of the circuit watch, and tells of it once.
    """
    at = until if event == "held_back" and until is not None else workflow.now()
    return NotificationEvent(
        event=event,
        event_id=service_event_id(event, service, at),
        service=service,
        message=clipped(message, MAX_MESSAGE),
        occurred_at=workflow.now(),
        until=until,
    )
