"""The worker's cache, concurrency and poller settings: ``RECOVERY_WORKER_TUNING``.

The SDK's defaults suit one worker on a small machine (README, *Worker tuning*, has
the figures); an operator who runs more recoveries, or fewer cores, changes them
here without a code change: ``RECOVERY_WORKER_TUNING="max_cached_workflows=2000,
workflow_pollers=10"``. A bad entry stops the worker before it connects, naming it.

Here in ``activities`` (the bottom layer), beside ``activities.settings`` whose
``RecoverySettings.worker_tuning`` it is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from temporalio.worker import PollerBehaviorSimpleMaximum

WORKER_TUNING_ENV = "RECOVERY_WORKER_TUNING"
# temporalio 1.35's defaults, against which settings left out are checked.
SDK_TASK_SLOTS = 100
SDK_POLLERS = 5


class WorkerTuning(BaseModel):
    """Settings passed to ``temporalio.worker.Worker``; ``None`` keeps the SDK's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Workflow runs kept in memory between tasks (SDK default 1,000): keep it above the
    # running recoveries plus the coordinator, or evicted runs replay on every task.
    # Below 20, workflow tasks of a few recoveries were seen timing out (10 s) while
    # runs were evicted under them.
    max_cached_workflows: int | None = Field(default=None, ge=20, le=100_000)
    # Workflow and activity tasks run at once (SDK default 100 each).
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2, le=10_000)
    max_concurrent_activities: int | None = Field(default=None, ge=1, le=10_000)
    # Long polls held open on the task queue (SDK default 5 each).
    workflow_pollers: int | None = Field(default=None, ge=2, le=100)
    activity_pollers: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _polls_within_slots(self) -> WorkerTuning:
        """A poll takes a task slot: more pollers than slots would wait on themselves.

        Checked against the SDK's defaults for what is left out, so that
        ``max_concurrent_workflow_tasks=2`` alone (5 pollers) is refused too.
        """
        for kind, slots_name, pollers_name in (
            ("workflow", "max_concurrent_workflow_tasks", "workflow_pollers"),
            ("activity", "max_concurrent_activities", "activity_pollers"),
        ):
            slots = getattr(self, slots_name)
            pollers = getattr(self, pollers_name)
            slots = SDK_TASK_SLOTS if slots is None else slots
            pollers = SDK_POLLERS if pollers is None else pollers
            if pollers > slots:
                raise ValueError(
                    f"{WORKER_TUNING_ENV}: {pollers_name} ({pollers}) must not exceed "
                    f"{slots_name} ({slots}): each {kind} poll holds a slot; lower "
                    f"{pollers_name} too"
                )
        return self

    @classmethod
    def parse(cls, raw: str) -> WorkerTuning:
        """Parse ``name=value`` entries separated by commas.

        Raises:
            ValueError: naming the variable and the entry or setting that is wrong.
        """
        values: dict[str, str] = {}
        for entry in (part.strip() for part in raw.split(",")):
            if not entry:
                continue
            name, equals, value = entry.partition("=")
            name = name.strip()
            if not equals or not name:
                raise ValueError(f"{WORKER_TUNING_ENV}: {entry[:80]!r} is not name=value")
            if name in values:
                raise ValueError(f"{WORKER_TUNING_ENV}: {name[:80]!r} is given twice")
            if name not in cls.model_fields:
                raise ValueError(
                    f"{WORKER_TUNING_ENV}: {name[:80]!r} is not a setting; the settings are "
                    + ", ".join(cls.model_fields)
                )
            values[name] = value.strip()
        try:
            return cls.model_validate_strings(values)
        except ValidationError as err:
            first = err.errors()[0]
            if first["type"] == "value_error":  # _polls_within_slots: its message says it all
                raise ValueError(str(first["ctx"]["error"])) from None
            name = str(first["loc"][0]) if first["loc"] else "input"
            shown = _clipped(values.get(name, ""), 40)
            raise ValueError(f"{WORKER_TUNING_ENV}: {name}={shown!r}: {first['msg']}") from None

    @classmethod
    def from_env(cls) -> WorkerTuning:
        """Return the settings in this process's ``RECOVERY_WORKER_TUNING`` (none: SDK defaults)."""
        from activities.settings import RecoverySettings  # it imports this module

        tuning: WorkerTuning = RecoverySettings.read("worker_tuning")
        return tuning

    def worker_options(self) -> dict[str, Any]:
        """Return the settings as ``Worker(...)`` keyword arguments (only those given)."""
        options: dict[str, Any] = {
            name: value
            for name in (
                "max_cached_workflows",
                "max_concurrent_workflow_tasks",
                "max_concurrent_activities",
            )
            if (value := getattr(self, name)) is not None
        }
        if self.workflow_pollers is not None:
            options["workflow_task_poller_behavior"] = PollerBehaviorSimpleMaximum(
                self.workflow_pollers
            )
        if self.activity_pollers is not None:
            options["activity_task_poller_behavior"] = PollerBehaviorSimpleMaximum(
                self.activity_pollers
            )
        return options

    def describe(self) -> str:
        """Return the settings given, as the variable writes them (``SDK defaults`` if none)."""
        given = self.model_dump(exclude_none=True)
        return ",".join(f"{name}={value}" for name, value in given.items()) or "SDK defaults"


def _clipped(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` characters (as ``workflows.errors.clipped``)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
