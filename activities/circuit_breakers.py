"""Activities that touch circuit breakers (the application side is ``starter.breakers``)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio import activity

from activities.breaker_store import (
    BreakerRecord,
    BreakerState,
    CircuitBreakerStore,
)


class SetBreakerStateInput(BaseModel):
    """Input of the ``set_breaker_state`` activity."""

    service_name: str
    state: BreakerState


class CircuitBreakerActivities:
    """Breaker activities bound to one store (the worker opens it once)."""

    def __init__(self, store: CircuitBreakerStore) -> None:
        self._store = store

    @activity.defn(name="set_breaker_state")
    async def set_breaker_state(self, input: SetBreakerStateInput) -> BreakerRecord:
        """Set a breaker to half-open, closed or open; idempotent, so retries are harmless."""
        record = await asyncio.to_thread(self._store.set_state, input.service_name, input.state)
        activity.logger.info("breaker %r is now %s", input.service_name, record.state.value)
        return record

    @activity.defn(name="list_breakers")
    async def list_breakers(self) -> list[BreakerRecord]:
        """Return every breaker the store knows (the circuit watch reads this)."""
        states = await asyncio.to_thread(self._store.get_all_states)
        return list(states.values())
