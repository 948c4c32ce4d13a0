"""Approve and cancel links on real HTTP and a real dev server: good once, and only as signed.

Each test asks the receiver for a MANUAL recovery of a service of its own (the services
file says MANUAL), waits until it awaits an operator, and signs links for that run and
attempt as the worker's notification does (``LinkSigner``). What a link is checked
against is the recovery itself, so "good once" holds across receivers and restarts:
two receivers racing on one link approve one attempt.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.approval_links import LinkSigner
from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.recoveries import recovery_handle, recovery_status
from tests.helpers.receivers import SECRET, ReceiverUnderTest, serving_receiver
from tests.helpers.recoveries import status_of
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.circuit_watch_models import ServiceSettings, WatchInput
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.models import RecoveryPolicy, RecoveryState, RecoveryStatus, RecoveryStrategy

pytestmark = pytest.mark.timeout(60)


@dataclass
class Fleet:
    client: Client
    task_queue: str
    store: SQLiteBreakerStore


@pytest_asyncio.fixture(scope="module")
async def fleet(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    task_queue = f"tq-links-{uuid.uuid4().hex[:8]}"
    store = SQLiteBreakerStore(tmp_path_factory.mktemp("links") / "breakers.db")
    async with running_worker(dev_env.client, store, task_queue):
        yield Fleet(dev_env.client, task_queue, store)
    store.close()


@dataclass
class Awaiting:
    """A MANUAL recovery awaiting an operator, the receiver that started it, and its run."""

    receiver: ReceiverUnderTest
    service: str
    run_id: str
    signer: LinkSigner

    def links(self, attempt: int = 1, run_id: str | None = None, operator: str | None = None) -> tuple[str, str]:
        made = self.signer.links(
            self.service, run_id or self.run_id, attempt, datetime.now(timezone.utc), operator
        )
        return made.approve_url, made.cancel_url

    async def status(self, client: Client) -> RecoveryStatus:
        return await status_of(recovery_handle(client, self.service, self.run_id))


def manual(service: str, url: str, approvers: list[str] | None = None) -> WatchInput:
    policy = RecoveryPolicy(
        max_retry_attempts=3, initial_delay_ms=0, max_delay_ms=0, health_check=HttpHealthCheck(url=url),
        approvers=approvers,
    )
    return WatchInput(services={service: ServiceSettings(strategy=RecoveryStrategy.MANUAL, policy=policy)})


async def waiting_for_operator(fleet: Fleet, receiver: ReceiverUnderTest, service: str) -> Awaiting:
    """Ask the receiver for the service's (MANUAL) recovery; return it once it awaits approval."""
    fleet.store.set_state(service, BreakerState.OPEN)
    status, answer = await receiver.post("/recoveries", {"services": [service]})
    assert status == 200 and answer["scheduled"] == [service], answer
    await eventually(
        lambda: recovery_status(fleet.client, service),
        lambda s: s is not None and s.state is RecoveryState.AWAITING_MANUAL,
    )
    run_id = (await recovery_handle(fleet.client, service).describe()).run_id
    assert run_id is not None
    return Awaiting(receiver, service, run_id, LinkSigner(receiver.url, SECRET))


@asynccontextmanager
async def manual_recovery(
    fleet: Fleet, service: str, statuses: list[int] | None = None, approvers: list[str] | None = None
) -> AsyncIterator[Awaiting]:
    """A receiver whose services file makes ``service`` MANUAL, and its recovery awaiting approval."""
    async with health_server(statuses or [200]) as health, serving_receiver(
        fleet.client, fleet.task_queue, services=manual(service, health.url, approvers)
    ) as receiver:
        yield await waiting_for_operator(fleet, receiver, service)


async def follow(method: str, url: str) -> tuple[int, str, dict[str, str]]:
    """Open a link as a browser does (GET) or press its button (POST, with a form body)."""
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, data=b"anything=at-all" if method == "POST" else None) as answer:
            return answer.status, await answer.text(), dict(answer.headers)


def altered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query)), **changes}
    return parts._replace(query=urlencode(query)).geturl()


async def test_opening_a_link_shows_a_confirmation_and_changes_nothing(fleet: Fleet, service: str) -> None:
    async with manual_recovery(fleet, service) as recovery:
        approve, cancel = recovery.links()
        for url in (approve, approve, cancel):
            status, page, headers = await follow("GET", url)
            assert status == 200, page
            assert '<form method="post">' in page and service in page
            assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
        assert "Approve attempt 1" in (await follow("GET", approve))[1]
        seen = await recovery.status(fleet.client)
        assert (seen.state, seen.attempt_count, seen.ignored_signals) == (RecoveryState.AWAITING_MANUAL, 0, [])


