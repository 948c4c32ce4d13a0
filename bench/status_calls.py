"""The two ways of reading status that the bench compares.

The product: ``RecoveryOrchestrator.get_recovery_status()`` as an application calls
it (default staleness). The baseline: the raw ``get_recovery_status`` query on the
coordinator's workflow, which is what every read cost before the facade could
coalesce and cache, and what a script in another language still does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client

# A query the server cannot answer within this long counts as a failed read.
QUERY_TIMEOUT = timedelta(seconds=30)


async def raw_status(client: Client, coordinator_id: str) -> dict[str, Any]:
    """Return the coordinator's whole status by one query, straight to Temporal."""
    status: dict[str, Any] = await client.get_workflow_handle(coordinator_id).query(
        "get_recovery_status", rpc_timeout=QUERY_TIMEOUT
    )
    return status
