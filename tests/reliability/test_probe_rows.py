"""Rows of the adversarial probe (issue 19) that no test held: names, races and doors."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.sqlite_store import SQLiteBreakerStore
from starter.coordinator_client import CoordinatorClient
from tests.conftest import orchestrator_on
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryInput
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryStrategy, validate_service_name

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("name", ["coordinator", "circuit-watch", "circuit-watch-1700000000"])
def test_names_that_take_the_products_own_workflow_ids_are_refused(name: str) -> None:
    with pytest.raises(RecoveryValidationError, match="is reserved"):
        validate_service_name(name)
    with pytest.raises(ValueError, match="is reserved"):
        ScheduleRecoveryInput(service_name=name)


@pytest.mark.parametrize("name", ["Coordinator", "coordinators", "my-coordinator", "circuit"])
def test_names_near_the_reserved_ones_are_fine(name: str) -> None:
    assert validate_service_name(name) == name


async def test_the_coordinators_own_name_is_refused_at_the_facade_and_the_raw_update(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        with pytest.raises(RecoveryValidationError, match="reserved"):
            await orch.schedule_recovery("coordinator")
        raw = dev_env.client.get_workflow_handle(f"coordinator-{task_queue}")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await raw.execute_update(
                "schedule_recovery", {"service_name": "coordinator", "priority": 1}
            )
        assert "reserved" in str(refused.value.cause)
        status = await orch.get_recovery_status(max_staleness=0)
        assert "coordinator" not in status["services"]


async def test_execute_does_not_start_a_service_ahead_of_a_dependency_awaiting_an_operator(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    database, api = f"{service}-db", f"{service}-api"
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(database, strategy=RecoveryStrategy.MANUAL)
        await orch.schedule_recovery(api, policy=RecoveryPolicy(depends_on=[database]))
        with pytest.raises(RecoveryOrchestratorError, match=f"waiting for '{database}'"):
            await orch.execute_recovery(api)
        status = await orch.get_recovery_status(max_staleness=0)
        assert status["services"][api]["state"] == "scheduled"
        client = CoordinatorClient(
            dev_env.client, workflow_id=f"coordinator-{task_queue}", task_queue=task_queue
        )
        # Automation's hand-over of the same service changes nothing either.
        [again] = await client.schedule_recoveries(
            ScheduleRecoveriesInput(recoveries=[ScheduleRecoveryInput(service_name=api)], automatic=True)
        )
        assert again.outcome == "already_queued"
