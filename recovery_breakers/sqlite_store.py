"""SQLite breaker store: the embedded default, one file under ``.recovery/``.

Besides the store interface it offers the small writes pybreaker's storage interface
needs (``recovery_breakers.pybreaker_adapter.SQLiteCircuitStorage``), so a service guarded by pybreaker in
one process and the orchestrator in another share one table. ``opened_at`` is kept to
whole seconds, as pybreaker's Redis storage keeps it, so both stores behave alike.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, overload

from activities.time_bounds import within_bounds
from recovery_breakers.store import (
    BreakerRecord,
    BreakerState,
    InvalidBreakerValue,
    parse_counter,
    parse_state,
    tolerant,
)

logger = logging.getLogger(__name__)

Counter = Literal["fail_counter", "success_counter"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS breakers (
    service_name    TEXT PRIMARY KEY,
    state           TEXT NOT NULL,
    fail_counter    INTEGER NOT NULL DEFAULT 0,
    success_counter INTEGER NOT NULL DEFAULT 0,
    opened_at       TEXT,
    updated_at      TEXT NOT NULL
)
"""

# The counters each state's entry resets, as pybreaker's states do on entry.
_RESETS = {
    BreakerState.HALF_OPEN: "success_counter = 0",
    BreakerState.OPEN: "success_counter = 0",
    BreakerState.CLOSED: "fail_counter = 0, success_counter = 0",
}
_UPSERT_STATE = (
    "INSERT INTO breakers (service_name, state, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT(service_name) DO UPDATE SET state = excluded.state, "
    "updated_at = excluded.updated_at"
)
# ISO-8601 strings of one offset (+00:00) sort in time order, so "greater" is a text comparison.
# ISO times compare as text; a value that is no time at all is replaced too.
_RAISE_OPENED_AT = (
    "UPDATE breakers SET opened_at = ? WHERE service_name = ? AND (opened_at IS NULL "
    "OR opened_at < ? OR opened_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*')"
)


