"""What every door refuses, and how: the bounds, the names, the hash, the wording of refusals.

A door is a workflow's input, a signal, an update or a query: what a client sends.
Models that come through one are ``StrictModel``s marked ``DoorInput``; a constraint
they break raises ``RecoveryValidationError`` (also a ``ValueError``) naming the field
and the rule, whether the model is built in Python or decoded from JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError
from pydantic_core import ErrorDetails
from temporalio import workflow

from workflows.constants import (
    CIRCUIT_WATCH_ID_PREFIX,
    CONSTITUTIONAL_HASH,
    COORDINATOR_WORKFLOW_ID,
    RECOVERY_ID_PREFIX,
)
from workflows.errors import RecoveryConstitutionalError, RecoveryValidationError, clipped

with workflow.unsafe.imports_passed_through():
    from activities.redaction import redact_patterns

with workflow.unsafe.imports_passed_through():
    from activities.health_check_specs import accepting_recorded_checks
    from activities.time_bounds import within_bounds

SERVICE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")

# Bounds of what each number flows into (the first boundary that sees a value enforces them).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # RecoveryPriority is a 64-bit Int search attribute
# ~33 history events per attempt; one workflow's history is capped at 51,200 events.
MAX_RETRY_ATTEMPTS = 1000
# Attempts a report may count (escalated recoveries go past max_retry_attempts) and its
# sequence numbers: far more than any recovery reaches, far less than overflows a log.
MAX_REPORT_NUMBER = 10_000_000
MAX_DELAY_MS = 30 * 24 * 3600 * 1000  # 30 days: a durable timer, and still a sane backoff
MAX_BACKOFF_MULTIPLIER = 1000.0
MAX_TEXT = 2000  # operator notes and reasons travel in history and in the status document
MAX_DEPENDENCIES = 50  # depends_on entries of one policy
MAX_ATTEMPTS_PER_HOUR = 10_000
MAX_OPERATOR = 200  # an operator's name, as an approval gives it
MAX_APPROVERS = 20  # approvers of one policy: a policy travels with every recovery's input

Priority = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""A recovery priority: lower first; any 64-bit integer (what ``RecoveryPriority`` holds)."""
StrictPriority = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
"""A priority at a door: an integer, never a boolean, a float or a numeric string."""
OperatorText = Annotated[str, AfterValidator(redact_patterns)]
"""An operator's reason or note: kept in state, shown in status and the Web UI, sent on to
on-call, so a credential it quotes (``password=…``, ``Bearer …``, a URL's password) is
masked as it comes in (``activities.redaction``; by its shape only: workflow code reads
no environment)."""

# How much of a refusal may quote what it refuses: a key, a tag or a value can be a
# megabyte long, and the refusal travels back (with the request) in one message.
MAX_QUOTED_NAME = 80
MAX_QUOTED_REASON = 300
MAX_REASONS = 5


_decoding_carried = ContextVar("decoding_carried", default=False)


@contextmanager
def decoding_carried_state() -> Iterator[None]:
    """Decode what a workflow carries from an earlier run or an older version.

    A policy accepted under older, looser bounds may sit in a coordinator's carried
    state or a running recovery's recorded input; refusing it there would fail a
    continue-as-new or a replay. So the bounds are checked at the doors, never on what
    has already come through one. (A context variable, not pydantic's validation
    context: our models' own ``__init__`` drops that.)
    """
    token = _decoding_carried.set(True)
    try:
        with accepting_recorded_checks():
            yield
    finally:
        _decoding_carried.reset(token)


def decoding_carried() -> bool:
    """Return True inside ``decoding_carried_state``: what is decoded came through a door."""
    return _decoding_carried.get()


def _reason(item: ErrorDetails) -> str:
    """Return pydantic's message, with a quoted input clipped where it quotes one."""
    ctx = item.get("ctx") or {}
    if item["type"] == "union_tag_invalid":  # the only message here that repeats the input
        tag = clipped(str(ctx.get("tag")), MAX_QUOTED_NAME)
        return (
            f"Input tag {tag!r} found using {ctx.get('discriminator')} does not match any "
            f"of the expected tags: {ctx.get('expected_tags')}"
        )
    return item["msg"]


def validation_refusal(err: ValidationError, what: str = "") -> RecoveryValidationError:
    """Return the refusal of a validation error: one line, with the first error's code and field.

    Where our own validator raised (a reserved name, say), its code and names win over
    the generic ``bad_field``.

    Args:
        err: What pydantic found.
        what: What was refused (``"schedule_recovery"``), put before the message.
    """
    message = describe_validation_error(err)
    message = f"{what}: {message}" if what else message
    errors = err.errors()
    if not errors:
        return RecoveryValidationError(message)
    first = errors[0]
    original = (first.get("ctx") or {}).get("error")
    field = clipped(".".join(str(part) for part in first["loc"]), MAX_QUOTED_NAME) or None
    if isinstance(original, RecoveryValidationError):
        return RecoveryValidationError(
            message, code=original.code, **{"field": field, **original.names}
        )
    return RecoveryValidationError(message, field=field)


def describe_validation_error(err: ValidationError) -> str:
    """Return one line naming each bad field and what was wrong with it.

    Our own constraint errors keep the original's exact message. Names and reasons
    are clipped, and past a few errors the rest are counted, not listed.
    """
    parts: list[str] = []
    errors = err.errors()
    for item in errors[:MAX_REASONS]:
        original = (item.get("ctx") or {}).get("error")
        if isinstance(original, RecoveryValidationError):
            parts.append(clipped(str(original), MAX_QUOTED_REASON))
            continue
        location = ".".join(clipped(str(part), MAX_QUOTED_NAME) for part in item["loc"])
        parts.append(f"{location or 'input'}: {clipped(_reason(item), MAX_QUOTED_REASON)}")
    if len(errors) > MAX_REASONS:
        parts.append(f"and {len(errors) - MAX_REASONS} more")
    return "; ".join(parts)


