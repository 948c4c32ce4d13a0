"""Approve from the message, end to end (SPEC §10): notification out, link in, one attempt runs.

A real worker posts the ``awaiting_operator`` notification to a loopback endpoint, with
links it signed for the receiver's address; pressing the notification's approve link on
the receiver starts the attempt the notification named, and the same link a second
time changes nothing. The link format itself is ``test_approval_links``; its checks
against the recovery, ``test_receiver_links``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.approval_links import LinkSigner
from activities.health_check_specs import HttpHealthCheck
from activities.notifications import NotificationActivities
from activities.notify_targets import NotifyConfig
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.recoveries import recovery_handle
from tests.helpers.notify_sink import notify_sink
from tests.helpers.receivers import SECRET, serving_receiver
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import HEALTH_CHECK_MODULES
from worker import build_worker
from workflows.circuit_watch_models import ServiceSettings, WatchInput
from workflows.models import RecoveryPolicy, RecoveryStrategy

pytestmark = pytest.mark.timeout(60)


async def _bodies(bodies: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [body for body in bodies if body["event"] == event]


async def press(url: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(url) as answer:
            return answer.status


@asynccontextmanager
async def awaiting_operator(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    approvers: list[str] | None = None,
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A MANUAL recovery asked for through the receiver; yield the receiver's address and the
    recovery's one awaiting_operator body.

    Its health check passes; the worker signs the links for the receiver's address.
    """
    store.set_state(service, BreakerState.OPEN)
    async with health_server([200]) as health, notify_sink() as sink:
        policy = RecoveryPolicy(
            max_retry_attempts=2, health_check=HttpHealthCheck(url=health.url), approvers=approvers
        )
        services = WatchInput(services={service: ServiceSettings(strategy=RecoveryStrategy.MANUAL, policy=policy)})
        async with serving_receiver(dev_env.client, task_queue, services=services) as receiver:
            notifications = NotificationActivities(
                NotifyConfig(webhook_urls=(sink.url(),)), LinkSigner(receiver.url, SECRET)
            )
            async with build_worker(
                dev_env.client, store, task_queue=task_queue,
                health_check_modules=HEALTH_CHECK_MODULES, notifications=notifications,
            ):
                status, answer = await receiver.post("/recoveries", {"services": [service]})
                assert status == 200 and answer["scheduled"] == [service], answer
                [awaiting] = await eventually(
                    lambda: _bodies(sink.bodies(), "awaiting_operator"), lambda found: len(found) == 1
                )
                yield receiver.url, awaiting


async def test_the_awaiting_operator_notifications_link_approves_its_attempt_once(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with awaiting_operator(dev_env, store, task_queue, service) as (receiver_url, awaiting):
        assert awaiting["approve_url"].startswith(f"{receiver_url}/links/approve?")
        assert (awaiting["service"], awaiting["attempt"]) == (service, 1)
        assert await press(awaiting["approve_url"]) == 200
        handle = recovery_handle(dev_env.client, service, awaiting["run_id"])
        result = await handle.result()
        assert result.success and result.attempt_number == 1
        assert await press(awaiting["approve_url"]) == 410  # used: the run has ended
        assert await press(awaiting["cancel_url"]) == 410


async def open_page(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as answer:
            return answer.status, await answer.text()


async def test_with_approvers_the_notification_carries_a_link_for_each_that_approves_as_them(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    approvers = ["alice", "bob"]
    async with awaiting_operator(dev_env, store, task_queue, service, approvers) as (_, awaiting):
        assert awaiting["approvers"] == ["alice", "bob"] and "approve_url" not in awaiting
        links = awaiting["approve_urls"]
        assert sorted(links) == ["alice", "bob"]
        shown, page = await open_page(links["alice"])
        assert shown == 200 and "acts as alice" in page, page
        assert await press(links["alice"]) == 200
        handle = recovery_handle(dev_env.client, service, awaiting["run_id"])
        result = await handle.result()
        assert result.success and result.attempt_number == 1
        [attempt] = await handle.query("history")
        assert attempt["approved_by"] == "alice"
        assert await press(links["bob"]) == 410  # the run has ended
