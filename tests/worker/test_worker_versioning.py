"""Worker Versioning on the real dev server (SPEC §9, docs/versioning.md).

Each test has a Worker Deployment of its own (``deployment`` fixture) and a task queue of
its own, so tests neither share a current version nor steal each other's tasks. Two
builds of one deployment run in this process as two workers of different build ids.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, VersioningBehavior as RawVersioningBehavior
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.build_id import BUILD_ID_ENV, default_build_id, parse_build_id
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.deployment import (
    Outcome,
    build_id_from_env,
    make_current,
    move_here,
    set_current_command,
)
from tests.helpers.paths import REPO
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from worker import build_worker
from workflows.constants import recovery_workflow_id
from workflows.coordinator import RecoveryCoordinator
from workflows.coordinator_models import ConfigureInput, CoordinatorInput, ScheduleRecoveryInput
from workflows.models import (
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def deployment() -> str:
    """A Worker Deployment of this test's own."""
    return f"ro-test-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def version_worker(
    client: Client, store: SQLiteBreakerStore, task_queue: str, deployment: str, build_id: str
) -> AsyncIterator[Worker]:
    """Run the product's worker as ``deployment:build_id``."""
    async with build_worker(
        client,
        store,
        task_queue=task_queue,
        health_check_modules=["tests.helpers.checks"],
        deployment=WorkerDeploymentVersion(deployment, build_id),
    ) as worker:
        yield worker


async def current(
    client: Client, deployment: str, build_id: str, *, force: bool = True, task_queue: str | None = None
) -> Outcome:
    answer = await make_current(
        client,
        WorkerDeploymentVersion(deployment, build_id),
        only_if_none=not force,
        task_queue=task_queue,
        timeout=15,
    )
    return answer.outcome


async def start(
    client: Client, task_queue: str, service: str, url: str, *, delay_ms: int = 100
) -> WorkflowHandle[ServiceRecovery, RecoveryResult]:
    return await client.start_workflow(
        ServiceRecovery.run,
        ServiceRecoveryInput.model_validate({
            "service_name": service,
            "strategy": "exponential_backoff",
            "policy": {
                "initial_delay_ms": delay_ms,
                "max_delay_ms": delay_ms,
                "health_check": {"kind": "http", "url": url, "timeout_ms": 2000},
            },
        }),
        id=recovery_workflow_id(service),
        task_queue=task_queue,
    )


async def pinned_to(handle: WorkflowHandle[Any, Any]) -> tuple[int, str]:
    """Return the run's versioning behavior and the build id it is on (describe)."""
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.behavior, info.deployment_version.build_id


async def builds_that_ran(handle: WorkflowHandle[Any, Any]) -> set[str]:
    """Return the build id stamped on every completed workflow task of the run."""
    builds = set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            builds.add(event.workflow_task_completed_event_attributes.deployment_version.build_id)
    return builds


async def test_a_recovery_runs_pinned_to_the_version_it_started_on(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, deployment: str
) -> None:
    client = dev_env.client
    store.set_state(service, BreakerState.OPEN)
    async with health_server([200]) as server, version_worker(client, store, task_queue, deployment, "a1"):
        # A fresh deployment: the first worker makes its own version current.
        assert await current(client, deployment, "a1", force=False, task_queue=task_queue) is Outcome.MADE_CURRENT
        assert await current(client, deployment, "a1", force=False) is Outcome.ALREADY_CURRENT
        handle = await start(client, task_queue, service, server.url)
        result = await asyncio.wait_for(handle.result(), 20)
        assert result.state is RecoveryState.SUCCEEDED
        assert await pinned_to(handle) == (RawVersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "a1")
        assert await builds_that_ran(handle) == {"a1"}
        # Visibility finds the runs of one version (docs/versioning.md, "drain").
        query = f"TemporalWorkerDeploymentVersion = '{deployment}:a1' AND TaskQueue = '{task_queue}'"
        found = await eventually(
            lambda: _ids(client, query), lambda ids: handle.id in ids, timeout=10
        )
        assert found == [handle.id]


async def _ids(client: Client, query: str) -> list[str]:
    return [execution.id async for execution in client.list_workflows(query)]


