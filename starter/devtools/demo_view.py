"""What ``recoveryctl demo`` prints: the table of its services, its notices, its outcome.

A row per demo service: whether it answers, its breaker, its recovery and the step
that recovery is in; printed again only when it changes (or as JSON lines).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from activities.redaction import redact
from recovery_breakers.store import BreakerRecord
from starter.cli import render
from starter.cli.context import configured_target
from starter.cli.text import approve_command as shell_approve_command
from starter.cli.text import state_text, table as text_table
from starter.devtools.demo_services import FAIL_MAX, MANUAL_NAMES, SPECS, DemoService
from starter.devtools.dev import recoveryctl_program
from workflows.circuit_watch_models import CIRCUIT_WATCH_WORKFLOW_ID
from workflows.models import RecoveryPhase, RecoveryStatus

HEADERS = ("SERVICE", "PRI", "HEALTH", "BREAKER", "RECOVERY", "LAST CALL", "DETAIL")


@dataclass(frozen=True)
class Row:
    """One line of the demo's table."""

    service: str
    priority: int
    health: str
    breaker: str
    recovery: str
    last_call: str
    detail: str


def history_key(result: dict[str, Any]) -> tuple[str, str, str]:
    """Return what tells one finished recovery from another in ``recent_history``."""
    return (result["service_name"], result["timestamp"], result["state"])


def approve_command(service: str) -> str:
    """Return the command that approves one attempt: pasted into a shell, it runs as is
    (the operator is the user running the demo, the server named unless it is the default
    one, everything quoted for the shell)."""
    address = configured_target()
    default = address in ("localhost:7233", "127.0.0.1:7233")
    return shell_approve_command(service, recoveryctl_program(), None if default else address)


def recovery_cell(
    name: str,
    status: dict[str, Any],
    seen_before: frozenset[tuple[str, str, str]],
    live: RecoveryStatus | None = None,
) -> tuple[str, str]:
    """Return the service's recovery state and a detail: its unfinished recovery, else
    the last one that finished since the demo began, else nothing.

    ``live`` is the recovery's own status, when read: the detail then names the step
    it is in (the coordinator's entry knows only the state)."""
    entry = status["services"].get(name)
    if entry is not None:
        return entry["state"], _entry_detail(name, entry, live)
    ended = [
        r for r in status["recent_history"]
        if r["service_name"] == name and history_key(r) not in seen_before
    ]
    if not ended:
        return "-", ""
    last = ended[-1]
    if last["state"] == "succeeded":
        seconds = last["elapsed_time_ms"] / 1000
        checked = "" if last.get("health_check_passed") else " (closed without a health check)"
        return "succeeded", f"{last['attempt_number']} attempt(s) in {seconds:.1f} s{checked}"
    return last["state"], last["error_message"] or ""


# What each step of a running recovery is called in the DETAIL column.
PHASE_WORDS = {
    RecoveryPhase.STARTING: "starting",
    RecoveryPhase.AWAITING_APPROVAL: "awaiting approval",
    RecoveryPhase.BACKOFF: "backing off",
    RecoveryPhase.RESETTING_BREAKER: "resetting breaker to half-open",
    RecoveryPhase.HEALTH_CHECK: "health check",
    RecoveryPhase.BREAKER_TRIAL: "waiting for the service's own calls",
    RecoveryPhase.CLOSING_BREAKER: "closing breaker",
    RecoveryPhase.REOPENING_BREAKER: "re-opening breaker",
    RecoveryPhase.FINISHED: "finishing",
}


def _entry_detail(name: str, entry: dict[str, Any], live: RecoveryStatus | None = None) -> str:
    if entry.get("reason"):
        return str(entry["reason"])
    if entry["state"] == "awaiting_manual":
        return f"approve: {approve_command(name)}"
    if live is not None and not live.state.finished:
        return _live_detail(live)
    if not entry["attempt_count"]:
        return "starting"
    detail = f"attempt {entry['attempt_count']}/{entry['max_attempts']}"
    if entry.get("next_attempt_at"):
        detail += f", next at {entry['next_attempt_at'][11:19]} UTC"
    return detail


def _live_detail(live: RecoveryStatus) -> str:
    """Return the step a running recovery is in, from its own ``status`` query."""
    words = PHASE_WORDS.get(live.phase, live.phase.value)
    if live.phase is RecoveryPhase.STARTING:
        return words
    if live.phase is RecoveryPhase.BACKOFF:
        detail = f"{words} before attempt {live.attempt_count + 1}/{live.max_attempts}"
        if live.next_attempt_at is not None:
            detail += f", until {live.next_attempt_at.strftime('%H:%M:%S')} UTC"
        return detail
    return f"attempt {live.attempt_count}/{live.max_attempts}: {words}"


