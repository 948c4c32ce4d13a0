"""What the ``RecoveryCoordinator`` carries across continue-as-new: ``CoordinatorState``.

Its settings, queue, running recoveries, policies, recent history and the records
automation answers to (the storm guard's attempt logs and holds, operators' pauses and
cancels, failure cool-downs). These models stay lenient: a state an older run carried
must decode in a newer one (the bounds are checked at the doors, in
``workflows.coordinator_models``). The whole state is one continue-as-new input, under
Temporal's 2 MB: it is written compactly (``workflows.compact_state``) and kept inside
a budget (``workflows.ledger.budget``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from workflows.compact_state import POLICY_TABLE, compact, expand
from workflows.ledger.lifecycle import ActiveRecovery
from workflows.models import RecoveryPolicy, RecoveryResult, RecoveryTask

DEFAULT_QUEUE_LIMIT = 10_000


class CoordinatorConfig(BaseModel):
    """The coordinator's settings.

    The bounds are ``ConfigureInput``'s, checked at the door: this carried model stays
    lenient, so that a state carried by an older run always decodes in a newer one.
    """

    max_concurrent_recoveries: int = 4
    recent_history_size: int = 10
    default_policy: RecoveryPolicy = Field(default_factory=RecoveryPolicy)
    # Continue-as-new at this history length too (Temporal's suggestion always counts).
    continue_as_new_after_events: int | None = None
    # How often to ask the server about recoveries started before a continue-as-new.
    reconcile_interval_seconds: int = 60
    # Most unfinished recoveries (queued or running) held at once: the whole state is
    # carried across continue-as-new, so it must stay bounded.
    queue_limit: int = DEFAULT_QUEUE_LIMIT


class AttemptLog(BaseModel):
    """When a service's recent attempts began, for its hourly budget (the storm guard).

    Kept only for services whose policy sets ``max_attempts_per_hour``, and only for
    the last hour, so that it stays small in the carried state.
    """

    budget: int
    started: list[datetime] = Field(default_factory=list)


class HeldBack(BaseModel):
    """An automatic request the storm guard refused: why, and until when."""

    reason: str
    until: datetime
    attempts_last_hour: int
    max_attempts_per_hour: int


class Pause(BaseModel):
    """An operator's pause of automatic recovery for one service."""

    until: datetime
    reason: str


class FailureStreak(BaseModel):
    """Recoveries of one service that failed in a row, and the cool-down they impose.

    Automation tries again only after ``until``, and then with ``policy``, the one the
    last recovery failed with (None: the service's policy, else the default).
    """

    failures: int
    until: datetime
    policy: RecoveryPolicy | None = None
    # An automatic request was answered held_back by this cool-down (and on-call told,
    # SPEC §10): the validator refuses the repeats without history, as it does a
    # storm guard's hold already recorded.
    answered: bool = False


class CoordinatorState(BaseModel):
    """Everything carried across continue-as-new."""

    orchestrator_running: bool = True
    config: CoordinatorConfig = Field(default_factory=CoordinatorConfig)
    queue: list[RecoveryTask] = Field(default_factory=list)
    active: dict[str, ActiveRecovery] = Field(default_factory=dict)
    policies: dict[str, RecoveryPolicy] = Field(default_factory=dict)
    recent_history: list[RecoveryResult] = Field(default_factory=list)
    # Run ids whose finish is recorded, so a report seen twice is recorded once.
    finished_runs: list[str] = Field(default_factory=list)
    next_sequence: int = 0
    rejected_signals: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    attempt_logs: dict[str, AttemptLog] = Field(default_factory=dict)
    # When an operator last cancelled each service: automation leaves it alone until its
    # breaker opens again or an operator schedules it (the most recent few hundred kept).
    operator_cancels: dict[str, datetime] = Field(default_factory=dict)
    held_back: dict[str, HeldBack] = Field(default_factory=dict)
    paused: dict[str, Pause] = Field(default_factory=dict)
    failure_streaks: dict[str, FailureStreak] = Field(default_factory=dict)
    # Services whose last recovery failed, until one succeeds (whatever an operator did
    # meanwhile): that one tells on-call it recovered (SPEC §10), oldest first.
    failed_last: list[str] = Field(default_factory=list)
    # When each service's last recovery ended, for the last few minutes: a hand-over
    # listed before that ending is stale (oldest first).
    recently_ended: dict[str, datetime] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _compact_as_json(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        """Write JSON compactly (``workflows.compact_state``): the hand-over stays under 2 MB."""
        data = handler(self)
        if not info.mode_is_json():
            return data
        tasks = [*self.queue, *(active.task for active in self.active.values())]
        return compact(data, [task.policy for task in tasks])

    @model_validator(mode="before")
    @classmethod
    def _expand_compact(cls, data: Any) -> Any:
        """Read the compact form; each policy of its table becomes one object, shared."""
        if isinstance(data, dict) and isinstance(data.get(POLICY_TABLE), list):
            policies = [RecoveryPolicy.model_validate(p) for p in data[POLICY_TABLE]]
            data = expand({**data, POLICY_TABLE: policies})
            if POLICY_TABLE in data:  # not expanded: its parts have the wrong shapes
                raise ValueError("a compact state needs a queue list and an active map of tasks")
        return data
