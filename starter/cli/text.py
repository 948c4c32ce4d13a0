"""The pieces every ``recoveryctl`` view is made of: borderless tables, coloured states,
times and durations as people read them, and the approve command to paste.

Tables have no borders, so a pipe gets plain aligned columns (``awk``, ``grep``); a
terminal gets bold headers and coloured states. Every cell is ``Text``, never markup:
a reason such as ``[defaults]`` is shown as written.
"""

from __future__ import annotations

import getpass
import math
import shlex
from typing import Any

from rich.table import Table
from rich.text import Text

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
    """Return a state in its colour (green succeeded, red failed, …)."""
    return Text(value, style=STATE_STYLES.get(value, ""))


def outcome(result: dict[str, Any]) -> str:
    """Return a finished recovery's state as people read it.

    A success that no health check verified says so (the reference rule keeps it a
    success, but it must not look like a verified one).
    """
    state = str(result["state"])
    if state == "succeeded" and not result.get("health_check_passed"):
        return UNCHECKED_SUCCESS
    return state


def outcome_text(result: dict[str, Any]) -> Text:
    """Return ``outcome(result)`` in its colour; an unverified success in yellow."""
    shown = outcome(result)
    return Text(shown, style="yellow") if shown == UNCHECKED_SUCCESS else state_text(shown)


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


def compact_duration(seconds: float | None) -> str:
    """Return how long a breaker has been open: ``45s``, ``3m05s``, ``2h10m``."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def clock(iso: str | None) -> str:
    """Show an ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return iso[:19].replace("T", " ") if iso else "-"


def one_line(text: object) -> str:
    """Return a reason as one line: a table row stays one line per service."""
    return " ".join(str(text or "").split())


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
