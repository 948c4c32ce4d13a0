"""What ``recoveryctl`` shows that is more than one document: each view knows its table
for people and its JSON for scripts (the shapes scripts depend on)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from recovery_breakers.store import BreakerRecord, BreakerState
from starter.cli.text import (
    approve_command,
    clock,
    compact_duration,
    human_duration,
    one_line,
    outcome_text,
    state_text,
    table,
)
from workflows.models import AttemptRecord


class View(ABC):
    """Something shown as a table to people and as JSON to scripts."""

    @abstractmethod
    def renderable(self) -> RenderableType:
        """Return what a terminal shows."""

    @abstractmethod
    def to_json(self) -> Any:
        """Return the JSON document scripts read."""


@dataclass
class Status(View):
    """The coordinator's ``get_recovery_status``, and the recoveries it does not know.

    ``uncoordinated`` is None when they could not be listed (``listing_note`` says why);
    ``cut_at`` is the listing's bound when more recoveries were running.
    """

    status: dict[str, Any]
    uncoordinated: dict[str, dict[str, Any]] | None = field(default_factory=dict)
    cut_at: int | None = None
    listing_note: str = ""

    def to_json(self) -> Any:
        """The coordinator's document in its reference shape (SPEC §6); what it does not
        know is beside it, under keys of its own."""
        return {
            **self.status,
            "uncoordinated": self.uncoordinated,
            "uncoordinated_truncated": self.cut_at is not None,
        }

    def renderable(self) -> RenderableType:
        """The head line, the services, pauses and holds, the uncoordinated, the recent."""
        status = self.status
        head = Text.assemble(
            "orchestrator running: ",
            ("yes", "green") if status["orchestrator_running"] else ("no", "bold red"),
            f"   active: {status['active_recoveries']}   queued: {status['queued_recoveries']}",
        )
        services = table(
            ["SERVICE", "STATE", "STRATEGY", "PRIORITY", "ATTEMPTS", "NEXT ATTEMPT", "WHY"],
            [
                [
                    name,
                    state_text(entry["state"]),
                    entry["strategy"],
                    "-" if entry["priority"] is None else entry["priority"],
                    f"{entry['attempt_count']}/{entry['max_attempts']}",
                    clock(entry["next_attempt_at"]),
                    _why(name, entry),
                ]
                for name, entry in sorted(
                    status["services"].items(),
                    key=lambda item: (item[1]["priority"] is None, item[1]["priority"] or 0, item[0]),
                )
            ],
        )
        paused = _holds("PAUSED UNTIL", "REASON", status.get("paused"))
        held = _holds("HELD BACK UNTIL", "WHY", status.get("held_back"))
        parts: list[RenderableType] = [head, Text(""), services or Text("no recoveries")]
        if paused:
            parts += [
                Text(""),
                Text("paused (nothing automatic schedules them; `recoveryctl resume NAME` lifts it):"),
                paused,
            ]
        if held:
            parts += [Text(""), Text(_held_title(status["held_back"])), held]
        parts += self._uncoordinated()
        parts += [Text(""), Text("recent:"), history_table(status["recent_history"][-5:]) or Text("none")]
        return Group(*parts)

    def _uncoordinated(self) -> list[RenderableType]:
        title = "not coordinated (started outside the coordinator, e.g. with the temporal CLI):"
        if self.uncoordinated is None:
            return [Text(""), Text(f"{title} could not be listed ({self.listing_note})")]
        shown = table(
            ["SERVICE", "STATE", "STRATEGY", "PRIORITY", "STARTED", "WORKFLOW ID", "COORDINATED"],
            [
                [
                    name,
                    state_text(entry["state"] or "-"),
                    entry["strategy"] or "-",
                    "-" if entry["priority"] is None else entry["priority"],
                    clock(entry["started_at"]),
                    entry["workflow_id"],
                    "no",
                ]
                for name, entry in sorted(self.uncoordinated.items())
            ],
        )
        parts: list[RenderableType] = [] if shown is None else [Text(""), Text(title), shown]
        if self.cut_at is not None:
            parts.append(
                Text(f"(listing cut: only the first {self.cut_at} running recoveries were read)")
            )
        return parts


@dataclass
class Attempts(View):
    """One recovery's attempts."""

    attempts: list[AttemptRecord]

    def to_json(self) -> Any:
        """Each attempt's record."""
        return [a.model_dump(mode="json") for a in self.attempts]

    def renderable(self) -> RenderableType:
        """One row per attempt: when, how long it waited, what it rests on, who approved it."""
        approvals = any(a.approved_by for a in self.attempts)  # a MANUAL recovery's
        rows: list[list[Any]] = []
        for a in self.attempts:
            row: list[Any] = [
                a.attempt,
                clock(a.started_at.isoformat()),
                human_duration(a.delay_ms / 1000),
                _attempt_result(a),
                _check_cell(a),
            ]
            if approvals:
                note = f": {one_line(a.approval_note)}" if a.approval_note else ""
                row.append(f"{a.approved_by}{note}" if a.approved_by else "")
            rows.append([*row, a.error or ""])
        headers = ["ATTEMPT", "STARTED", "WAITED", "RESULT", "HEALTH CHECK"]
        headers += ["APPROVED BY"] if approvals else []
        return table([*headers, "ERROR"], rows) or Text("no attempts yet")


