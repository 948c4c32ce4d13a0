"""Helpers for coordinator tests: reading what really ran from the children themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowHistory

from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.waiting import eventually
from workflows.constants import recovery_workflow_id


async def wait_all_finished(orchestrator: RecoveryOrchestrator, timeout: float = 60) -> dict[str, Any]:
    """Wait until the reference's ``active_recoveries`` reaches 0; return that status."""
    return await eventually(
        orchestrator.get_recovery_status,
        lambda s: s["active_recoveries"] == 0,
        timeout=timeout,
        interval=0.1,
    )


async def child_runs(client: Client, services: list[str]) -> dict[str, tuple[datetime, datetime | None]]:
    """Return each service's recovery (start, close) times as the server recorded them."""
    spans: dict[str, tuple[datetime, datetime | None]] = {}
    for service in services:
        description = await client.get_workflow_handle(recovery_workflow_id(service)).describe()
        spans[service] = (description.start_time, description.close_time)
    return spans


async def coordinator_history(orchestrator: RecoveryOrchestrator) -> WorkflowHistory:
    """Return the current run's history of the test's coordinator."""
    client = orchestrator._client
    assert client is not None
    return await client.get_workflow_handle(orchestrator.coordinator_workflow_id).fetch_history()