async def test_a_recovery_in_backoff_finishes_on_its_build_while_new_ones_start_on_the_current(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, deployment: str
) -> None:
    client = dev_env.client
    old_service, new_service = f"svc-{uuid.uuid4().hex[:8]}", f"svc-{uuid.uuid4().hex[:8]}"
    for name in (old_service, new_service):
        store.set_state(name, BreakerState.OPEN)
    async with (
        health_server([503, 200]) as flaky,
        health_server([200]) as healthy,
        version_worker(client, store, task_queue, deployment, "build-a"),
    ):
        assert await current(client, deployment, "build-a", force=False) is Outcome.MADE_CURRENT
        # Backoff long enough to deploy B in: the first attempt fails, the second waits.
        old = await start(client, task_queue, old_service, flaky.url, delay_ms=3000)
        await eventually(
            lambda: old.query(ServiceRecovery.status),
            lambda status: status.phase is RecoveryPhase.BACKOFF and status.attempt_count >= 1,
            timeout=20,
        )
        async with version_worker(client, store, task_queue, deployment, "build-b"):
            # The operator's step; another worker of A would now log that B is current.
            assert await current(client, deployment, "build-b") is Outcome.MADE_CURRENT
            assert await current(client, deployment, "build-a", force=False) is Outcome.OTHER_CURRENT
            new = await start(client, task_queue, new_service, healthy.url)
            new_result = await asyncio.wait_for(new.result(), 20)
            old_result = await asyncio.wait_for(old.result(), 20)
    assert old_result.state is RecoveryState.SUCCEEDED and old_result.attempt_number == 2
    assert new_result.state is RecoveryState.SUCCEEDED
    assert await builds_that_ran(old) == {"build-a"}
    assert await builds_that_ran(new) == {"build-b"}
    assert (await pinned_to(old))[1] == "build-a" and (await pinned_to(new))[1] == "build-b"


async def test_the_coordinator_moves_to_the_current_version_when_it_continues_as_new(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, deployment: str
) -> None:
    """A pinned coordinator sees the new current version on its next workflow task.

    A signal's, a timer's or a child's task carries the change; an update's (speculative)
    task does not (measured on the dev server 1.32). Here a ``schedule_recovery`` signal
    brings it: the coordinator continues as new first, and the recovery starts on B.
    """
    client = dev_env.client
    workflow_id = f"coordinator-{task_queue}"
    service = f"svc-{uuid.uuid4().hex[:8]}"
    store.set_state(service, BreakerState.OPEN)
    async with version_worker(client, store, task_queue, deployment, "coord-a"):
        assert await current(client, deployment, "coord-a", force=False) is Outcome.MADE_CURRENT
        first = await client.start_workflow(
            RecoveryCoordinator.run, CoordinatorInput(), id=workflow_id, task_queue=task_queue
        )
        await first.execute_update(RecoveryCoordinator.configure, ConfigureInput())
        assert await pinned_to(first) == (RawVersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "coord-a")
        async with health_server([200]) as healthy, version_worker(
            client, store, task_queue, deployment, "coord-b"
        ):
            assert await current(client, deployment, "coord-b") is Outcome.MADE_CURRENT
            await first.signal(
                RecoveryCoordinator.schedule_recovery_signal,
                ScheduleRecoveryInput(
                    service_name=service,
                    policy=RecoveryPolicy.model_validate({
                        "initial_delay_ms": 100,
                        "health_check": {"kind": "http", "url": healthy.url, "timeout_ms": 2000},
                    }),
                ),
            )
            latest = client.get_workflow_handle(workflow_id)
            moved = await eventually(
                lambda: pinned_to(latest), lambda found: found[1] == "coord-b", timeout=15
            )
            assert moved == (RawVersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "coord-b")
            assert (await latest.describe()).run_id != first.first_execution_run_id
            assert await builds_that_ran(
                client.get_workflow_handle(workflow_id, run_id=first.first_execution_run_id)
            ) == {"coord-a"}
            recovery = client.get_workflow_handle(recovery_workflow_id(service))
            result = await asyncio.wait_for(recovery.result(), 20)
            assert result["state"] == RecoveryState.SUCCEEDED.value
            assert await builds_that_ran(recovery) == {"coord-b"}
            assert await builds_that_ran(latest) == {"coord-b"}
            await latest.terminate("test over")


async def test_two_workers_racing_on_a_fresh_deployment_agree_on_one_current_version(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, deployment: str
) -> None:
    client = dev_env.client
    async with (
        version_worker(client, store, task_queue, deployment, "race-1"),
        version_worker(client, store, task_queue, deployment, "race-2"),
    ):
        answers = await asyncio.gather(
            make_current(client, WorkerDeploymentVersion(deployment, "race-1"), timeout=15),
            make_current(client, WorkerDeploymentVersion(deployment, "race-2"), timeout=15),
        )
    outcomes = sorted(answer.outcome.value for answer in answers)
    assert outcomes == sorted([Outcome.MADE_CURRENT.value, Outcome.OTHER_CURRENT.value])
    [winner] = [a.current_build_id for a in answers if a.outcome is Outcome.MADE_CURRENT]
    [loser] = [a for a in answers if a.outcome is Outcome.OTHER_CURRENT]
    assert loser.current_build_id == winner
    assert "temporal worker deployment set-current-version --deployment-name" in loser.message


