"""Pinned names (SPEC §9): other programs depend on these strings."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CONSTITUTIONAL_HASH = "cdd01ef066bc6cf2"
LOG_PREFIX = f"[{CONSTITUTIONAL_HASH}]"

TASK_QUEUE = "recovery-orchestrator"
SERVICE_RECOVERY_WORKFLOW = "ServiceRecovery"
COORDINATOR_WORKFLOW = "RecoveryCoordinator"
COORDINATOR_WORKFLOW_ID = "recovery-coordinator"
RECOVERY_ID_PREFIX = "recovery-"
CIRCUIT_WATCH_WORKFLOW = "CircuitWatch"
CIRCUIT_WATCH_SCHEDULE_ID = "recovery-circuit-watch"
# The coordinator's signal to look again: the watch sends it when a new version became current.
NUDGE_SIGNAL = "nudge"
# Every workflow id of the circuit watch starts so: no service name may take one.
CIRCUIT_WATCH_ID_PREFIX = "recovery-circuit-watch"

SA_SERVICE = SearchAttributeKey.for_keyword("RecoveryService")
SA_STATE = SearchAttributeKey.for_keyword("RecoveryState")
SA_PRIORITY = SearchAttributeKey.for_int("RecoveryPriority")
SA_STRATEGY = SearchAttributeKey.for_keyword("RecoveryStrategy")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str] | SearchAttributeKey[int], ...] = (
    SA_SERVICE,
    SA_STATE,
    SA_PRIORITY,
    SA_STRATEGY,
)


def recovery_workflow_id(service_name: str) -> str:
    """Return the workflow id of a service's recovery: ``recovery-<service_name>``."""
    return f"{RECOVERY_ID_PREFIX}{service_name}"
