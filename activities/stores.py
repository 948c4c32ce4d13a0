"""Open the breaker store a URL names: the dispatch, apart from the interface.

Backends import the interface (``activities.breaker_store``); only this module
imports the backends, so nothing leans back.
"""

from __future__ import annotations

from activities.breaker_store import (
    REDIS_SCHEMES,
    CircuitBreakerStore,
    store_url_from_env,
    unsupported_store_url,
)


def open_store(url: str | None = None) -> CircuitBreakerStore:
    """Open the store a URL names: ``sqlite:///path`` or ``redis://host:port/db`` (``rediss://``).

    Raises:
        ValueError: the URL's scheme is not a supported store.
    """
    url = url or store_url_from_env()
    # Each backend is imported only when named: redis (with the OpenTelemetry it pulls
    # in) costs a worker on SQLite about 9 MB of RSS for nothing.
    if url.startswith("sqlite://"):
        from activities.sqlite_store import SQLiteBreakerStore

        return SQLiteBreakerStore.from_url(url)
    if url.startswith(REDIS_SCHEMES):
        from activities.redis_store import RedisBreakerStore

        return RedisBreakerStore.from_url(url)
    raise unsupported_store_url(url)
