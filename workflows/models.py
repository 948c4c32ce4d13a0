"""The domain models, with the original implementation's names, fields and messages.

Every model is pydantic v2 and travels as JSON through the pydantic data converter.
Constraint violations raise ``RecoveryValidationError`` (also a ``ValueError``) with
the original's exact messages, whether the model is built in Python or decoded
from a workflow's JSON input.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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
    from activities.health_check_specs import (
        HealthCheck,
        HealthCheckOutcome,
        accepting_recorded_checks,
    )
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

Priority = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""A recovery priority: lower first; any 64-bit integer (what ``RecoveryPriority`` holds)."""
StrictPriority = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
"""A priority at a door: an integer, never a boolean, a float or a numeric string."""


_decoding_carried = ContextVar("decoding_carried", default=False)


@contextmanager
def decoding_carried_state() -> Iterator[None]:
    """Decode what a workflow carries from an earlier run or an older version.

    The upper bounds on policies arrived in 0.3.0. A policy accepted before them may
    sit in a coordinator's carried state or a running recovery's recorded input;
    refusing it there would fail a continue-as-new or a replay. So they are checked
    at the doors, never on what has already come through one. (A context variable,
    not pydantic's validation context: our models' own ``__init__`` drops that.)
    """
    token = _decoding_carried.set(True)
    try:
        with accepting_recorded_checks():
            yield
    finally:
        _decoding_carried.reset(token)


def _utc_now() -> datetime:
    """Return now (UTC): the original's default for timestamps, the workflow's clock in one.

    A model built (or decoded) in workflow code without a timestamp must not read the wall
    clock: replayed, the same code would reach another value.
    """
    if workflow.in_workflow():
        return workflow.now()
    return datetime.now(timezone.utc)  # determinism: outside workflows only (checked above)


class RecoveryStrategy(str, enum.Enum):
    """How the wait between attempts is chosen."""

    EXPONENTIAL_BACKOFF = "exponential_backoff"
    LINEAR_BACKOFF = "linear_backoff"
    IMMEDIATE = "immediate"
    MANUAL = "manual"


class RecoveryState(str, enum.Enum):
    """Where a recovery stands."""

    IDLE = "idle"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_MANUAL = "awaiting_manual"

    @property
    def finished(self) -> bool:
        """Return True for the three end states."""
        return self in _FINISHED_STATES


_FINISHED_STATES = frozenset(
    {RecoveryState.SUCCEEDED, RecoveryState.FAILED, RecoveryState.CANCELLED}
)


