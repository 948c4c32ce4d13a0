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

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.approval_links import LinkSigner
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


@dataclass(frozen=True)
class EventLinks:
    """The signed links an ``awaiting_operator`` notification carries.

    A service whose policy lists ``approvers`` takes approvals from them only, so an
    approve link made for no one would be refused: it gets one approve link per
    approver (``approve_urls``, by name) and no ``approve_url``. Cancelling is anyone's.
    """

    cancel_url: str
    expires_at: datetime
    approve_url: str | None = None
    approve_urls: dict[str, str] = field(default_factory=dict)


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

    def describe(self) -> str:
        """Say what this worker notifies, for its start: target labels and types, never URLs."""
        targets = self._config.described()
        if not targets:
            return "notifications: no targets (set RECOVERY_NOTIFY_URLS or a [notify] table)"
        links = "signed" if self._signer is not None else (
            "off (set RECOVERY_RECEIVER_URL and RECOVERY_LINK_SECRET)"
        )
        return f"notifications to {', '.join(targets)}; approve and cancel links {links}"

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
            elif kind == "slack":
                url, body = target.secret(), slack_body(event, links)
            else:
                url, body = target.secret(), webhook_body(event, links)
        except NotifySecretMissing as err:
            raise self._retry_later(event, label, str(err), NOTIFICATION_SECRET_MISSING) from None
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
            why = f"not delivered ({type(err).__name__})"
            raise self._retry_later(event, label, why, NOTIFICATION_NOT_DELIVERED) from None
        except ValueError:  # httpx refuses a malformed URL before any I/O
            raise self._refused(event, label, "the configured URL is malformed") from None
        if 200 <= status < 300:
            return status
        if status in RETRY_STATUSES or status >= 500:
            raise self._retry_later(event, label, f"HTTP {status}", NOTIFICATION_NOT_DELIVERED)
        raise self._refused(event, label, f"refused, HTTP {status}")

    async def _send(self, request: httpx.Request) -> int:
        if self._transport is not None:
            return await _exchange(self._transport, request)
        async with httpx.AsyncHTTPTransport() as transport:
            return await _exchange(transport, request)

    def _links(self, event: NotificationEvent) -> EventLinks | None:
        """Sign the approve and cancel links of an ``awaiting_operator`` event, if set up."""
        if self._signer is None:
            return None
        return event_links(self._signer, event, datetime.now(timezone.utc))

    def _retry_later(
        self, event: NotificationEvent, label: str, why: str, kind: str
    ) -> ApplicationError:
        """Count and log, in one line, a delivery Temporal will try again; return its error.

        The error is BENIGN: the SDK then logs it at DEBUG, not with a traceback at
        WARNING for every retry of every target that is down (a flood, and no news:
        the line here says it all). The retry is Temporal's as for any failure; the
        count is ``recovery_notifications`` (the SDK's own failure metric skips BENIGN).
        """
        message = f"{label}: {why}"
        self._count(event, label, RETRYING)
        activity.logger.warning(
            "notification %s not delivered, attempt %d, tried again later: %s",
            event.event_id,
            activity.info().attempt,
            message,
        )
        return ApplicationError(message, type=kind, category=ApplicationErrorCategory.BENIGN)

    def _refused(self, event: NotificationEvent, label: str, why: str) -> ApplicationError:
        """Count and log, in one line, a delivery not to be tried again; return its error."""
        message = f"{label}: {why}"
        self._count(event, label, REFUSED)
        activity.logger.error("notification %s not delivered: %s", event.event_id, message)
        return ApplicationError(
            message,
            type=NOTIFICATION_REFUSED,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )

    @staticmethod
    def _count(event: NotificationEvent, label: str, result: str) -> None:
        count_notification(activity.metric_meter(), event.event, label, result)


def event_links(signer: LinkSigner, event: NotificationEvent, now: datetime) -> EventLinks | None:
    """Sign an ``awaiting_operator`` event's links from ``now``: one approve link per approver."""
    if event.event != "awaiting_operator" or event.run_id is None or event.attempt is None:
        return None
    anyone = signer.links(event.service, event.run_id, event.attempt, now)
    if not event.approvers:
        return EventLinks(anyone.cancel_url, anyone.expires_at, approve_url=anyone.approve_url)
    approve_urls = {
        name: signer.url("approve", event.service, event.run_id, event.attempt, anyone.expires_at, name)
        for name in event.approvers
    }
    return EventLinks(anyone.cancel_url, anyone.expires_at, approve_urls=approve_urls)


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


def webhook_body(event: NotificationEvent, links: EventLinks | None) -> dict[str, Any]:
    """The generic JSON body: the event's fields, plus the links when there are some.

    ``approvers`` is there only when the policy lists some; then so is ``approve_urls``
    (one link per approver) instead of ``approve_url``.
    """
    body: dict[str, Any] = {"source": SOURCE, **_fields(event)}
    if links is not None:
        if links.approve_url is not None:
            body["approve_url"] = links.approve_url
        if links.approve_urls:
            body["approve_urls"] = dict(links.approve_urls)
        body["cancel_url"] = links.cancel_url
        body["links_expire_at"] = links.expires_at.isoformat()
    return body


def _fields(event: NotificationEvent) -> dict[str, Any]:
    """The event as JSON, without ``approvers`` when anyone may approve."""
    return event.model_dump(mode="json", exclude={"approvers"} if event.approvers is None else None)


def slack_body(event: NotificationEvent, links: EventLinks | None) -> dict[str, Any]:
    """A Slack-compatible incoming webhook's body: one ``text`` in Slack's markup."""
    run = f" (attempt {event.attempt})" if event.attempt is not None else ""
    what = event.event.replace("_", " ")
    text = f"*{_slack_escape(event.service)}*: {what}{run}\n{_slack_escape(event.message)}"
    if links is not None:
        approve = [f"<{url}|Approve>" for url in filter(None, [links.approve_url])] + [
            f"<{url}|Approve as {_slack_escape(name)}>" for name, url in links.approve_urls.items()
        ]
        text += (
            f"\n{' · '.join(approve)} · <{links.cancel_url}|Cancel> "
            f"(links expire {links.expires_at:%H:%M} UTC)"
        )
    return {"text": text}


def pagerduty_body(
    event: NotificationEvent, routing_key: str, links: EventLinks | None
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
        "custom_details": _fields(event),
    }
    if links is not None:
        approve = [(links.approve_url, "")] if links.approve_url is not None else []
        approve += [(url, f" as {name}") for name, url in links.approve_urls.items()]
        body["links"] = [
            *({"href": url, "text": f"Approve attempt {event.attempt}{who}"} for url, who in approve),
            {"href": links.cancel_url, "text": "Cancel the recovery"},
        ]
    return body


def _slack_escape(text: str) -> str:
    """Escape what Slack's markup reads as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
