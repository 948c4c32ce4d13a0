"""Run the circuit watch once, as its schedule would, against a test's own coordinator."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import Client

from starter.orchestrator import RecoveryOrchestrator
from tests.conftest import record_history
from workflows.circuit_watch import CircuitWatch
from workflows.circuit_watch_models import WatchInput, WatchResult


async def watch_once(
    client: Client,
    orchestrator: RecoveryOrchestrator,
    task_queue: str,
    *,
    record_as: str | None = None,
    **settings: object,
) -> WatchResult:
    """Run one ``CircuitWatch`` with ``settings`` (``WatchInput`` fields); return its result.

    ``record_as`` keeps its history for the replay tests (with ``RECORD_HISTORIES=1``).
    """
    handle = await client.start_workflow(
        CircuitWatch.run,
        WatchInput(coordinator_workflow_id=orchestrator.coordinator_workflow_id, **settings),  # type: ignore[arg-type]
        id=f"watch-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )
    result = await handle.result()
    if record_as is not None:
        record_history(await handle.fetch_history(), record_as)
    return result
