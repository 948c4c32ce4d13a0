"""How ``recoveryctl`` shows things: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from workflows.models import AttemptRecord


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
        ]
        for name, entry in sorted(
            status["services"].items(),
            key=lambda item: (item[1]["priority"] is None, item[1]["priority"] or 0, item[0]),
        )
    ]
    table = _table(["SERVICE", "STATE", "STRATEGY", "PRIORITY", "ATTEMPTS", "NEXT ATTEMPT"], rows)
    recent = _history_text(status["recent_history"][-5:])
    return "\n\n".join(part for part in (head, table or "no recoveries", "recent:\n" + recent) if part)


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
