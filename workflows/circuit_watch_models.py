"""Input and result of ``CircuitWatch``, and the per-service settings it schedules with.

The settings come from the services file (``recovery.toml``, loaded by the worker
in ``starter.services_file``) and travel as the input of the Temporal Schedule
``recovery-circuit-watch``, so the Web UI's schedule page shows what the watch
will use, and a worker restart with an edited file updates them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from workflows.constants import COORDINATOR_WORKFLOW_ID
from workflows.coordinator_models import ScheduleRecoveriesInput, StrictPriority
from workflows.models import (
    RecoveryPolicy,
    RecoveryStrategy,
    StrictModel,
    validate_service_name,
)

# The catalog travels in the schedule's input: keep it well inside Temporal's 2 MB.
MAX_CATALOG_BYTES = 1_000_000
# The hand-over is a client of the coordinator, so it lives client side
# (``starter.coordinator_handoff``); the watch calls it by this name.
HAND_OVER_ACTIVITY = "hand_over_open_breakers"


class ServiceSettings(StrictModel):
    """How the watch schedules one service: strategy, priority and policy.

    A null policy lets the coordinator choose (the policy set with
    ``set_recovery_policy``, else its default policy).
    """

    strategy: RecoveryStrategy = RecoveryStrategy.EXPONENTIAL_BACKOFF
    priority: StrictPriority = 1
    policy: RecoveryPolicy | None = None


class WatchInput(StrictModel):
    """Input of ``CircuitWatch``: the services file as the worker loaded it."""

    defaults: ServiceSettings = Field(default_factory=ServiceSettings)
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    # Recover breakers the file does not list, with ``defaults``.
    recover_unlisted: bool = True
    # Where the settings came from (a file path), shown in the watch's history.
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


class HandOverInput(BaseModel):
    """Input of the ``hand_over_open_breakers`` activity."""

    coordinator_workflow_id: str
    request: ScheduleRecoveriesInput


class WatchResult(BaseModel):
    """What one watch run found and did (its workflow result, shown in the Web UI)."""

    open_breakers: list[str] = Field(default_factory=list)
    scheduled: list[str] = Field(default_factory=list)
    # Service → why the watch left it (already queued or running, budget spent, unlisted…).
    skipped: dict[str, str] = Field(default_factory=dict)
    # Set when the coordinator refused the hand-over (e.g. the orchestrator is stopped).
    refused: str | None = None
