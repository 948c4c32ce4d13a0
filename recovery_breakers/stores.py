"""Open the breaker store a URL names: the one place that reads a store URL.

Backends import the interface (``recovery_breakers.store``); only this module imports
the backends, so nothing leans back. The worker, ``recoveryctl breakers`` and the
service-side pybreaker adapter all open their store here.
"""

from __future__ import annotations

from activities.redaction import redact
from activities.settings import STORE_URL_ENV, RecoverySettings
from recovery_breakers.store import CircuitBreakerStore


def store_url_from_env() -> str:
    """Return ``RECOVERY_CIRCUIT_STORE``, or the embedded SQLite default."""
    store_url: str = RecoverySettings.read("circuit_store")
    return store_url


def open_store(url: str | None = None) -> CircuitBreakerStore:
    """Open the store a URL names: ``sqlite:///path`` or ``redis://host:port/db`` (``rediss://``).

    Args:
        url: the store's URL; by default ``RECOVERY_CIRCUIT_STORE``.

    Raises:
        ValueError: the URL's scheme is not a supported store, its Redis URL does not
            parse, or its SQLite file cannot be created or opened.
    """
    url = url or store_url_from_env()
    # Each backend is imported only when named: redis (with the OpenTelemetry it pulls
    # in) costs a worker on SQLite about 9 MB of RSS for nothing.
    if url.startswith("sqlite://"):
        import sqlite3

        from recovery_breakers.sqlite_store import SQLiteBreakerStore

        try:
            return SQLiteBreakerStore.from_url(url)
        except (OSError, sqlite3.Error) as err:
            # A path the worker cannot create or open is a bad setting: said in one line.
            raise ValueError(
                f"{STORE_URL_ENV}={redact(url)!r}: cannot open the SQLite circuit store: {err}"
            ) from None
    if url.startswith(("redis://", "rediss://")):
        from recovery_breakers.redis_store import RedisBreakerStore

        return RedisBreakerStore.from_url(url)
    raise ValueError(
        f"{STORE_URL_ENV}={redact(url)!r}: unsupported circuit store; "
        "expected sqlite:///path or redis://host:port/db (rediss:// for TLS)"
    )
