"""Read a ``ServiceRecovery`` history as the server recorded it: attempts, steps, timings.

Every time here is an event's timestamp, written by the server: what a test asserts
about "on time" does not depend on how busy the test process was.

- An attempt starts with the breaker reset (a ``set_breaker_state`` local activity:
  a ``MarkerRecorded`` event carrying the state written) and ends with the close or
  re-open marker; its health check is the ``run_health_check`` activity between.
- Attempt 1 is due when the workflow starts; attempt n + 1 when the timer
  ``backoff before attempt n + 1 (… ms)`` fires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle

BREAKER_ACTIVITY = "set_breaker_state"
CHECK_ACTIVITY = "run_health_check"
LOCAL_ACTIVITY_MARKER = "core_local_activity"


@dataclass
class Step:
    """One breaker write, as its marker recorded it."""

    state: str  # "half-open", "closed" or "open"
    at: datetime
    tries: int  # the local activity's attempt that succeeded (1: no retry)


@dataclass
class Check:
    """One health-check activity: scheduled once, run ``tries`` times."""

    scheduled_at: datetime
    started_at: datetime | None = None  # the start of its last try
    tries: int = 0
    retried_after: str | None = None  # why the last try was needed: "HEARTBEAT", …
    finished_at: datetime | None = None


@dataclass
class Attempt:
    """One attempt of the recovery."""

    number: int
    due_at: datetime  # the workflow's start, or the firing of the timer before it
    timer_summary: str | None
    reset: Step
    check: Check | None = None
    end: Step | None = None  # the close or the re-open


@dataclass
class Timeline:
    """A recovery's history, read into attempts."""

    started_at: datetime
    task_timeout_s: float  # the workflow task timeout: how long a dead worker's task is held
    attempts: list[Attempt] = field(default_factory=list)
    timer_summaries: list[str] = field(default_factory=list)
    breaker_states: list[str] = field(default_factory=list)  # every marker, in order
    checks_scheduled: int = 0
    task_timeouts: list[tuple[datetime, str]] = field(default_factory=list)  # workflow tasks


def event_time(event: HistoryEvent) -> datetime:
    """Return an event's server timestamp (UTC)."""
    return event.event_time.ToDatetime(tzinfo=timezone.utc)


def _payload_json(payloads: Any) -> Any:
    return json.loads(payloads.payloads[0].data) if payloads.payloads else None


