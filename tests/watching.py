"""Run the circuit watch once, as its schedule would, against a test's own coordinator."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.client import Client

from starter.orchestrator import RecoveryOrchestrator
from workflows.circuit_watch import CircuitWatch
from workflows.circuit_watch_models import WatchInput, WatchResult


async def watch_once(
    client: Client, orchestrator: RecoveryOrchestrator, task_queue: str, **settings: object
) -> WatchResult:
    """Run one ``CircuitWatch`` with ``settings`` (``WatchInput`` fields); return its result."""
    return await client.execute_workflow(
        CircuitWatch.run,
        WatchInput(coordinator_workflow_id=orchestrator.coordinator_workflow_id, **settings),
        id=f"watch-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=60),
    )