class StrictModel(BaseModel):
    """A model that raises ``RecoveryValidationError`` instead of pydantic's error."""

    # A non-finite number (JSON 1e400 is infinity) would decode today and break the
    # coordinator's carried state tomorrow: refuse it at the door.
    model_config = ConfigDict(extra="forbid", use_enum_values=False, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise validation_refusal(err) from None


class DoorInput:
    """Marks a model that a client sends through a door: a workflow's input, a signal,
    an update or a query.

    The worker's converter hands a payload that does not decode into such a model to the
    handler's guard as an ``UndecodedInput`` instead of raising (``workflows.guard``),
    so that it is refused where operators look, never dropped unseen or a failed task.
    Results (of activities, of children) are not doors: their decoding still raises.
    """

    # The model a workflow carries across continue-as-new: decoded by the rules of the
    # run that wrote it (``decoding_carried_state``), not refused by newer bounds.
    carries_state: ClassVar[bool] = False

    # The point (SPEC §3) that checks the request's ``constitutional_hash``, and the one
    # that checks its ``policy``'s; what a mismatch's message names. None: not checked
    # (a door with no hash, or a query's).
    hash_checked_at: ClassVar[str | None] = None
    policy_hash_checked_at: ClassVar[str | None] = None

    def constitutional_hashes(self) -> list[tuple[str, str]]:
        """Return each constitutional hash this request carries, with the point that checks it."""
        hashes: list[tuple[str, str]] = []
        if self.hash_checked_at is not None:
            hashes.append((getattr(self, "constitutional_hash"), self.hash_checked_at))
        policy = getattr(self, "policy", None)
        if self.policy_hash_checked_at is not None and policy is not None:
            hashes.append((policy.constitutional_hash, self.policy_hash_checked_at))
        return hashes


def validate_service_name(name: object) -> str:
    """Return ``name`` if it is 1–200 characters of ``A-Z a-z 0-9 _ . -``.

    Raises:
        RecoveryValidationError: naming the service and what is wrong with it.
    """
    if not isinstance(name, str):
        raise RecoveryValidationError(
            f"service_name must be a string, got {type(name).__name__}", field="service_name"
        )
    # fullmatch at a door: with match, the pattern's "$" also matches before a trailing
    # newline, which carried state may therefore hold and must still decode with.
    pattern = SERVICE_NAME_PATTERN
    matches = pattern.match if decoding_carried() else pattern.fullmatch
    if not matches(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise RecoveryValidationError(
            f"service_name {shown!r} is invalid: use 1-200 characters of A-Z a-z 0-9 _ . - "
            f"(got {len(name)} characters)",
            field="service_name",
        )
    reserved = _reserved_for(name)
    if reserved is not None and not decoding_carried():
        raise RecoveryValidationError(
            f"service_name {name!r} is reserved: its workflow id '{RECOVERY_ID_PREFIX}{name}' "
            f"is {reserved}; choose another name",
            code="reserved_name",
            field="service_name",
        )
    return name


def _reserved_for(name: str) -> str | None:
    """Return what owns the workflow id a service name would take, if the product does."""
    if name == COORDINATOR_WORKFLOW_ID.removeprefix(RECOVERY_ID_PREFIX):
        return "the coordinator's own"
    if name.startswith(CIRCUIT_WATCH_ID_PREFIX.removeprefix(RECOVERY_ID_PREFIX)):
        return "reserved for the circuit watch"
    return None


def validate_constitutional_hash(value: str, where: str) -> None:
    """Raise ``RecoveryConstitutionalError`` unless ``value`` is the constitutional hash."""
    if value != CONSTITUTIONAL_HASH:
        shown = repr(value) if len(value) <= 40 else f"{value[:40]!r}… ({len(value)} characters)"
        raise RecoveryConstitutionalError(
            f"Constitutional hash mismatch at {where}: expected {CONSTITUTIONAL_HASH}, "
            f"got {shown}"
        )


def check_constitutional_hashes(door: DoorInput) -> None:
    """Check every constitutional hash a request carries, at the point it names.

    Called where a request comes in: the guard, for each signal and update
    (``workflows.guard``); ``ServiceRecovery`` for its input, before any attempt; the
    coordinator for each request inside a batch.

    Raises:
        RecoveryConstitutionalError: naming the point and what was given.
    """
    for value, where in door.constitutional_hashes():
        validate_constitutional_hash(value, where)


def check_door_time(value: datetime, what: str) -> datetime:
    """Return ``value`` if it carries a timezone and lies between 2000 and 2200.

    The coordinator adds hours to the times it is given and compares them with its own:
    year 9999 would overflow, and a naive time not compare (``activities.time_bounds``).

    Raises:
        ValueError: naming ``what`` and the rule.
    """
    if value.utcoffset() is None:
        raise ValueError(f"{what} must carry a timezone")
    if not within_bounds(value):
        raise ValueError(f"{what} must lie between the years 2000 and 2200")
    return value


class NoInput(StrictModel, DoorInput):
    """What a handler that needs nothing takes: nothing, or ``{}``.

    The SDK drops the payloads of a handler with no parameter before anything sees
    them, so ``nudge`` given ``{"x": 1}`` would pass silently; with this optional one,
    a payload that is not ``{}`` reaches the guard as undecodable and is refused
    (``workflows.guard``) like any other that does not fit.
    """
