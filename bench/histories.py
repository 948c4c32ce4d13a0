"""What the server recorded: history lengths, continue-as-new chains, timer lateness.

Events are read from the server's own histories, not from the product's
bookkeeping, so the figures count what every recovery really costs in storage
and in workflow tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from workflows.models import RecoveryResult

FETCH_CONCURRENCY = 16


async def events_of(
    client: Client, workflow_id: str, run_id: str | None = None
) -> list[HistoryEvent]:
    """Return the events of one run (the latest when ``run_id`` is None)."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return list(history.events)


async def events_of_many(client: Client, workflow_ids: Sequence[str]) -> list[list[HistoryEvent]]:
    """Return the latest run's events of each workflow, a few fetches at a time."""
    gate = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def one(workflow_id: str) -> list[HistoryEvent]:
        async with gate:
            return await events_of(client, workflow_id)

    return await asyncio.gather(*(one(workflow_id) for workflow_id in workflow_ids))


@dataclass(frozen=True)
class RunChain:
    """A workflow id's runs (linked by continue-as-new) and what they recorded together."""

    runs: int
    events: int
    signals: int

    @property
    def continued_as_new(self) -> int:
        """Return how many times the workflow continued-as-new."""
        return self.runs - 1


async def run_chain(client: Client, workflow_id: str) -> RunChain:
    """Follow the workflow's runs back from the latest, each run naming the one it continued."""
    run_id: str | None = (await client.get_workflow_handle(workflow_id).describe()).run_id
    runs = events = signals = 0
    while run_id:
        history = await events_of(client, workflow_id, run_id)
        runs += 1
        events += len(history)
        signals += sum(
            1
            for event in history
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        )
        started = history[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
    return RunChain(runs=runs, events=events, signals=signals)


def timer_lateness_ms(events: Sequence[HistoryEvent]) -> list[float]:
    """Return, for each timer that fired, how late the workflow went on (ms).

    Due: the ``TimerStarted`` event's time plus its ``start_to_fire_timeout``. Went
    on: the start of the first workflow task after ``TimerFired``, which is when the
    next attempt begins (its ``workflow.now()``). The gap holds the server's timer
    delay, the task's wait in the queue and the worker's pick-up.
    """
    due: dict[str, datetime] = {}
    fired_at_index: list[tuple[int, datetime]] = []
    for index, event in enumerate(events):
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            attributes = event.timer_started_event_attributes
            due[attributes.timer_id] = (
                event.event_time.ToDatetime() + attributes.start_to_fire_timeout.ToTimedelta()
            )
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            fired_at_index.append((index, due[event.timer_fired_event_attributes.timer_id]))
    lateness = []
    for index, expected in fired_at_index:
        resumed = next(
            (
                later.event_time.ToDatetime()
                for later in events[index + 1 :]
                if later.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
            ),
            None,
        )
        if resumed is not None:
            lateness.append((resumed - expected).total_seconds() * 1000)
    return lateness


async def attempts_made(client: Client, events: Sequence[HistoryEvent]) -> int | None:
    """Return how many attempts a recovery made, from the result its history ends with.

    Completed: the ``RecoveryResult`` returned. Failed: the one the ``RecoveryFailed``
    error carries in its details (SPEC §4). Read from the history, so no worker
    replays it. None for a recovery that has not ended so (still running, cancelled).
    """
    last = events[-1]
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        payloads = last.workflow_execution_completed_event_attributes.result.payloads
    elif last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        failure = last.workflow_execution_failed_event_attributes.failure
        payloads = failure.application_failure_info.details.payloads
    else:
        return None
    [result] = await client.data_converter.decode(payloads, [RecoveryResult])
    return int(result.attempt_number)


async def waiting_on_timer(client: Client, workflow_id: str, duration: timedelta) -> bool:
    """Return True when the workflow has started a timer of ``duration`` that has not ended.

    Read from the history, not asked by query: a query goes through the worker
    (loading an evicted workflow back into its cache), a history read does not.
    """
    running: set[str] = set()
    for event in await events_of(client, workflow_id):
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            attributes = event.timer_started_event_attributes
            if attributes.start_to_fire_timeout.ToTimedelta() == duration:
                running.add(attributes.timer_id)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            running.discard(event.timer_fired_event_attributes.timer_id)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            running.discard(event.timer_canceled_event_attributes.timer_id)
    return bool(running)
