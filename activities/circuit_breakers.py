"""Activities that touch circuit breakers (the application side is ``starter.breakers``)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from recovery_breakers.store import (
    BreakerRecord,
    BreakerState,
    CircuitBreakerStore,
    InvalidBreakerValue,
)


# Open breakers one listing returns, oldest opening first: the list is recorded in the
# watch's history (one payload, under Temporal's 2 MB whatever the names) and carried in
# its last look; the rest follow as these recover.
MAX_LISTED = 1000


class SetBreakerStateInput(BaseModel):
    """Input of the ``set_breaker_state`` activity."""

    service_name: str
    state: BreakerState


class GetBreakerStateInput(BaseModel):
    """Input of the ``get_breaker_state`` activity."""

    service_name: str


class OpenBreaker(BaseModel):
    """A breaker the store holds open (what ``list_open_breakers`` returns)."""

    service_name: str
    opened_at: datetime | None = None


class CircuitBreakerActivities:
    """Breaker activities bound to one store (the worker opens it once)."""

    def __init__(self, store: CircuitBreakerStore) -> None:
        self._store = store

    @activity.defn(name="set_breaker_state")
    async def set_breaker_state(self, input: SetBreakerStateInput) -> BreakerRecord | None:
        """Set an existing breaker to half-open, closed or open; idempotent, so retries are
        harmless.

        A recovery touches only a breaker that exists (SPEC §4): for a service the store
        holds no breaker for, nothing is written and None is returned. (Results recorded
        before, always a record, still decode.)
        """
        try:
            record = await asyncio.to_thread(
                self._store.set_state, input.service_name, input.state, create=False
            )
        except InvalidBreakerValue as invalid:
            # Writing again will not mend it: the attempt ends with this, not minutes later.
            raise ApplicationError(
                str(invalid), type="InvalidBreakerValue", non_retryable=True
            ) from None
        if record is None:
            activity.logger.info(
                "breaker %r not set %s: the store holds no breaker for it",
                input.service_name,
                input.state.value,
            )
        else:
            activity.logger.info("breaker %r is now %s", input.service_name, record.state.value)
        return record

    @activity.defn(name="get_breaker_state")
    async def get_breaker_state(self, input: GetBreakerStateInput) -> BreakerRecord | None:
        """Return one breaker as the store holds it, or None if it holds none (a read only)."""
        try:
            return await asyncio.to_thread(self._store.get_state, input.service_name)
        except InvalidBreakerValue as invalid:
            # Reading again will not mend it: say so at once rather than retry for minutes.
            raise ApplicationError(str(invalid), type="InvalidBreakerValue", non_retryable=True)

    @activity.defn(name="list_breakers")
    async def list_breakers(self) -> list[BreakerRecord]:
        """Return every breaker the store knows (the circuit watch reads this)."""
        states = await asyncio.to_thread(self._store.get_all_states)
        return list(states.values())

    @activity.defn(name="list_open_breakers")
    async def list_open_breakers(self) -> list[OpenBreaker]:
        """Return the breakers the store holds open, oldest opening first (the watch's input)."""
        states = await asyncio.to_thread(self._store.get_all_states)
        found = [
            OpenBreaker(service_name=name, opened_at=record.opened_at)
            for name, record in states.items()
            if record.state is BreakerState.OPEN
        ]
        oldest_first = sorted(
            found, key=lambda b: (b.opened_at is None, b.opened_at, b.service_name)
        )
        if len(oldest_first) > MAX_LISTED:
            activity.logger.warning(
                "%d breakers are open: the watch is given the %d that opened first (the rest "
                "follow as these recover)",
                len(oldest_first),
                MAX_LISTED,
            )
        return oldest_first[:MAX_LISTED]
