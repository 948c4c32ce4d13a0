"""The circuit watch's looks on a real dev server: open breakers in, recoveries out, once each.

Each test runs single looks (``watch_once``); the long-lived watch the worker keeps
(interval, pause, continue-as-new, current details) is ``test_circuit_watch_long_lived``.

The breakers are opened in a real SQLite store (as a service's pybreaker would; the
pybreaker interop itself is ``test_breaker_interop``), the checks are real HTTP
and TCP checks against loopback, and the coordinator is a test's own.
"""

from __future__ import annotations

import asyncio

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.coordinator_client import CoordinatorClient
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.breakers import state_of
from tests.helpers.coordination import coordinator_history, wait_all_finished
from tests.helpers.histories import record_history
from tests.helpers.policies import blocking_policy
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from tests.helpers.watching import watch_once
from workflows.circuit_watch_models import CircuitWatchInput, ServiceSettings, WatchInput, WatchResult
from workflows.coordinator_models import ConfigureInput
from workflows.models import RecoveryPolicy

pytestmark = pytest.mark.timeout(90)
QUICK = dict(initial_delay_ms=50, max_delay_ms=50)


def names(prefix: str, *parts: str) -> list[str]:
    return [f"{prefix}-{part}" for part in parts]


async def test_an_open_breaker_is_recovered_and_closed_and_a_closed_one_left_alone(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    broken, fine = names(service, "broken", "fine")
    store.set_state(broken, BreakerState.OPEN)
    store.set_state(fine, BreakerState.CLOSED)
    async with health_server([200]) as server:
        settings = ServiceSettings(
            priority=2,
            policy=RecoveryPolicy(health_check=HttpHealthCheck(url=server.url), **QUICK),
        )
        result = await watch_once(
            dev_env.client, orchestrator, task_queue, services={broken: settings}
        )
        assert result.open_breakers == [broken] and result.scheduled == [broken]
        status = await wait_all_finished(orchestrator)
    [ended] = [r for r in status["recent_history"] if r["service_name"] == broken]
    assert ended["state"] == "succeeded" and ended["health_check_passed"] is True
    assert server.requests == 1
    assert state_of(store, broken) is BreakerState.CLOSED


async def test_many_watch_runs_during_one_recovery_schedule_it_once(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    store.set_state(service, BreakerState.OPEN)
    settings = WatchInput(defaults=ServiceSettings(policy=blocking_policy()))
    first = await watch_once(dev_env.client, orchestrator, task_queue, defaults=settings.defaults)
    assert first.scheduled == [service]
    later = [
        await watch_once(dev_env.client, orchestrator, task_queue, defaults=settings.defaults)
        for _ in range(4)
    ]
    assert all(r.scheduled == [] for r in later)
    # A run that looked while the attempt had the breaker half-open did not see it open.
    seen = [r.skipped[service] for r in later if service in r.open_breakers]
    assert seen and set(seen) <= {"already queued", "already recovering (in_progress)"}
    runs = [
        w async for w in dev_env.client.list_workflows(
            f"WorkflowId = 'recovery-{service}'"
        )
    ]
    assert len(runs) == 1, "one recovery, however many times the watch looked"
    status = await orchestrator.get_recovery_status()
    assert status["services"][service]["state"] == "in_progress"


async def test_unlisted_breakers_follow_the_file(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    store.set_state(service, BreakerState.OPEN)
    result = await watch_once(
        dev_env.client, orchestrator, task_queue, recover_unlisted=False, source="/etc/recovery.toml"
    )
    assert result.scheduled == []
    assert result.skipped[service] == "not listed in /etc/recovery.toml (recover_unlisted = false)"


async def test_a_dependent_waits_for_its_dependency_then_is_recovered(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    db, api = names(service, "db", "api")
    for name in (db, api):
        store.set_state(name, BreakerState.OPEN)
    # db's check fails twice, then passes: api must wait through all of it.
    async with health_server([503, 503, 200]) as db_health, health_server([200]) as api_health:
        services = {
            db: ServiceSettings(
                priority=5,
                policy=RecoveryPolicy(health_check=HttpHealthCheck(url=db_health.url), initial_delay_ms=300, max_delay_ms=300),
            ),
            api: ServiceSettings(
                priority=1,
                policy=RecoveryPolicy(
                    depends_on=[db], health_check=HttpHealthCheck(url=api_health.url), **QUICK
                ),
            ),
        }
        await watch_once(
            dev_env.client, orchestrator, task_queue, services=services)
        waiting = await eventually(
            orchestrator.get_recovery_status,
            lambda s: api in s["services"] and "waiting_for" in s["services"][api],
        )
        assert waiting["services"][api]["state"] == "scheduled"
        assert waiting["services"][api]["waiting_for"] == [db]
        status = await wait_all_finished(orchestrator)
    record_history(await coordinator_history(orchestrator), "coordinator_depends_on")
    order = [r["service_name"] for r in status["recent_history"]]
    assert order.index(db) < order.index(api)
    assert {r["service_name"]: r["state"] for r in status["recent_history"]} == {
        db: "succeeded", api: "succeeded",
    }
    assert db_health.requests == 3 and api_health.requests == 1


async def test_dependents_of_a_failed_dependency_are_not_attempted_and_say_why(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    db, api = names(service, "db", "api")
    for name in (db, api):
        store.set_state(name, BreakerState.OPEN)
    async with health_server([503]) as db_health, health_server([200]) as api_health:
        services = {
            db: ServiceSettings(
                policy=RecoveryPolicy(
                    max_retry_attempts=2, health_check=HttpHealthCheck(url=db_health.url), **QUICK
                )
            ),
            api: ServiceSettings(
                policy=RecoveryPolicy(depends_on=[db], health_check=HttpHealthCheck(url=api_health.url)),
            ),
        }
        await watch_once(dev_env.client, orchestrator, task_queue, services=services)
        status = await wait_all_finished(orchestrator)
    ended = {r["service_name"]: r for r in status["recent_history"]}
    assert ended[db]["state"] == "failed"
    assert ended[api]["state"] == "failed"
    assert ended[api]["error_message"] == f"not attempted: dependency '{db}' failed"
    assert ended[api]["attempt_number"] == 0 and api_health.requests == 0
    assert state_of(store, api) is BreakerState.OPEN


async def test_a_held_back_service_is_left_and_the_look_says_until_when(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    store.set_state(service, BreakerState.OPEN)
    async with health_server([503]) as health:
        defaults = ServiceSettings(
            policy=RecoveryPolicy(
                max_retry_attempts=2, max_attempts_per_hour=2,
                health_check=HttpHealthCheck(url=health.url), **QUICK,
            )
        )
        first = await watch_once(dev_env.client, orchestrator, task_queue, defaults=defaults)
        assert first.scheduled == [service]
        await wait_all_finished(orchestrator)
        assert state_of(store, service) is BreakerState.OPEN
        again = await watch_once(dev_env.client, orchestrator, task_queue, defaults=defaults)
    assert again.scheduled == []
    # The failure's cool-down (or, past it, the storm guard's budget) holds it back.
    reason = again.skipped[service]
    assert reason.startswith(("cool-down", "storm guard: 2 attempts in the last hour")), reason
    status = await orchestrator.get_recovery_status(max_staleness=0)  # the watch wrote, not us
    held = status["held_back"][service]
    assert held["reason"] == reason and held["until"] > status["timestamp"]
    assert service not in status["services"]
    assert health.requests == 2


async def test_the_watch_never_starts_a_coordinator_of_its_own(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    store.set_state(service, BreakerState.OPEN)
    # One look (``once``) at a coordinator that is not there.
    for target, expected in (
        (f"nowhere-{service}", "no RecoveryCoordinator is running as"),
        ("recovery-" + service, "no RecoveryCoordinator is running as"),
    ):
        result = await dev_env.client.execute_workflow(
            "CircuitWatch",
            CircuitWatchInput(settings=WatchInput(coordinator_workflow_id=target), once=True),
            id=f"watch-{target}",
            task_queue=task_queue,
            result_type=WatchResult,
            execution_timeout=timedelta(seconds=60),
        )
        assert expected in (result.refused or "")
        assert [w async for w in dev_env.client.list_workflows(f"WorkflowId = '{target}'")] == []


async def test_a_stopped_orchestrator_refuses_the_whole_hand_over_at_once(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    for index in range(30):
        store.set_state(f"{service}-{index}", BreakerState.OPEN)
    await orchestrator.stop()
    result = await watch_once(dev_env.client, orchestrator, task_queue)
    assert result.scheduled == [] and "not running" in (result.refused or "")
    assert len(result.skipped) == 0, "refused as a whole, not dropped one service at a time"


async def test_a_nearly_full_coordinator_takes_the_most_urgent_open_breakers(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    coordinator = CoordinatorClient(
        dev_env.client, workflow_id=orchestrator.coordinator_workflow_id, task_queue=task_queue
    )
    await coordinator.configure(ConfigureInput(queue_limit=2, max_concurrent_recoveries=1))
    services = {}
    for priority in (4, 1, 3, 2):
        name = f"{service}-p{priority}"
        store.set_state(name, BreakerState.OPEN)
        services[name] = ServiceSettings(priority=priority, policy=blocking_policy())
    result = await watch_once(dev_env.client, orchestrator, task_queue, services=services)
    assert sorted(result.scheduled) == [f"{service}-p1", f"{service}-p2"]
    assert "queue_limit is 2" in result.skipped[f"{service}-p3"]
    assert "queue_limit is 2" in result.skipped[f"{service}-p4"]


async def test_the_watch_does_not_undo_an_operators_cancel(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    store.set_state(service, BreakerState.OPEN)
    defaults = ServiceSettings(policy=blocking_policy())
    assert (await watch_once(dev_env.client, orchestrator, task_queue, defaults=defaults)).scheduled == [service]
    assert await orchestrator.cancel_recovery(service)
    await eventually(lambda: asyncio.to_thread(store.get_state, service), lambda r: r is not None and r.state is BreakerState.OPEN)
    again = await watch_once(dev_env.client, orchestrator, task_queue, defaults=defaults)
    assert again.scheduled == [] and "cancelled by an operator" in again.skipped[service]
    # Scheduling it by hand lifts that, for the watch too.
    await orchestrator.schedule_recovery(service, policy=blocking_policy())
    await orchestrator.cancel_recovery(service)
    status = await orchestrator.get_recovery_status()
    assert service not in status["services"]


async def test_a_request_the_coordinator_refuses_is_dropped_and_the_rest_handed_over(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    task_queue: str, service: str,
) -> None:
    """The refusal names the request by its detail's ``index``, not by a message to parse."""
    bad, good = f"{service}-bad", f"{service}-good"
    for name in (bad, good):
        store.set_state(name, BreakerState.OPEN)
    wrong_hash = RecoveryPolicy(constitutional_hash="bad", health_check=HttpHealthCheck(url="http://127.0.0.1:9/h"))
    result = await watch_once(
        dev_env.client,
        orchestrator,
        task_queue,
        services={bad: ServiceSettings(priority=1, policy=wrong_hash), good: ServiceSettings(priority=2)},
        recover_unlisted=False,
    )
    assert result.scheduled == [good]
    assert "Constitutional hash mismatch" in result.skipped[bad]
    assert result.refused is None
