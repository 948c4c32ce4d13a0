"""Parsers for ``recoveryctl``'s option values: seconds, durations, policies.

Each raises ``ValueError`` saying what was wrong; click reports it as bad input naming
the option (exit 2).
"""

from __future__ import annotations

import math
import re

from workflows.coordinator_models import MAX_PAUSE_SECONDS
from workflows.models import RecoveryPolicy
from workflows.payloads import check_unique_keys


POLICY_EXAMPLE = "'{\"max_retry_attempts\": 3}'"
POLICY_HELP = f"policy JSON, e.g. {POLICY_EXAMPLE}"


def policy_json(text: str, what: str) -> RecoveryPolicy:
    """Read a policy given as JSON on the command line; a key given twice is refused."""
    policy = RecoveryPolicy.model_validate_json(text)
    check_unique_keys(text, what)
    return policy


def positive_seconds(value: str | float) -> float:
    """Parse a ``--timeout`` or ``--interval``: a finite number of seconds above 0.

    Raises:
        ValueError: anything else (click reports it as bad input, exit 2).
    """
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(f"must be a number of seconds above 0, got {value!r}")
    return seconds


# One part of a duration: a number and its unit (``90s``, ``1.5h``).
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Longer than any pause: checked before the arithmetic, so no number can overflow it.
_MAX_DURATION_TEXT = 40


def duration_seconds(value: str | int) -> int:
    """Parse a ``--for``: ``90s``, ``30m``, ``2h``, ``1d`` or combinations (``1h30m``).

    Returns whole seconds, from 1 s to 30 days.

    Raises:
        ValueError: anything else, saying what was wrong (click reports it as bad
            input naming the option, exit 2).
    """
    if isinstance(value, int) and not isinstance(value, bool):  # click passes a default as is
        value = f"{value}s"
    text = "".join(str(value).split()).lower()  # "1h 30m" as "1h30m"
    if len(text) > _MAX_DURATION_TEXT:
        raise ValueError(f"a duration of {len(text)} characters is not a pause: at most 30d")
    if text.startswith("-"):
        raise ValueError(f"{value!r} is negative: a pause lasts at least 1s")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        if float(text) == 0:
            raise ValueError(f"{value!r} is no pause: a pause lasts at least 1s")
        raise ValueError(f"{value!r} needs a unit: {text}s, {text}m, {text}h or {text}d")
    parts = _DURATION_PART.findall(text)
    units = [unit for _, unit in parts]
    if not parts or "".join(a + u for a, u in parts) != text:
        raise ValueError(
            f"{value!r} is not a duration: use a number and a unit, s, m, h or d "
            "(e.g. 90s, 30m, 2h, 1d, 1h30m)"
        )
    if len(set(units)) != len(units):
        raise ValueError(f"{value!r} gives a unit twice")
    seconds = sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in parts)
    if seconds < 1:
        raise ValueError(f"{value!r} is not a duration above 0: a pause lasts at least 1s")
    if seconds > MAX_PAUSE_SECONDS:
        raise ValueError(
            f"{value!r} is over {MAX_PAUSE_SECONDS // 86_400} days: every pause ends, "
            f"at most 30d after it starts"
        )
    if seconds != int(seconds):
        raise ValueError(f"{value!r} is not a whole number of seconds")
    return int(seconds)
