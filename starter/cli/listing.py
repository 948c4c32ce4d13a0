"""Running recoveries the coordinator does not know: started straight from the ``temporal`` CLI.

They are found through visibility (``WorkflowType``, ``ExecutionStatus``, ``TaskQueue``)
and named by their ``RecoveryService`` search attribute. A recovery a coordinator started
is its child; one with a parent is therefore coordinated, even by another coordinator.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from temporalio.client import Client

from workflows.constants import (
    RECOVERY_ID_PREFIX,
    SA_PRIORITY,
    SA_SERVICE,
    SA_STATE,
    SA_STRATEGY,
    SERVICE_RECOVERY_WORKFLOW,
)

# A status is a glance, not an inventory: past this many, the listing says it was cut.
LIST_LIMIT = 1000


def running_recoveries_query(task_queue: str) -> str:
    """Return the visibility query for the running recoveries on ``task_queue``."""
    quoted = task_queue.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"WorkflowType = '{SERVICE_RECOVERY_WORKFLOW}' AND ExecutionStatus = 'Running' "
        f"AND TaskQueue = '{quoted}'"
    )


async def uncoordinated_recoveries(
    client: Client, task_queue: str, coordinated: Collection[str], limit: int = LIST_LIMIT
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Return the running recoveries without a coordinator, by service, and whether the list was cut.

    Args:
        client: A connected client.
        task_queue: The task queue the deployment's workers poll.
        coordinated: The services the coordinator lists (they are not repeated).
        limit: How many running recoveries to read at most.

    Returns:
        Each uncoordinated recovery's workflow id, run id, state, strategy, priority and
        start time, marked ``coordinated: False``; True when more than ``limit`` run.
    """
    found: dict[str, dict[str, Any]] = {}
    read = 0
    async for execution in client.list_workflows(
        running_recoveries_query(task_queue), limit=limit + 1, page_size=min(limit + 1, 1000)
    ):
        read += 1
        if read > limit:
            return found, True
        if execution.parent_id is not None:
            continue
        attributes = execution.typed_search_attributes
        # A recovery not yet through its first task has no search attributes: its id names it.
        service = attributes.get(SA_SERVICE) or execution.id.removeprefix(RECOVERY_ID_PREFIX)
        if service in coordinated:
            continue
        found[service] = {
            "workflow_id": execution.id,
            "run_id": execution.run_id,
            "state": attributes.get(SA_STATE),
            "strategy": attributes.get(SA_STRATEGY),
            "priority": attributes.get(SA_PRIORITY),
            "started_at": execution.start_time.isoformat(),
            "coordinated": False,
        }
    return found, False
