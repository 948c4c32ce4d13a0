"""What the coordinator's validators refuse: the size budget measured only when it decides, the hash at its door."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.policies import blocking_policy_json
from tests.helpers.raw_coordinator import Coordinator
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.constants import COORDINATOR_WORKFLOW, recovery_workflow_id
from workflows.ledger.budget import CARRIED_STATE_BUDGET

pytestmark = pytest.mark.timeout(180)

# Each request's own policy (a check with a long URL): about 2.2 KB of carried state each.
LONG_URL = "x" * 2000


@pytest_asyncio.fixture
async def coordinator(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> AsyncIterator[Coordinator]:
    async with running_worker(dev_env.client, store, task_queue):
        handle = await dev_env.client.start_workflow(
            COORDINATOR_WORKFLOW,
            {"config": {"max_concurrent_recoveries": 1}},
            id=f"coordinator-{task_queue}",
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        yield Coordinator(
            dev_env.client, handle, task_queue, dev_env.client.service_client.config.target_host
        )


def request(name: str, index: int) -> dict[str, Any]:
    check = {"kind": "http", "url": f"http://127.0.0.1:9/{index}/{LONG_URL}"}
    return {"service_name": name, "priority": 5, "policy": {**blocking_policy_json(), "health_check": check}}


def batch(service: str, start: int, count: int) -> dict[str, Any]:
    return {"recoveries": [request(f"{service}-{i:04d}", i) for i in range(start, start + count)]}


def refusal(caught: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> ApplicationError:
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_requests_that_fit_pass_after_a_large_batch_and_a_refusal_quotes_the_true_size(
    coordinator: Coordinator, service: str
) -> None:
    """The history since the last measure only bounds the state; the true size decides.

    After about 0.7 MB, the bound (what the history allows the state to have grown to)
    is past the budget, yet a small request still fits: it is measured and admitted.
    One that does not fit is refused quoting the measured size, not the bound.
    """
    await coordinator.update("schedule_recoveries", batch(service, 0, 300))
    for index in range(300, 305):
        result = await coordinator.update("schedule_recovery", request(f"{service}-{index:04d}", index))
        assert result["outcome"] == "queued"
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await coordinator.update("schedule_recoveries", batch(service, 305, 400))
    error = refusal(caught)
    assert error.details[0]["code"] == "state_too_large"
    quoted = re.search(r"state is ([\d,]+) bytes", error.message)
    assert quoted is not None, error.message
    size = int(quoted.group(1).replace(",", ""))
    assert 600_000 < size < CARRIED_STATE_BUDGET
    assert (await coordinator.status())["queued_recoveries"] == 304
    await coordinator.assert_never_failed_a_task()


async def test_attempt_times_a_report_logs_count_against_the_budget_before_the_next_request(
    coordinator: Coordinator, service: str
) -> None:
    """One report may log up to twice a service's hourly budget of attempt times.

    That growth is far past what the report itself adds to the history, so the bound
    counts the logged times as they stand: a request that the true size refuses is
    refused, though the history grew by one small signal since the last measure.
    """
    storm = f"{service}-storm"
    storm_policy = {**blocking_policy_json(), "max_attempts_per_hour": 10_000}
    await coordinator.update("schedule_recovery", {"service_name": storm, "policy": storm_policy})

    async def started_run() -> str | None:
        try:
            description = await coordinator.client.get_workflow_handle(recovery_workflow_id(storm)).describe()
        except RPCError:
            return None
        return description.run_id

    run_id = await eventually(started_run, lambda run: run is not None)
    await coordinator.update("schedule_recoveries", batch(service, 0, 300))
    # Measured here (the bound after the batch is past the budget): about 0.7 MB.
    result = await coordinator.update("schedule_recovery", request(f"{service}-0300", 300))
    assert result["outcome"] == "queued"
    now = datetime.now(timezone.utc).isoformat()
    status = {
        "service_name": storm, "state": "in_progress", "strategy": "exponential_backoff",
        "priority": 1, "attempt_count": 20_000, "max_attempts": 5, "scheduled_at": now,
        "last_attempt_at": now, "phase": "backoff",
    }
    await coordinator.handle.signal(
        "recovery_report", {"service_name": storm, "run_id": run_id, "sequence": 1_000, "status": status}
    )
    await eventually(
        coordinator.status, lambda s: s["services"].get(storm, {}).get("attempt_count") == 20_000
    )
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await coordinator.update("schedule_recoveries", batch(service, 301, 150))
    error = refusal(caught)
    assert error.details[0]["code"] == "state_too_large", error.message
    quoted = re.search(r"state is ([\d,]+) bytes", error.message)
    assert quoted is not None, error.message
    assert int(quoted.group(1).replace(",", "")) > 1_200_000  # the batch and 20,000 attempt times
    await coordinator.assert_never_failed_a_task()


@pytest.mark.parametrize(
    ("update", "payload", "point"),
    [
        ("resume_service", {"service_name": "api", "constitutional_hash": "bad"}, "service resume"),
        ("pause_service", {"service_name": "api", "constitutional_hash": "bad"}, "service pause"),
        ("cancel_recovery", {"service_name": "api", "constitutional_hash": "bad"}, "recovery cancellation"),
        ("set_recovery_policy", {"service_name": "api", "policy": {"constitutional_hash": "bad"}}, "policy setting"),
        ("configure", {"default_policy": {"constitutional_hash": "bad"}}, "policy setting"),
    ],
)
async def test_a_wrong_hash_is_refused_at_the_point_its_request_names(
    coordinator: Coordinator, update: str, payload: dict[str, Any], point: str
) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await coordinator.update(update, payload)
    error = refusal(caught)
    assert error.type == "RecoveryConstitutionalError"
    assert error.details[0]["code"] == "constitutional_hash"
    assert error.message == (
        f"Constitutional hash mismatch at {point}: expected cdd01ef066bc6cf2, got 'bad'"
    )


async def test_a_wrong_hash_inside_a_batch_names_its_request(
    coordinator: Coordinator, service: str
) -> None:
    wrong = {"service_name": f"{service}-b", "constitutional_hash": "bad"}
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await coordinator.update(
            "schedule_recoveries", {"recoveries": [{"service_name": f"{service}-a"}, wrong]}
        )
    error = refusal(caught)
    assert error.type == "RecoveryConstitutionalError"
    assert error.message.startswith(f"recoveries[1] ({service}-b): Constitutional hash mismatch")
    assert error.details[0] == {
        "code": "constitutional_hash", "index": 1, "service": f"{service}-b"
    }
    assert (await coordinator.status())["queued_recoveries"] == 0