class SQLiteBreakerStore:
    """Breakers in one SQLite table; safe to share between threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: activities call from worker threads.
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        self._conn.row_factory = sqlite3.Row
        # A row some other writer stored in another encoding must not stop every read:
        # its name decodes with U+FFFD, which is no valid service name, and is skipped.
        self._conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SQLiteBreakerStore:
        """Open ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
        return cls(cls.path_from_url(url))

    @staticmethod
    def path_from_url(url: str) -> Path:
        """Return the file ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` names.

        Raises:
            ValueError: the URL names no file.
        """
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ValueError(f"circuit store URL {url!r} names no database file")
        return Path(path)

    def get_all_states(self) -> dict[str, BreakerRecord]:
        """Return every readable breaker by service name, logging and skipping invalid rows."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM breakers ORDER BY service_name").fetchall()
        records: dict[str, BreakerRecord] = {}
        for row in rows:
            try:
                records[row["service_name"]] = _record(row)
            except InvalidBreakerValue as invalid:
                logger.warning("skipping breaker %r: %s", row["service_name"], invalid)
        return records

    def get_state(self, service_name: str) -> BreakerRecord | None:
        """Return one breaker, or None if never seen.

        Raises:
            InvalidBreakerValue: the breaker's row holds values no breaker could.
        """
        with self._lock:
            row = self._select(service_name)
        return _record(row) if row else None

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
        """Set a breaker's state as pybreaker would; see ``recovery_breakers.store``.

        Without ``create``, an absent breaker is not written (an UPDATE that matched no
        row, in the same transaction as the rest): None is returned.
        """
        now = _now()
        with self._lock, self._conn:
            if create:
                self._conn.execute(_UPSERT_STATE, (service_name, state.value, now))
            else:
                updated = self._conn.execute(
                    "UPDATE breakers SET state = ?, updated_at = ? WHERE service_name = ?",
                    (state.value, now, service_name),
                ).rowcount
                if updated == 0:
                    return None
            self._conn.execute(
                f"UPDATE breakers SET {_RESETS[state]} WHERE service_name = ?", (service_name,)
            )
            if state is BreakerState.OPEN:
                self._conn.execute(_RAISE_OPENED_AT, (now, service_name, now))
            row = self._select(service_name)
        assert row is not None  # written in this very transaction
        return _record(row)

    def forget(self, service_name: str) -> bool:
        """Delete one breaker; return whether it existed."""
        with self._lock, self._conn:
            deleted = self._conn.execute(
                "DELETE FROM breakers WHERE service_name = ?", (service_name,)
            ).rowcount
        return deleted > 0

    def initialize(self, service_name: str, state: BreakerState) -> None:
        """Create a breaker with zero counters unless it exists (pybreaker's SETNX start)."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO breakers (service_name, state, updated_at) "
                "VALUES (?, ?, ?)",
                (service_name, state.value, _now()),
            )

    def write_state(self, service_name: str, state: BreakerState) -> None:
        """Write the state alone (pybreaker resets counters itself, with separate writes)."""
        with self._lock, self._conn:
            self._conn.execute(_UPSERT_STATE, (service_name, state.value, _now()))

    def increment(self, service_name: str, counter: Counter) -> None:
        """Add one to a counter."""
        self._update(f"{counter} = {counter} + 1", service_name)

    def reset(self, service_name: str, counter: Counter) -> None:
        """Set a counter to zero; a counter already zero is not written (pybreaker resets on
        every successful call, and an unchanged row costs no disk sync)."""
        self._update(f"{counter} = 0", service_name, f" AND {counter} != 0")

    def raise_opened_at(self, service_name: str, when: datetime) -> None:
        """Set ``opened_at`` to ``when`` unless it already holds a later time."""
        stamp = _iso_seconds(when)
        with self._lock, self._conn:
            self._conn.execute(_RAISE_OPENED_AT, (stamp, service_name, stamp))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _select(self, service_name: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(
            "SELECT * FROM breakers WHERE service_name = ?", (service_name,)
        ).fetchone()
        return row

    def _update(self, assignment: str, service_name: str, condition: str = "") -> None:
        with self._lock, self._conn:
            self._conn.execute(
                f"UPDATE breakers SET {assignment}, updated_at = ? "
                f"WHERE service_name = ?{condition}",
                (_now(), service_name),
            )


def _now() -> str:
    return _iso_seconds(datetime.now(timezone.utc))


def _iso_seconds(when: datetime) -> str:
    """Return ``when`` as UTC ISO-8601 to the second, as pybreaker's Redis storage keeps it."""
    return _as_utc(when).replace(microsecond=0).isoformat()


def _as_utc(when: datetime) -> datetime:
    """Return ``when`` in UTC; a naive time is taken as UTC already, as pybreaker takes it."""
    return when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _parse_time(where: str, raw: object) -> datetime | None:
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidBreakerValue(where, raw)
    try:
        when = _as_utc(parsed)
    except OverflowError:  # year 9999 at -12:00 is past what a datetime holds in UTC
        raise InvalidBreakerValue(where, raw) from None
    if not within_bounds(when):  # no opening the coordinator can use: this breaker's own fault
        raise InvalidBreakerValue(where, raw)
    return when


def _record(row: sqlite3.Row) -> BreakerRecord:
    name = row["service_name"]

    def where(column: str) -> str:
        return f"breakers.{column} of {name!r}"

    return BreakerRecord(
        service_name=name,
        state=parse_state(where("state"), row["state"]),
        fail_counter=tolerant(parse_counter, where("fail_counter"), row["fail_counter"], 0),
        success_counter=tolerant(
            parse_counter, where("success_counter"), row["success_counter"], 0
        ),
        opened_at=tolerant(_parse_time, where("opened_at"), row["opened_at"], None),
        updated_at=tolerant(_parse_time, where("updated_at"), row["updated_at"], None),
    )