@dataclass
class RecentHistory(View):
    """The recently finished recoveries (``RecoveryResult.to_dict()`` each)."""

    results: list[dict[str, Any]]

    def to_json(self) -> Any:
        """The results as the coordinator keeps them."""
        return self.results

    def renderable(self) -> RenderableType:
        """One row per finished recovery."""
        return history_table(self.results) or Text("none")


@dataclass
class Breakers(View):
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

    def to_json(self) -> Any:
        """The store and its breakers."""
        return {"store": self.store, "breakers": self.rows()}

    def renderable(self) -> RenderableType:
        """The store, then one row per breaker."""
        shown = table(
            ["SERVICE", "STATE", "FAILURES", "SUCCESSES", "OPEN FOR", "LAST OPENED"],
            [
                [
                    record.service_name,
                    state_text(record.state.value),
                    record.fail_counter,
                    record.success_counter,
                    compact_duration(self.open_for(record)),
                    clock(record.opened_at.isoformat() if record.opened_at else None),
                ]
                for record in self.records
            ],
        )
        return Group(Text(f"store: {self.store}"), Text(""), shown or Text("no breakers yet"))


def history_table(results: list[dict[str, Any]]) -> Table | None:
    """Return finished recoveries as a table (None without any)."""
    return table(
        ["SERVICE", "STATE", "ATTEMPTS", "ELAPSED", "FINISHED", "ERROR"],
        [
            [
                r["service_name"],
                outcome_text(r),
                f"{r['attempt_number']}/{r['total_attempts']}",
                human_duration(r["elapsed_time_ms"] / 1000),
                clock(r["timestamp"]),
                r["error_message"] or "",
            ]
            for r in results
        ],
    )


def _holds(until: str, why: str, holds: dict[str, dict[str, Any]] | None) -> Table | None:
    """Return the services held off automation (paused, or held back) as a table."""
    return table(
        ["SERVICE", until, why],
        [
            [name, clock(entry.get("until")), one_line(entry.get("reason"))]
            for name, entry in sorted((holds or {}).items())
        ],
    )


def _held_title(held_back: dict[str, dict[str, Any]]) -> str:
    reasons = [str(entry.get("reason") or "") for entry in held_back.values()]
    if all(reason.startswith("storm guard") for reason in reasons):
        return "held back by the storm guard:"
    return "held back (automation waits; an operator may still schedule them):"


def _why(name: str, entry: dict[str, Any]) -> str:
    """Return why a service is where it is: the coordinator's reason, else what it waits for."""
    if entry.get("reason"):
        return str(entry["reason"])
    if entry["state"] == "awaiting_manual":
        return f"waiting for an operator: {approve_command(name)}"
    return ""


def _attempt_result(attempt: AttemptRecord) -> Text:
    """Say what a success rests on (the evidence rule): only a passed check is green."""
    checked = attempt.health_check is not None and attempt.health_check.passed
    if attempt.result != "success" or checked:
        return state_text(attempt.result or "running")
    if attempt.evidence == "breaker_trial":
        return Text("success (the service's own calls closed its breaker)", style="green")
    if attempt.breaker_found is False:
        return Text("success (no breaker in the store, no health check)", style="yellow")
    return Text("success (closed without a health check)", style="yellow")


def _check_cell(attempt: AttemptRecord) -> str:
    if attempt.health_check is not None:
        return attempt.health_check.detail
    if attempt.evidence == "breaker_trial":
        return "none configured: watched the breaker's own trial"
    if attempt.error and attempt.error.startswith("health check could not run"):
        return "could not run (see ERROR)"
    return "none configured"
