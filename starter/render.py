"""How ``recoveryctl`` shows things: rich tables for people, JSON for scripts.

Tables have no borders, so a pipe gets plain aligned columns (``awk``, ``grep``); a
terminal gets bold headers and coloured states. Every cell is ``Text``, never markup:
a reason such as ``[defaults]`` is shown as written.
"""

from __future__ import annotations

import getpass
import io
import json
import math
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from activities.breaker_store import BreakerRecord, BreakerState
from workflows.coordinator_models import (
    PauseServiceResult,
    ResumeServiceResult,
    ScheduleRecoveryResult,
)
from workflows.models import AttemptRecord, RecoveryResult

if TYPE_CHECKING:
    from starter.watch_control import WatchState

# Off a terminal nothing may wrap: a line per row, whatever the width of the data.
PIPE_WIDTH = 10_000

STATE_STYLES = {
    "succeeded": "green",
    "success": "green",
    "closed": "green",
    "failed": "red",
    "failure": "red",
    "open": "red",
    "cancelled": "red",
    "in_progress": "yellow",
    "half_open": "yellow",
    "awaiting_manual": "bold magenta",
    "scheduled": "cyan",
}
# How a success reads when no health check showed that the service answers (SPEC §4).
UNCHECKED_SUCCESS = "succeeded (closed without a health check)"


@dataclass
class Status:
    """The coordinator's ``get_recovery_status``, and the recoveries it does not know.

    ``uncoordinated`` is None when they could not be listed (``listing_note`` says why);
    ``cut_at`` is the listing's bound when more recoveries were running.
    """

    status: dict[str, Any]
    uncoordinated: dict[str, dict[str, Any]] | None = field(default_factory=dict)
    cut_at: int | None = None
    listing_note: str = ""


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


def console() -> Console:
    """Return the console for stdout: the terminal's width, or no wrapping in a pipe."""
    terminal = sys.stdout.isatty()
    return Console(highlight=False, width=None if terminal else PIPE_WIDTH, soft_wrap=not terminal)


def show(value: Any, as_json: bool, out: Console) -> None:
    """Print ``value``: styled on a terminal, plain text or JSON elsewhere."""
    if as_json or not out.is_terminal:
        print(render(value, as_json), flush=True)
    else:
        out.print(renderable(value))


def render(value: Any, as_json: bool) -> str:
    """Return ``value`` as JSON, or as plain text for people (no colour, no wrapping)."""
    if as_json:
        return json.dumps(to_json(value), indent=2, default=str)
    return plain_text(renderable(value))


def plain_text(item: RenderableType) -> str:
    """Return what ``item`` shows as plain text: no colour, no wrapping, no trailing blanks."""
    plain = Console(
        file=io.StringIO(), width=PIPE_WIDTH, color_system=None, highlight=False, soft_wrap=True
    )
    with plain.capture() as captured:
        plain.print(item)
    return "\n".join(line.rstrip() for line in captured.get().rstrip("\n").splitlines())


def show_renderable(item: RenderableType, out: Console) -> None:
    """Print a rich renderable: styled on a terminal, plain text (as ``render``) elsewhere."""
    if out.is_terminal:
        out.print(item)
    else:
        print(plain_text(item), flush=True)


def renderable(value: Any) -> RenderableType:
    """Return what a terminal shows for ``value``."""
    if isinstance(value, Status):
        return _status(value)
    if isinstance(value, Attempts):
        return _attempts(value.attempts)
    if isinstance(value, RecentHistory):
        return _history(value.results) or Text("none")
    if isinstance(value, Breakers):
        return _breakers(value)
    if isinstance(value, Watch):
        return Text(_watch_text(value.state))
    if isinstance(value, ScheduleRecoveryResult) and not value.no_health_check:
        # The flag is automation's (its recovery needs evidence): an operator's is left out.
        return Text("\n".join(_lines(value.model_dump(mode="json", exclude={"no_health_check"}), 0)))
    if isinstance(value, RecoveryResult):
        document = value.model_dump(mode="json")
        document["state"] = outcome(document)
        return Text("\n".join(_lines(document, 0)))
    if isinstance(value, PauseServiceResult):
        return Text(_pause_text(value))
    if isinstance(value, ResumeServiceResult):
        return Text(_resume_text(value))
    return Text("\n".join(_lines(to_json(value), 0)))


def operator_name() -> str:
    """Return the name of the user running this command (``operator`` if unknown)."""
    try:
        name = getpass.getuser()
    except Exception:  # no login name anywhere (a bare container): OSError or KeyError
        name = ""
    return name or "operator"


