"""Inputs, outputs and carried state of the ``RecoveryCoordinator`` workflow.

Each update takes one JSON object whose fields are the facade's keyword
arguments plus ``constitutional_hash`` (SPEC §9), so the ``temporal`` CLI and
scripts in other languages can drive the coordinator without Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.constants import CONSTITUTIONAL_HASH
from workflows.models import (
    DoorInput,
    MAX_TEXT,
    OperatorText,
    RecoveryPolicy,
    RecoveryStrategy,
    RecoveryTask,
    StrictPriority,
    StrictModel,
    check_door_time,
    validate_service_name,
)

# The recent history is carried across continue-as-new too: keep it well inside the budget.
MAX_RECENT_HISTORY = 200


class _ServiceInput(StrictModel, DoorInput):
    service_name: str
    constitutional_hash: str = CONSTITUTIONAL_HASH

    @field_validator("service_name", mode="before")
    @classmethod
    def _valid_name(cls, value: object) -> str:
        return validate_service_name(value)


class ScheduleRecoveryInput(_ServiceInput):
    """Update and signal ``schedule_recovery``."""

    hash_checked_at: ClassVar[str | None] = "recovery scheduling"
    policy_hash_checked_at: ClassVar[str | None] = "recovery scheduling"

    strategy: RecoveryStrategy = RecoveryStrategy.EXPONENTIAL_BACKOFF
    priority: StrictPriority = 1
    policy: RecoveryPolicy | None = None
    # Set by automation (the circuit watch): when the service's breaker last opened. An
    # automatic request leaves alone a service an operator cancelled since then.
    breaker_opened_at: AwareDatetime | None = None

    @field_validator("breaker_opened_at")
    @classmethod
    def _sane_opening(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_door_time(value, "breaker_opened_at")


class ScheduleRecoveriesInput(StrictModel, DoorInput):
    """Update ``schedule_recoveries``: many at once, all accepted or none.

    ``automatic`` marks a request from automation (the circuit watch, a webhook)
    rather than an operator: it leaves a service already queued or running as it is,
    and holds back one whose hourly attempt budget is spent.
    """

    recoveries: list[ScheduleRecoveryInput] = Field(min_length=1, max_length=1000)
    automatic: StrictBool = False
    constitutional_hash: str = CONSTITUTIONAL_HASH
    # Each request's own hash is checked naming that request (coordinator_admission).
    hash_checked_at: ClassVar[str | None] = "recovery scheduling"


ScheduleOutcome = Literal[
    "queued",
    "updated",
    "started",
    "already_running",
    "already_queued",
    "already_recovered",
    "held_back",
    "paused",
    "no_room",
    "refused",
]


class ScheduleRecoveryResult(BaseModel):
    """What scheduling did: queued it, updated its queue entry, found it running, or held it back."""

    service_name: str
    outcome: ScheduleOutcome
    state: str
    # Why it was left as it was or held back (automatic requests), for the watch's history.
    reason: str | None = None
    # Automatic requests only: the policy it runs under has no health check, so the
    # breaker closes only if the service's own calls close it (the evidence rule).
    no_health_check: bool = False


class CancelRecoveryInput(_ServiceInput):
    """Update ``cancel_recovery``."""

    hash_checked_at: ClassVar[str | None] = "recovery cancellation"

    reason: OperatorText = Field(default="cancelled by operator", max_length=MAX_TEXT)


class CancelRecoveryResult(BaseModel):
    """``cancelled`` is True once the recovery is cancelled or asked to cancel."""

    service_name: str
    cancelled: bool
    was: str
    # An operator's cancel holds automation off the service until then (or a resume).
    automation_held_until: datetime | None = None


class ExecuteRecoveryInput(_ServiceInput):
    """Update ``execute_recovery``: start now, outside queue order and slot count."""

    hash_checked_at: ClassVar[str | None] = "recovery execution"

    operator: str = Field(default="execute_recovery", max_length=200)


ExecuteOutcome = Literal["started", "approved", "already_running"]


class ExecuteRecoveryResult(BaseModel):
    """Which recovery run the caller should wait for, and what the update did."""

    service_name: str
    workflow_id: str
    run_id: str | None
    outcome: ExecuteOutcome
    attempt_count: int


# Every pause ends: a forgotten one must not silence a service for ever.
MAX_PAUSE_REASON = 200
DEFAULT_PAUSE_SECONDS = 24 * 3600
MAX_PAUSE_SECONDS = 30 * 24 * 3600


class PauseServiceInput(_ServiceInput):
    """Update ``pause_service``: nothing automatic schedules the service until it ends."""

    hash_checked_at: ClassVar[str | None] = "service pause"

    duration_s: StrictInt = Field(default=DEFAULT_PAUSE_SECONDS, ge=1, le=MAX_PAUSE_SECONDS)
    # Carried for every paused service (up to 500): short, and refused when longer.
    reason: OperatorText = Field(
        default="paused by operator", min_length=1, max_length=MAX_PAUSE_REASON
    )


class PauseServiceResult(BaseModel):
    """The pause now in force: until when, and why."""

    service_name: str
    until: datetime
    reason: str


class ResumeServiceInput(_ServiceInput):
    """Update ``resume_service``: lift a pause, a failure's cool-down or a cancel's hold."""

    hash_checked_at: ClassVar[str | None] = "service resume"


class ResumeServiceResult(BaseModel):
    """What resuming lifted (empty when nothing held the service back)."""

    service_name: str
    resumed: bool
    # "paused", "cool-down after failure", "held after an operator's cancel"
    lifted: list[str] = Field(default_factory=list)


class SetRecoveryPolicyInput(_ServiceInput):
    """Update ``set_recovery_policy``."""

    hash_checked_at: ClassVar[str | None] = "policy setting"
    policy_hash_checked_at: ClassVar[str | None] = "policy setting"

    policy: RecoveryPolicy


class PolicyQueryInput(_ServiceInput):
    """Query ``get_recovery_policy``."""


# Services per status page: about 250 bytes each, so a page stays far inside the
# query answer's limit (the whole status of 10,000 services would not).
MAX_STATUS_PAGE = 2000


class StatusPageInput(StrictModel, DoorInput):
    """Query ``get_recovery_status`` with an argument: a page of ``services``, by name.

    With no argument the query answers the reference shape with every service.
    """

    services: list[str] | None = Field(default=None, max_length=MAX_STATUS_PAGE)
    limit: StrictInt = Field(default=MAX_STATUS_PAGE, ge=1, le=MAX_STATUS_PAGE)
    offset: StrictInt = Field(default=0, ge=0)

    @field_validator("services", mode="before")
    @classmethod
    def _valid_names(cls, value: object) -> object:
        if isinstance(value, list):
            return [validate_service_name(name) for name in value]
        return value


def check_default_policy(policy: RecoveryPolicy | None) -> None:
    """Refuse a default policy with ``depends_on``: every service, the dependency too, takes it.

    Raises:
        ValueError: saying why.
    """
    if policy is not None and policy.depends_on:
        raise ValueError(
            "default_policy.depends_on must be empty: the default applies to every service, "
            "the dependency included, which would wait on itself; set depends_on per service"
        )


class ConfigureInput(StrictModel, DoorInput):
    """Update ``configure``: every field optional; only those given change."""

    max_concurrent_recoveries: StrictInt | None = Field(default=None, ge=1, le=1000)
    recent_history_size: StrictInt | None = Field(default=None, ge=1, le=MAX_RECENT_HISTORY)
    default_policy: RecoveryPolicy | None = None
    continue_as_new_after_events: StrictInt | None = Field(default=None, ge=100, le=50_000)
    reconcile_interval_seconds: StrictInt | None = Field(default=None, ge=1, le=86_400)
    queue_limit: StrictInt | None = Field(default=None, ge=1, le=100_000)
    orchestrator_running: StrictBool | None = None
    constitutional_hash: str = CONSTITUTIONAL_HASH

    @field_validator("default_policy")
    @classmethod
    def _no_default_dependency(cls, policy: RecoveryPolicy | None) -> RecoveryPolicy | None:
        check_default_policy(policy)
        return policy

    def constitutional_hashes(self) -> list[tuple[str, str]]:
        """The request's hash (an orchestrator start) and its default policy's (a policy setting)."""
        policy = [] if self.default_policy is None else [self.default_policy.constitutional_hash]
        return [(self.constitutional_hash, "orchestrator start"), *((h, "policy setting") for h in policy)]


class ShutdownInput(StrictModel, DoorInput):
    """Update ``shutdown``: what the facade's ``stop()`` sends."""

    reason: OperatorText = Field(default="orchestrator stopped", max_length=MAX_TEXT)
    constitutional_hash: str = CONSTITUTIONAL_HASH
    hash_checked_at: ClassVar[str | None] = "orchestrator stop"


class ShutdownResult(BaseModel):
    """The services whose recoveries were cancelled."""

    cancelled: list[str]


class CoordinatorInput(StrictModel, DoorInput):
    """Input of ``RecoveryCoordinator``: empty for a fresh start, the state after continue-as-new."""

    carries_state: ClassVar[bool] = True

    state: CoordinatorState | None = None
    config: CoordinatorConfig | None = None

    @field_validator("config")
    @classmethod
    def _bounded_config(cls, config: CoordinatorConfig | None) -> CoordinatorConfig | None:
        """A fresh start's settings obey ``configure``'s bounds (a carried state keeps its own).

        Without them, ``max_concurrent_recoveries: 0`` was a queue that never starts and
        ``continue_as_new_after_events: 1`` a coordinator that did nothing but hand over.
        """
        if config is not None:
            ConfigureInput.model_validate(
                config.model_dump(exclude={"default_policy"}, exclude_none=True)
            )
            check_default_policy(config.default_policy)
        return config
