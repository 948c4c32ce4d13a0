"""Notifications out (SPEC §10): targets, body shapes, retries, and no secret anywhere.

Each test runs the real worker against the dev server and posts to a loopback
endpoint standing in for a webhook, Slack or PagerDuty (their base URL is configurable).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.approval_links import LinkSigner, verify_link
from activities.notification_event import NotificationEvent, notification_workflow_id
from activities.notifications import (
    NOTIFICATION_SECRET_MISSING,
    Delivery,
    NotificationActivities,
    event_links,
    pagerduty_body,
    slack_body,
    webhook_body,
)
from activities.notify_targets import NotifyConfig, parse_notify_table, parse_notify_urls
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.connection import connect, metrics_runtime
from starter.client.services_file import load_services_file
from starter.client.services_file_problems import ServicesFileError
from tests.helpers.notify_sink import notify_sink
from tests.helpers.processes import worker_refusing_to_start
from tests.helpers.prometheus import scrape, value
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from tests.helpers.workers import HEALTH_CHECK_MODULES
from worker import build_worker
from workflows.carried_state import CoordinatorState
from workflows.ledger.operator_word import note_ending
from workflows.models import RecoveryResult, RecoveryState
from workflows.notification import RecoveryNotification

SLACK_TOKEN = "T000-B000-sl4ck-s3cret-path"
ROUTING_KEY = "pd-r0uting-k3y-0123456789"
LINK_SECRET = b"link-secret-of-at-least-16-bytes"


@asynccontextmanager
async def notifying_worker(
    client: Client, store: SQLiteBreakerStore, task_queue: str, config: NotifyConfig,
    signer: LinkSigner | None = None,
) -> AsyncIterator[None]:
    """Run the product's worker delivering to ``config``'s targets."""
    async with build_worker(
        client, store, task_queue=task_queue, health_check_modules=HEALTH_CHECK_MODULES,
        notifications=NotificationActivities(config, signer),
    ):
        yield


def an_event(event: str = "failed", service: str = "payments") -> NotificationEvent:
    run_id = str(uuid.uuid4())
    return NotificationEvent.model_validate(
        {
            "event": event,
            "event_id": f"{event}-{run_id}-1",
            "service": service,
            "run_id": run_id,
            "attempt": 1,
            "message": f"recovery of '{service}' {event}",
            "occurred_at": datetime.now(timezone.utc),
        }
    )


async def notify(client: Client, task_queue: str, event: NotificationEvent) -> dict[str, str]:
    return await client.execute_workflow(
        RecoveryNotification.run, event, id=notification_workflow_id(event), task_queue=task_queue
    )


async def test_a_webhook_receives_the_event_with_its_fields_and_signed_links(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    signer = LinkSigner("https://recovery.example", LINK_SECRET)
    async with notify_sink() as sink:
        config = NotifyConfig(webhook_urls=(sink.url("/a"), sink.url("/b")))
        async with notifying_worker(dev_env.client, store, task_queue, config, signer):
            event = an_event("awaiting_operator")
            result = await notify(dev_env.client, task_queue, event)
    sent = "sent: HTTP 200"
    assert result == {"RECOVERY_NOTIFY_URLS#1": sent, "RECOVERY_NOTIFY_URLS#2": sent}
    assert [r.path for r in sink.received] in (["/a", "/b"], ["/b", "/a"])
    body = sink.bodies("/a")[0]
    fields = ("event", "event_id", "service", "run_id", "attempt", "message")
    assert {k: body[k] for k in fields} == {
        "event": "awaiting_operator",
        "event_id": event.event_id,
        "service": "payments",
        "run_id": event.run_id,
        "attempt": 1,
        "message": event.message,
    }
    assert body["source"] == "recovery-orchestrator"
    for action in ("approve", "cancel"):
        url = body[f"{action}_url"]
        assert url.startswith(f"https://recovery.example/links/{action}?service=payments&run=")
        assert f"run={event.run_id}&attempt=1&" in url and "&sig=" in url


async def test_slack_and_pagerduty_get_their_own_shapes_and_pagerduty_resolves_on_recovery(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECOVERY_SECRET_PD_KEY", ROUTING_KEY)
    async with notify_sink() as sink:
        slack_file = tmp_path / "slack-url"
        slack_file.write_text(sink.url(f"/services/{SLACK_TOKEN}") + "\n")
        config = NotifyConfig(
            named=parse_notify_table(
                {
                    "chat": {"type": "slack", "url_file": str(slack_file)},
                    "oncall": {
                        "type": "pagerduty",
                        "routing_key_env": "RECOVERY_SECRET_PD_KEY",
                        "events_url": sink.url("/v2/enqueue"),
                    },
                }
            )
        )
        async with notifying_worker(dev_env.client, store, task_queue, config):
            failed, paused = an_event("failed"), an_event("paused")
            recovered = an_event("recovered")
            assert await notify(dev_env.client, task_queue, failed) == {
                "notify.chat": "sent: HTTP 200", "notify.oncall": "sent: HTTP 200",
            }
            # PagerDuty hears of what opens and what resolves an incident only.
            paused_to = await notify(dev_env.client, task_queue, paused)
            assert paused_to == {"notify.chat": "sent: HTTP 200"}
            assert await notify(dev_env.client, task_queue, recovered) == {
                "notify.chat": "sent: HTTP 200", "notify.oncall": "sent: HTTP 200",
            }
    slack = sink.bodies(f"/services/{SLACK_TOKEN}")
    assert [set(body) for body in slack] == [{"text"}] * 3
    assert slack[0]["text"].startswith("*payments*: failed (attempt 1)\n")
    trigger, resolve = sink.bodies("/v2/enqueue")
    assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "recovery-orchestrator/payments"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "recovery-orchestrator"
    assert trigger["payload"]["summary"] == f"payments: {failed.message}"
    assert trigger["payload"]["custom_details"]["event_id"] == failed.event_id
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "recovery-orchestrator/payments",
        "event_action": "resolve",
    }


async def test_a_named_webhook_target_gets_the_generic_json_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with notify_sink() as sink:
        monkeypatch.setenv("RECOVERY_SECRET_AUDIT_HOOK", sink.url("/audit"))
        config = NotifyConfig(
            named=parse_notify_table(
                {"audit": {"type": "webhook", "url_env": "RECOVERY_SECRET_AUDIT_HOOK"}}
            )
        )
        activities = NotificationActivities(config)
        event = an_event("failed")
        sent = await ActivityEnvironment().run(
            activities.deliver_notification, Delivery(target="notify.audit", event=event)
        )
    assert sent == "sent: HTTP 200"
    [body] = sink.bodies("/audit")
    assert "text" not in body, "a webhook is not sent Slack's body"
    assert body == {"source": "recovery-orchestrator", **json.loads(event.model_dump_json(exclude={"approvers"}))}


async def test_a_target_that_is_down_is_tried_again_until_it_takes_the_event(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    async with notify_sink([500, 503, 200]) as down, notify_sink() as up:
        config = NotifyConfig(webhook_urls=(down.url(), up.url()))
        async with notifying_worker(dev_env.client, store, task_queue, config):
            event = an_event()
            result = await notify(dev_env.client, task_queue, event)
    assert result["RECOVERY_NOTIFY_URLS#1"] == "sent: HTTP 200"
    assert down.refused == 2 and [b["event_id"] for b in down.bodies()] == [event.event_id]
    # The target that was up is not sent a second copy while the other is retried.
    assert [b["event_id"] for b in up.bodies()] == [event.event_id]


async def test_a_target_that_refuses_is_not_retried_and_the_notification_fails_naming_it(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    async with notify_sink([400]) as sink:
        config = NotifyConfig(webhook_urls=(sink.url(f"/{SLACK_TOKEN}"),))
        async with notifying_worker(dev_env.client, store, task_queue, config):
            event = an_event()
            with pytest.raises(WorkflowFailureError) as failure:
                await notify(dev_env.client, task_queue, event)
            history = await dev_env.client.get_workflow_handle(
                notification_workflow_id(event)
            ).fetch_history()
    assert sink.refused == 1
    assert "RECOVERY_NOTIFY_URLS#1 (RECOVERY_NOTIFY_URLS#1: refused, HTTP 400)" in str(
        failure.value.cause
    )
    assert SLACK_TOKEN not in history.to_json()


async def test_a_retried_failure_is_recorded_by_label_and_nothing_secret_is_logged(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with notify_sink([503, 200]) as sink:
        config = NotifyConfig(webhook_urls=(sink.url(f"/hook/{SLACK_TOKEN}"),))
        async with notifying_worker(dev_env.client, store, task_queue, config):
            event = an_event()
            await notify(dev_env.client, task_queue, event)
            history = await dev_env.client.get_workflow_handle(
                notification_workflow_id(event)
            ).fetch_history()
    recorded = history.to_json()
    assert "HTTP 503" in recorded, "the retried failure is in the history, by label and status"
    assert SLACK_TOKEN not in recorded and str(sink.port) not in recorded
    assert SLACK_TOKEN not in caplog.text
    # A retry is one line, not a traceback per attempt (a target down floods the log).
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r.getMessage() for r in warned if r.exc_info], "no traceback for a retry"
    retry = "not delivered, attempt 1, tried again later: RECOVERY_NOTIFY_URLS#1: HTTP 503"
    assert sum(retry in r.getMessage() for r in warned) == 1


async def test_a_missing_secret_is_named_and_retried(tmp_path: Path) -> None:
    config = NotifyConfig(
        named=parse_notify_table(
            {
                "chat": {"type": "slack", "url_env": "RECOVERY_SECRET_UNSET_HOOK"},
                "file": {"type": "slack", "url_file": str(tmp_path / "absent")},
            }
        )
    )
    activities = NotificationActivities(config)
    for label, named in (
        ("notify.chat", "RECOVERY_SECRET_UNSET_HOOK is not set on this worker"),
        ("notify.file", f"{tmp_path / 'absent'}: No such file or directory"),
    ):
        with pytest.raises(ApplicationError) as missing:
            await ActivityEnvironment().run(
                activities.deliver_notification, Delivery(target=label, event=an_event())
            )
        assert missing.value.message == f"{label}: {named}"
        assert missing.value.type == NOTIFICATION_SECRET_MISSING and not missing.value.non_retryable


def test_the_notify_table_names_each_problem_and_its_target() -> None:
    with pytest.raises(ValueError) as problems:
        parse_notify_table(
            {
                "chat": {"type": "slack"},
                "oncall": {"type": "pagerduty", "routing_key_env": "PD_KEY"},
                "both": {"type": "webhook", "url_env": "RECOVERY_SECRET_A", "url_file": "/x"},
                "typo": {"type": "slack", "url_env": "RECOVERY_SECRET_A", "event": ["failed"]},
                "bad name": {"type": "slack", "url_env": "RECOVERY_SECRET_A"},
                "odd": {
                    "type": "pagerduty", "routing_key_env": "RECOVERY_SECRET_A", "events": ["x"],
                },
            }
        )
    lines = str(problems.value).splitlines()
    assert "[notify.chat] a slack target takes exactly one of url_env and url_file" in lines
    assert any(
        line.startswith("[notify.oncall] routing_key_env: 'PD_KEY' is not a RECOVERY_SECRET_*")
        or "'PD_KEY' is not a RECOVERY_SECRET_*" in line
        for line in lines
    )
    assert any(line.startswith("[notify.both] ") for line in lines)
    assert "[notify.typo] unknown field 'event'" in lines
    assert any(line.startswith("[notify.bad name] ") for line in lines)
    assert any(line.startswith("[notify.odd] events.") for line in lines)
    assert len(lines) == 6


def test_a_bad_notify_url_is_named_by_position_never_quoted() -> None:
    assert parse_notify_urls("http://a/x, https://b/y\nhttps://c/z") == (
        "http://a/x", "https://b/y", "https://c/z",
    )
    with pytest.raises(ValueError) as bad:
        parse_notify_urls(f"http://a/x,hooks.example/{SLACK_TOKEN}")
    assert str(bad.value) == "RECOVERY_NOTIFY_URLS: item 2 is not an http:// or https:// URL"


def test_the_body_json_is_plain_json() -> None:
    # What receivers parse: every field a JSON value, the times ISO-8601 with a zone.
    body = json.loads(an_event().model_dump_json())
    assert body["occurred_at"].endswith("Z") or body["occurred_at"].endswith("+00:00")


def test_the_services_file_checks_its_notify_table_with_the_rest(tmp_path: Path) -> None:
    good = tmp_path / "recovery.toml"
    good.write_text(
        '[notify.chat]\ntype = "slack"\nurl_env = "RECOVERY_SECRET_SLACK"\n'
        '[notify.oncall]\ntype = "pagerduty"\nrouting_key_file = "/run/secrets/pd"\n'
        'events = ["failed"]\n'
    )
    load_services_file(good)  # the watch's part: the notify table is the worker's
    config = NotifyConfig.load(good)
    assert list(config.named) == ["chat", "oncall"]
    assert config.labels(an_event("failed")) == ["notify.chat", "notify.oncall"]
    assert config.labels(an_event("awaiting_operator")) == ["notify.chat"]

    bad = tmp_path / "bad.toml"
    bad.write_text('[notify.chat]\ntype = "slack"\nurl = "https://hooks.example/T0/B0/s3cr3t"\n')
    with pytest.raises(ServicesFileError) as problems:
        load_services_file(bad)
    assert str(problems.value) == (
        f"{bad}: [notify.chat] unknown field 'url': the file names where the secret is, "
        "never the secret (url_env or url_file)"
    )


async def test_the_worker_refuses_to_start_on_a_bad_notify_url_without_quoting_it(
    tmp_path: Path,
) -> None:
    line = await worker_refusing_to_start(
        {"RECOVERY_NOTIFY_URLS": f"https://hooks.example/ok,ftp://hooks.example/{SLACK_TOKEN}"},
        tmp_path,
    )
    assert line.endswith(
        "cannot start: RECOVERY_NOTIFY_URLS: item 2 is not an http:// or https:// URL"
    )
    assert SLACK_TOKEN not in line


async def test_notifications_are_counted_by_result(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    client = await connect(
        dev_env.client.service_client.config.target_host, runtime=metrics_runtime(address)
    )
    async with notify_sink([503, 200]) as flaky, notify_sink([400]) as refusing:
        config = NotifyConfig(webhook_urls=(flaky.url(), refusing.url()))
        async with notifying_worker(client, store, task_queue, config):
            with pytest.raises(WorkflowFailureError):
                await notify(client, task_queue, an_event("failed"))
            metrics = await eventually(
                lambda: asyncio.to_thread(scrape, address),
                lambda text: value(text, "recovery_notifications_total") == 3,
            )
    first, second = "RECOVERY_NOTIFY_URLS#1", "RECOVERY_NOTIFY_URLS#2"
    counted = {
        (target, result): value(
            metrics, "recovery_notifications_total", event="failed", target=target, result=result
        )
        for target in (first, second)
        for result in ("retrying", "sent", "refused")
    }
    assert {key: n for key, n in counted.items() if n} == {
        (first, "retrying"): 1, (first, "sent"): 1, (second, "refused"): 1,
    }


def test_slack_carries_the_links_and_escapes_what_its_markup_reads() -> None:
    signer = LinkSigner("https://recovery.example", LINK_SECRET)
    event = an_event("awaiting_operator", service="a<b>&c")
    assert event.run_id is not None
    # Signed for a name links take; the markup escaped is the event's own.
    links = event_links(signer, an_event("awaiting_operator"), datetime.now(timezone.utc))
    assert links is not None
    text = slack_body(event.model_copy(update={"message": "<!channel> x"}), links)["text"]
    assert text.startswith(
        "*a&lt;b&gt;&amp;c*: awaiting operator (attempt 1)\n&lt;!channel&gt; x\n"
    )
    assert f"<{links.approve_url}|Approve> · <{links.cancel_url}|Cancel>" in text


def test_with_approvers_each_gets_an_approve_link_made_for_them_in_every_shape() -> None:
    signer = LinkSigner("https://recovery.example", LINK_SECRET)
    event = an_event("awaiting_operator").model_copy(update={"approvers": ["alice", "b<o>b"]})
    assert event.run_id is not None
    links = event_links(signer, event, datetime.now(timezone.utc))
    assert links is not None and links.approve_url is None
    assert list(links.approve_urls) == ["alice", "b<o>b"]
    claim = verify_link(
        LINK_SECRET,
        "approve",
        dict(parse_qsl(urlsplit(links.approve_urls["alice"]).query)),
        datetime.now(timezone.utc),
    )
    assert (claim.operator, claim.run_id, claim.attempt) == ("alice", event.run_id, 1)
    body = webhook_body(event, links)
    assert "approve_url" not in body and body["approvers"] == ["alice", "b<o>b"]
    assert body["approve_urls"] == links.approve_urls and body["cancel_url"] == links.cancel_url
    text = slack_body(event, links)["text"]
    assert f"<{links.approve_urls['alice']}|Approve as alice> · " in text
    assert f"<{links.approve_urls['b<o>b']}|Approve as b&lt;o&gt;b> · <{links.cancel_url}|Cancel>" in text
    pagerduty = pagerduty_body(event, ROUTING_KEY, links)["links"]
    assert [link["text"] for link in pagerduty] == [
        "Approve attempt 1 as alice", "Approve attempt 1 as b<o>b", "Cancel the recovery",
    ]
    # Without approvers the body is as before: one approve link, no approvers field.
    anyone = an_event("awaiting_operator")
    plain = webhook_body(anyone, event_links(signer, anyone, datetime.now(timezone.utc)))
    assert "approvers" not in plain and "approve_urls" not in plain and plain["approve_url"]


def test_pagerduty_hears_of_what_opens_and_resolves_an_incident_and_events_filter() -> None:
    config = NotifyConfig(
        webhook_urls=("http://127.0.0.1:9/hook",),
        named=parse_notify_table(
            {
                "chat": {"type": "slack", "url_env": "RECOVERY_SECRET_A", "events": ["failed"]},
                "oncall": {"type": "pagerduty", "routing_key_env": "RECOVERY_SECRET_B"},
            }
        ),
    )
    everyone = ["RECOVERY_NOTIFY_URLS#1", "notify.chat", "notify.oncall"]
    assert config.labels(an_event("failed")) == everyone
    assert config.labels(an_event("recovered")) == ["RECOVERY_NOTIFY_URLS#1", "notify.oncall"]
    assert config.labels(an_event("held_back")) == ["RECOVERY_NOTIFY_URLS#1"]


def test_the_coordinator_remembers_a_failed_service_until_a_recovery_of_it_succeeds() -> None:
    state = CoordinatorState()

    def ended(name: str, outcome: RecoveryState) -> None:
        result = RecoveryResult(
            service_name=name,
            success=outcome is RecoveryState.SUCCEEDED,
            attempt_number=1,
            total_attempts=1,
            elapsed_time_ms=1.0,
            state=outcome,
            timestamp=datetime.now(timezone.utc),
        )
        note_ending(state, result, None)

    ended("a", RecoveryState.FAILED)
    ended("b", RecoveryState.FAILED)
    ended("a", RecoveryState.CANCELLED)  # whatever the failure opened is still open
    assert state.failed_last == ["a", "b"]
    ended("a", RecoveryState.FAILED)
    assert state.failed_last == ["b", "a"]
    ended("a", RecoveryState.SUCCEEDED)
    assert state.failed_last == ["b"]


def test_the_worker_says_at_start_which_targets_it_loaded_never_their_urls() -> None:
    config = NotifyConfig(
        webhook_urls=(f"https://hooks.example/{SLACK_TOKEN}",),
        named=parse_notify_table(
            {
                "audit": {"type": "webhook", "url_env": "RECOVERY_SECRET_AUDIT"},
                "oncall": {"type": "pagerduty", "routing_key_env": "RECOVERY_SECRET_PD", "events": ["failed"]},
            }
        ),
    )
    signer = LinkSigner("https://recovery.example", LINK_SECRET)
    told = NotificationActivities(config, signer).describe()
    assert told == (
        "notifications to RECOVERY_NOTIFY_URLS#1 (webhook), notify.audit (webhook), "
        "notify.oncall (pagerduty; failed only); approve and cancel links signed"
    )
    assert SLACK_TOKEN not in told
    assert "no targets" in NotificationActivities(NotifyConfig()).describe()
