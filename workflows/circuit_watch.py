"""``CircuitWatch``: find open breakers and hand them to the coordinator, for as long as it runs.

The worker keeps one watch, workflow id ``recovery-circuit-watch``. It loops: list the
breakers the store holds open, hand every open one that is not yet in hand to the
coordinator in ``schedule_recoveries`` batches marked ``automatic`` (both local
activities: one marker event each in history) (the coordinator leaves alone what is queued, running, held back
or paused, and says so), record the look in its current details and the query
``last_look``, then wait the interval; updates ``pause``, ``resume``,
``configure_watch`` and ``look_now`` wake it at once. It continues as new, carrying
its settings, pause and last look, every ``continue_as_new_after_events`` events
(10,000; a look is 6 events, 7 with a hand-over: 2 to 2.5 runs an hour at a 1 s
interval, one every 4 to 4.6 h at 10 s), so the
Web UI's workflow list stays the recoveries' list. A store or coordinator that is
down never ends it: the look says so, and the next one tries again.

A run started with ``once`` (or with a bare ``WatchInput``, as the watch's schedule of
earlier builds started its runs) looks once and returns that look.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

from workflows.circuit_watch_models import (
    CONTINUE_AS_NEW_AFTER_BYTES,
    DETAILS_BREAKERS,
    HAND_OVER_ACTIVITY,
    CircuitWatchInput,
    ConfigureWatchInput,
    HandOverInput,
    LookNowInput,
    PauseWatchInput,
    WatchInput,
    WatchResult,
    WatchStatus,
)
from workflows.constants import CIRCUIT_WATCH_WORKFLOW, LOG_PREFIX, NUDGE_SIGNAL
from workflows.coordinator_models import (
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryOrchestratorError
from workflows.guard import validated
from workflows.models import NoInput
from workflows.versioning import next_run_versioning, version_changed

with workflow.unsafe.imports_passed_through():
    from activities.circuit_breakers import CircuitBreakerActivities
    from activities.redaction import redact_patterns

LIST_TIMEOUT = timedelta(seconds=30)
HAND_OVER_TIMEOUT = timedelta(seconds=60)
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5), maximum_attempts=3
)
BATCH = 1000  # what one schedule_recoveries update takes
# Requests the coordinator refuses one by one (a bad hash, a dependency cycle) are dropped
# and the rest sent again; past this many, the whole hand-over is given up for this look.
MAX_DROPPED = 20
_HANDED_OVER = ("queued", "updated", "started")
# What an outcome without a reason means, in the look's ``skipped``.
_OUTCOME_TEXT = {
    "already_running": "already recovering",
    "already_queued": "already queued",
    "already_recovered": "recovered since it was listed",
    "held_back": "held back",
    "paused": "paused by an operator",
    "no_room": "no room in the coordinator's queue",
}


@workflow.defn(name=CIRCUIT_WATCH_WORKFLOW)
class CircuitWatch:
    """Look at the breakers every interval; hand each open one not yet in hand to the coordinator."""

    @workflow.init
    def __init__(self, input: CircuitWatchInput | None = None) -> None:
        # Read here, not in run: an update delivered with the start (update-with-start)
        # runs before run's first line, and must find the input's settings and pause. An
        # input that does not fit arrives as the guard's marker; the guard fails the run.
        self._state = input if isinstance(input, CircuitWatchInput) else CircuitWatchInput()
        self._wake = False
        self._closing = False

    @workflow.run
    async def run(self, input: CircuitWatchInput | None = None) -> WatchResult:
        """Watch until continue-as-new (or, with ``once``, look once and return the look)."""
        if self._state.once:
            return await self._look()
        self._show_details()
        while True:
            self._wake = False
            await self._look()
            if self._should_continue_as_new():
                self._closing = True
                if version_changed():
                    await self._nudge_coordinator()
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    self._state.model_copy(update={"once": False}),
                    initial_versioning_behavior=next_run_versioning(),
                )
            if not self._wake:
                try:
                    await workflow.wait_condition(
                        lambda: self._wake,
                        timeout=timedelta(seconds=self._state.interval_seconds),
                        timeout_summary=f"next look in {self._state.interval_seconds:g} s",
                    )
                except asyncio.TimeoutError:
                    pass  # the interval is up: look again

    async def _nudge_coordinator(self) -> None:
        """Tell the coordinator to look again: it moves to the new version too (``nudge``)."""
        coordinator = self._state.settings.coordinator_workflow_id
        try:
            await workflow.get_external_workflow_handle(coordinator).signal(NUDGE_SIGNAL)
        except ApplicationError as err:  # no coordinator: it starts on the new version
            workflow.logger.info("%s No coordinator to nudge (%s): %s", LOG_PREFIX, coordinator, err)

    # -- doors -------------------------------------------------------------------------

    @validated
    @workflow.update(name="configure_watch")
    def configure_watch(self, input: ConfigureWatchInput | None = None) -> WatchStatus:
        """Take the worker's settings and interval; look again at once if they changed."""
        input = input or ConfigureWatchInput()
        changes: dict[str, Any] = {}
        if input.settings is not None and input.settings != self._state.settings:
            changes["settings"] = input.settings
        if input.interval_seconds is not None and input.interval_seconds != self._state.interval_seconds:
            changes["interval_seconds"] = input.interval_seconds
        if changes:
            self._state = self._state.model_copy(update=changes)
            self._wake = True
        return self.watch_status()

    @validated
    @workflow.update(name="pause")
    def pause(self, input: PauseWatchInput | None = None) -> WatchStatus:
        """Hand nothing over until resumed (the watch still looks, and says so)."""
        input = input or PauseWatchInput()
        since = self._state.paused_since if self._state.paused else workflow.now()
        self._state = self._state.model_copy(
            update={"paused": True, "note": redact_patterns(input.note), "paused_since": since}
        )
        self._wake = True
        return self.watch_status()

    @validated
    @workflow.update(name="resume")
    def resume(self, input: PauseWatchInput | None = None) -> WatchStatus:
        """Hand open breakers over again, starting with a look now."""
        input = input or PauseWatchInput()
        self._state = self._state.model_copy(
            update={"paused": False, "note": redact_patterns(input.note), "paused_since": None}
        )
        self._wake = True
        return self.watch_status()

    @validated
    @workflow.update(name="look_now")
    async def look_now(self, input: LookNowInput | None = None) -> WatchResult:
        """Look now, not at the end of the interval; return that look."""
        looks = self._state.looks
        self._wake = True
        await workflow.wait_condition(lambda: self._state.looks > looks or self._closing)
        return self._state.last_look or WatchResult()

    @workflow.query(name="last_look")
    def last_look(self, input: NoInput | None = None) -> WatchResult | None:
        """The latest look: when, what was open, and what became of each open breaker."""
        return self._state.last_look

    @workflow.query(name="watch_status")
    def watch_status(self, input: NoInput | None = None) -> WatchStatus:
        """Paused or not (and the note), interval, settings, looks so far, the latest look."""
        state = self._state
        return WatchStatus(
            paused=state.paused,
            note=state.note,
            paused_since=state.paused_since,
            interval_seconds=state.interval_seconds,
            settings=state.settings,
            looks=state.looks,
            last_look=state.last_look,
        )

    # -- one look --------------------------------------------------------------------

    async def _look(self) -> WatchResult:
        """List open breakers, hand them over unless paused, and record what became of each."""
        result = WatchResult(looked_at=workflow.now(), paused=self._state.paused)
        settings = self._state.settings
        try:
            open_breakers = await workflow.execute_local_activity_method(
                CircuitBreakerActivities.list_open_breakers,
                start_to_close_timeout=LIST_TIMEOUT,
                retry_policy=QUICK_RETRY,
                summary="list open breakers",
            )
        except CancelledError:
            raise
        except FailureError as err:  # a local activity's failure comes unwrapped
            result.error = _message(err)
            open_breakers = []
        result.open_breakers = [b.service_name for b in open_breakers]
        if not result.paused:
            opened_at = {b.service_name: b.opened_at for b in open_breakers}
            # The most urgent first: if the coordinator is nearly full, they are the ones it takes.
            requests = sorted(self._requests(settings, result, opened_at), key=lambda r: r.priority)
            for start in range(0, len(requests), BATCH):
                batch = requests[start : start + BATCH]
                await self._hand_over(settings.coordinator_workflow_id, batch, result)
                if result.refused is not None:
                    break
        self._record(result)
        return result

    def _requests(
        self, settings: WatchInput, result: WatchResult, opened_at: dict[str, datetime | None]
    ) -> list[ScheduleRecoveryInput]:
        """Build one request per open breaker the settings cover; note why others are skipped."""
        requests: list[ScheduleRecoveryInput] = []
        for name in result.open_breakers:
            chosen = settings.settings_for(name)
            if chosen is None:
                result.skipped[name] = settings.not_listed()
                continue
            try:  # whatever a store holds, one breaker's bad values stop only that breaker
                requests.append(chosen.request(name, opened_at.get(name)))
            except RecoveryOrchestratorError as err:
                result.skipped[name] = str(err)
        return requests

    async def _hand_over(
        self, coordinator: str, requests: list[ScheduleRecoveryInput], result: WatchResult
    ) -> None:
        """Send one batch; a request the coordinator refuses is dropped and the rest sent again."""
        dropped = 0
        while requests:
            try:
                outcomes = await workflow.execute_local_activity(
                    HAND_OVER_ACTIVITY,
                    HandOverInput(
                        coordinator_workflow_id=coordinator,
                        request=ScheduleRecoveriesInput(recoveries=requests, automatic=True),
                    ),
                    result_type=list[ScheduleRecoveryResult],
                    start_to_close_timeout=HAND_OVER_TIMEOUT,
                    retry_policy=QUICK_RETRY,
                    summary=f"hand {len(requests)} open breakers to the coordinator",
                )
            except CancelledError:
                raise
            except FailureError as err:  # the coordinator refused, or could not be reached
                message = _message(err)
                index = _refused_index(err)
                dropped += 1
                if index is None or index >= len(requests) or dropped > MAX_DROPPED:
                    result.refused = message  # the whole hand-over: e.g. the orchestrator is stopped
                    return
                request = requests.pop(index)
                result.skipped[request.service_name] = message
                continue
            for outcome in outcomes:
                if outcome.outcome in _HANDED_OVER:
                    result.scheduled.append(outcome.service_name)
                else:
                    result.skipped[outcome.service_name] = outcome.reason or _OUTCOME_TEXT.get(
                        outcome.outcome, outcome.outcome
                    )
                if outcome.no_health_check:
                    result.no_health_check.append(outcome.service_name)
            return

    def _record(self, result: WatchResult) -> None:
        """Keep the look for the queries, the details and the next run; log what changed."""
        previous = self._state.last_look
        self._state = self._state.model_copy(
            update={"last_look": result, "looks": self._state.looks + 1}
        )
        self._show_details()
        if result.scheduled or (
            previous is not None
            and (result.error, result.refused) != (previous.error, previous.refused)
        ) or (previous is None and (result.error or result.refused)):
            log = workflow.logger.warning if result.error or result.refused else workflow.logger.info
            log("%s Circuit watch: %s", LOG_PREFIX, result.summary())

    def _show_details(self) -> None:
        """The Web UI's current details: when it last looked, and why each open breaker is as it is."""
        state = self._state
        look = state.last_look
        head = f"**Circuit watch** · every {state.interval_seconds:g} s · " + (
            f"**PAUSED** since {_when(state.paused_since)}" + (f": {state.note}" if state.note else "")
            if state.paused
            else "watching"
        )
        lines = [head, ""]
        if look is None or look.looked_at is None:
            lines.append("Not looked yet.")
        else:
            lines.append(f"Last look {_when(look.looked_at)}: {look.summary()}")
            shown = look.open_breakers[:DETAILS_BREAKERS]
            if shown:
                lines.append("")
                lines.extend(f"- `{name}`: {look.verdict(name)}" for name in shown)
            if len(look.open_breakers) > len(shown):
                lines.append(
                    f"- … and {len(look.open_breakers) - len(shown)} more (query `last_look`)"
                )
        workflow.set_current_details("\n".join(lines))

    def _should_continue_as_new(self) -> bool:
        """Past our own bound (events or bytes), or past half of it when the server suggests it.

        The server's suggestion comes at 4,096 events by default: heeded at once, a 1 s
        watch would add five or six rows an hour to the workflow list. A new current
        version moves the watch at once (the next run starts on it).
        """
        if version_changed():
            return True
        info = workflow.info()
        length = info.get_current_history_length()
        bound = self._state.continue_as_new_after_events
        if length >= bound or info.get_current_history_size() >= CONTINUE_AS_NEW_AFTER_BYTES:
            return True
        return info.is_continue_as_new_suggested() and length >= bound // 2


def _refused_index(err: FailureError) -> int | None:
    """Return which request of the batch the coordinator refused (its detail's ``index``)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    details = cause.details if isinstance(cause, ApplicationError) else ()
    index = details[0].get("index") if details and isinstance(details[0], dict) else None
    return index if type(index) is int and index >= 0 else None


def _message(err: FailureError) -> str:
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, FailureError):
        return cause.message
    return str(cause or err)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