async def test_a_worker_does_not_make_itself_current_over_unversioned_recoveries(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, deployment: str
) -> None:
    client = dev_env.client
    # A recovery no version has taken: what a 0.8 (unversioned) worker leaves running.
    handle = await start(client, task_queue, service, "http://127.0.0.1:9/health")
    version = WorkerDeploymentVersion(deployment, "after-08")
    async with version_worker(client, store, task_queue, deployment, "after-08"):
        await eventually(
            lambda: client.count_workflows(f"WorkflowId = '{handle.id}'"),
            lambda count: count.count == 1,
            timeout=10,
        )
        refused = await make_current(client, version, task_queue=task_queue, timeout=15)
        assert refused.outcome is Outcome.REFUSED
        assert "1 recoveries started on unversioned" in refused.message
        assert set_current_command(version, client) in refused.message
        await handle.terminate("drained")
        await eventually(
            lambda: client.count_workflows(f"WorkflowId = '{handle.id}' AND ExecutionStatus = 'Running'"),
            lambda count: count.count == 0,
            timeout=10,
        )
        made = await make_current(client, version, task_queue=task_queue, timeout=15)
        assert made.outcome is Outcome.MADE_CURRENT


async def test_dev_mode_moves_runs_left_on_another_build_onto_its_own(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, deployment: str
) -> None:
    """After a version bump ``make dev`` runs the new build only: it moves the old one's runs."""
    client = dev_env.client
    store.set_state(service, BreakerState.OPEN)
    async with health_server([503, 200]) as server:
        async with version_worker(client, store, task_queue, deployment, "dev-old"):
            assert await current(client, deployment, "dev-old") is Outcome.MADE_CURRENT
            handle = await start(client, task_queue, service, server.url, delay_ms=2000)
            on_old = f"WorkflowId = '{handle.id}' AND TemporalWorkerDeploymentVersion = '{deployment}:dev-old'"
            await eventually(lambda: _ids(client, on_old), bool, timeout=10)
        new = WorkerDeploymentVersion(deployment, "dev-new")
        async with version_worker(client, store, task_queue, deployment, "dev-new"):
            assert await current(client, deployment, "dev-new") is Outcome.MADE_CURRENT
            assert await move_here(client, new) == 1
            result = await asyncio.wait_for(handle.result(), 20)
    assert result.state is RecoveryState.SUCCEEDED
    assert await builds_that_ran(handle) == {"dev-old", "dev-new"}


def test_build_ids_are_checked() -> None:
    assert parse_build_id(" 0.9.0rc1+g1a2b ") == "0.9.0rc1+g1a2b"
    for bad, says in (
        ("", "is empty"),
        ("a" * 65, "at most 64"),
        ("0.9 beta", "letters, digits"),
        ("dep:0.9", "letters, digits"),
        ("__unversioned__", "letters, digits"),
        ("-x", "letters, digits"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_build_id(bad)
    assert build_id_from_env({}) == default_build_id() == build_id_from_env({BUILD_ID_ENV: " "})
    assert build_id_from_env({BUILD_ID_ENV: "abc123"}) == "abc123"


def test_the_worker_refuses_a_bad_build_id_before_it_connects() -> None:
    env = {
        **os.environ,
        BUILD_ID_ENV: "not a build",
        "TEMPORAL_ADDRESS": "127.0.0.1:9",  # nothing there: it must not get that far
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot start: {BUILD_ID_ENV}='not a build'" in done.stderr


async def test_the_watch_moves_within_its_interval_and_nudges_the_idle_coordinator_along(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, deployment: str
) -> None:
    """Nobody signals the idle coordinator: the watch, moving on its timer, nudges it."""
    from workflows import CircuitWatch, CircuitWatchInput, WatchInput

    client = dev_env.client
    coordinator_id = f"coordinator-{task_queue}"
    async with version_worker(client, store, task_queue, deployment, "nudge-a"):
        assert await current(client, deployment, "nudge-a", force=False) is Outcome.MADE_CURRENT
        coordinator = await client.start_workflow(
            RecoveryCoordinator.run, CoordinatorInput(), id=coordinator_id, task_queue=task_queue
        )
        await coordinator.execute_update(RecoveryCoordinator.configure, ConfigureInput())
        watch = await client.start_workflow(
            CircuitWatch.run,
            CircuitWatchInput(
                settings=WatchInput(coordinator_workflow_id=coordinator_id), interval_seconds=1
            ),
            id=f"recovery-circuit-watch-{task_queue}",
            task_queue=task_queue,
        )
        async with version_worker(client, store, task_queue, deployment, "nudge-b"):
            assert await current(client, deployment, "nudge-b") is Outcome.MADE_CURRENT
            for handle in (watch, coordinator):
                latest = client.get_workflow_handle(handle.id)
                await eventually(
                    lambda: pinned_to(latest), lambda found: found[1] == "nudge-b", timeout=20
                )
                await latest.terminate("test over")