def approve_command(
    service: str, program: str = "recoveryctl", address: str | None = None
) -> str:
    """Return the command that approves one attempt, safe to paste into a shell as is.

    Args:
        service: The service whose recovery awaits an operator.
        program: How to run ``recoveryctl`` from here.
        address: The server, when it is not the default one: a new terminal has no
            ``TEMPORAL_ADDRESS``, and would approve on whatever answers at localhost:7233.
    """
    where = ["--address", address] if address else []
    return shlex.join([program, *where, "approve", service, "--operator", operator_name()])


def outcome(result: dict[str, Any]) -> str:
    """Return a finished recovery's state as people read it.

    A success that no health check verified says so (the reference rule keeps it a
    success, but it must not look like a verified one).
    """
    state = str(result["state"])
    if state == "succeeded" and not result.get("health_check_passed"):
        return UNCHECKED_SUCCESS
    return state


def human_duration(seconds: float | None) -> str:
    """Return a duration rounded for people: ``850 ms``, ``2.3 s``, ``4 min``, ``1.5 h``, ``2 d``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{_short(seconds / size)} {unit}"
    return f"{_short(seconds)} s"


def _short(amount: float) -> str:
    """One decimal below 10 (``2.3``), whole numbers above (``45``); never ``4.0``."""
    text = f"{amount:.1f}" if amount < 10 else f"{amount:.0f}"
    return text.removesuffix(".0")


def _pause_text(pause: PauseServiceResult) -> str:
    left = (pause.until - datetime.now(timezone.utc)).total_seconds()
    return (
        f"paused {pause.service_name} until {_time(pause.until.isoformat())} UTC "
        f"(for {human_duration(left)}): {_one_line(pause.reason)}\n"
        f"nothing automatic schedules it meanwhile; an operator still can. "
        f"`recoveryctl resume {pause.service_name}` lifts it sooner."
    )


def _resume_text(resumed: ResumeServiceResult) -> str:
    if resumed.lifted:
        lifted = ["the pause" if what == "paused" else what for what in resumed.lifted]
        return f"resumed {resumed.service_name}: lifted {', '.join(lifted)}"
    return (
        f"nothing held {resumed.service_name} back (no pause, cool-down or cancel hold): "
        "automation may already schedule it"
    )


def to_json(value: Any) -> Any:
    """Return the JSON document of ``value`` (the shapes scripts depend on)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Status):
        # The coordinator's document keeps its reference shape (SPEC §6); what it does
        # not know is beside it, under keys of its own.
        return {
            **value.status,
            "uncoordinated": value.uncoordinated,
            "uncoordinated_truncated": value.cut_at is not None,
        }
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


def _status(view: Status) -> RenderableType:
    status = view.status
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
                _time(entry["next_attempt_at"]),
                _why(name, entry),
            ]
            for name, entry in sorted(
                status["services"].items(),
                key=lambda item: (item[1]["priority"] is None, item[1]["priority"] or 0, item[0]),
            )
        ],
    )
    paused = table(
        ["SERVICE", "PAUSED UNTIL", "REASON"],
        [
            [name, _time(entry.get("until")), _one_line(entry.get("reason"))]
            for name, entry in sorted((status.get("paused") or {}).items())
        ],
    )
    held = table(
        ["SERVICE", "HELD BACK UNTIL", "WHY"],
        [
            [name, _time(entry.get("until")), _one_line(entry.get("reason"))]
            for name, entry in sorted((status.get("held_back") or {}).items())
        ],
    )
    parts: list[RenderableType] = [head, Text(""), services or Text("no recoveries")]
    if paused:
        parts += [
            Text(""),
            Text("paused (nothing automatic schedules them; `recoveryctl resume NAME` lifts it):"),
            paused,
        ]
    if held:
        parts += [Text(""), Text(_held_title(status["held_back"])), held]
    parts += _uncoordinated(view)
    parts += [Text(""), Text("recent:"), _history(status["recent_history"][-5:]) or Text("none")]
    return Group(*parts)


def _held_title(held_back: dict[str, dict[str, Any]]) -> str:
    reasons = [str(entry.get("reason") or "") for entry in held_back.values()]
    if all(reason.startswith("storm guard") for reason in reasons):
        return "held back by the storm guard:"
    return "held back (automation waits; an operator may still schedule them):"


def _one_line(text: object) -> str:
    """Return a reason as one line: a table row stays one line per service."""
    return " ".join(str(text or "").split())


