"""Automation that never lies and never overrules the operator (issue 17), end to end.

A real worker and coordinator on the dev server, the long-lived circuit watch looking
every second, a Redis store shared with services guarded by real pybreaker breakers
(each in a process of its own), and real HTTP health checks on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.redis_store import RedisBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.pybreaker_service import ServiceProcess, running_service
from tests.helpers.servers import free_port, health_server
from tests.helpers.waiting import eventually
from tests.helpers.watching import long_lived_watch, watch_id, watch_until
from tests.helpers.workers import orchestrator_on
from workflows.circuit_watch_models import ServiceSettings
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryPolicy, RecoveryStrategy
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(120)


def open_breaker(service: ServiceProcess) -> None:
    """Fail the service's calls until its own pybreaker opens (fail_max=3)."""
    for _ in range(3):
        service.ask("fail")
    assert service.ask("state")["state"] == "open"


@asynccontextmanager
async def fleet(
    dev_env: WorkflowEnvironment, redis_url: str, task_queue: str
) -> AsyncIterator[tuple[RecoveryOrchestrator, RedisBreakerStore]]:
    store = RedisBreakerStore.from_url(redis_url)
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        yield orch, store
    store.close()


def latest(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in reversed(status["recent_history"]) if r["service_name"] == name), None)


async def test_a_failed_hand_scheduled_recovery_stays_the_latest_outcome(
    dev_env: WorkflowEnvironment, redis_url: str, task_queue: str, service: str, tmp_path: Path
) -> None:
    dead = RecoveryPolicy(
        max_retry_attempts=2,
        health_check=HttpHealthCheck(url=f"http://127.0.0.1:{free_port()}/health", timeout_ms=300),
    )
    async with fleet(dev_env, redis_url, task_queue) as (orch, store):
        with running_service(redis_url, tmp_path, service) as guarded:
            open_breaker(guarded)
            await orch.schedule_recovery(service, strategy=RecoveryStrategy.IMMEDIATE, policy=dead)
            status = await eventually(
                lambda: orch.get_recovery_status(max_staleness=0),
                lambda s: latest(s, service) is not None,
            )
            async with long_lived_watch(dev_env.client, orch, task_queue, interval=1.0) as started:
                # Several looks after the failure: each sees the breaker open, none recovers it.
                looks = await watch_until(
                    dev_env.client, watch_id(task_queue), lambda w: w.looks >= started.looks + 4
                )
            status = await orch.get_recovery_status(max_staleness=0)
            last = latest(status, service)
            assert last is not None and last["state"] == "failed"
            assert "cool-down" in status["held_back"][service]["reason"]
            assert looks.last_look is not None and "cool-down" in looks.last_look.skipped[service]
            record = store.get_state(service)
            assert record is not None and record.state is BreakerState.OPEN
            assert guarded.ask("state")["state"] == "open"


async def test_a_breaker_with_no_check_anywhere_is_closed_only_by_the_services_own_calls(
    dev_env: WorkflowEnvironment, redis_url: str, task_queue: str, service: str, tmp_path: Path
) -> None:
    async with fleet(dev_env, redis_url, task_queue) as (orch, store):
        with running_service(redis_url, tmp_path, service) as guarded:
            open_breaker(guarded)
            async with long_lived_watch(dev_env.client, orch, task_queue, interval=1.0):
                status = await eventually(
                    lambda: orch.get_recovery_status(max_staleness=0),
                    lambda s: "no health check" in s["services"].get(service, {}).get("reason", ""),
                )
                handle = dev_env.client.get_workflow_handle_for(
                    ServiceRecovery.run, recovery_workflow_id(service)
                )
                await eventually(
                    lambda: handle.query(ServiceRecovery.status),
                    lambda s: s.phase.value == "breaker_trial",
                )
                # Automation reset it to half-open and waits for evidence; it closes nothing.
                record = store.get_state(service)
                assert record is not None and record.state is BreakerState.HALF_OPEN
                # The service's own calls go through half-open and close it (success_threshold=2).
                assert guarded.ask("call")["outcome"] == "ok"
                assert guarded.ask("call")["state"] == "closed"
                status = await eventually(
                    lambda: orch.get_recovery_status(max_staleness=0),
                    lambda s: latest(s, service) is not None,
                    timeout=40,
                )
            last = latest(status, service)
            assert last is not None and last["state"] == "succeeded"
            assert last["health_check_passed"] is False  # no check ran: none is claimed
            attempts = await handle.query(ServiceRecovery.history)
            assert attempts[-1].evidence == "breaker_trial"


async def test_a_checked_service_is_detected_and_recovered_with_its_check(
    dev_env: WorkflowEnvironment, redis_url: str, task_queue: str, service: str, tmp_path: Path
) -> None:
    async with health_server([200]) as server:
        checked = RecoveryPolicy(health_check=HttpHealthCheck(url=server.url))
        services = {service: ServiceSettings(priority=1, policy=checked)}
        async with fleet(dev_env, redis_url, task_queue) as (orch, store):
            with running_service(redis_url, tmp_path, service) as guarded:
                open_breaker(guarded)
                async with long_lived_watch(
                    dev_env.client, orch, task_queue, interval=1.0, services=services
                ):
                    status = await eventually(
                        lambda: orch.get_recovery_status(max_staleness=0),
                        lambda s: latest(s, service) is not None,
                    )
                last = latest(status, service)
                assert last is not None and last["state"] == "succeeded"
                assert last["health_check_passed"] is True and server.requests >= 1
                record = store.get_state(service)
                assert record is not None and record.state is BreakerState.CLOSED
                assert guarded.ask("call")["outcome"] == "ok"


async def test_a_pause_holds_the_watch_off_and_a_resume_releases_it(
    dev_env: WorkflowEnvironment, redis_url: str, task_queue: str, service: str, tmp_path: Path
) -> None:
    async with health_server([200]) as server:
        checked = RecoveryPolicy(health_check=HttpHealthCheck(url=server.url))
        services = {service: ServiceSettings(policy=checked)}
        async with fleet(dev_env, redis_url, task_queue) as (orch, store):
            await orch.pause_service(service, duration=600, reason="db failover")
            with running_service(redis_url, tmp_path, service) as guarded:
                open_breaker(guarded)
                async with long_lived_watch(
                    dev_env.client, orch, task_queue, interval=1.0, services=services
                ) as started:
                    looked = await watch_until(
                        dev_env.client,
                        watch_id(task_queue),
                        lambda w: w.looks >= started.looks + 3
                        and w.last_look is not None
                        and service in w.last_look.skipped,
                    )
                    assert looked.last_look is not None
                    assert "db failover" in looked.last_look.skipped[service]
                    status = await orch.get_recovery_status(max_staleness=0)
                    assert service not in status["services"] and service in status["paused"]
                    await orch.resume_service(service)
                    status = await eventually(
                        lambda: orch.get_recovery_status(max_staleness=0),
                        lambda s: latest(s, service) is not None,
                    )
                last = latest(status, service)
                assert last is not None and last["state"] == "succeeded"
                assert guarded.ask("call")["outcome"] == "ok"
