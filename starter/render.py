"""How ``recoveryctl`` shows things: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from activities.breaker_store import BreakerRecord, BreakerState
from workflows.models import AttemptRecord

if TYPE_CHECKING:
    from starter.watch_schedule import WatchState


@dataclass
class Status:
    """The coordinator's ``get_recovery_status``."""

    status: dict[str, Any]


@dataclass
class Attempts:
    """One recovery's attempts."""

    attempts: list[AttemptRecord]


@dataclass
class RecentHistory:
    """The recently finished recoveries (``RecoveryResult.to_dict()`` each)."""

    results: list[dict[str, Any]]


@dataclass
class Breakers:
    """Every breaker in a store, read at ``now``."""

    records: list[BreakerRecord]
    store: str
    now: datetime

    def rows(self) -> list[dict[str, Any]]:
        """Return each breaker as JSON, with how long it has been open (open or half-open)."""
        return [
            {
                **record.model_dump(mode="json"),
                "open_for_seconds": self.open_for(record),
            }
            for record in self.records
        ]

    def open_for(self, record: BreakerRecord) -> float | None:
        """Return seconds since the breaker opened, while it is not closed."""
        if record.state is BreakerState.CLOSED or record.opened_at is None:
            return None
        return round((self.now - record.opened_at).total_seconds(), 1)


@dataclass
class Watch:
    """The circuit watch's schedule."""

    state: WatchState


def render(value: Any, as_json: bool) -> str:
    """Return ``value`` as JSON, or as text for people."""
    if as_json:
        return json.dumps(_plain(value), indent=2, default=str)
    if isinstance(value, Status):
        return _status_text(value.status)
    if isinstance(value, Attempts):
        return _table(
            ["ATTEMPT", "STARTED", "WAITED", "RESULT", "HEALTH CHECK", "ERROR"],
            [
                [
                    a.attempt,
                    _time(a.started_at.isoformat()),
                    f"{a.delay_ms} ms",
                    a.result or "running",
                    a.health_check.detail if a.health_check else "-",
                    a.error or "",
                ]
                for a in value.attempts
            ],
        ) or "no attempts yet"
    if isinstance(value, RecentHistory):
        return _history_text(value.results)
    if isinstance(value, Breakers):
        return _breakers_text(value)
    if isinstance(value, Watch):
        return _watch_text(value.state)
    return "\n".join(_lines(_plain(value), 0))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Status):
        return value.status
    if isinstance(value, Attempts):
        return [a.model_dump(mode="json") for a in value.attempts]
    if isinstance(value, RecentHistory):
        return value.results
    if isinstance(value, Breakers):
        return {"store": value.store, "breakers": value.rows()}
    if isinstance(value, Watch):
        state = value.state
        return {
            "paused": state.paused,
            "note": state.note,
            "interval_seconds": state.interval_seconds,
            "next_runs": [t.isoformat() for t in state.next_runs],
            "recent_runs": [t.isoformat() for t in state.recent_runs],
            "settings": state.settings.model_dump(mode="json"),
        }
    return value


def _status_text(status: dict[str, Any]) -> str:
    head = (
        f"orchestrator running: {'yes' if status['orchestrator_running'] else 'no'}   "
        f"active: {status['active_recoveries']}   queued: {status['queued_recoveries']}"
    )
    rows = [
        [
            name,
            entry["state"],
            entry["strategy"],
            "-" if entry["priority"] is None else entry["priority"],
            f"{entry['attempt_count']}/{entry['max_attempts']}",
            _time(entry["next_attempt_at"]),
            entry.get("reason", ""),
        ]
        for name, entry in sorted(
            status["services"].items(),
            key=lambda item: (item[1]["priority"] is None, item[1]["priority"] or 0, item[0]),
        )
    ]
    table = _table(
        ["SERVICE", "STATE", "STRATEGY", "PRIORITY", "ATTEMPTS", "NEXT ATTEMPT", "WHY"], rows
    )
    held = _table(
        ["SERVICE", "HELD BACK UNTIL", "WHY"],
        [
            [name, _time(entry["until"]), entry["reason"]]
            for name, entry in sorted(status.get("held_back", {}).items())
        ],
    )
    recent = _history_text(status["recent_history"][-5:])
    parts = (
        head,
        table or "no recoveries",
        "held back by the storm guard:\n" + held if held else "",
        "recent:\n" + recent,
    )
    return "\n\n".join(part for part in parts if part)


def _breakers_text(view: Breakers) -> str:
    rows = [
        [
            record.service_name,
            record.state.value,
            record.fail_counter,
            record.success_counter,
            _duration(view.open_for(record)),
            _time(record.opened_at.isoformat() if record.opened_at else None),
        ]
        for record in view.records
    ]
    table = _table(["SERVICE", "STATE", "FAILURES", "SUCCESSES", "OPEN FOR", "LAST OPENED"], rows)
    return f"store: {view.store}\n\n{table or 'no breakers yet'}"


def _watch_text(state: WatchState) -> str:
    settings = state.settings
    lines = [
        f"circuit watch: {'PAUSED' if state.paused else 'running'}"
        + (f" ({state.note})" if state.note else ""),
        f"every: {state.interval_seconds:g} s" if state.interval_seconds else "every: -",
        "next runs: " + (", ".join(_time(t.isoformat()) for t in state.next_runs) or "-"),
        "recent runs: " + (", ".join(_time(t.isoformat()) for t in state.recent_runs) or "-"),
        f"services file: {settings.source or 'none'} ({len(settings.services)} services; "
        f"unlisted breakers {'recovered with [defaults]' if settings.recover_unlisted else 'ignored'})",
    ]
    return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _history_text(results: list[dict[str, Any]]) -> str:
    return _table(
        ["SERVICE", "STATE", "ATTEMPTS", "ELAPSED", "FINISHED", "ERROR"],
        [
            [
                r["service_name"],
                r["state"],
                f"{r['attempt_number']}/{r['total_attempts']}",
                f"{r['elapsed_time_ms'] / 1000:.1f} s",
                _time(r["timestamp"]),
                r["error_message"] or "",
            ]
            for r in results
        ],
    ) or "none"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    cells = [headers] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells
    )


def _time(iso: str | None) -> str:
    """Show an ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return iso[:19].replace("T", " ") if iso else "-"


def _lines(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(value, dict):
        lines: list[str] = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_lines(item, depth + 1))
            else:
                lines.append(f"{pad}{key}: {'-' if item is None else item}")
        return lines
    if isinstance(value, list):
        lines = []
        for index, item in enumerate(value, 1):
            lines.append(f"{pad}[{index}]")
            lines.extend(_lines(item, depth + 1))
        return lines
    return [f"{pad}{value}"]
