"""The circuit watch in tests: one look (as a 0.7 schedule run was), or a long-lived watch."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.watch_control import WatchState, describe_watch, ensure_watch
from tests.helpers.histories import record_history
from tests.helpers.waiting import eventually
from workflows.circuit_watch import CircuitWatch
from workflows.circuit_watch_models import (
    CircuitWatchInput,
    WatchInput,
    WatchResult,
    watch_workflow_id,
)


async def watch_once(
    client: Client,
    orchestrator: RecoveryOrchestrator,
    task_queue: str,
    *,
    record_as: str | None = None,
    **settings: object,
) -> WatchResult:
    """Run one ``CircuitWatch`` look with ``settings`` (``WatchInput`` fields); return it.

    ``record_as`` keeps its history for the replay tests (with ``RECORD_HISTORIES=1``).
    """
    handle = await client.start_workflow(
        CircuitWatch.run,
        CircuitWatchInput(
            settings=WatchInput(coordinator_workflow_id=orchestrator.coordinator_workflow_id, **settings),
            once=True,
        ),
        id=f"watch-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )
    result = await handle.result()
    if record_as is not None:
        record_history(await handle.fetch_history(), record_as)
    return result


def watch_id(task_queue: str) -> str:
    """The watch a worker on a test's own task queue keeps: ``recovery-circuit-watch-<queue>``."""
    return watch_workflow_id(task_queue)


@asynccontextmanager
async def long_lived_watch(
    client: Client,
    orchestrator: RecoveryOrchestrator,
    task_queue: str,
    *,
    interval: float = 1.0,
    terminate: bool = True,
    **settings: object,
) -> AsyncIterator[WatchState]:
    """Start a test's own long-lived watch as the worker does; end it afterwards."""
    workflow_id = watch_id(task_queue)
    state = await ensure_watch(
        client,
        WatchInput(coordinator_workflow_id=orchestrator.coordinator_workflow_id, **settings),
        interval=timedelta(seconds=interval),
        task_queue=task_queue,
        workflow_id=workflow_id,
        schedule_id=f"schedule-{workflow_id}",
    )
    try:
        yield state
    finally:
        if terminate:
            try:
                await client.get_workflow_handle(workflow_id).terminate(reason="test over")
            except RPCError:
                pass


async def watch_until(
    client: Client,
    workflow_id: str,
    done: Callable[[WatchState], bool],
    *,
    timeout: float = 30.0,
) -> WatchState:
    """Describe the watch until ``done`` holds (fails the test after ``timeout`` seconds)."""
    return await eventually(
        lambda: describe_watch(client, workflow_id=workflow_id), done, timeout=timeout, interval=0.1
    )


async def watch_runs(client: Client, workflow_id: str) -> list[WorkflowExecutionStatus | None]:
    """The statuses of every run of the watch the list shows (one row each in the Web UI)."""
    return [
        run.status
        async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'")
    ]