def demo_row(
    service: DemoService,
    status: dict[str, Any],
    seen_before: frozenset[tuple[str, str, str]],
    live: RecoveryStatus | None,
    record: BreakerRecord | None,
    calls: dict[str, str],
) -> Row:
    """Return a service's row: whether it answers, its breaker, its recovery and last call."""
    recovery, detail = recovery_cell(service.name, status, seen_before, live)
    return Row(
        service=service.name,
        priority=service.spec.priority,
        health="up" if service.is_up() else "down",
        breaker=record.state.value if record else "-",
        recovery=recovery,
        last_call=calls.get(service.name, "-"),
        detail=detail,
    )


def table(rows: list[Row]) -> RenderableType:
    """Return the rows under ``HEADERS``: the borderless table of ``recoveryctl``'s others."""
    shown = text_table(
        list(HEADERS),
        [
            [
                r.service,
                r.priority,
                r.health,
                state_text(r.breaker),
                state_text(r.recovery),
                r.last_call,
                r.detail,
            ]
            for r in rows
        ],
    )
    return shown or Text("no demo services")


class Output:
    """What the demo prints: notices, the table when it changes, the outcome (or JSON lines)."""

    def __init__(self, as_json: bool) -> None:
        self._json = as_json
        self._started = time.monotonic()
        self._shown: list[Row] = []
        self._console = render.console()

    def elapsed(self) -> float:
        """Return seconds since the demo began."""
        return time.monotonic() - self._started

    def notice(self, text: str) -> None:
        """Print a message for the reader."""
        print(json.dumps({"message": text}) if self._json else text, flush=True)

    def rows(self, rows: list[Row]) -> None:
        """Print the table if it differs from the last one printed."""
        if rows == self._shown:
            return
        self._shown = rows
        if self._json:
            line = {"elapsed_seconds": round(self.elapsed(), 1), "services": [asdict(r) for r in rows]}
            print(json.dumps(line), flush=True)
        else:
            when = Text(f"\n[{self.elapsed():5.1f} s]")
            render.show_renderable(Group(when, table(rows)), self._console)

    def outcome(self, rows: list[Row]) -> None:
        """Print how the demo ended."""
        text = json.dumps(self.summary(rows)) if self._json else f"\n{self.outcome_text(rows)}"
        print(text, flush=True)

    def outcome_text(self, rows: list[Row]) -> str:
        """Return the line that says the automatic services are back, and what payments does."""
        automatic = ", ".join(s.name for s in SPECS if not s.manual)
        text = (
            f"Recovered in {self.elapsed():.1f} s: {automatic} (recoveries succeeded, "
            "breakers closed, calls through the breakers pass)."
        )
        for row in rows:
            if row.service in MANUAL_NAMES:
                text += (
                    f"\nTo approve {row.service}'s next attempt, in another terminal:\n  "
                    f"{approve_command(row.service)}\n"
                    if row.recovery == "awaiting_manual"
                    else f" {row.service}: recovery {row.recovery}, breaker {row.breaker}."
                )
        return text

    def summary(self, rows: list[Row]) -> dict[str, Any]:
        """Return the outcome for scripts (``--json``)."""
        return {
            "recovered": True,
            "elapsed_seconds": round(self.elapsed(), 1),
            "services": [asdict(r) for r in rows],
        }


def guide_text(
    services: list[DemoService],
    store_url: str,
    ui: str,
    namespace: str,
    store_flag: str,
    watch_paused: bool,
) -> str:
    """Return what the demo does and where to look while it runs."""
    lines = [
        "recoveryctl demo: four HTTP services on 127.0.0.1, each behind a real pybreaker "
        f"breaker (fail_max={FAIL_MAX}) in {redact(store_url)}",
        *(
            f"  {s.name:<14} priority {s.spec.priority}  {s.spec.note:<42} {s.url('/health')}"
            for s in services
        ),
        "Watch it:",
        f"  recoveries (Web UI)   {ui}/namespaces/{namespace}/workflows",
        f"  the watch (Web UI)    {ui}/namespaces/{namespace}/workflows/{CIRCUIT_WATCH_WORKFLOW_ID}",
        f"  breakers              recoveryctl breakers{store_flag}",
        "  recoveries            recoveryctl status",
        "Ctrl-C ends the demo and undoes what it changed.",
    ]
    if watch_paused:
        lines.append(
            "Note: the circuit watch is paused, so it hands nothing over: the breakers stay "
            "open until `recoveryctl watch-breakers enable`."
        )
    return "\n".join(lines)
