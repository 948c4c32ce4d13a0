"""Input, state and result of ``CircuitWatch``, and the per-service settings it schedules with.

The settings come from the services file (``recovery.toml``, loaded by the worker in
``starter.client.services_file``). The worker keeps one long-lived watch, workflow id
``recovery-circuit-watch``, and gives it the settings and its interval at start-up
(update ``configure_watch``); the watch carries them, its pause and its last look
across continue-as-new, so the Web UI's workflow list gets a row only every few hours
at the default interval, not one per look.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt, field_validator

from workflows.constants import CIRCUIT_WATCH_SCHEDULE_ID, COORDINATOR_WORKFLOW_ID, TASK_QUEUE
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryInput
from workflows.dependencies import find_cycle
from workflows.models import (
    DoorInput,
    RecoveryPolicy,
    RecoveryStrategy,
    StrictModel,
    StrictPriority,
    validate_service_name,
)

# The catalog travels in the watch's input: keep it well inside Temporal's 2 MB.
MAX_CATALOG_BYTES = 1_000_000
# The hand-over is a client of the coordinator, so it lives client side
# (``activities.coordinator_handoff``); the watch calls it by this name.
HAND_OVER_ACTIVITY = "hand_over_open_breakers"

# The one watch the worker keeps, under its schedule's old id (links to it keep working).
CIRCUIT_WATCH_WORKFLOW_ID = CIRCUIT_WATCH_SCHEDULE_ID
DEFAULT_INTERVAL_SECONDS = 10.0
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 86_400.0
# A run continues as new past this many events (or CONTINUE_AS_NEW_AFTER_BYTES). A look
# is 6 events, 7 with a hand-over (listing and hand-over are local activities: a marker
# each), so at 1 s a run lasts 24-28 min (2-2.5 rows an hour), at 10 s 4-4.6 h.
# Each open breaker adds ~210 bytes to a look (its listing and the coordinator's answer):
# past ~40 breakers open for long, the byte bound comes first (Temporal warns at 10 MB).
CONTINUE_AS_NEW_AFTER_EVENTS = 10_000
CONTINUE_AS_NEW_AFTER_BYTES = 8_000_000
# What the Web UI shows beside a paused watch: a sentence, not a document.
MAX_NOTE = 500
# The current details list this many open breakers; the query ``last_look`` has them all.
DETAILS_BREAKERS = 40


def watch_workflow_id(task_queue: str = TASK_QUEUE) -> str:
    """The watch a worker on ``task_queue`` keeps: ``recovery-circuit-watch`` on the product's
    task queue, ``recovery-circuit-watch-<task queue>`` on another (a watch runs on the task
    queue it was started on, so workers on two queues must not share one)."""
    if task_queue == TASK_QUEUE:
        return CIRCUIT_WATCH_WORKFLOW_ID
    return f"{CIRCUIT_WATCH_WORKFLOW_ID}-{task_queue}"


class ServiceSettings(StrictModel):
    """How the watch schedules one service: strategy, priority and policy.

    A null policy lets the coordinator choose (the policy set with
    ``set_recovery_policy``, else its default policy).
    """

    strategy: RecoveryStrategy = RecoveryStrategy.EXPONENTIAL_BACKOFF
    priority: StrictPriority = 1
    policy: RecoveryPolicy | None = None

    def request(
        self, service_name: str, breaker_opened_at: datetime | None = None
    ) -> ScheduleRecoveryInput:
        """Return the request for ``service_name`` under these settings (watch and receiver alike).

        Raises:
            RecoveryOrchestratorError: the name or the opening time is refused.
        """
        return ScheduleRecoveryInput(
            service_name=service_name,
            strategy=self.strategy,
            priority=self.priority,
            policy=self.policy,
            breaker_opened_at=breaker_opened_at,
        )


class WatchInput(StrictModel, DoorInput):
    """The watch's settings: the services file as the worker loaded it."""

    defaults: ServiceSettings = Field(default_factory=ServiceSettings)
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    # Recover breakers the file does not list, with ``defaults``.
    recover_unlisted: StrictBool = True
    # Where the settings came from (a file path), shown in the watch's status.
    source: str | None = None
    # The coordinator to hand open breakers to (the namespace's pinned one by default).
    coordinator_workflow_id: str = Field(default=COORDINATOR_WORKFLOW_ID, min_length=1, max_length=1000)

    @field_validator("services")
    @classmethod
    def _valid_names(cls, value: dict[str, ServiceSettings]) -> dict[str, ServiceSettings]:
        for name in value:
            validate_service_name(name)
        return value

    def settings_for(self, service_name: str) -> ServiceSettings | None:
        """Return the service's settings, the defaults for an unlisted one, or None to skip it."""
        listed = self.services.get(service_name)
        if listed is not None:
            return listed
        return self.defaults if self.recover_unlisted else None

    def not_listed(self) -> str:
        """Why ``settings_for`` skipped a service: the reason the watch and the receiver give."""
        return f"not listed in {self.source or 'the services file'} (recover_unlisted = false)"


class HandOverInput(BaseModel):
    """Input of the ``hand_over_open_breakers`` activity."""

    coordinator_workflow_id: str
    request: ScheduleRecoveriesInput