class Jitter(str, enum.Enum):
    """Randomised spread of backoff delays (SPEC §8); ``none`` keeps the reference timing."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"


class RecoveryPhase(str, enum.Enum):
    """The step a running recovery is in (the ``phase`` of its status)."""

    STARTING = "starting"
    AWAITING_APPROVAL = "awaiting_approval"
    BACKOFF = "backoff"
    RESETTING_BREAKER = "resetting_breaker"
    HEALTH_CHECK = "health_check"
    # No health check, an automatic recovery: watching the service's own calls close it.
    BREAKER_TRIAL = "breaker_trial"
    CLOSING_BREAKER = "closing_breaker"
    REOPENING_BREAKER = "reopening_breaker"
    FINISHED = "finished"


# How much of a refusal may quote what it refuses: a key, a tag or a value can be a
# megabyte long, and the refusal travels back (with the request) in one message.
MAX_QUOTED_NAME = 80
MAX_QUOTED_REASON = 300
MAX_REASONS = 5


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


def validate_service_name(name: object) -> str:
    """Return ``name`` if it is 1–200 characters of ``A-Z a-z 0-9 _ . -``.

    Raises:
        RecoveryValidationError: naming the service and what is wrong with it.
    """
    if not isinstance(name, str):
        raise RecoveryValidationError(
            f"service_name must be a string, got {type(name).__name__}", field="service_name"
        )
    # fullmatch: with match, the pattern's "$" also matches before a trailing newline. A
    # name that came through a door that way before is not refused when decoded again.
    pattern = SERVICE_NAME_PATTERN
    matches = pattern.match if _decoding_carried.get() else pattern.fullmatch
    if not matches(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise RecoveryValidationError(
            f"service_name {shown!r} is invalid: use 1-200 characters of A-Z a-z 0-9 _ . - "
            f"(got {len(name)} characters)",
            field="service_name",
        )
    reserved = _reserved_for(name)
    if reserved is not None and not _decoding_carried.get():
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


class RecoveryPolicy(StrictModel):
    """How one service is recovered: attempts, backoff, health check, extensions."""

    max_retry_attempts: int = 5
    backoff_multiplier: float = 2.0
    initial_delay_ms: int = 1000
    max_delay_ms: int = 60000
    health_check: HealthCheck | None = None
    # Client side only, any callable: the facade sends a check in its place; never serialized.
    health_check_fn: Callable[[], Any] | None = Field(default=None, exclude=True, repr=False)
    constitutional_hash: str = CONSTITUTIONAL_HASH
    jitter: Jitter = Jitter.NONE
    escalate_to_manual: bool = False
    # Services that must be recovered first: this one waits in the queue while any of
    # them is queued or recovering, and is not attempted if one of them fails (SPEC §8).
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_DEPENDENCIES)
    # The storm guard: at most this many attempts in a rolling hour; once spent, the
    # circuit watch does not schedule the service again until the hour has rolled on.
    max_attempts_per_hour: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS_PER_HOUR)

    @field_validator(
        "max_retry_attempts",
        "backoff_multiplier",
        "initial_delay_ms",
        "max_delay_ms",
        "max_attempts_per_hour",
        mode="before",
    )
    @classmethod
    def _numbers_are_not_booleans(cls, value: object, info: ValidationInfo) -> object:
        # Lax validation reads JSON true as 1: `"max_retry_attempts": true` must not mean one.
        # Strict validation (the services file's) refuses it in its own words; what already
        # came through a door (decoding_carried_state) is not refused again.
        strict = bool((info.config or {}).get("strict"))
        if isinstance(value, bool) and not strict and not _decoding_carried.get():
            raise ValueError(
                f"{info.field_name} must be a number, not a boolean ({str(value).lower()})"
            )
        return value

    @field_validator("depends_on")
    @classmethod
    def _valid_dependencies(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                validate_service_name(name)
            except RecoveryValidationError as err:
                raise ValueError(f"depends_on: {err}") from None
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"depends_on names {', '.join(duplicates)} more than once")
        return value

    @model_validator(mode="after")
    def _constraints(self) -> RecoveryPolicy:
        if self.max_retry_attempts < 1:
            raise RecoveryValidationError("max_retry_attempts must be >= 1")
        if self.backoff_multiplier < 1.0:
            raise RecoveryValidationError("backoff_multiplier must be >= 1.0")
        if self.initial_delay_ms < 0:
            raise RecoveryValidationError("initial_delay_ms must be >= 0")
        if self.max_delay_ms < self.initial_delay_ms:
            raise RecoveryValidationError("max_delay_ms must be >= initial_delay_ms")
        if _decoding_carried.get():
            return self  # accepted at the door under older bounds: it must still decode
        if self.max_retry_attempts > MAX_RETRY_ATTEMPTS:
            raise RecoveryValidationError(
                f"max_retry_attempts must be <= {MAX_RETRY_ATTEMPTS} "
                f"(one recovery's history holds about 33 events per attempt)"
            )
        if self.backoff_multiplier > MAX_BACKOFF_MULTIPLIER:
            raise RecoveryValidationError(
                f"backoff_multiplier must be <= {MAX_BACKOFF_MULTIPLIER:g}"
            )
        if self.max_delay_ms > MAX_DELAY_MS:
            raise RecoveryValidationError(f"max_delay_ms must be <= {MAX_DELAY_MS} (30 days)")
        # health_check_fn takes any callable, as the original's did, and stays as given
        # (``policy.health_check_fn is fn``): a function cannot enter a workflow, so the
        # facade turns it into a check when it sends the policy (starter.health_check_host).
        return self


class RecoveryResult(BaseModel):
    """The outcome of one whole recovery (the original's fields and defaults).

    Inside a workflow ``timestamp`` is always passed (``workflow.now()``); the
    default is for code that builds results as the original's callers did.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    service_name: str
    success: bool
    attempt_number: int
    total_attempts: int
    elapsed_time_ms: float
    state: RecoveryState
    error_message: str | None = None
    health_check_passed: bool = False
    constitutional_hash: str = CONSTITUTIONAL_HASH
    timestamp: datetime = Field(default_factory=_utc_now)

    @field_validator("health_check_passed", mode="before")
    @classmethod
    def _no_check_is_not_passed(cls, value: object) -> object:
        # Results recorded before this default (null when no check ran) still decode.
        return False if value is None else value

    def to_dict(self) -> dict[str, Any]:
        """Return the original's dict: ``state`` as its value, ``timestamp`` in ISO-8601."""
        return {
            "service_name": self.service_name,
            "success": self.success,
            "attempt_number": self.attempt_number,
            "total_attempts": self.total_attempts,
            "elapsed_time_ms": self.elapsed_time_ms,
            "state": self.state.value,
            "error_message": self.error_message,
            "health_check_passed": self.health_check_passed,
            "constitutional_hash": self.constitutional_hash,
            "timestamp": self.timestamp.isoformat(),
        }


class RecoveryTask(BaseModel):
    """A queue entry (the original's fields).

    Tasks compare by priority only, as the original's ``order=True`` dataclass did;
    the coordinator's queue breaks ties by arrival (``sequence``).
    """

    priority: Priority
    service_name: str
    strategy: RecoveryStrategy = RecoveryStrategy.EXPONENTIAL_BACKOFF
    policy: RecoveryPolicy = Field(default_factory=RecoveryPolicy)
    scheduled_at: datetime = Field(default_factory=_utc_now)
    attempt_count: int = 0
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    state: RecoveryState = RecoveryState.SCHEDULED
    constitutional_hash: str = CONSTITUTIONAL_HASH
    # Arrival order, so that equal priorities stay first-in, first-out.
    sequence: int = 0
    # Asked for by automation, not an operator: the recovery runs under the evidence rule.
    automatic: bool = False

    def __lt__(self, other: RecoveryTask) -> bool:
        return self.priority < other.priority

    def __le__(self, other: RecoveryTask) -> bool:
        return self.priority <= other.priority

    def __gt__(self, other: RecoveryTask) -> bool:
        return self.priority > other.priority

    def __ge__(self, other: RecoveryTask) -> bool:
        return self.priority >= other.priority

    @property
    def queue_key(self) -> tuple[int, int]:
        """Return the queue order: priority, then arrival."""
        return (self.priority, self.sequence)


class ServiceRecoveryInput(StrictModel, DoorInput):
    """Input of ``ServiceRecovery`` (SPEC §9); a null policy means the default policy."""

    service_name: str
    strategy: RecoveryStrategy = RecoveryStrategy.EXPONENTIAL_BACKOFF
    priority: StrictPriority = 1
    policy: RecoveryPolicy | None = None
    constitutional_hash: str = CONSTITUTIONAL_HASH
    # Set by the coordinator: where this recovery reports its progress.
    coordinator_workflow_id: str | None = Field(default=None, min_length=1, max_length=1000)
    # Asked for by automation (the circuit watch, an alert), not an operator: the
    # evidence rule applies (SPEC §4): the breaker closes only on proof the service answers.
    automatic: StrictBool = False

    @field_validator("service_name", mode="before")
    @classmethod
    def _valid_name(cls, value: object) -> str:
        return validate_service_name(value)

    @property
    def effective_policy(self) -> RecoveryPolicy:
        """Return the policy, or the default one."""
        return self.policy or RecoveryPolicy()


class ApproveInput(StrictModel, DoorInput):
    """Signal ``approve`` (and update ``approve_attempt``): an operator allows one attempt.

    ``attempt`` names the attempt the operator saw awaiting approval: an approval sent
    for an attempt that has meanwhile run is stale and counts for nothing, so that five
    callers who saw attempt 1 waiting start one attempt, not two.
    """

    operator: str = Field(default="unknown", max_length=200)
    note: str = Field(default="", max_length=MAX_TEXT)
    attempt: StrictInt | None = Field(default=None, ge=1, le=MAX_REPORT_NUMBER)


class ApproveResult(BaseModel):
    """What an approval admitted: the attempt it starts."""

    service_name: str
    attempt: int
    operator: str


class CancelInput(StrictModel, DoorInput):
    """Signal ``cancel``: stop the recovery at once."""

    reason: str = Field(default="", max_length=MAX_TEXT)


class AttemptRecord(BaseModel):
    """One attempt, as the ``history`` query returns it."""

    attempt: int
    started_at: datetime
    finished_at: datetime | None = None
    delay_ms: int = 0
    approved_by: str | None = None
    approval_note: str | None = None
    breaker_reset: bool = False
    # Whether the reset found the service's breaker in the store (None: no reset ran to
    # an answer). A recovery never creates a breaker: with none, nothing is reset,
    # closed or re-opened (SPEC §4).
    breaker_found: bool | None = None
    health_check: HealthCheckOutcome | None = None
    result: Literal["success", "failure", "cancelled"] | None = None
    error: str | None = None
    # What a successful attempt rests on (SPEC §4, the evidence rule): ``health_check``
    # (a configured check passed), ``breaker_trial`` (no check: the service's own calls
    # closed its half-open breaker) or ``none`` (an operator's recovery with no check:
    # closed without a health check). None while running and for an attempt that failed.
    evidence: Literal["health_check", "breaker_trial", "none"] | None = None


class RecoveryStatus(BaseModel):
    """The ``status`` query: the per-service status entry plus ``phase`` and ``last_error``."""

    service_name: str
    state: RecoveryState
    strategy: RecoveryStrategy
    priority: int
    attempt_count: int
    max_attempts: int
    scheduled_at: datetime
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    phase: RecoveryPhase
    last_error: str | None = None
    # The last 20 signals refused or ignored: "<iso time> <signal>: <why>", newest last.
    ignored_signals: list[str] = Field(default_factory=list)


class AttemptResultInput(StrictModel, DoorInput):
    """Update ``attempt_result``: the attempt whose end the caller waits for."""

    attempt: StrictInt = Field(ge=1, le=MAX_REPORT_NUMBER)


class AttemptAnswer(BaseModel):
    """Update ``attempt_result``'s answer: the recovery's status when the attempt ended,
    and that attempt's record (None: the recovery ended before it ran)."""

    status: RecoveryStatus
    attempt: AttemptRecord | None = None


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


class RecoveryReport(BaseModel, DoorInput):
    """What a ``ServiceRecovery`` tells its coordinator: its status, and its result at the end.

    ``sequence`` rises with every report of one run, so a coordinator can drop a
    report that arrives after a newer one.
    """

    service_name: str
    run_id: str = Field(max_length=200)
    sequence: StrictInt = Field(ge=0, le=MAX_REPORT_NUMBER)
    status: RecoveryStatus
    result: RecoveryResult | None = None

    def past_times(self) -> list[datetime]:
        """Return the times the report says things happened (not the next attempt's, ahead)."""
        times = [self.status.scheduled_at, self.status.last_attempt_at]
        if self.result is not None:
            times.append(self.result.timestamp)
        return [time for time in times if time is not None]

    @model_validator(mode="after")
    def _within_bounds(self) -> RecoveryReport:
        """Refuse what no recovery reports: a forged report may only misstate its service.

        Its times are compared with the coordinator's own (aware) times and its counts
        fill the storm guard's log: a naive time or a count of 2^70 failed every later
        workflow task of the coordinator.
        """
        status, result = self.status, self.result
        for time in [*self.past_times(), status.next_attempt_at]:
            if time is not None:
                check_door_time(time, "a report's times")
        counts = [status.attempt_count, status.max_attempts]
        if result is not None:
            counts += [result.attempt_number, result.total_attempts]
        if any(not 0 <= count <= MAX_REPORT_NUMBER for count in counts):
            raise ValueError(f"a report's attempt counts must be between 0 and {MAX_REPORT_NUMBER}")
        if status.service_name != self.service_name or (
            result is not None and result.service_name != self.service_name
        ):
            raise ValueError("a report speaks of one service only")
        return self
