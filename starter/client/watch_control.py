"""The circuit watch kept by the worker: start it, configure, pause, resume and describe it.

One long-lived ``CircuitWatch`` (workflow id ``recovery-circuit-watch``) runs per
namespace. The worker starts it at start-up, or gives the one already running its
settings and interval (update-with-start of ``configure_watch``: one call, no race
between two workers). Pausing and resuming is the watch's own (updates ``pause`` and
``resume``, carried across its continue-as-new): ``recoveryctl watch-breakers
disable|enable``. An upgrade from 0.7 finds the Temporal Schedule
``recovery-circuit-watch`` that started a short run every 10 s: the worker deletes it,
carrying its pause over, and ends a 0.7 run still in flight under the same id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.settings import WATCH_INTERVAL_ENV as WATCH_INTERVAL_ENV
from activities.settings import RecoverySettings, parse_watch_interval
from starter.client.connection import unless_not_found
from workflows.circuit_watch import CircuitWatch
from workflows.circuit_watch_models import (
    CIRCUIT_WATCH_WORKFLOW_ID,
    DEFAULT_INTERVAL_SECONDS,
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    CircuitWatchInput,
    ConfigureWatchInput,
    LookNowInput,
    PauseWatchInput,
    WatchInput,
    WatchResult,
    WatchStatus,
    watch_workflow_id,
)
from workflows.constants import CIRCUIT_WATCH_SCHEDULE_ID, TASK_QUEUE
from workflows.errors import from_temporal

DEFAULT_WATCH_INTERVAL = timedelta(seconds=DEFAULT_INTERVAL_SECONDS)
MIN_WATCH_INTERVAL = timedelta(seconds=MIN_INTERVAL_SECONDS)
MAX_WATCH_INTERVAL = timedelta(seconds=MAX_INTERVAL_SECONDS)
WATCH_SUMMARY = "look for open circuit breakers and hand them to the coordinator"
# An update that meets the watch just as it continues as new is aborted; the resend
# reaches the new run.
_TRANSIENT = frozenset(
    {RPCStatusCode.ABORTED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.FAILED_PRECONDITION}
)
_SENDS = 5
R = TypeVar("R")


class WatchNotRunning(RPCError):
    """No circuit watch runs under that id (no worker has started one).

    An ``RPCError`` NOT_FOUND, as 0.7's "no such schedule" was: code that waited for a
    worker to create the watch by catching that keeps working.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, RPCStatusCode.NOT_FOUND, b"")


def parse_interval(text: str, source: str = WATCH_INTERVAL_ENV) -> timedelta:
    """Return the watch interval from seconds (``"10"``, ``"2.5"``).

    Raises:
        ValueError: naming ``source`` and the allowed range.
    """
    return parse_watch_interval(text, source)


def interval_from_env() -> timedelta:
    """Return ``RECOVERY_WATCH_INTERVAL`` (seconds), else 10 s."""
    interval: timedelta = RecoverySettings.read("watch_interval")
    return interval


@dataclass
class WatchState:
    """What ``recoveryctl watch-breakers`` shows."""

    paused: bool
    note: str
    interval_seconds: float | None
    # When it looks next (none while paused: it looks, but hands nothing over), and last.
    next_runs: list[datetime]
    recent_runs: list[datetime]
    settings: WatchInput
    workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID
    paused_since: datetime | None = None
    looks: int = 0
    last_look: WatchResult | None = None
    # Set when the watch was started now, or a 0.7 schedule was replaced.
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, status: WatchStatus, workflow_id: str) -> WatchState:
        """Build it from the watch's ``watch_status``."""
        looked = status.last_look.looked_at if status.last_look is not None else None
        return cls(
            paused=status.paused,
            note=status.note,
            interval_seconds=status.interval_seconds,
            next_runs=[looked + timedelta(seconds=status.interval_seconds)] if looked else [],
            recent_runs=[looked] if looked else [],
            settings=status.settings,
            workflow_id=workflow_id,
            paused_since=status.paused_since,
            looks=status.looks,
            last_look=status.last_look,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON ``recoveryctl watch-breakers --json`` prints."""
        look = self.last_look
        return {
            "workflow_id": self.workflow_id,
            "paused": self.paused,
            "note": self.note,
            "paused_since": self.paused_since.isoformat() if self.paused_since else None,
            "interval_seconds": self.interval_seconds,
            "looks": self.looks,
            "last_looked_at": look.looked_at.isoformat() if look and look.looked_at else None,
            "next_runs": [t.isoformat() for t in self.next_runs],
            "recent_runs": [t.isoformat() for t in self.recent_runs],
            "last_look": look.model_dump(mode="json") if look else None,
            "settings": self.settings.model_dump(mode="json"),
            "settings_source": self.settings.source,
        }


def watch_handle(client: Client, workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID) -> WorkflowHandle[Any, Any]:
    """The handle of the watch's latest run (updates and queries follow continue-as-new)."""
    return client.get_workflow_handle(workflow_id)


async def ensure_watch(
    client: Client,
    settings: WatchInput,
    *,
    interval: timedelta = DEFAULT_WATCH_INTERVAL,
    task_queue: str = TASK_QUEUE,
    workflow_id: str | None = None,
    schedule_id: str = CIRCUIT_WATCH_SCHEDULE_ID,
) -> WatchState:
    """Start the watch, or give the running one these settings and this interval.

    ``workflow_id`` defaults to ``watch_workflow_id(task_queue)``. A leftover 0.7 schedule
    ``schedule_id`` is deleted first (its pause carried over), and a 0.7 run it started
    that is still in flight is ended.
    """
    workflow_id = workflow_id or watch_workflow_id(task_queue)
    notes: list[str] = []
    carried = await _retire_schedule(client, schedule_id)
    if carried is not None:
        notes.append(f"replaced the 0.7 schedule {schedule_id!r}" + (" (paused)" if carried[0] else ""))
    configure = ConfigureWatchInput(settings=settings, interval_seconds=interval.total_seconds())

    async def send() -> WatchStatus:
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            "CircuitWatch",
            CircuitWatchInput(settings=settings, interval_seconds=interval.total_seconds()),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=WATCH_SUMMARY,
        )
        try:
            result: WatchStatus = await client.execute_update_with_start_workflow(
                "configure_watch",
                configure,
                start_workflow_operation=start,
                result_type=WatchStatus,
            )
            return result
        finally:
            future = getattr(start, "_workflow_handle", None)  # see coordinator_client._settle
            if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
                future.exception()

    status = await _resending(send)
    if carried is not None and carried[0] and not status.paused:
        note = "paused in the 0.7 schedule" + (f": {carried[1]}" if carried[1] else "")
        status = await _update(client, workflow_id, "pause", PauseWatchInput(note=note[:500]), WatchStatus)
    state = WatchState.of(status, workflow_id)
    state.notes = notes
    return state


