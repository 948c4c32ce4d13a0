"""The circuit-breaker store: one small interface (backends: ``sqlite_store``, ``redis_store``).

The store is synchronous on purpose: SQLite and Redis clients are, and the
activities hand calls to a thread. ``recovery_breakers.registry.CircuitBreakerRegistry``
(the reference document's read API) wraps the same interface for application code.

Both backends follow pybreaker's own transitions, so a service guarded by pybreaker
and the orchestrator agree on what a write means:

- half-open: the success counter restarts at 0 (pybreaker's half-open state does so);
- closed: both counters restart at 0, ``opened_at`` stays (``CircuitBreaker.close()``);
- open: the success counter restarts at 0 and ``opened_at`` moves to now, never backwards
  (``CircuitBreaker.open()``), so the service's own reset timeout starts again.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Literal, Protocol, TypeVar, overload

from pydantic import BaseModel

logger = logging.getLogger(__name__)
R = TypeVar("R")
T = TypeVar("T")

# What Redis's INCR accepts as an integer; Python's int() is laxer ("1_0", " 7").
_INTEGER = re.compile(r"-?[0-9]+")


class BreakerState(str, enum.Enum):
    """A breaker's state; values are pybreaker's state names."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class BreakerRecord(BaseModel):
    """One breaker as the store holds it; ``opened_at`` is UTC (``updated_at`` only in SQLite)."""

    service_name: str
    state: BreakerState
    fail_counter: int = 0
    success_counter: int = 0
    opened_at: datetime | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        """Return the reference document's ``{'state': 'open', ...}`` shape."""
        return self.model_dump(mode="json")


class InvalidBreakerValue(ValueError):
    """A stored value that no breaker could hold, written by something other than a breaker."""

    def __init__(self, where: str, value: object) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = f"{shown[:80]}… ({len(shown)} characters)"
        super().__init__(f"{where} holds {shown}, which is not a valid breaker value")
        self.where = where


class CircuitBreakerStore(Protocol):
    """Where breaker states live. Every write is idempotent: setting a state twice is harmless.

    Backend errors (a Redis outage, a locked database) raise: the activity calling the
    store fails and Temporal retries it, rather than acting on a made-up state.
    """

    def get_all_states(self) -> dict[str, BreakerRecord]:
        """Return every readable breaker by service name, logging and skipping invalid ones."""
        ...

    def get_state(self, service_name: str) -> BreakerRecord | None:
        """Return one breaker, or None if the store has never seen it.

        Raises:
            InvalidBreakerValue: the breaker's stored values are not a breaker's.
        """
        ...

    @overload
    def set_state(
        self, service_name: str, state: BreakerState, *, create: Literal[True] = True
    ) -> BreakerRecord: ...

    @overload
    def set_state(
        self, service_name: str, state: BreakerState, *, create: bool
    ) -> BreakerRecord | None: ...

    def set_state(
        self, service_name: str, state: BreakerState, *, create: bool = True
    ) -> BreakerRecord | None:
        """Set one breaker's state as pybreaker would and return it.

        With ``create`` (the default) a breaker the store has never seen is created.
        Without, only an existing breaker is written: for one that is absent nothing
        is written and None is returned, in one atomic step, so a breaker deleted at the
        same moment is never brought back (a recovery never makes up a breaker, SPEC §4).
        """
        ...

    def forget(self, service_name: str) -> bool:
        """Delete one breaker; return whether it existed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def parse_state(where: str, raw: object) -> BreakerState:
    """Return the state a stored value names.

    Raises:
        InvalidBreakerValue: the value is not one of pybreaker's three state names.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        return BreakerState(text)
    except ValueError:
        raise InvalidBreakerValue(where, raw) from None


def parse_counter(where: str, raw: object) -> int:
    """Return a stored counter; a missing one is 0, as pybreaker reads it.

    Raises:
        InvalidBreakerValue: the value is not an integer.
    """
    if raw is None or raw in (b"", ""):
        return 0
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    # At most a 64-bit integer, as Redis's INCR keeps: Python refuses to read an integer
    # of over 4,300 digits at all, and one garbled breaker must not stop the others.
    if isinstance(text, str) and len(text) <= 20 and _INTEGER.fullmatch(text):
        value = int(text)
        if -(2**63) <= value < 2**63:
            return value
    raise InvalidBreakerValue(where, raw)


def tolerant(parse: Callable[[str, R], T], where: str, raw: R, default: T) -> T:
    """Parse a breaker's secondary value (a counter, a time); log and use ``default`` if bad.

    Only its state decides whether a breaker is one: an open breaker with a garbled
    ``opened_at`` must still be listed, recovered and shown, not vanish.
    """
    try:
        return parse(where, raw)
    except InvalidBreakerValue as invalid:
        logger.warning("%s; read as %r", invalid, default)
        return default

