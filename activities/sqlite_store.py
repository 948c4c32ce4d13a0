"""SQLite breaker store: the embedded default, one file under ``.recovery/``."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

from activities.breaker_store import BreakerRecord, BreakerState

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


class SQLiteBreakerStore:
    """Breakers in one SQLite table; safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: activities call from worker threads.
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        self._conn.row_factory = sqlite3.Row
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SQLiteBreakerStore:
        """Open ``sqlite:///relative/path`` or ``sqlite:////absolute/path``."""
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ValueError(f"circuit store URL {url!r} names no database file")
        return cls(path)

    def get_all_states(self) -> dict[str, BreakerRecord]:
        """Return every known breaker by service name."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM breakers ORDER BY service_name").fetchall()
        return {row["service_name"]: _record(row) for row in rows}

    def get_state(self, service_name: str) -> BreakerRecord | None:
        """Return one breaker, or None if never seen."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM breakers WHERE service_name = ?", (service_name,)
            ).fetchone()
        return _record(row) if row else None

    def set_state(self, service_name: str, state: BreakerState) -> BreakerRecord:
        """Set a breaker's state; opening stamps ``opened_at``, closing clears the counters."""
        now = datetime.now(timezone.utc).isoformat()
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO breakers (service_name, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(service_name) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (service_name, state.value, now),
            )
            if state is BreakerState.OPEN:
                self._conn.execute(
                    "UPDATE breakers SET opened_at = ? WHERE service_name = ?", (now, service_name)
                )
            elif state is BreakerState.CLOSED:
                self._conn.execute(
                    "UPDATE breakers SET fail_counter = 0, success_counter = 0, opened_at = NULL "
                    "WHERE service_name = ?",
                    (service_name,),
                )
            row = self._conn.execute(
                "SELECT * FROM breakers WHERE service_name = ?", (service_name,)
            ).fetchone()
        return _record(row)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _record(row: sqlite3.Row) -> BreakerRecord:
    return BreakerRecord(
        service_name=row["service_name"],
        state=BreakerState(row["state"]),
        fail_counter=row["fail_counter"],
        success_counter=row["success_counter"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
    )
