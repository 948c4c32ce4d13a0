"""Open the breaker store a URL names: the dispatch, apart from the interface.

Backends import the interface (``activities.breaker_store``); only this module
imports the backends, so nothing leans back.
"""

from __future__ import annotations

from activities.breaker_store import (
    REDIS_SCHEMES,
    STORE_URL_ENV,
    CircuitBreakerStore,
    store_url_from_env,
    unsupported_store_url,
)
from activities.redaction import redact


def open_store(url: str | None = None) -> CircuitBreakerStore:
    """Open the store a URL names: ``sqlite:///path`` or ``redis://host:port/db`` (``rediss://``).

    Raises:
        ValueError: the URL's scheme is not a supported store, or its SQLite file cannot
            be created or opened.
    """
    url = url or store_url_from_env()
    # Each backend is imported only when named: redis (with the OpenTelemetry it pulls
    # in) costs a worker on SQLite about 9 MB of RSS for nothing.
    if url.startswith("sqlite://"):
        import sqlite3

        from activities.sqlite_store import SQLiteBreakerStore

        try:
            return SQLiteBreakerStore.from_url(url)
        except (OSError, sqlite3.Error) as err:
            # A path the worker cannot create or open is a bad setting: said in one line.
            raise ValueError(
                f"{STORE_URL_ENV}={redact(url)!r}: cannot open the SQLite circuit store: {err}"
            ) from None
    if url.startswith(REDIS_SCHEMES):
        from activities.redis_store import RedisBreakerStore

        return RedisBreakerStore.from_url(url)
    raise unsupported_store_url(url)
