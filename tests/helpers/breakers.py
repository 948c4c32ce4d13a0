"""A breaker's state as a test reads it from a store."""

from __future__ import annotations

from recovery_breakers.store import BreakerState, CircuitBreakerStore


def state_of(store: CircuitBreakerStore, service: str) -> BreakerState | None:
    """The breaker's state, or None when the store has never seen it."""
    record = store.get_state(service)
    return None if record is None else record.state
