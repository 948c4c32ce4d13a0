"""Posting notifications: the worker's side of SPEC §10's "Notifications".

Two activities, run by the ``RecoveryNotification`` workflow (``workflows.notification``):
``notification_targets`` lists the labels of the targets this worker's configuration
sends an event to, and ``deliver_notification`` posts it to one of them, so that a
target that is down is retried alone and the others are not sent a second copy.

Everything secret is read here, as the post is made: the URL or routing key (from
``RECOVERY_NOTIFY_URLS`` or the ``[notify]`` table's variable or file) and the signed
approve and cancel links of an ``awaiting_operator`` event (``activities.approval_links``;
bearer capabilities, built on ``RECOVERY_RECEIVER_URL``). Neither the activities'
inputs, nor their results, nor their errors, nor their log lines ever hold one: an
error names the target by its label and the HTTP status or the kind of network error.

The post goes through httpx's transport, not its client: the client logs every
request's full URL at INFO, and a webhook's URL is its secret. No redirect is
followed, and no proxy variable is read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError

from activities.approval_links import ApprovalLinks, LinkSigner
from activities.notification_event import SOURCE, NotificationEvent
from activities.notify_targets import NotifyConfig, NotifySecretMissing

# Failure types: a refusal is not retried (the target said the request itself is wrong).
NOTIFICATION_REFUSED = "NotificationRefused"
NOTIFICATION_NOT_DELIVERED = "NotificationNotDelivered"
NOTIFICATION_SECRET_MISSING = "NotificationSecretMissing"
# Statuses that mean "later": the target is busy or briefly broken.
RETRY_STATUSES = frozenset({408, 425, 429})
HTTP_TIMEOUT = httpx.Timeout(10.0)
MAX_RESPONSE_READ = 64 * 1024
PAGERDUTY_SUMMARY_MAX = 1024
# The metric: notifications by result (a dashboard reads these names).
NOTIFICATIONS_METRIC = "recovery_notifications"
SENT, RETRYING, REFUSED, SKIPPED, GIVEN_UP = "sent", "retrying", "refused", "skipped", "given_up"


def count_notification(meter: MetricMeter, event: str, target: str, result: str) -> None:
    """Count one delivery attempt's result (activity) or a delivery given up (workflow).

    ``target`` is the target's label (``notify.oncall``, ``RECOVERY_NOTIFY_URLS#1``).
    """
    meter.create_counter(NOTIFICATIONS_METRIC, "notification deliveries, by result").add(
        1, {"event": event, "target": target, "result": result}
    )


class Delivery(BaseModel):
    """One event for one target, named by its label (``notify.oncall``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str
    event: NotificationEvent


class NotificationActivities:
    """Deliver notifications with this worker's targets and link signer."""

    def __init__(
        self,
        config: NotifyConfig,
        signer: LinkSigner | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._signer = signer
        self._transport = transport

    @classmethod
    def from_env(cls, services_file: Path | None) -> NotificationActivities:
        """Read the targets and the link signer from the settings (SPEC §10).

        Raises:
            ValueError: a bad setting or ``[notify]`` table, saying which.
        """
        return cls(NotifyConfig.load(services_file), LinkSigner.from_env())

    @activity.defn(name="notification_targets")
    async def notification_targets(self, event: NotificationEvent) -> list[str]:
        """Return the labels of the targets to tell of ``event`` (none: nothing to send)."""
        return self._config.labels(event)

    @activity.defn(name="deliver_notification")
    async def deliver_notification(self, delivery: Delivery) -> str:
        """Post ``delivery.event`` to its target once; raise to have Temporal retry.

        Returns:
            What happened, for the workflow's result (``sent: HTTP 200``, or ``skipped``
            when this worker no longer has the target).

        Raises:
            ApplicationError: ``NotificationRefused`` (non-retryable) for a 3xx or 4xx
                other than 408, 425 and 429; ``NotificationNotDelivered`` for a network
                error, a timeout or any other status; ``NotificationSecretMissing`` when
                the target's variable or file gives nothing (retried: it may be fixed).
        """
        event, label = delivery.event, delivery.target
        try:
            kind, target, url = self._config.target(label)
        except KeyError:
            activity.logger.warning(
                "notification %s: %s is no longer configured here", event.event_id, label
            )
            self._count(event, label, SKIPPED)
            return "skipped: target no longer configured"
        links = self._links(event)
        try:
            if target is None:
                body = webhook_body(event, links)
            elif kind == "pagerduty":
                url, body = target.events_url, pagerduty_body(event, target.secret(), links)
            else:
                url, body = target.secret(), slack_body(event, links)
        except NotifySecretMissing as err:
            self._count(event, label, RETRYING)
            raise ApplicationError(f"{label}: {err}", type=NOTIFICATION_SECRET_MISSING) from None
        assert url is not None
        status = await self._post(label, event, url, body)
        self._count(event, label, SENT)
        return f"sent: HTTP {status}"

    async def _post(
        self, label: str, event: NotificationEvent, url: str, body: dict[str, Any]
    ) -> int:
        """Post ``body``; return the 2xx status, or raise the error Temporal acts on."""
        request = httpx.Request(
            "POST",
            url,
            json=body,
            headers={"User-Agent": SOURCE},
            extensions={"timeout": HTTP_TIMEOUT.as_dict()},
        )
        try:
            status = await self._send(request)
        except httpx.HTTPError as err:
            # The exception's text may quote the URL: only its kind is told.
            self._count(event, label, RETRYING)
            raise ApplicationError(
                f"{label}: not delivered ({type(err).__name__})", type=NOTIFICATION_NOT_DELIVERED
            ) from None
        except ValueError:  # httpx refuses a malformed URL before any I/O
            self._count(event, label, REFUSED)
            raise ApplicationError(
                f"{label}: the configured URL is malformed",
                type=NOTIFICATION_REFUSED,
                non_retryable=True,
            ) from None
        if 200 <= status < 300:
            return status
        if status in RETRY_STATUSES or status >= 500:
            self._count(event, label, RETRYING)
            raise ApplicationError(f"{label}: HTTP {status}", type=NOTIFICATION_NOT_DELIVERED)
        self._count(event, label, REFUSED)
        activity.logger.error(
            "notification %s refused by %s: HTTP %d", event.event_id, label, status
        )
        raise ApplicationError(
            f"{label}: refused, HTTP {status}", type=NOTIFICATION_REFUSED, non_retryable=True
        )

    async def _send(self, request: httpx.Request) -> int:
        if self._transport is not None:
            return await _exchange(self._transport, request)
        async with httpx.AsyncHTTPTransport() as transport:
            return await _exchange(transport, request)

    def _links(self, event: NotificationEvent) -> ApprovalLinks | None:
        """Sign the approve and cancel links of an ``awaiting_operator`` event, if set up."""
        if self._signer is None or event.event != "awaiting_operator":
            return None
        if event.run_id is None or event.attempt is None:
            return None
        now = datetime.now(timezone.utc)
        return self._signer.links(event.service, event.run_id, event.attempt, now)

    @staticmethod
    def _count(event: NotificationEvent, label: str, result: str) -> None:
        count_notification(activity.metric_meter(), event.event, label, result)


async def _exchange(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> int:
    """Send ``request``; read at most ``MAX_RESPONSE_READ`` of the answer; return its status."""
    response = await transport.handle_async_request(request)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= MAX_RESPONSE_READ:
                break
    finally:
        await response.aclose()
    return response.status_code


def webhook_body(event: NotificationEvent, links: ApprovalLinks | None) -> dict[str, Any]:
    """The generic JSON body: the event's fields, plus the links when there are some."""
    body: dict[str, Any] = {"source": SOURCE, **event.model_dump(mode="json")}
    if links is not None:
        body["approve_url"] = links.approve_url
        body["cancel_url"] = links.cancel_url
        body["links_expire_at"] = links.expires_at.isoformat()
    return body


def slack_body(event: NotificationEvent, links: ApprovalLinks | None) -> dict[str, Any]:
    """A Slack-compatible incoming webhook's body: one ``text`` in Slack's markup."""
    run = f" (attempt {event.attempt})" if event.attempt is not None else ""
    what = event.event.replace("_", " ")
    text = f"*{_slack_escape(event.service)}*: {what}{run}\n{_slack_escape(event.message)}"
    if links is not None:
        text += (
            f"\n<{links.approve_url}|Approve> · <{links.cancel_url}|Cancel> "
            f"(links expire {links.expires_at:%H:%M} UTC)"
        )
    return {"text": text}


def pagerduty_body(
    event: NotificationEvent, routing_key: str, links: ApprovalLinks | None
) -> dict[str, Any]:
    """A PagerDuty Events v2 body: trigger on failed or awaiting, resolve on recovered.

    One incident per service (``dedup_key``): a recovery that fails and then one that
    awaits an operator update the same incident, and the recovery resolves it.
    """
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "dedup_key": f"{SOURCE}/{event.service}",
        "event_action": "resolve" if event.event == "recovered" else "trigger",
    }
    if event.event == "recovered":
        return body
    body["payload"] = {
        "summary": f"{event.service}: {event.message}"[:PAGERDUTY_SUMMARY_MAX],
        "source": SOURCE,
        "severity": "critical" if event.event == "failed" else "warning",
        "component": event.service,
        "custom_details": event.model_dump(mode="json"),
    }
    if links is not None:
        body["links"] = [
            {"href": links.approve_url, "text": f"Approve attempt {event.attempt}"},
            {"href": links.cancel_url, "text": "Cancel the recovery"},
        ]
    return body


def _slack_escape(text: str) -> str:
    """Escape what Slack's markup reads as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