class _Reader:
    """Folds events, in order, into a ``Timeline``."""

    def __init__(self) -> None:
        self.timeline: Timeline | None = None
        self.due: tuple[datetime, str | None] | None = None
        self.timers: dict[str, str] = {}
        self.checks: dict[int, Check] = {}

    def read(self, event: HistoryEvent) -> None:
        at = event_time(event)
        if event.HasField("workflow_execution_started_event_attributes"):
            task_timeout = event.workflow_execution_started_event_attributes.workflow_task_timeout
            self.timeline = Timeline(
                started_at=at, task_timeout_s=task_timeout.ToTimedelta().total_seconds()
            )
            self.due = (at, None)
            return
        timeline = self.timeline
        assert timeline is not None, "history without its start event"
        if event.HasField("timer_started_event_attributes"):
            summary = json.loads(event.user_metadata.summary.data or b'""')
            self.timers[event.timer_started_event_attributes.timer_id] = summary
            timeline.timer_summaries.append(summary)
        elif event.HasField("timer_fired_event_attributes"):
            self.due = (at, self.timers[event.timer_fired_event_attributes.timer_id])
        elif event.HasField("marker_recorded_event_attributes"):
            self._marker(event, at, timeline)
        elif event.HasField("activity_task_scheduled_event_attributes"):
            self._check_scheduled(event, at, timeline)
        elif event.HasField("activity_task_started_event_attributes"):
            self._check_started(event, at)
        else:
            self._other(event, at, timeline)

    def _check_scheduled(self, event: HistoryEvent, at: datetime, timeline: Timeline) -> None:
        if event.activity_task_scheduled_event_attributes.activity_type.name != CHECK_ACTIVITY:
            return
        check = Check(scheduled_at=at)
        self.checks[event.event_id] = check
        timeline.checks_scheduled += 1
        timeline.attempts[-1].check = check

    def _check_started(self, event: HistoryEvent, at: datetime) -> None:
        """Note the start of a check's last try (the server records only that one) and why."""
        started = event.activity_task_started_event_attributes
        check = self.checks.get(started.scheduled_event_id)
        if check is None:
            return
        check.started_at, check.tries = at, started.attempt
        failure = started.last_failure
        if failure.HasField("timeout_failure_info"):
            kind = TimeoutType.Name(failure.timeout_failure_info.timeout_type)
            check.retried_after = kind.removeprefix("TIMEOUT_TYPE_")
        elif failure.message:
            check.retried_after = failure.message

    def _marker(self, event: HistoryEvent, at: datetime, timeline: Timeline) -> None:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != LOCAL_ACTIVITY_MARKER:
            return
        data = _payload_json(marker.details["data"])
        if data.get("activity_type") != BREAKER_ACTIVITY or "result" not in marker.details:
            return
        state = _payload_json(marker.details["result"])["state"]
        step = Step(state=state, at=at, tries=int(data.get("attempt", 1)))
        timeline.breaker_states.append(state)
        if state == "half-open":
            assert self.due is not None
            due_at, summary = self.due
            timeline.attempts.append(
                Attempt(len(timeline.attempts) + 1, due_at, summary, reset=step)
            )
        elif timeline.attempts:
            timeline.attempts[-1].end = step

    def _other(self, event: HistoryEvent, at: datetime, timeline: Timeline) -> None:
        for name in (
            "activity_task_completed_event_attributes",
            "activity_task_failed_event_attributes",
            "activity_task_timed_out_event_attributes",
        ):
            if event.HasField(name):
                check = self.checks.get(getattr(event, name).scheduled_event_id)
                if check is not None:
                    check.finished_at = at
                return
        if event.HasField("workflow_task_timed_out_event_attributes"):
            kind = event.workflow_task_timed_out_event_attributes.timeout_type
            timeline.task_timeouts.append(
                (at, TimeoutType.Name(kind).removeprefix("TIMEOUT_TYPE_"))
            )


async def read_timeline(handle: WorkflowHandle[Any, Any]) -> Timeline:
    """Return the recovery's history (its current run) as a ``Timeline``."""
    reader = _Reader()
    async for event in handle.fetch_history_events():
        reader.read(event)
    assert reader.timeline is not None, f"{handle.id} has no history"
    return reader.timeline


def seconds(later: datetime, earlier: datetime) -> float:
    """Return ``later - earlier`` in seconds."""
    return (later - earlier).total_seconds()


def describe(timeline: Timeline) -> str:
    """Return one line per attempt: each step's time, in seconds from the workflow's start."""

    def at(when: datetime | None) -> str:
        return "-" if when is None else f"{seconds(when, timeline.started_at):6.2f}"

    lines = []
    for a in timeline.attempts:
        check = a.check
        lines.append(
            f"attempt {a.number}: due {at(a.due_at)} reset {at(a.reset.at)} (try {a.reset.tries})"
            + (
                f" check {at(check.scheduled_at)}→{at(check.started_at)}→{at(check.finished_at)}"
                f" (try {check.tries}{', after ' + check.retried_after if check.retried_after else ''})"
                if check is not None
                else " no check"
            )
            + (f" {a.end.state} {at(a.end.at)} (try {a.end.tries})" if a.end is not None else "")
        )
    for when, kind in timeline.task_timeouts:
        lines.append(f"workflow task timed out ({kind}) at {at(when)}")
    return "\n".join(lines)