async def test_an_approve_link_approves_its_attempt_once(fleet: Fleet, service: str) -> None:
    async with manual_recovery(fleet, service) as recovery:
        approve, _ = recovery.links()
        status, page, _ = await follow("POST", approve)
        assert status == 200 and "Approved" in page, page
        handle = recovery_handle(fleet.client, service, recovery.run_id)
        result = await asyncio.wait_for(handle.result(), timeout=30)
        assert result.success and result.attempt_number == 1
        [attempt] = await handle.query("history")
        assert attempt["approved_by"] == "link"
        again, page, _ = await follow("POST", approve)
        assert again == 410 and "changes nothing" in page
        assert (await follow("GET", approve))[0] == 410
        assert (breaker := fleet.store.get_state(service)) is not None and breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"attempt": "2"}, 403),
        ({"service": "someone-else"}, 403),
        ({"run": "0" * 36}, 403),
        ({"expires": str(int(datetime(2199, 1, 1, tzinfo=timezone.utc).timestamp()))}, 403),
        ({"sig": "A" * 43}, 403),
        ({"sig": "short"}, 400),
        ({"attempt": "one"}, 400),
        ({"service": "no spaces"}, 400),
    ],
)
async def test_an_altered_link_is_refused_and_changes_nothing(
    fleet: Fleet, service: str, change: dict[str, str], status: int
) -> None:
    async with manual_recovery(fleet, service) as recovery:
        approve, cancel = recovery.links()
        for url in (approve, cancel):
            for method in ("GET", "POST"):
                got, page, _ = await follow(method, altered(url, **change))
                assert got == status, (method, change, page)
                assert "This link changes nothing" in page
        # A link signed with another secret, or for an action that does not exist.
        foreign = LinkSigner(recovery.receiver.url, b"another-secret-0123456789").links(
            service, recovery.run_id, 1, datetime.now(timezone.utc)
        )
        assert (await follow("POST", foreign.approve_url))[0] == 403
        assert (await follow("POST", approve.replace("/links/approve", "/links/execute")))[0] == 404
        seen = await recovery.status(fleet.client)
        assert (seen.state, seen.attempt_count) == (RecoveryState.AWAITING_MANUAL, 0)


async def test_an_expired_link_is_refused_and_changes_nothing(fleet: Fleet, service: str) -> None:
    async with manual_recovery(fleet, service) as recovery:
        approve, _ = recovery.links()
        later = lambda: datetime.now(timezone.utc) + timedelta(hours=1, seconds=1)  # noqa: E731
        async with serving_receiver(fleet.client, fleet.task_queue, now=later) as receiver:
            url = approve.replace(recovery.receiver.url, receiver.url)
            for method in ("GET", "POST"):
                status, page, _ = await follow(method, url)
                assert status == 410 and "expired" in page
        assert (await recovery.status(fleet.client)).attempt_count == 0


async def test_a_link_for_another_attempt_or_run_is_stale(fleet: Fleet, service: str) -> None:
    async with manual_recovery(fleet, service, statuses=[500, 200]) as recovery:
        first_approve, first_cancel = recovery.links(attempt=1)
        assert (await follow("POST", first_approve))[0] == 200
        # Attempt 1 fails its check; the recovery awaits an operator for attempt 2.
        await eventually(
            lambda: recovery.status(fleet.client),
            lambda s: s.state is RecoveryState.AWAITING_MANUAL and s.attempt_count == 1,
        )
        for url in (first_approve, first_cancel):
            for method in ("GET", "POST"):
                status, page, _ = await follow(method, url)
                assert status == 409 and "attempt 2" in page, page
        _, second_cancel = recovery.links(attempt=2)
        status, page, _ = await follow("POST", second_cancel)
        assert status == 200 and "Cancelled" in page
        handle = recovery_handle(fleet.client, service, recovery.run_id)
        await eventually(handle.describe, lambda d: d.status is WorkflowExecutionStatus.CANCELED)
        assert (await follow("POST", second_cancel))[0] == 410
        # A new run: the old run's links stay stale.
        await recovery.receiver.coordinator.schedule_recovery(
            ScheduleRecoveryInput(service_name=service, strategy=RecoveryStrategy.MANUAL)
        )
        await eventually(
            lambda: status_of(recovery_handle(fleet.client, service)),
            lambda s: s.state is RecoveryState.AWAITING_MANUAL and s.attempt_count == 0,
        )
        stale, _ = recovery.links(attempt=1)
        status, page, _ = await follow("POST", stale)
        assert status == 410 and "has ended" in page
        assert (await status_of(recovery_handle(fleet.client, service))).attempt_count == 0


async def test_two_receivers_racing_on_one_link_approve_one_attempt(fleet: Fleet, service: str) -> None:
    async with manual_recovery(fleet, service, statuses=[500]) as recovery, serving_receiver(
        fleet.client, fleet.task_queue
    ) as other:
        approve, _ = recovery.links()
        answers = await asyncio.gather(
            follow("POST", approve), follow("POST", approve.replace(recovery.receiver.url, other.url))
        )
        assert sorted(status for status, _, _ in answers) == [200, 409], answers
        await eventually(
            lambda: recovery.status(fleet.client),
            lambda s: s.state is RecoveryState.AWAITING_MANUAL and s.attempt_count == 1,
        )


async def test_with_approvers_only_a_link_made_for_one_of_them_approves(fleet: Fleet, service: str) -> None:
    async with manual_recovery(fleet, service, approvers=["alice"]) as recovery:
        for operator in (None, "mallory", "Alice"):
            approve, _ = recovery.links(operator=operator)
            status, page, _ = await follow("POST", approve)
            assert status == 403 and "not an approver" in page, (operator, page)
        # The name is signed: a link for mallory made into one for alice does not verify.
        mallory, _ = recovery.links(operator="mallory")
        assert (await follow("POST", altered(mallory, operator="alice")))[0] == 403
        seen = await recovery.status(fleet.client)
        assert (seen.state, seen.attempt_count) == (RecoveryState.AWAITING_MANUAL, 0)
        assert sum("not_an_approver" in line for line in seen.ignored_signals) == 3
        approve, _ = recovery.links(operator="alice")
        assert "acts as alice" in (await follow("GET", approve))[1]
        status, page, _ = await follow("POST", approve)
        assert status == 200, page
        handle = recovery_handle(fleet.client, service, recovery.run_id)
        assert (await asyncio.wait_for(handle.result(), timeout=30)).success
        [attempt] = await handle.query("history")
        assert attempt["approved_by"] == "alice"