def _why(name: str, entry: dict[str, Any]) -> str:
    """Return why a service is where it is: the coordinator's reason, else what it waits for."""
    if entry.get("reason"):
        return str(entry["reason"])
    if entry["state"] == "awaiting_manual":
        return f"waiting for an operator: {approve_command(name)}"
    return ""


def _uncoordinated(view: Status) -> list[RenderableType]:
    title = "not coordinated (started outside the coordinator, e.g. with the temporal CLI):"
    if view.uncoordinated is None:
        return [Text(""), Text(f"{title} could not be listed ({view.listing_note})")]
    shown = table(
        ["SERVICE", "STATE", "STRATEGY", "PRIORITY", "STARTED", "WORKFLOW ID", "COORDINATED"],
        [
            [
                name,
                state_text(entry["state"] or "-"),
                entry["strategy"] or "-",
                "-" if entry["priority"] is None else entry["priority"],
                _time(entry["started_at"]),
                entry["workflow_id"],
                "no",
            ]
            for name, entry in sorted(view.uncoordinated.items())
        ],
    )
    parts: list[RenderableType] = [] if shown is None else [Text(""), Text(title), shown]
    if view.cut_at is not None:
        parts.append(Text(f"(listing cut: only the first {view.cut_at} running recoveries were read)"))
    return parts


def _attempts(attempts: list[AttemptRecord]) -> RenderableType:
    shown = table(
        ["ATTEMPT", "STARTED", "WAITED", "RESULT", "HEALTH CHECK", "ERROR"],
        [
            [
                a.attempt,
                _time(a.started_at.isoformat()),
                human_duration(a.delay_ms / 1000),
                _attempt_result(a),
                _check_cell(a),
                a.error or "",
            ]
            for a in attempts
        ],
    )
    return shown or Text("no attempts yet")


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


def _breakers(view: Breakers) -> RenderableType:
    shown = table(
        ["SERVICE", "STATE", "FAILURES", "SUCCESSES", "OPEN FOR", "LAST OPENED"],
        [
            [
                record.service_name,
                state_text(record.state.value),
                record.fail_counter,
                record.success_counter,
                _duration(view.open_for(record)),
                _time(record.opened_at.isoformat() if record.opened_at else None),
            ]
            for record in view.records
        ],
    )
    return Group(Text(f"store: {view.store}"), Text(""), shown or Text("no breakers yet"))


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


def _history(results: list[dict[str, Any]]) -> Table | None:
    return table(
        ["SERVICE", "STATE", "ATTEMPTS", "ELAPSED", "FINISHED", "ERROR"],
        [
            [
                r["service_name"],
                _outcome(r),
                f"{r['attempt_number']}/{r['total_attempts']}",
                human_duration(r["elapsed_time_ms"] / 1000),
                _time(r["timestamp"]),
                r["error_message"] or "",
            ]
            for r in results
        ],
    )


def table(headers: list[str], rows: list[list[Any]]) -> Table | None:
    """Return a borderless table (columns two spaces apart), or None without rows."""
    if not rows:
        return None
    built = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        built.add_column(header, overflow="fold")
    for row in rows:
        built.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return built


def state_text(value: str) -> Text:
    return Text(value, style=STATE_STYLES.get(value, ""))


def _outcome(result: dict[str, Any]) -> Text:
    shown = outcome(result)
    return Text(shown, style="yellow") if shown == UNCHECKED_SUCCESS else state_text(shown)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


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
                key, shown = _field(str(key), item)
                lines.append(f"{pad}{key}: {shown}")
        return lines
    if isinstance(value, list):
        lines = []
        for index, item in enumerate(value, 1):
            lines.append(f"{pad}[{index}]")
            lines.extend(_lines(item, depth + 1))
        return lines
    return [f"{pad}{_field('', value)[1]}"]


# Numbers under these key endings are durations: shown rounded, in a unit people read
# (``elapsed_time_ms: 2.3 s``).
_DURATION_KEYS = (("_ms", 0.001), ("_seconds", 1.0))


def _field(key: str, value: Any) -> tuple[str, str]:
    """Return a key and its value as people read them: yes/no, rounded numbers, ``-``."""
    if value is None:
        return key, "-"
    if isinstance(value, bool):
        return key, "yes" if value else "no"
    if isinstance(value, (int, float)):
        for suffix, scale in _DURATION_KEYS:
            if key.endswith(suffix):  # the key stays as scripts and policies spell it
                return key, human_duration(value * scale)
        if isinstance(value, float):
            return key, f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return key, str(value)
