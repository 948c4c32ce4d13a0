"""The service side: pybreaker breakers on the orchestrator's shared store, and a read-only view.

One line guards a call::

    payments = breaker("payments", fail_max=5, reset_timeout=30)
    payments.call(charge, order)        # or put ``@payments`` above ``def charge(order): ...``

The breaker is pybreaker's own ``CircuitBreaker``; only its storage is shared with the
orchestrator, chosen by ``store_url`` or ``RECOVERY_CIRCUIT_STORE`` (default: the SQLite file
under ``.recovery/``). On Redis it is pybreaker's ``CircuitRedisStorage`` with the service name
as namespace; on SQLite, ``SQLiteCircuitStorage`` over the worker's table. So when the breaker
opens, the circuit watch sees it and schedules a recovery; when the recovery sets it half-open
or closed, the service's breaker acts on that at its next call.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pybreaker
import redis

from activities.breaker_store import (
    REDIS_SCHEMES,
    BreakerRecord,
    BreakerState,
    store_url_from_env,
    unsupported_store_url,
)
from activities.stores import open_store
from activities.sqlite_store import Counter, SQLiteBreakerStore
from workflows.constants import CONSTITUTIONAL_HASH
from workflows.models import validate_service_name

HEALTHY = "healthy"
DEGRADED = "degraded"
CRITICAL = "critical"


def breaker(
    name: str,
    *,
    fail_max: int = 5,
    reset_timeout: float = 60,
    store_url: str | None = None,
    **kwargs: Any,
) -> pybreaker.CircuitBreaker:
    """Return a pybreaker breaker for service ``name`` whose state the orchestrator shares.

    Args:
        name: the service name (1-200 characters of ``A-Z a-z 0-9 _ . -``), also the
            breaker's name and its Redis namespace.
        fail_max: consecutive failures that open the breaker.
        reset_timeout: seconds an open breaker rejects calls before letting one through.
        store_url: ``sqlite:///path`` or ``redis://…``; default ``RECOVERY_CIRCUIT_STORE``.
        **kwargs: any other ``pybreaker.CircuitBreaker`` argument (``exclude``, ``listeners``,
            ``success_threshold``, …).

    Raises:
        RecoveryValidationError: ``name`` is not a valid service name.
        ValueError: the store URL's scheme is not supported.
    """
    service_name = validate_service_name(name)
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        state_storage=circuit_storage(service_name, store_url or store_url_from_env()),
        name=service_name,
        **kwargs,
    )


def circuit_storage(service_name: str, store_url: str) -> pybreaker.CircuitBreakerStorage:
    """Return the pybreaker storage of one service's breaker in the store a URL names."""
    if store_url.startswith(REDIS_SCHEMES):
        client = redis.Redis.from_url(store_url)
        return pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=service_name)
    if store_url.startswith("sqlite://"):
        return SQLiteCircuitStorage(service_name, SQLiteBreakerStore.from_url(store_url))
    raise unsupported_store_url(store_url)


class SQLiteCircuitStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's storage interface over one row of the orchestrator's SQLite table.

    Every read goes to the file, never to a cache, so a state the orchestrator writes from
    another process is what the breaker acts on at its next call. Unlike pybreaker's Redis
    storage, a database error raises rather than falling back to ``closed``: a local file
    that cannot be read is a fault of the host, not of the service.
    """

    def __init__(
        self, service_name: str, store: SQLiteBreakerStore, state: str = pybreaker.STATE_CLOSED
    ) -> None:
        super().__init__("sqlite")
        self._service_name = service_name
        self._store = store
        store.initialize(service_name, BreakerState(state))

    @property
    def state(self) -> str:
        """Return the current state; a deleted breaker starts again closed, as on Redis."""
        record = self._store.get_state(self._service_name)
        if record is None:
            self._store.initialize(self._service_name, BreakerState.CLOSED)
            return pybreaker.STATE_CLOSED
        return record.state.value

    @state.setter
    def state(self, state: str) -> None:
        """Set the current state (pybreaker resets the counters itself)."""
        self._store.write_state(self._service_name, BreakerState(state))

    def increment_counter(self) -> None:
        """Increase the failure counter by one."""
        self._store.increment(self._service_name, "fail_counter")

    def reset_counter(self) -> None:
        """Set the failure counter to zero."""
        self._store.reset(self._service_name, "fail_counter")

    def increment_success_counter(self) -> None:
        """Increase the success counter by one."""
        self._store.increment(self._service_name, "success_counter")

    def reset_success_counter(self) -> None:
        """Set the success counter to zero."""
        self._store.reset(self._service_name, "success_counter")

    @property
    def counter(self) -> int:
        """Return the failure counter."""
        return self._counter("fail_counter")

    @property
    def success_counter(self) -> int:
        """Return the success counter."""
        return self._counter("success_counter")

    @property
    def opened_at(self) -> datetime | None:
        """Return when the breaker last opened (UTC, to the second)."""
        record = self._store.get_state(self._service_name)
        return record.opened_at if record else None

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        """Move the opening time forward to ``now``, never back (pybreaker's set-if-greater)."""
        self._store.raise_opened_at(self._service_name, now)

    def _counter(self, counter: Counter) -> int:
        record = self._store.get_state(self._service_name)
        if record is None:
            return 0
        return record.fail_counter if counter == "fail_counter" else record.success_counter


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
