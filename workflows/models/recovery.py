"""The recovery's own models: strategies and states, the policy, the task, the result, the input.

They keep the original implementation's names, fields, defaults and messages (SPEC §3).
Every model is pydantic v2 and travels as JSON through the pydantic data converter.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)
from temporalio import workflow

from workflows.constants import CONSTITUTIONAL_HASH
from workflows.errors import RecoveryValidationError
from workflows.models.door import (
    MAX_ATTEMPTS_PER_HOUR,
    MAX_BACKOFF_MULTIPLIER,
    MAX_DELAY_MS,
    MAX_APPROVERS,
    MAX_DEPENDENCIES,
    MAX_OPERATOR,
    MAX_RETRY_ATTEMPTS,
    DoorInput,
    Priority,
    StrictModel,
    StrictPriority,
    decoding_carried,
    validate_service_name,
)

with workflow.unsafe.imports_passed_through():
    from activities.health_check_specs import HealthCheck

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
    # Who may approve an attempt (SPEC §10); None: anyone. The recovery itself checks it,
    # so it travels in the policy to every door's one judge.
    approvers: list[str] | None = Field(default=None, max_length=MAX_APPROVERS)

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
        if isinstance(value, bool) and not strict and not decoding_carried():
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

    @field_validator("approvers")
    @classmethod
    def _valid_approvers(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError(
                "approvers: name at least one operator (leave approvers out to let anyone approve)"
            )
        for name in value:
            if not name.strip():
                raise ValueError("approvers: an operator's name cannot be empty")
            if len(name) > MAX_OPERATOR:
                raise ValueError(f"approvers: a name has at most {MAX_OPERATOR} characters")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"approvers names {', '.join(duplicates)} more than once")
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
        if decoding_carried():
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
        # facade turns it into a check when it sends the policy (starter.client.health_check_host).
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
        # A recorded null (no check ran) reads as not passed.
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

    # Checked before any attempt (``ServiceRecovery.run``).
    hash_checked_at: ClassVar[str | None] = "recovery execution"
    policy_hash_checked_at: ClassVar[str | None] = "recovery policy"

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
    # Set by the coordinator: the service's last recovery failed, so this one's success
    # is news to on-call (SPEC §10's ``recovered``), even at its first attempt.
    follows_failure: StrictBool = False

    @field_validator("service_name", mode="before")
    @classmethod
    def _valid_name(cls, value: object) -> str:
        return validate_service_name(value)

    @property
    def effective_policy(self) -> RecoveryPolicy:
        """Return the policy, or the default one."""
        return self.policy or RecoveryPolicy()
