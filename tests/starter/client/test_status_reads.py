"""Status reads through the facade against a real coordinator: fresh where it must be.

Read-your-writes holds with a warm cache; another client's write shows within the
staleness allowance; ``max_staleness=0`` is a fresh query; pages by name. How the
facade hands its two bounds to the cache (the grace of ``status_stale_while_refreshing``
for default reads only) is checked with a coordinator the test holds back.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowQueryFailedError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.status_cache import StatusCache
from tests.helpers.policies import blocking_policy
from tests.helpers.status_fakes import Clock, Coordinator, settle
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows.errors import RecoveryValidationError

pytestmark = pytest.mark.timeout(60)


async def test_own_writes_show_at_once_with_a_long_staleness_allowance(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(
        dev_env, store, task_queue, max_concurrent_recoveries=1, status_max_staleness=3600
    ) as orch:
        await orch.schedule_recovery(f"{service}-blocker", policy=blocking_policy())
        assert f"{service}-a" not in (await orch.get_recovery_status())["services"]
        await orch.schedule_recovery(f"{service}-a", policy=blocking_policy())
        assert (await orch.get_recovery_status())["services"][f"{service}-a"]["state"] == "scheduled"
        assert await orch.cancel_recovery(f"{service}-a")
        status = await orch.get_recovery_status()
        assert f"{service}-a" not in status["services"]
        assert status["recent_history"][-1]["service_name"] == f"{service}-a"


async def test_other_clients_writes_show_within_the_allowance_or_when_asked_fresh(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(
        dev_env, store, task_queue, max_concurrent_recoveries=1, status_max_staleness=0.5
    ) as orch:
        await orch.schedule_recovery(f"{service}-blocker", policy=blocking_policy())
        other = RecoveryOrchestrator(
            client=dev_env.client,
            task_queue=task_queue,
            coordinator_workflow_id=orch.coordinator_workflow_id,
        )
        await orch.get_recovery_status()
        await other.start()
        await other.schedule_recovery(f"{service}-b", policy=blocking_policy())
        assert f"{service}-b" in (await orch.get_recovery_status(max_staleness=0))["services"]
        await other.schedule_recovery(f"{service}-c", policy=blocking_policy())
        await eventually(
            orch.get_recovery_status, lambda s: f"{service}-c" in s["services"], timeout=3
        )


async def test_returned_document_is_the_callers_own(orchestrator: RecoveryOrchestrator) -> None:
    first = await orchestrator.get_recovery_status()
    first["services"]["made-up"] = {"state": "scheduled"}
    first["recent_history"].append({"service_name": "made-up"})
    again = await orchestrator.get_recovery_status()
    assert "made-up" not in again["services"]
    assert {"service_name": "made-up"} not in again["recent_history"]


async def test_pages_by_name_with_total_and_next_offset(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        names = [f"{service}-{i}" for i in range(5)]
        for name in reversed(names):
            await orch.schedule_recovery(name, policy=blocking_policy())
        first = await orch.get_recovery_status(limit=2)
        assert list(first["services"]) == names[:2]
        assert (first["total_services"], first["next_offset"]) == (5, 2)
        assert first["active_recoveries"] == 5  # the counts are the whole coordinator's
        last = await orch.get_recovery_status(limit=2, offset=4)
        assert list(last["services"]) == names[4:] and last["next_offset"] is None
        chosen = await orch.get_recovery_status(services=[names[3], "never-scheduled"])
        assert list(chosen["services"]) == [names[3]] and chosen["total_services"] == 1
        whole = await orch.get_recovery_status(max_staleness=0)
        assert "total_services" not in whole and set(whole["services"]) == set(names)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 2001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"services": ["bad/name"]}, "service"),
        ({"max_staleness": -1}, "max_staleness"),
        ({"max_staleness": float("nan")}, "max_staleness"),
        ({"max_staleness": 10**400}, "max_staleness.*integer of 1,329 bits"),
        ({"max_staleness": 86_401}, "max_staleness.*from 0 to 86,400"),
    ],
)
async def test_bad_status_arguments_are_refused_by_name(
    orchestrator: RecoveryOrchestrator, options: dict[str, object], message: str
) -> None:
    with pytest.raises(RecoveryValidationError, match=message):
        await orchestrator.get_recovery_status(**options)  # type: ignore[arg-type]  # wrong on purpose: the refusal is the test


async def test_bad_raw_page_query_fails_the_query_only(orchestrator: RecoveryOrchestrator) -> None:
    assert orchestrator._client is not None
    handle = orchestrator._client.get_workflow_handle(orchestrator.coordinator_workflow_id)
    with pytest.raises(WorkflowQueryFailedError, match="limit"):
        await handle.query("get_recovery_status", {"limit": "all"})
    with pytest.raises(WorkflowQueryFailedError, match="extra|unexpected|not permitted"):
        await handle.query("get_recovery_status", {"pages": 3})
    status = await handle.query("get_recovery_status")
    assert status["orchestrator_running"] is True


@pytest.mark.parametrize("services", ["payments", b"ab", {"a": 1}])
async def test_services_must_be_a_list_of_names(
    orchestrator: RecoveryOrchestrator, services: object
) -> None:
    with pytest.raises(RecoveryValidationError, match="services must be a list"):
        await orchestrator.get_recovery_status(services=services)  # type: ignore[arg-type]  # wrong on purpose: the refusal is the test


@pytest.mark.parametrize("value", [-1, float("inf"), "3"])
def test_bad_stale_while_refreshing_is_refused_by_name(value: object) -> None:
    with pytest.raises(RecoveryValidationError, match="status_stale_while_refreshing"):
        RecoveryOrchestrator(status_stale_while_refreshing=value)  # type: ignore[arg-type]  # wrong on purpose: the refusal is the test


@pytest.mark.timeout(10)
async def test_default_reads_get_the_grace_explicit_ones_and_writes_do_not() -> None:
    clock = Clock()
    coordinator = Coordinator(clock)
    orch = RecoveryOrchestrator(status_max_staleness=1.0, status_stale_while_refreshing=3.0)
    orch._status = StatusCache(coordinator.fetch, clock=clock)  # no server: held back at will
    assert (await orch.get_recovery_status())["answer"] == 1
    clock.now += 0.6
    coordinator.gate.clear()
    assert (await orch.get_recovery_status())["answer"] == 1  # refresh 2 in flight
    clock.now += 1.5  # answer 1 is 2.1 s old: past the target, inside the grace
    assert (await asyncio.wait_for(orch.get_recovery_status(), 1))["answer"] == 1
    explicit = asyncio.ensure_future(orch.get_recovery_status(max_staleness=1.0))
    fresh = asyncio.ensure_future(orch.get_recovery_status(max_staleness=0))
    await settle()
    assert not explicit.done() and not fresh.done()  # a per-call bound is hard
    with pytest.raises(RecoveryValidationError):
        await orch.cancel_recovery("bad/name")  # a write through the facade, refused or not
    after_write = asyncio.ensure_future(orch.get_recovery_status())
    await settle()
    assert not after_write.done()  # no grace after a write
    coordinator.gate.set()
    assert (await explicit)["answer"] == 3  # refresh 2 started 1.5 s before: too old
    assert (await fresh)["answer"] == 4
    assert (await after_write)["answer"] == 5
    assert coordinator.asked == 5
