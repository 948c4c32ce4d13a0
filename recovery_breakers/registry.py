"""The read-only view of the shared store that the reference document's API names.

``CircuitBreakerRegistry`` lists breakers; ``circuit_breaker_health_check`` sums them up as
the reference document's troubleshooting reads them. Both only read: a breaker changes state
through pybreaker (``recovery_breakers.pybreaker_adapter``) or through a recovery.
"""

from __future__ import annotations

from datetime import datetime, timezone

from recovery_breakers.store import BreakerRecord, BreakerState
from recovery_breakers.stores import open_store
from workflows.constants import CONSTITUTIONAL_HASH

HEALTHY = "healthy"
DEGRADED = "degraded"
CRITICAL = "critical"


class CircuitBreakerRegistry:
    """The reference document's read API over the shared store.

    ``get_all_states()`` returns ``{name: {"state", "fail_counter", "success_counter",
    "opened_at"}}`` with ``opened_at`` an ISO-8601 UTC string or None.
    """

    def __init__(self, store_url: str | None = None) -> None:
        self._store = open_store(store_url)

    def get_all_states(self) -> dict[str, dict[str, object]]:
        """Return every known breaker's summary by service name."""
        return {name: _summary(record) for name, record in self._store.get_all_states().items()}

    def get_state(self, service_name: str) -> dict[str, object] | None:
        """Return one breaker's summary, or None if the store has never seen it."""
        record = self._store.get_state(service_name)
        return _summary(record) if record else None

    def close(self) -> None:
        """Release the store's connection."""
        self._store.close()


def circuit_breaker_health_check(store_url: str | None = None) -> dict[str, object]:
    """Return the fleet's breaker health, as the reference document's troubleshooting reads it.

    ``overall_health`` is ``healthy`` when no breaker is open or half-open (or none is known),
    ``critical`` when every known breaker is open, and ``degraded`` in between.
    ``open_circuits`` lists the open breakers by name, ``circuit_states`` maps every breaker
    to its state.
    """
    registry = CircuitBreakerRegistry(store_url)
    try:
        states = registry.get_all_states()
    finally:
        registry.close()
    circuit_states = {name: str(summary["state"]) for name, summary in states.items()}
    open_circuits = sorted(name for name, state in circuit_states.items() if state == "open")
    return {
        "overall_health": _overall_health(circuit_states),
        "open_circuits": open_circuits,
        "circuit_states": circuit_states,
        "constitutional_hash": CONSTITUTIONAL_HASH,
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }


def _overall_health(circuit_states: dict[str, str]) -> str:
    states = set(circuit_states.values())
    if states <= {BreakerState.CLOSED.value}:
        return HEALTHY
    if states == {BreakerState.OPEN.value}:
        return CRITICAL
    return DEGRADED


def _summary(record: BreakerRecord) -> dict[str, object]:
    return {
        "state": record.state.value,
        "fail_counter": record.fail_counter,
        "success_counter": record.success_counter,
        "opened_at": record.opened_at.isoformat() if record.opened_at else None,
    }
