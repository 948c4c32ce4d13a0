"""One coordinator holding 10,000 services: inside 2 MB across continue-as-new, none lost."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.policies import blocking_policy
from tests.helpers.workers import orchestrator_on
from workflows.carried_state import CoordinatorState
from workflows.converter import data_converter
from workflows.coordinator_models import CoordinatorInput
from workflows.coordinator_state import CARRIED_STATE_BUDGET
from workflows.ledger.lifecycle import ActiveRecovery
from workflows.models import RecoveryPolicy, RecoveryState, RecoveryStrategy, RecoveryTask

SERVICES = 10_000
BATCH = 1000


def queued_state(count: int) -> CoordinatorState:
    now = datetime.now(timezone.utc)
    shared = RecoveryPolicy()
    own = RecoveryPolicy(max_retry_attempts=3, health_check=blocking_policy().health_check)
    queue = [
        RecoveryTask(
            priority=i % 7, service_name=f"svc-{i:05}", policy=own if i % 100 == 0 else shared,
            scheduled_at=now, sequence=i, strategy=RecoveryStrategy.LINEAR_BACKOFF,
        )
        for i in range(count)
    ]
    running = RecoveryTask(
        priority=0, service_name="running", policy=own, state=RecoveryState.IN_PROGRESS,
        attempt_count=2, last_attempt_at=now, next_attempt_at=now,
    )
    return CoordinatorState(queue=queue, active={"running": ActiveRecovery(task=running, run_id="r")})


def test_compact_hand_over_round_trips_and_fits() -> None:
    state = queued_state(SERVICES)
    payload = data_converter.payload_converter.to_payloads([CoordinatorInput(state=state)])[0]
    assert len(payload.data) < CARRIED_STATE_BUDGET
    back = data_converter.payload_converter.from_payloads([payload], [CoordinatorInput])[0]
    assert back.state == state
    # Each distinct policy is one object again: the next hand-over stays as compact.
    assert back.state.queue[1].policy is back.state.queue[2].policy


def test_the_plain_form_of_earlier_runs_still_decodes() -> None:
    state = queued_state(3)
    plain = CoordinatorInput(state=state).model_dump(mode="python")
    assert CoordinatorInput.model_validate(plain).state == state


@pytest.mark.timeout(180)
async def test_ten_thousand_queued_survive_continue_as_new(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue, max_concurrent_recoveries=1) as orch:
        await orch.schedule_recovery(f"{service}-blocker", priority=0, policy=blocking_policy())
        coordinator = dev_env.client.get_workflow_handle(orch.coordinator_workflow_id)
        await coordinator.execute_update("configure", {"queue_limit": SERVICES + 100})
        names = [f"{service}-{i:05}" for i in range(SERVICES)]
        for start in range(0, SERVICES, BATCH):
            results = await coordinator.execute_update(
                "schedule_recoveries",
                {"recoveries": [{"service_name": n, "priority": 5} for n in names[start : start + BATCH]]},
            )
            assert {r["outcome"] for r in results} == {"queued"}
        first_run = (await coordinator.describe()).run_id
        await coordinator.execute_update("configure", {"continue_as_new_after_events": 100})
        # Scheduled, a few at a time, until and while the hand-over happens: none lost.
        late: list[str] = []
        while (await coordinator.describe()).run_id == first_run:
            assert len(late) < 200, "the coordinator never continued as new"
            batch = [f"{service}-late-{len(late) + i}" for i in range(4)]
            await asyncio.gather(*(
                coordinator.execute_update("schedule_recovery", {"service_name": n, "priority": 9})
                for n in batch
            ))
            late += batch
        status = await orch.get_recovery_status(max_staleness=0)
    assert set(names) | set(late) <= set(status["services"])
    assert status["queued_recoveries"] == SERVICES + len(late)


@pytest.mark.parametrize(
    "broken",
    [{"queue": 5}, {"queue": None}, {"active": [1, 2]}, {"active": {"svc": 3}}, {"active": {"svc": {}}},
     {"queue": [["svc", 1, "immediate", True, "2026-01-01T00:00:00Z", 1]]}],
    ids=["queue-int", "queue-null", "active-list", "active-int", "active-no-task", "index-bool"],
)
def test_a_malformed_compact_state_is_refused_as_bad_input(broken: dict[str, object]) -> None:
    """Refused by validation (the workflow ends with the message), never a Python error."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        CoordinatorInput.model_validate({"state": {"policy_table": [{}], **broken}})
