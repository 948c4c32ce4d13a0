"""The service side: pybreaker breakers whose state lives in the orchestrator's shared store.

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

from datetime import datetime
from typing import Any

import pybreaker

from recovery_breakers.redis_store import RedisBreakerStore
from recovery_breakers.sqlite_store import Counter, SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from recovery_breakers.stores import open_store
from workflows.models import validate_service_name


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
        ValueError: the store URL is not a supported store, or its store cannot be opened.
    """
    service_name = validate_service_name(name)
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        state_storage=circuit_storage(service_name, store_url),
        name=service_name,
        **kwargs,
    )


def circuit_storage(
    service_name: str, store_url: str | None = None
) -> pybreaker.CircuitBreakerStorage:
    """Return the pybreaker storage of one service's breaker in the store a URL names.

    The URL is read by ``open_store`` alone; this only picks pybreaker's view of the
    backend it opened.
    """
    store = open_store(store_url)
    if isinstance(store, RedisBreakerStore):
        return pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, store.client, namespace=service_name
        )
    if isinstance(store, SQLiteBreakerStore):
        return SQLiteCircuitStorage(service_name, store)
    raise TypeError(f"no pybreaker storage for {type(store).__name__}")  # a new backend


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
