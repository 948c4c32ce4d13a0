"""RecoveryCoordinator through the facade, on the real dev server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck, TcpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.coordination import child_runs, coordinator_history, wait_all_finished
from tests.helpers.histories import record_history
from tests.helpers.policies import blocking_policy
from tests.helpers.servers import free_port, health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows.constants import recovery_workflow_id
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryStrategy

pytestmark = pytest.mark.timeout(90)


async def wait_state(orchestrator: RecoveryOrchestrator, service: str, state: str) -> dict[str, Any]:
    return await eventually(
        orchestrator.get_recovery_status,
        lambda s: s["services"].get(service, {}).get("state") == state,
    )


async def test_a_free_slot_goes_to_the_best_priority_fifo_within_a_priority(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    blocker = f"{service}-blocker"
    names = {p: f"{service}-{p}" for p in ("p5", "p1a", "p3", "p1b")}
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await orch.schedule_recovery(blocker, priority=1, policy=blocking_policy())
        await wait_state(orch, blocker, "in_progress")
        for key, priority in (("p5", 5), ("p1a", 1), ("p3", 3), ("p1b", 1)):
            await orch.schedule_recovery(names[key], priority=priority)
        status = await orch.get_recovery_status()
        assert status["queued_recoveries"] == 4 and status["active_recoveries"] == 5
        assert await orch.cancel_recovery(blocker)
        final = await wait_all_finished(orch)
        record_history(await coordinator_history(orch), "coordinator_priority_order_start_all_free_slots")
    spans = await child_runs(dev_env.client, list(names.values()))
    started_order = sorted(spans, key=lambda name: spans[name][0])
    assert started_order == [names["p1a"], names["p1b"], names["p3"], names["p5"]]
    # One slot: each started only after the one before it had closed.
    for before, after in zip(started_order, started_order[1:]):
        closed = spans[before][1]
        assert closed is not None and closed <= spans[after][0]
    history = [(r["service_name"], r["state"]) for r in final["recent_history"]]
    assert history[0] == (blocker, "cancelled")
    assert [name for name, _ in history[1:]] == started_order


async def test_fifty_concurrent_schedules_through_one_facade_all_land(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await orch.schedule_recovery(f"{service}-blocker", policy=blocking_policy())
        names = [f"{service}-{i}" for i in range(50)]
        results = await asyncio.gather(
            *(orch.schedule_recovery(name, priority=i % 7) for i, name in enumerate(names))
        )
        assert [r.outcome for r in results] == ["queued"] * 50
        status = await orch.get_recovery_status()
        assert status["queued_recoveries"] == 50
        assert set(names) <= set(status["services"])


async def test_never_more_than_n_run_and_freed_slots_refill_at_once(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with health_server([500]) as failing, health_server([200]) as healthy:
        fail = RecoveryPolicy(max_retry_attempts=2, initial_delay_ms=200,
                              health_check=HttpHealthCheck(url=failing.url))
        ok = RecoveryPolicy(health_check=HttpHealthCheck(url=healthy.url))
        plan = [(f"{service}-{i}", fail if i % 2 else ok) for i in range(7)]
        cancelled = f"{service}-cancelled"
        async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=2) as orch:
            await orch.schedule_recovery(cancelled, priority=0, policy=blocking_policy())
            await wait_state(orch, cancelled, "in_progress")
            for name, policy in plan:
                await orch.schedule_recovery(name, priority=1, policy=policy)
            seen_queued = []
            while True:
                status = await orch.get_recovery_status()
                running = [n for n, e in status["services"].items() if e["state"] == "in_progress"]
                assert len(running) <= 2
                assert status["queued_recoveries"] == sum(
                    1 for e in status["services"].values() if e["state"] == "scheduled"
                )
                seen_queued.append(status["queued_recoveries"])
                if status["queued_recoveries"] <= 3:
                    break
                await asyncio.sleep(0.05)
            assert await orch.cancel_recovery(cancelled)
            final = await wait_all_finished(orch)
    services = [cancelled] + [name for name, _ in plan]
    spans = await child_runs(dev_env.client, services)
    events = sorted(
        [(start, +1) for start, _ in spans.values()]
        + [(end, -1) for _, end in spans.values() if end is not None],
        key=lambda e: (e[0], e[1]),
    )
    concurrent = peak = 0
    for _, delta in events:
        concurrent += delta
        peak = max(peak, concurrent)
    assert peak <= 2
    closes = sorted(end for _, end in spans.values() if end is not None)
    for name, _ in plan[2:]:
        start = spans[name][0]
        freed = max(end for end in closes if end <= start)
        assert start - freed < timedelta(seconds=2), f"{name} waited {start - freed} for a free slot"
    outcomes = {r["service_name"]: r["state"] for r in final["recent_history"]}
    assert outcomes[plan[0][0]] == "succeeded" and outcomes[plan[1][0]] == "failed"
    # Six wait at first; the first healthy one may already have finished (and the
    # next started) by the first read.
    assert max(seen_queued) in (5, 6)


async def test_status_has_every_key_and_type_of_the_reference(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await orch.set_recovery_policy(f"{service}-idle", RecoveryPolicy(max_retry_attempts=7))
        await orch.schedule_recovery(f"{service}-run", policy=blocking_policy())
        await eventually(
            orch.get_recovery_status,
            lambda s: s["services"].get(f"{service}-run", {}).get("next_attempt_at") is not None,
        )
        await orch.schedule_recovery(f"{service}-wait", priority=3)
        status = await orch.get_recovery_status()
    assert set(status) == {
        "constitutional_hash", "timestamp", "orchestrator_running", "active_recoveries",
        "queued_recoveries", "services", "recent_history",
    }
    assert status["constitutional_hash"] == "cdd01ef066bc6cf2"
    assert isinstance(status["timestamp"], str) and status["timestamp"].endswith("+00:00")
    assert status["orchestrator_running"] is True
    assert (status["active_recoveries"], status["queued_recoveries"]) == (2, 1)
    entries = status["services"]
    assert {k: entries[f"{service}-{k}"]["state"] for k in ("idle", "run", "wait")} == {
        "idle": "idle", "run": "in_progress", "wait": "scheduled",
    }
    for entry in entries.values():
        assert set(entry) == {
            "state", "strategy", "priority", "attempt_count", "max_attempts",
            "scheduled_at", "last_attempt_at", "next_attempt_at",
        }
    running = entries[f"{service}-run"]
    assert running["attempt_count"] == 1 and isinstance(running["scheduled_at"], str)
    assert isinstance(running["next_attempt_at"], str)
    assert entries[f"{service}-idle"]["max_attempts"] == 7
    assert entries[f"{service}-wait"]["priority"] == 3


async def test_manual_recoveries_hold_no_slot_and_execute_approves_one_attempt(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with health_server([503, 200]) as server:
        manual_policy = RecoveryPolicy(health_check=HttpHealthCheck(url=server.url))
        # Four MANUAL recoveries and four slots: were they holding slots, nothing else could run.
        async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=4) as orch:
            manuals = [f"{service}-m{i}" for i in range(4)]
            for name in manuals:
                await orch.schedule_recovery(name, RecoveryStrategy.MANUAL, policy=manual_policy)
            for name in manuals:
                await wait_state(orch, name, "awaiting_manual")
            automatic = f"{service}-auto"
            await orch.schedule_recovery(automatic, priority=9)
            await eventually(
                orch.get_recovery_status,
                lambda s: automatic not in s["services"]
                and any(r["service_name"] == automatic for r in s["recent_history"]),
            )
            first = await orch.execute_recovery(manuals[0])
            assert first.state.value == "awaiting_manual" and first.attempt_number == 1
            assert not first.success and "503" in (first.error_message or "")
            await orch.approve_recovery(manuals[0], operator="alice", note="db restarted")
            status = await eventually(
                orch.get_recovery_status, lambda s: manuals[0] not in s["services"]
            )
            assert status["recent_history"][-1]["service_name"] == manuals[0]
            assert status["recent_history"][-1]["state"] == "succeeded"
            assert status["active_recoveries"] == 3


async def test_execute_recovery_starts_a_queued_service_outside_the_slots(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await orch.schedule_recovery(f"{service}-blocker", policy=blocking_policy())
        await orch.schedule_recovery(service, priority=5)
        result = await orch.execute_recovery(service)
        status = await orch.get_recovery_status()
    assert result.success and result.attempt_number == 1 and result.service_name == service
    assert status["services"][f"{service}-blocker"]["state"] == "in_progress"
    assert status["recent_history"][-1]["service_name"] == service


async def test_duplicates_update_the_queue_entry_or_leave_the_running_one(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        running = f"{service}-running"
        await orch.schedule_recovery(running, policy=blocking_policy())
        await wait_state(orch, running, "in_progress")
        again = await orch.schedule_recovery(running, priority=9)
        assert (again.outcome, again.state) == ("already_running", "in_progress")
        await orch.schedule_recovery(service, priority=5)
        updated = await orch.schedule_recovery(service, RecoveryStrategy.LINEAR_BACKOFF, priority=2)
        assert updated.outcome == "updated"
        entry = (await orch.get_recovery_status())["services"][service]
        assert (entry["priority"], entry["strategy"]) == (2, "linear_backoff")
        first = await orch.execute_recovery(service)
        await orch.schedule_recovery(service, priority=2)
        second = await orch.execute_recovery(service)
        handle = dev_env.client.get_workflow_handle(recovery_workflow_id(service))
        runs = [w.run_id async for w in dev_env.client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert first.success and second.success
    assert len(set(runs)) == 2, "a finished recovery gets a new run under the same id"


async def test_policy_precedence_passed_then_service_then_default(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    default = RecoveryPolicy(max_retry_attempts=2)
    async with orchestrator_on(
        dev_env, store, task_queue, default_policy=default, max_concurrent_recoveries=1
    ) as orch:
        await orch.schedule_recovery(f"{service}-blocker", policy=blocking_policy())
        await orch.set_recovery_policy(f"{service}-own", RecoveryPolicy(max_retry_attempts=6))
        assert (await orch.get_recovery_policy(f"{service}-own")).max_retry_attempts == 6
        assert (await orch.get_recovery_policy(f"{service}-none")).max_retry_attempts == 2
        await orch.schedule_recovery(f"{service}-own")
        await orch.schedule_recovery(f"{service}-none")
        await orch.schedule_recovery(f"{service}-passed", policy=RecoveryPolicy(max_retry_attempts=9))
        entries = (await orch.get_recovery_status())["services"]
    assert entries[f"{service}-own"]["max_attempts"] == 6
    assert entries[f"{service}-none"]["max_attempts"] == 2
    assert entries[f"{service}-passed"]["max_attempts"] == 9


async def test_start_twice_and_schedule_before_start_are_refused(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    from starter.client.orchestrator import RecoveryOrchestrator

    idle = RecoveryOrchestrator(client=dev_env.client, task_queue=task_queue,
                                coordinator_workflow_id=f"coordinator-{task_queue}-idle")
    # No worker and no coordinator needed to be refused, to read status or to cancel nothing.
    with pytest.raises(RecoveryOrchestratorError, match="start"):
        await idle.schedule_recovery(service)
    with pytest.raises(RecoveryOrchestratorError, match="start"):
        await idle.execute_recovery(service)
    status = await idle.get_recovery_status()
    assert status["orchestrator_running"] is False and status["services"] == {}
    assert await idle.cancel_recovery(service) is False
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        with pytest.raises(RecoveryOrchestratorError, match="Recovery orchestrator is already running"):
            await orch.start()


async def test_stop_cancels_everything_until_started_again(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await orch.schedule_recovery(f"{service}-a", policy=blocking_policy())
        await orch.schedule_recovery(f"{service}-b")
        await wait_state(orch, f"{service}-a", "in_progress")
        await orch.stop()
        status = await wait_all_finished(orch)
        assert status["orchestrator_running"] is False
        assert {r["service_name"]: r["state"] for r in status["recent_history"]} == {
            f"{service}-a": "cancelled", f"{service}-b": "cancelled",
        }
        with pytest.raises(RecoveryOrchestratorError, match="start"):
            await orch.schedule_recovery(f"{service}-c")
        await orch.start()
        assert (await orch.get_recovery_status())["orchestrator_running"] is True
        await orch.schedule_recovery(f"{service}-c")
        await wait_all_finished(orch)


async def test_unknown_services_get_specific_errors(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        with pytest.raises(RecoveryValidationError, match=f"No active recovery task for service '{service}'"):
            await orch.execute_recovery(service)
        with pytest.raises(RecoveryValidationError, match=f"No active recovery task for service '{service}'"):
            await orch.approve_recovery(service, operator="alice")
        assert await orch.cancel_recovery(service) is False


async def test_approving_right_after_scheduling_a_manual_recovery_works(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """The README's snippet: schedule MANUAL, approve at once, no race with the child's start."""
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, RecoveryStrategy.MANUAL, priority=2)
        await orch.approve_recovery(service, operator="alice", note="replica promoted")
        status = await eventually(orch.get_recovery_status, lambda s: service not in s["services"])
    assert status["recent_history"][-1]["service_name"] == service
    assert status["recent_history"][-1]["state"] == "succeeded"


async def test_a_late_report_never_overwrites_a_newer_state(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """Reports carry a sequence: a stale ``in_progress`` arriving late is dropped."""
    from workflows.models import RecoveryPhase, RecoveryReport, RecoveryState, RecoveryStatus

    failing = RecoveryPolicy(health_check=TcpHealthCheck(host="127.0.0.1", port=free_port()))
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, RecoveryStrategy.MANUAL, policy=failing)
        await orch.approve_recovery(service, operator="alice")
        # Attempt 1 failed and the recovery waits again: its newest report has been applied.
        await eventually(
            orch.get_recovery_status,
            lambda s: s["services"][service]["attempt_count"] == 1
            and s["services"][service]["state"] == "awaiting_manual",
        )
        child = await dev_env.client.get_workflow_handle(recovery_workflow_id(service)).describe()
        stale = RecoveryReport(  # what the child said while attempt 1 ran
            service_name=service,
            run_id=child.run_id,
            sequence=2,
            status=RecoveryStatus(
                service_name=service, state=RecoveryState.IN_PROGRESS,
                strategy=RecoveryStrategy.MANUAL, priority=1, attempt_count=1, max_attempts=5,
                scheduled_at=child.start_time, phase=RecoveryPhase.RESETTING_BREAKER,
            ),
        )
        coordinator = dev_env.client.get_workflow_handle(orch.coordinator_workflow_id)
        await coordinator.signal("recovery_report", stale)
        await orch.schedule_recovery(f"{service}-probe", RecoveryStrategy.MANUAL)  # a later event
        status = await orch.get_recovery_status()
    assert status["services"][service]["state"] == "awaiting_manual"


async def test_schedule_recoveries_queues_a_batch_in_one_update(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await orch.schedule_recovery(f"{service}-blocker", policy=blocking_policy())
        coordinator = dev_env.client.get_workflow_handle(orch.coordinator_workflow_id)
        results = await coordinator.execute_update(
            "schedule_recoveries",
            {"recoveries": [{"service_name": f"{service}-{i}", "priority": i} for i in range(3)]},
        )
        status = await orch.get_recovery_status()
    assert [r["outcome"] for r in results] == ["queued"] * 3
    assert status["queued_recoveries"] == 3


async def test_close_disconnects_without_cancelling_anything(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    from starter.client.orchestrator import RecoveryOrchestrator

    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, policy=blocking_policy())
        await wait_state(orch, service, "in_progress")
        await orch.close()
        assert not orch.is_running
        # Still usable for reads through the client it was given (no envconfig reconnect).
        assert (await orch.get_recovery_status())["services"][service]["state"] == "in_progress"
        other = RecoveryOrchestrator(
            client=dev_env.client, task_queue=task_queue,
            coordinator_workflow_id=orch.coordinator_workflow_id,
        )
        status = await other.get_recovery_status()
        assert status["orchestrator_running"] is True
        assert status["services"][service]["state"] == "in_progress"
        await other.start()
        await other.stop()
