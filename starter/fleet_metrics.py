"""Gauges of the whole fleet, read from Temporal's visibility by each worker.

``recovery_awaiting_operator`` counts the recoveries waiting for ``approve`` in the
namespace (``RecoveryState='awaiting_manual'``). A workflow cannot keep such a gauge
true: it emits metrics only while it runs live, so after a worker restart the value
would vanish until the next change. Every worker publishes the same namespace-wide
count: alert on ``max(recovery_awaiting_operator)``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError

logger = logging.getLogger(__name__)

AWAITING_OPERATOR = "recovery_awaiting_operator"
AWAITING_QUERY = (
    "WorkflowType = 'ServiceRecovery' AND ExecutionStatus = 'Running' "
    "AND RecoveryState = 'awaiting_manual'"
)
INTERVAL = timedelta(seconds=15)


async def publish_fleet_gauges(
    client: Client, runtime: Runtime, stop: asyncio.Event, interval: timedelta = INTERVAL
) -> None:
    """Set the fleet gauges every ``interval`` until ``stop``; a failed read is logged."""
    gauge = runtime.metric_meter.create_gauge(
        AWAITING_OPERATOR, "recoveries awaiting an operator's approval (namespace-wide)"
    ).with_additional_attributes({"namespace": client.namespace})
    while not stop.is_set():
        try:
            counted = await client.count_workflows(AWAITING_QUERY)
            gauge.set(counted.count)
        except RPCError as err:
            logger.warning("could not count recoveries awaiting an operator: %s", err)
        try:
            await asyncio.wait_for(stop.wait(), interval.total_seconds())
        except TimeoutError:
            pass
