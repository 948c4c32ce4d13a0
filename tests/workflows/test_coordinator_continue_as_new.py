"""Continue-as-new while updates keep arriving: nothing queued, running or configured is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timezone

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

import workflows.ledger.budget

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.coordination import coordinator_history, wait_all_finished
from tests.helpers.histories import record_history
from tests.helpers.raw_coordinator import Coordinator
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on, running_worker
from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.converter import data_converter
from workflows.coordinator_models import CoordinatorInput
from workflows.models import RecoveryPolicy, RecoveryStrategy

pytestmark = pytest.mark.timeout(180)


async def test_hand_overs_lose_nothing_and_record_each_finish_once(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=3) as orch:
        coordinator = client.get_workflow_handle(orch.coordinator_workflow_id)
        first_run = (await coordinator.describe()).run_id
        await coordinator.execute_update(
            "configure", {"continue_as_new_after_events": 100, "recent_history_size": 100}
        )
        await orch.set_recovery_policy(f"{service}-kept", RecoveryPolicy(max_retry_attempts=8))
        names = [f"{service}-{i:02d}" for i in range(40)]
        for batch in range(0, len(names), 8):
            await asyncio.gather(
                *(
                    orch.schedule_recovery(name, RecoveryStrategy.IMMEDIATE, priority=i % 3)
                    for i, name in enumerate(names[batch : batch + 8])
                )
            )
        final = await wait_all_finished(orch, timeout=120)
        runs = [e.run_id async for e in client.list_workflows(f"WorkflowId = '{coordinator.id}'")]
        info = await coordinator.query("get_configuration")
        kept = await orch.get_recovery_policy(f"{service}-kept")
        first = client.get_workflow_handle(coordinator.id, run_id=first_run)
        record_history(await first.fetch_history(), "coordinator_continued_as_new")
    assert len(runs) >= 3, f"expected several hand-overs, saw {len(runs)} runs"
    finished = Counter(r["service_name"] for r in final["recent_history"])
    assert set(finished) == set(names)
    assert all(count == 1 for count in finished.values()), finished.most_common(3)
    assert all(r["state"] == "succeeded" for r in final["recent_history"])
    assert info["config"]["max_concurrent_recoveries"] == 3
    assert info["config"]["continue_as_new_after_events"] == 100
    assert kept.max_retry_attempts == 8
    assert final["queued_recoveries"] == 0 and final["services"] == {
        f"{service}-kept": final["services"][f"{service}-kept"]
    }



async def test_a_recovery_terminated_after_a_hand_over_frees_its_slot(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """A run the new coordinator did not start, ended without a report, is still settled."""
    from tests.helpers.policies import blocking_policy

    client = dev_env.client
    blocker, waiting = f"{service}-blocker", f"{service}-waiting"
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        coordinator = client.get_workflow_handle(orch.coordinator_workflow_id)
        first_run = (await coordinator.describe()).run_id
        await coordinator.execute_update(
            "configure", {"continue_as_new_after_events": 100, "reconcile_interval_seconds": 1}
        )
        await orch.schedule_recovery(blocker, policy=blocking_policy())
        await orch.schedule_recovery(waiting, priority=5)
        for i in range(40):  # enough history for a hand-over
            await orch.set_recovery_policy(f"{service}-p{i}", RecoveryPolicy())
        await eventually(
            coordinator.describe, lambda d: d.run_id != first_run, timeout=30
        )
        await client.get_workflow_handle(f"recovery-{blocker}").terminate("operator pulled it")
        status = await wait_all_finished(orch, timeout=60)
        record_history(await coordinator_history(orch), "coordinator_settles_unreported_run")
    outcomes = {r["service_name"]: r for r in status["recent_history"]}
    assert outcomes[blocker]["state"] == "failed"
    assert "TERMINATED" in outcomes[blocker]["error_message"]
    assert outcomes[waiting]["state"] == "succeeded"


async def test_a_hand_over_past_its_limit_gives_up_the_rejections_first(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hand-over is encoded once; only one too large is trimmed (and encoded again).

    The limit is lowered to what this coordinator's state takes without its refusals,
    so that the refusals it collected push it over.
    """
    config = CoordinatorConfig(continue_as_new_after_events=100)
    bare_state = CoordinatorState(config=config, started_at=datetime.now(timezone.utc))
    without_refusals = data_converter.payload_converter.to_payloads(
        [CoordinatorInput(state=bare_state)]
    )[0]
    limit = len(without_refusals.data) + 200  # room for the times and counters it keeps
    monkeypatch.setattr(workflows.ledger.budget, "HAND_OVER_LIMIT", limit)
    client = dev_env.client
    async with running_worker(client, store, task_queue):
        handle = await client.start_workflow(
            "RecoveryCoordinator",
            CoordinatorInput(config=config),
            id=f"coordinator-{task_queue}",
            task_queue=task_queue,
        )
        first_run = (await handle.describe()).run_id
        coordinator = Coordinator(client, handle, task_queue, "")
        for index in range(4):
            await handle.signal("recovery_report", {"service_name": f"forged-{index}"})
        before = await eventually(
            coordinator.configuration, lambda c: len(c["rejected_signals"]) == 4
        )
        assert sum(len(line) for line in before["rejected_signals"]) > 200
        while (await handle.describe()).run_id == first_run:
            await handle.signal("nudge")
        after = await eventually(coordinator.configuration, lambda c: c is not None)
        first = await client.get_workflow_handle(handle.id, run_id=first_run).describe()
    assert first.status is WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert after["rejected_signals"] == []
    assert after["config"]["continue_as_new_after_events"] == 100
