"""Activities that touch circuit breakers, and the reference's ``CircuitBreakerRegistry``."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio import activity

from activities.breaker_store import (
    BreakerRecord,
    BreakerState,
    CircuitBreakerStore,
    open_store,
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


class CircuitBreakerRegistry:
    """Read and set breakers from application code, as the reference document does.

    ``get_all_states()`` returns ``{service_name: {"state": "open", ...}}``.
    """

    def __init__(self, store_url: str | None = None) -> None:
        self._store = open_store(store_url)

    def get_all_states(self) -> dict[str, dict[str, object]]:
        """Return every breaker as the reference's dict shape."""
        return {name: rec.to_dict() for name, rec in self._store.get_all_states().items()}

    def get_state(self, service_name: str) -> dict[str, object] | None:
        """Return one breaker's dict, or None if unknown."""
        record = self._store.get_state(service_name)
        return record.to_dict() if record else None

    def set_state(self, service_name: str, state: BreakerState | str) -> dict[str, object]:
        """Set one breaker's state (e.g. ``"open"`` when a service starts failing)."""
        return self._store.set_state(service_name, BreakerState(state)).to_dict()

    def close(self) -> None:
        """Release the store."""
        self._store.close()
