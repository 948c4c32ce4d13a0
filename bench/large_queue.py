"""Figure 6: 10,000 queued services in one coordinator.

The coordinator has one slot, held by a blocker, and ``queue_limit`` raised to
hold 10,000 more; the services are sent in batches of 1,000 (``schedule_recoveries``).
Baseline for the schedule time: the same batches stored by a no-op workflow's
update (``BareEntity.add_many``).

Then a hand-over is forced (``continue_as_new_after_events`` set to its minimum,
and ``configure`` sent until the run changes), so the whole queue crosses a
continue-as-new. Then: the status read fresh through the facade and by the raw
query (latency and JSON size), every one of the 10,000 looked for in the
facade's answer, and the coordinator's runs counted. Anything refused along the
way (the carried state's budget, a message too large) is reported, not raised.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.baseline import BareEntity
from bench.blocker import hold_the_slot
from bench.environment import Bench
from bench.histories import run_chain
from bench.report import Report, Row, Target, megabytes, seconds
from bench.scheduling import BATCH, requests
from bench.stats import Latency
from bench.status_calls import raw_status
from starter.client.coordinator_client import CoordinatorClient
from workflows.coordinator_models import ConfigureInput, ScheduleRecoveriesInput
from workflows.models import RecoveryStrategy

QUEUED = 10_000
READS = 5
HAND_OVER_EVENTS = 100
HAND_OVER_TRIES = 60


async def measure_large_queue(bench: Bench, report: Report) -> None:
    """Add the 10,000-queued rows."""
    orchestrator, coordinator = await bench.orchestrator("queue", slots=1)
    await coordinator.configure(ConfigureInput(queue_limit=QUEUED + 1))
    await hold_the_slot(bench, orchestrator, "queue")
    names = [f"queued-{bench.run_id}-{index:05d}" for index in range(QUEUED)]

    scheduled, schedule_error = 0, None
    began = time.perf_counter()
    try:
        for start in range(0, QUEUED, BATCH):
            batch = requests(
                names[start : start + BATCH], RecoveryStrategy.EXPONENTIAL_BACKOFF, priority=5
            )
            await coordinator.schedule_recoveries(ScheduleRecoveriesInput(recoveries=batch))
            scheduled = start + len(batch)
    except Exception as err:  # refused (budget, size): the figure says so
        schedule_error = f"{type(err).__name__} after {scheduled:,}: {err}"
    ours = time.perf_counter() - began
    theirs = await _bare_batches(bench, names)
    report.add(
        Row(
            f"{QUEUED:,} queued: time to schedule ({BATCH:,}/batch)",
            seconds(ours),
            seconds(theirs),
            ours / theirs,
            error=schedule_error,
            data={
                "scheduled": scheduled,
                "product_seconds": round(ours, 3),
                "bare_seconds": round(theirs, 3),
            },
        )
    )

    hand_over_error = await _force_hand_over(coordinator)
    fresh: Callable[[], Awaitable[dict[str, Any]]] = lambda: orchestrator.get_recovery_status(
        max_staleness=0
    )  # noqa: E731
    ours_read = await _timed_reads(fresh)
    theirs_read = await _timed_reads(lambda: raw_status(bench.client, coordinator.workflow_id))
    report.add(_read_row(ours_read, theirs_read))
    report.add(
        Row(
            f"{QUEUED:,} queued: status size (JSON)",
            megabytes(ours_read.size) if ours_read.size else "no answer",
            megabytes(theirs_read.size) if theirs_read.size else "no answer",
            ours_read.size / theirs_read.size if ours_read.size and theirs_read.size else None,
        )
    )

    listed = len(set(names) & set(ours_read.services))
    chain = await run_chain(bench.client, coordinator.workflow_id)
    report.add(
        Row(
            f"{QUEUED:,} queued: listed after continue-as-new",
            f"{listed:,} of {QUEUED:,}",
            targets=[Target(f"all {QUEUED:,} listed", listed, QUEUED, True)],
            error=hand_over_error,
            data={"listed": listed, "runs": chain.runs, "continued_as_new": chain.continued_as_new},
        )
    )
    report.add(Row(f"{QUEUED:,} queued: continue-as-new count", f"{chain.continued_as_new}"))


@dataclass
class _Reads:
    """Fresh reads of a big status: latencies, the answer's size, its services, the first error."""

    latencies_ms: list[float] = field(default_factory=list)
    size: int = 0
    services: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


async def _timed_reads(read: Callable[[], Awaitable[dict[str, Any]]]) -> _Reads:
    reads = _Reads()
    for _ in range(READS):
        began = time.perf_counter()
        try:
            status = await read()
        except Exception as err:  # too large, refused: the figure says so
            reads.error = reads.error or f"{type(err).__name__}: {err}"
            continue
        reads.latencies_ms.append((time.perf_counter() - began) * 1000)
        reads.size = len(json.dumps(status))
        reads.services = status["services"]
    return reads


def _read_row(ours: _Reads, theirs: _Reads) -> Row:
    mine = Latency.of(ours.latencies_ms) if ours.latencies_ms else None
    raw = Latency.of(theirs.latencies_ms) if theirs.latencies_ms else None
    return Row(
        f"{QUEUED:,} queued: fresh status p50 / p99",
        mine.text() if mine else "no answer",
        raw.text() if raw else "failed",
        mine.p99 / raw.p99 if mine and raw else None,
        [Target(f"all {READS} reads answered", len(ours.latencies_ms), READS, True)],
        error=ours.error,
        data={
            "product": mine.as_json() if mine else None,
            "raw_query": raw.as_json() if raw else None,
            "raw_query_error": theirs.error,
        },
    )


async def _bare_batches(bench: Bench, names: list[str]) -> float:
    """Return the seconds a no-op workflow's update takes to store the same batches."""
    bare = await bench.client.start_workflow(
        BareEntity.run, id=f"bare-entity-queue-{bench.run_id}", task_queue=bench.bare_queue
    )
    began = time.perf_counter()
    for start in range(0, len(names), BATCH):
        await bare.execute_update(BareEntity.add_many, names[start : start + BATCH])
    took = time.perf_counter() - began
    await bare.signal(BareEntity.stop)
    return took


async def _force_hand_over(coordinator: CoordinatorClient) -> str | None:
    """Make the coordinator continue-as-new with its whole queue; return what went wrong."""
    handle = coordinator.handle()
    first_run = (await handle.describe()).run_id
    try:
        for _ in range(HAND_OVER_TRIES):
            await coordinator.configure(
                ConfigureInput(continue_as_new_after_events=HAND_OVER_EVENTS)
            )
            if (await handle.describe()).run_id != first_run:
                return None
    except Exception as err:  # refused or stuck: the figure says so
        return f"hand-over: {type(err).__name__}: {err}"
    return f"no continue-as-new after {HAND_OVER_TRIES} configure updates"