async def _retire_schedule(client: Client, schedule_id: str) -> tuple[bool, str] | None:
    """Delete a 0.7 schedule; return whether it was paused and its note, None if none."""
    handle = client.get_schedule_handle(schedule_id)
    description = await unless_not_found(handle.describe())
    if description is None:
        return None
    await unless_not_found(handle.delete())  # None: another worker deleted it first
    # Its runs had a 5-minute execution timeout; the long-lived watch (same id) has none.
    action = description.schedule.action
    workflow_id = action.id if isinstance(action, ScheduleActionStartWorkflow) else schedule_id
    run = await unless_not_found(client.get_workflow_handle(workflow_id).describe())
    if run is not None:
        timeout = run.raw_description.execution_config.workflow_execution_timeout
        if run.status is WorkflowExecutionStatus.RUNNING and timeout.ToTimedelta() > timedelta(0):
            await client.get_workflow_handle(workflow_id, run_id=run.run_id).terminate(
                reason="replaced by the long-lived circuit watch"
            )
    state = description.schedule.state
    return state.paused, state.note or ""


async def replace_watch_settings(
    client: Client, settings: WatchInput, *, workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID
) -> WatchState:
    """Give the running watch new settings (the demo adds its services); it looks at once."""
    status = await _update(
        client, workflow_id, "configure_watch", ConfigureWatchInput(settings=settings), WatchStatus
    )
    return WatchState.of(status, workflow_id)


async def set_watch_paused(
    client: Client, paused: bool, note: str, *, workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID
) -> WatchState:
    """Pause or resume the watch, with a note its status and current details show."""
    status = await _update(
        client, workflow_id, "pause" if paused else "resume", PauseWatchInput(note=note), WatchStatus
    )
    return WatchState.of(status, workflow_id)


async def look_now(client: Client, *, workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID) -> WatchResult:
    """Make the watch look now (not at the end of its interval); return that look."""
    return await _update(client, workflow_id, "look_now", LookNowInput(), WatchResult)


async def describe_watch(
    client: Client, *, workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID
) -> WatchState:
    """Paused or not, note, interval, when it last looked and what it found, settings.

    Raises:
        WatchNotRunning: no watch runs under ``workflow_id``.
    """
    await _running(client, workflow_id)
    status = await watch_handle(client, workflow_id).query("watch_status", result_type=WatchStatus)
    return WatchState.of(status, workflow_id)


async def watch_settings(
    client: Client, description: object = None, *, workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID
) -> WatchInput:
    """The settings the running watch uses (``description``: ignored; 0.7 read its schedule's)."""
    return (await describe_watch(client, workflow_id=workflow_id)).settings


async def latest_look(
    client: Client, *, workflow_id: str = CIRCUIT_WATCH_WORKFLOW_ID
) -> WatchResult | None:
    """The running watch's last look, None when no watch runs or it has not looked yet."""
    try:
        await _running(client, workflow_id)
        look: WatchResult | None = await watch_handle(client, workflow_id).query(
            "last_look", result_type=WatchResult
        )
    except WatchNotRunning:
        return None
    return look


async def _running(client: Client, workflow_id: str) -> None:
    try:
        description = await watch_handle(client, workflow_id).describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise WatchNotRunning(f"no circuit watch {workflow_id!r}") from None
        raise
    if description.status is not WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "closed"
        raise WatchNotRunning(f"the circuit watch {workflow_id!r} is not running ({status})")


async def _update(
    client: Client, workflow_id: str, name: str, request: Any, result_type: type[R]
) -> R:
    async def send() -> R:
        try:
            result: R = await watch_handle(client, workflow_id).execute_update(
                name, request, result_type=result_type
            )
            return result
        except WorkflowUpdateFailedError as err:
            mapped = from_temporal(err)
            raise (mapped if mapped is not None else err) from None
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise WatchNotRunning(f"no circuit watch {workflow_id!r} is running") from None
            raise

    return await _resending(send)


async def _resending(send: Callable[[], Awaitable[R]]) -> R:
    for attempt in range(_SENDS):
        try:
            return await send()
        except RPCError as err:
            if err.status not in _TRANSIENT or attempt == _SENDS - 1:
                raise
        await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
