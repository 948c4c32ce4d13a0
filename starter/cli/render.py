"""How ``recoveryctl`` prints what a command returns: rich for people, JSON for scripts.

A terminal gets styled tables (``starter.cli.views``); a pipe the same text with no
colour and no wrapping; ``--json`` the documents scripts read.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.text import Text

from starter.cli.text import PIPE_WIDTH, clock, human_duration, one_line, outcome
from starter.cli.views import View
from workflows.coordinator_models import (
    PauseServiceResult,
    ResumeServiceResult,
    ScheduleRecoveryResult,
)
from workflows.models import RecoveryResult


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
    if isinstance(value, View):
        return value.renderable()
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


def to_json(value: Any) -> Any:
    """Return the JSON document of ``value`` (the shapes scripts depend on)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, View):
        return value.to_json()
    return value


def _pause_text(pause: PauseServiceResult) -> str:
    left = (pause.until - datetime.now(timezone.utc)).total_seconds()
    return (
        f"paused {pause.service_name} until {clock(pause.until.isoformat())} UTC "
        f"(for {human_duration(left)}): {one_line(pause.reason)}\n"
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
