"""A pybreaker-guarded service in its own process, recovered end to end.

The service's breaker opens after real failures; the circuit watch finds it; the
recovery's activities reset it to half-open (which the service's own pybreaker
reads while the health check is held), then close or re-open it. On a real
``redis-server`` and a real SQLite file, with a real dev server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.store import CircuitBreakerStore
from recovery_breakers.stores import open_store
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.coordination import wait_all_finished
from tests.helpers.pybreaker_service import ServiceProcess, backdate_opened_at, running_service
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import GatedHealthServer, gated_health_server
from tests.helpers.waiting import eventually
from tests.helpers.watching import watch_once
from tests.helpers.workers import orchestrator_on
from workflows.circuit_watch_models import ServiceSettings
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryPolicy

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def shared_store(store_url: str) -> Iterator[CircuitBreakerStore]:
    store = open_store(store_url)
    yield store
    store.close()


@pytest_asyncio.fixture
async def orchestrator(
    dev_env: WorkflowEnvironment, shared_store: CircuitBreakerStore, task_queue: str
) -> AsyncIterator[RecoveryOrchestrator]:
    async with orchestrator_on(dev_env, shared_store, task_queue) as running:
        yield running


@pytest.fixture
def name() -> str:
    return f"pay-{uuid.uuid4().hex[:8]}"


def trip(service: ServiceProcess) -> dict[str, object]:
    """Fail calls until the service's own breaker opens; return what it then reads."""
    outcomes = [service.ask("fail")["outcome"] for _ in range(3)]
    assert outcomes == ["failed", "failed", "rejected"], outcomes
    return service.ask("state")


def settings(health: GatedHealthServer, attempts: int) -> ServiceSettings:
    return ServiceSettings(
        priority=1,
        policy=RecoveryPolicy(
            max_retry_attempts=attempts,
            initial_delay_ms=100,
            max_delay_ms=100,
            health_check=HttpHealthCheck(url=health.url, timeout_ms=30_000),
        ),
    )


async def test_the_watch_recovers_a_pybreaker_breaker_through_half_open_to_closed(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store_url: str,
    task_queue: str, tmp_path: Path, name: str,
) -> None:
    with running_service(store_url, tmp_path, name) as service:
        assert trip(service)["state"] == "open"
        async with gated_health_server() as health:
            found = await watch_once(
                dev_env.client, orchestrator, task_queue, services={name: settings(health, 1)}
            )
            assert found.open_breakers == [name] and found.scheduled == [name]
            await asyncio.wait_for(health.arrived.wait(), timeout=30)
            # The check is in flight: the recovery has reset the breaker, and pybreaker sees it.
            assert service.ask("state")["state"] == "half-open"
            health.release(200)
            status = await wait_all_finished(orchestrator)
        [ended] = status["recent_history"]
        assert (ended["service_name"], ended["state"], ended["attempt_number"]) == (name, "succeeded", 1)
        closed = service.ask("call")
        assert closed["outcome"] == "ok" and closed["state"] == "closed"
        assert (closed["fail_counter"], closed["success_counter"]) == (0, 0)


async def test_a_failing_check_reopens_the_breaker_with_a_newer_opened_at(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store_url: str,
    task_queue: str, tmp_path: Path, name: str,
) -> None:
    with running_service(store_url, tmp_path, name) as service:
        trip(service)
        # As if it had opened an hour ago: a re-opening must start its reset timeout again.
        an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
        backdate_opened_at(store_url, an_hour_ago, name)
        async with gated_health_server() as health:
            await watch_once(
                dev_env.client, orchestrator, task_queue, services={name: settings(health, 1)}
            )
            await asyncio.wait_for(health.arrived.wait(), timeout=30)
            assert service.ask("state")["state"] == "half-open"
            health.release(503)
            status = await wait_all_finished(orchestrator)
        assert [r["state"] for r in status["recent_history"]] == ["failed"]
        reopened = service.ask("call")
        assert reopened["state"] == "open" and reopened["outcome"] == "rejected"
        opened_at = reopened["opened_at"]
        assert isinstance(opened_at, float)
        assert opened_at > an_hour_ago.timestamp() + 3000, "opened_at was renewed"


async def test_redis_stopped_mid_recovery_and_started_again_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, name: str,
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    store = open_store(redis_url)
    try:
        async with orchestrator_on(dev_env, store, task_queue) as orchestrator:
            with running_service(redis_url, tmp_path, name) as service:
                trip(service)
                async with gated_health_server() as health:
                    await watch_once(
                        dev_env.client, orchestrator, task_queue,
                        services={name: settings(health, 3)},
                    )
                    await asyncio.wait_for(health.arrived.wait(), timeout=30)
                    redis_server.stop()  # the check passes while the store is away
                    health.release(200)
                    handle = dev_env.client.get_workflow_handle(recovery_workflow_id(name))
                    # The close is a local activity: its retries show in the worker's log.
                    await eventually(
                        lambda: _breaker_write_retried(caplog), bool, timeout=30
                    )
                    redis_server.start()
                    status = await wait_all_finished(orchestrator)
                [ended] = status["recent_history"]
                assert (ended["state"], ended["attempt_number"]) == ("succeeded", 1)
                assert health.requests == 1, "one attempt, one check: nothing doubled"
                assert service.ask("call")["state"] == "closed"
            kinds = [
                EventType.Name(event.event_type)
                async for event in handle.fetch_history_events()
                if event.event_type
                in (EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED, EventType.EVENT_TYPE_MARKER_RECORDED)
                and (
                    event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                    or event.marker_recorded_event_attributes.marker_name == "core_local_activity"
                )
            ]
            # reset, check, close, each recorded once: the close was retried inside the
            # worker until Redis came back, and recorded when it succeeded.
            assert kinds.count("EVENT_TYPE_MARKER_RECORDED") == 2
            assert kinds.count("EVENT_TYPE_ACTIVITY_TASK_STARTED") == 1
    finally:
        store.close()


async def _breaker_write_retried(caplog: pytest.LogCaptureFixture) -> bool:
    """Return True once the worker has logged a breaker write failing and being retried."""
    return any(
        "'activity_type': 'set_breaker_state', 'attempt': 2" in record.getMessage()
        for record in caplog.records
    )
