"""The circuit-breaker store: one small interface, one backend per file.

The store is synchronous on purpose: SQLite and Redis clients are, and the
activities hand calls to a thread. ``CircuitBreakerRegistry`` (the reference
document's read API) is the same interface used directly from application code.
"""

from __future__ import annotations

import enum
import os
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

DEFAULT_STORE_URL = "sqlite:///.recovery/breakers.db"
STORE_URL_ENV = "RECOVERY_CIRCUIT_STORE"


class BreakerState(str, enum.Enum):
    """A breaker's state; values are pybreaker's state names."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class BreakerRecord(BaseModel):
    """One breaker as the store holds it."""

    service_name: str
    state: BreakerState
    fail_counter: int = 0
    success_counter: int = 0
    opened_at: datetime | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        """Return the reference document's ``{'state': 'open', ...}`` shape."""
        return self.model_dump(mode="json")


class CircuitBreakerStore(Protocol):
    """Where breaker states live. Every write is idempotent: setting a state twice is harmless."""

    def get_all_states(self) -> dict[str, BreakerRecord]:
        """Return every known breaker by service name."""
        ...

    def get_state(self, service_name: str) -> BreakerRecord | None:
        """Return one breaker, or None if the store has never seen it."""
        ...

    def set_state(self, service_name: str, state: BreakerState) -> BreakerRecord:
        """Set one breaker's state (creating it if new) and return it."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def store_url_from_env() -> str:
    """Return ``RECOVERY_CIRCUIT_STORE``, or the embedded SQLite default."""
    return os.environ.get(STORE_URL_ENV) or DEFAULT_STORE_URL


def open_store(url: str | None = None) -> CircuitBreakerStore:
    """Open the store a URL names: ``sqlite:///path`` (``redis://`` arrives with the roadmap).

    Raises:
        ValueError: the URL's scheme is not a supported store.
    """
    url = url or store_url_from_env()
    if url.startswith("sqlite://"):
        from activities.sqlite_store import SQLiteBreakerStore

        return SQLiteBreakerStore.from_url(url)
    raise ValueError(
        f"{STORE_URL_ENV}={url!r}: unsupported circuit store; expected sqlite:///path"
    )