class WatchResult(BaseModel):
    """One look: what the watch found and what it did with each open breaker.

    The query ``last_look`` returns the latest; a one-off run (``once``) returns it.
    """

    looked_at: datetime | None = None
    open_breakers: list[str] = Field(default_factory=list)
    scheduled: list[str] = Field(default_factory=list)
    # Service → why the watch left it (already queued or running, held back, paused,
    # recovered since listed, unlisted…).
    skipped: dict[str, str] = Field(default_factory=dict)
    # Handed over (or left) under a policy without a health check: only the service's own
    # calls can close its breaker (the evidence rule).
    no_health_check: list[str] = Field(default_factory=list)
    # Set when the coordinator refused the hand-over as a whole (e.g. the orchestrator is
    # stopped) or could not be reached.
    refused: str | None = None
    # Set when the breakers could not be listed (the store is down): nothing was handed over.
    error: str | None = None
    # The watch was paused: it listed the open breakers but handed none over.
    paused: bool = False

    def verdict(self, service_name: str) -> str | None:
        """Return one line on what the watch did with this open breaker, None if not seen."""
        if service_name not in self.open_breakers:
            return None
        note = " (no health check)" if service_name in self.no_health_check else ""
        if service_name in self.scheduled:
            return f"handed over{note}"
        if service_name in self.skipped:
            return f"{self.skipped[service_name]}{note}"
        if self.paused:
            return "not handed over: the watch is paused"
        if self.refused is not None:
            return f"not handed over: {self.refused}"
        return f"not handed over{note}"

    def summary(self) -> str:
        """One line: how many were open and what became of them."""
        if self.error is not None:
            return f"could not list the breakers: {self.error}"
        line = (
            f"{len(self.open_breakers)} open, {len(self.scheduled)} handed over, "
            f"{len(self.skipped)} left as they are"
        )
        if self.no_health_check:
            line += f", {len(self.no_health_check)} without a health check"
        if self.paused:
            line += " (paused: nothing handed over)"
        if self.refused is not None:
            line += f"; the coordinator refused: {self.refused}"
        return line


class CircuitWatchInput(StrictModel, DoorInput):
    """Input of ``CircuitWatch``: its settings, and what a continue-as-new carries over."""

    carries_state: ClassVar[bool] = True

    settings: WatchInput = Field(default_factory=WatchInput)
    interval_seconds: StrictFloat = Field(
        default=DEFAULT_INTERVAL_SECONDS, ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS
    )
    # The watch's own pause, and the note of the last pause or resume.
    paused: StrictBool = False
    note: str = Field(default="", max_length=MAX_NOTE)
    paused_since: datetime | None = None
    last_look: WatchResult | None = None
    # Looks since the watch was first started (carried across continue-as-new).
    looks: StrictInt = Field(default=0, ge=0)
    # Look once and return that look, instead of watching (tests, one-off checks).
    once: StrictBool = False
    continue_as_new_after_events: StrictInt = Field(
        default=CONTINUE_AS_NEW_AFTER_EVENTS, ge=50, le=40_000
    )


class ConfigureWatchInput(StrictModel, DoorInput):
    """Update ``configure_watch``: the worker's settings and interval (a null keeps them)."""

    settings: WatchInput | None = None
    interval_seconds: StrictFloat | None = Field(
        default=None, ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS
    )

    @field_validator("settings")
    @classmethod
    def _fits(cls, settings: WatchInput | None) -> WatchInput | None:
        """Refuse settings larger than the services file may be (the answer echoes them),
        or whose ``depends_on`` loop (as the services file refuses them: each recovery of
        the loop would wait for another's, and the coordinator refuses every one)."""
        if settings is not None:
            size = len(settings.model_dump_json().encode())
            if size > MAX_CATALOG_BYTES:
                raise ValueError(
                    f"settings are {size:,} bytes as JSON, over the {MAX_CATALOG_BYTES:,} the "
                    "watch carries (MAX_CATALOG_BYTES)"
                )
            defaults = settings.defaults.policy
            if defaults is not None and defaults.depends_on:
                raise ValueError(
                    "defaults: depends_on is not allowed: every service takes the defaults, so "
                    "each service it names would depend on itself; set depends_on per service"
                )
            graph = {
                name: listed.policy.depends_on if listed.policy is not None else []
                for name, listed in settings.services.items()
            }
            for name, dependencies in graph.items():
                unknown = [d for d in dependencies if d not in graph]
                if unknown:
                    raise ValueError(
                        f"services.{name}: depends_on: unknown service {unknown[0]!r} (not "
                        "listed in services): a recovery cannot wait for one that never starts"
                    )
            cycle = find_cycle(graph)
            if cycle is not None:
                raise ValueError(f"depends_on cycle: {' -> '.join(cycle)}")
        return settings


class PauseWatchInput(StrictModel, DoorInput):
    """Updates ``pause`` and ``resume``: with a note shown in the status and the Web UI."""

    note: str = Field(default="", max_length=MAX_NOTE)


class LookNowInput(StrictModel, DoorInput):
    """Update ``look_now``: look at once (not waiting for the interval); returns the look."""


class WatchStatus(BaseModel):
    """The query ``watch_status``, and what the watch's updates return."""

    paused: bool
    note: str
    paused_since: datetime | None = None
    interval_seconds: float
    settings: WatchInput
    looks: int
    last_look: WatchResult | None = None
