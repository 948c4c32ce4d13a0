"""The facade's arguments checked as the reference checks them: each refusal names the
argument and what was wrong, as a ``RecoveryValidationError``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from workflows.coordinator_models import (
    DEFAULT_PAUSE_SECONDS,
    MAX_PAUSE_SECONDS,
    PauseServiceInput,
    StatusPageInput,
)
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy

# A day: past that a cached status answers nothing a caller wants, and a larger number
# (10**400, 1e308) would only overflow the clock arithmetic later.
MAX_STALENESS_SECONDS = 86_400.0


def pause_seconds(duration: object) -> int:
    """Return a pause's length in whole seconds: ``timedelta`` or seconds, 1 s to 30 days.

    None is the default pause (24 h). Fractions of a second are dropped.

    Raises:
        RecoveryValidationError: anything else, naming ``duration`` and what was wrong.
    """
    if duration is None:
        return DEFAULT_PAUSE_SECONDS
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        seconds = float(duration) if abs(duration) <= MAX_PAUSE_SECONDS * 2 else math.inf
    else:
        raise RecoveryValidationError(
            f"duration must be a timedelta or a number of seconds, got {type(duration).__name__}"
        )
    if not 1 <= seconds <= MAX_PAUSE_SECONDS:  # NaN fails both
        raise RecoveryValidationError(
            f"duration must be from 1 second to {MAX_PAUSE_SECONDS // 86_400} days, "
            f"got {shown_number(duration)}"
        )
    return int(seconds)


def pause_request(
    service_name: str, duration: object, reason: object, constitutional_hash: str
) -> PauseServiceInput:
    """Return the ``pause_service`` update for ``pause_service``'s arguments.

    Raises:
        RecoveryValidationError: a bad duration or reason (the message names it).
    """
    seconds = pause_seconds(duration)
    if reason is not None and not isinstance(reason, str):
        raise RecoveryValidationError(f"reason must be a string, got {type(reason).__name__}")
    if reason is not None and not reason.strip():
        raise RecoveryValidationError("reason must not be blank (None gives the default)")
    try:
        return PauseServiceInput(
            service_name=service_name,
            duration_s=seconds,
            **({} if reason is None else {"reason": reason}),
            constitutional_hash=constitutional_hash,
        )
    except ValueError as err:
        raise RecoveryValidationError(f"pause: {first_error(err)}") from None


def status_page(
    services: Iterable[str] | None, limit: int | None, offset: int | None
) -> StatusPageInput:
    """Return the status page query that ``get_recovery_status``'s arguments ask for.

    Raises:
        RecoveryValidationError: a bad name, limit or offset (the message names it).
    """
    if isinstance(services, (str, bytes, Mapping)):
        raise RecoveryValidationError(
            f"status page: services must be a list of names, got {type(services).__name__}"
        )
    try:
        return StatusPageInput(
            services=None if services is None else list(services),
            offset=0 if offset is None else offset,
            **({} if limit is None else {"limit": limit}),
        )
    except ValueError as err:
        raise RecoveryValidationError(f"status page: {first_error(err)}") from None


def staleness(value: float, name: str) -> float:
    """Return ``value`` as seconds, or say which parameter was wrong and why."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    seconds = float(value) if number and abs(value) <= MAX_STALENESS_SECONDS else math.nan
    if not 0 <= seconds <= MAX_STALENESS_SECONDS:
        raise RecoveryValidationError(
            f"{name} must be a number of seconds from 0 to {MAX_STALENESS_SECONDS:,.0f}, "
            f"got {shown_number(value)}"
        )
    return seconds + 0.0  # -0.0 becomes 0.0


def shown_number(value: object) -> str:
    """Return a number for an error message: cut short, never thousands of digits."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length():,} bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def first_error(err: ValueError) -> str:
    """Return a validation error's first problem as ``field: message``."""
    errors: Any = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(err)


def as_policy(policy: object) -> RecoveryPolicy:
    """Return ``policy`` as a ``RecoveryPolicy``; a dict of its fields is taken too.

    Raises:
        RecoveryValidationError: anything else, or a dict with a bad field.
    """
    if isinstance(policy, RecoveryPolicy):
        return policy
    if isinstance(policy, dict):
        return RecoveryPolicy(**policy)
    raise RecoveryValidationError(
        f"policy must be a RecoveryPolicy (or a dict of its fields), got {type(policy).__name__}"
    )
