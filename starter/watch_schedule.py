"""The Temporal Schedule ``recovery-circuit-watch`` that runs ``CircuitWatch``.

The worker creates it at start-up, or updates it (interval and the services
file's settings) when it already exists, leaving it paused if an operator paused
it. Pausing and resuming is ``recoveryctl watch-breakers disable|enable`` or the
Web UI's schedule page; both are the schedule's own pause, so either shows the
other's note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.circuit_watch import CircuitWatch
from workflows.circuit_watch_models import WatchInput
from workflows.constants import CIRCUIT_WATCH_SCHEDULE_ID, TASK_QUEUE

WATCH_INTERVAL_ENV = "RECOVERY_WATCH_INTERVAL"
DEFAULT_WATCH_INTERVAL = timedelta(seconds=10)
MIN_WATCH_INTERVAL = timedelta(seconds=1)
MAX_WATCH_INTERVAL = timedelta(days=1)
# A watch run that hangs must not keep the schedule skipping its ticks for long.
WATCH_RUN_TIMEOUT = timedelta(minutes=5)


def parse_interval(text: str, source: str = WATCH_INTERVAL_ENV) -> timedelta:
    """Return the watch interval from seconds (``"10"``, ``"2.5"``).

    Raises:
        ValueError: naming ``source`` and the allowed range.
    """
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{source}={text!r}: expected a number of seconds") from None
    interval = timedelta(seconds=seconds) if seconds == seconds else timedelta(0)  # NaN → 0
    if not MIN_WATCH_INTERVAL <= interval <= MAX_WATCH_INTERVAL:
        raise ValueError(
            f"{source}={text!r}: the watch interval must be between "
            f"{MIN_WATCH_INTERVAL.total_seconds():g} and {MAX_WATCH_INTERVAL.total_seconds():g} seconds"
        )
    return interval


def interval_from_env() -> timedelta:
    """Return ``RECOVERY_WATCH_INTERVAL`` (seconds), else 10 s."""
    text = os.environ.get(WATCH_INTERVAL_ENV)
    return parse_interval(text) if text else DEFAULT_WATCH_INTERVAL


def _schedule(settings: WatchInput, interval: timedelta, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CircuitWatch.run,
            settings,
            id=CIRCUIT_WATCH_SCHEDULE_ID,
            task_queue=task_queue,
            execution_timeout=WATCH_RUN_TIMEOUT,
            static_summary="look for open circuit breakers and schedule their recovery",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        # One watch at a time: a slow run makes the next tick skip, never pile up.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="created by recovery-worker"),
    )


async def ensure_watch_schedule(
    client: Client,
    settings: WatchInput,
    *,
    interval: timedelta = DEFAULT_WATCH_INTERVAL,
    task_queue: str = TASK_QUEUE,
    schedule_id: str = CIRCUIT_WATCH_SCHEDULE_ID,
) -> ScheduleHandle:
    """Create the watch's schedule, or bring its interval and settings up to date."""
    wanted = _schedule(settings, interval, task_queue)
    try:
        return await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)

        def update(input: ScheduleUpdateInput) -> ScheduleUpdate:
            current = input.description.schedule
            current.action, current.spec, current.policy = wanted.action, wanted.spec, wanted.policy
            return ScheduleUpdate(schedule=current)  # its state (paused or not) stays

        await handle.update(update)
        return handle


async def replace_watch_settings(
    client: Client, settings: WatchInput, *, schedule_id: str = CIRCUIT_WATCH_SCHEDULE_ID
) -> None:
    """Give the existing schedule's runs new settings (the demo adds its services)."""

    def update(input: ScheduleUpdateInput) -> ScheduleUpdate:
        current = input.description.schedule
        action = current.action
        if not isinstance(action, ScheduleActionStartWorkflow):
            raise ValueError(f"schedule {schedule_id!r} does not start a workflow")
        action.args = [settings]
        return ScheduleUpdate(schedule=current)

    await client.get_schedule_handle(schedule_id).update(update)


@dataclass
class WatchState:
    """What ``recoveryctl watch-breakers`` shows."""

    paused: bool
    note: str
    interval_seconds: float | None
    next_runs: list[datetime]
    recent_runs: list[datetime]
    settings: WatchInput


async def describe_watch(
    client: Client, *, schedule_id: str = CIRCUIT_WATCH_SCHEDULE_ID
) -> WatchState:
    """Describe the schedule: paused or not, interval, next and recent runs, settings."""
    description = await client.get_schedule_handle(schedule_id).describe()
    return WatchState(
        paused=description.schedule.state.paused,
        note=description.schedule.state.note or "",
        interval_seconds=_interval(description),
        next_runs=list(description.info.next_action_times[:3]),
        recent_runs=[action.started_at for action in description.info.recent_actions[-3:]],
        settings=await watch_settings(client, description),
    )


async def watch_settings(client: Client, description: ScheduleDescription) -> WatchInput:
    """Decode the settings the schedule's runs are given."""
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.args:
        return WatchInput()
    decoded = await client.data_converter.decode(list(action.args), [WatchInput])
    settings = decoded[0]
    return settings if isinstance(settings, WatchInput) else WatchInput.model_validate(settings)


async def set_watch_paused(
    client: Client, paused: bool, note: str, *, schedule_id: str = CIRCUIT_WATCH_SCHEDULE_ID
) -> None:
    """Pause or resume the watch, with a note the Web UI shows beside it."""
    handle = client.get_schedule_handle(schedule_id)
    if paused:
        await handle.pause(note=note)
    else:
        await handle.unpause(note=note)


def _interval(description: ScheduleDescription) -> float | None:
    intervals = description.schedule.spec.intervals
    return intervals[0].every.total_seconds() if intervals else None
