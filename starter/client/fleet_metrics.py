"""Gauges of the whole fleet, read from Temporal by each worker.

``recovery_awaiting_operator`` counts the recoveries waiting for ``approve`` in the
namespace (``RecoveryState='awaiting_manual'``), from visibility;
``recovery_held_back`` (label ``cause``: ``storm_guard``, ``cool_down``,
``operator_cancel``) and ``recovery_paused`` count the services automation leaves
alone now, from the coordinator's status. A workflow cannot keep such a gauge
true: it emits metrics only while it runs live, so after a worker restart the value
would vanish until the next change. Every worker publishes the same namespace-wide
values: alert on ``max(...)`` across workers.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from starter.client.coordinator_client import CoordinatorClient
from workflows.constants import COORDINATOR_WORKFLOW_ID
from workflows.coordinator_models import StatusPageInput

logger = logging.getLogger(__name__)

AWAITING_OPERATOR = "recovery_awaiting_operator"
HELD_BACK = "recovery_held_back"
PAUSED = "recovery_paused"
AWAITING_QUERY = (
    "WorkflowType = 'ServiceRecovery' AND ExecutionStatus = 'Running' "
    "AND RecoveryState = 'awaiting_manual'"
)
# What holds automation off a service (the status's ``held_back``), as the ``cause`` label.
HOLD_CAUSES = ("storm_guard", "cool_down", "operator_cancel")
# The status without its services: only ``held_back`` and ``paused`` are read.
NO_SERVICES = StatusPageInput(services=[], limit=1)
INTERVAL = timedelta(seconds=15)


def hold_cause(entry: dict[str, Any]) -> str:
    """Name what holds a service back, from its ``held_back`` entry's fields.

    The storm guard's entry carries its budget (``max_attempts_per_hour``), a failure
    cool-down its streak (``failures_in_a_row``), an operator's cancel neither
    (``workflows.ledger.operator_word.holds``).
    """
    if "max_attempts_per_hour" in entry:
        return "storm_guard"
    if "failures_in_a_row" in entry:
        return "cool_down"
    return "operator_cancel"


def count_holds(status: dict[str, Any] | None) -> tuple[dict[str, int], int]:
    """Return the services held back, by cause, and the services paused, in a status.

    None (no coordinator has run) holds nothing back.
    """
    held = dict.fromkeys(HOLD_CAUSES, 0)
    if status is None:
        return held, 0
    for entry in (status.get("held_back") or {}).values():
        held[hold_cause(entry)] += 1
    return held, len(status.get("paused") or {})


async def publish_fleet_gauges(
    client: Client,
    runtime: Runtime,
    stop: asyncio.Event,
    interval: timedelta = INTERVAL,
    coordinator_id: str = COORDINATOR_WORKFLOW_ID,
) -> None:
    """Set the fleet gauges every ``interval`` until ``stop``; a failed read is logged."""
    meter = runtime.metric_meter.with_additional_attributes({"namespace": client.namespace})
    awaiting = meter.create_gauge(
        AWAITING_OPERATOR, "recoveries awaiting an operator's approval (namespace-wide)"
    )
    held_back = meter.create_gauge(
        HELD_BACK, "services automation holds back now, by cause (storm guard, cool-down, cancel)"
    )
    paused = meter.create_gauge(PAUSED, "services an operator has paused")
    coordinator = CoordinatorClient(client, workflow_id=coordinator_id)
    while not stop.is_set():
        try:
            counted = await client.count_workflows(AWAITING_QUERY)
            awaiting.set(counted.count)
        except RPCError as err:
            logger.warning("could not count recoveries awaiting an operator: %s", err)
        try:
            held, paused_count = count_holds(await coordinator.get_recovery_status_page(NO_SERVICES))
            for cause, count in held.items():
                held_back.set(count, {"cause": cause})
            paused.set(paused_count)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            logger.warning("could not read what the coordinator holds back: %s", err)
        try:
            await asyncio.wait_for(stop.wait(), interval.total_seconds())
        except TimeoutError:
            pass
