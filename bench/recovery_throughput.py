"""Figure 3: 1,000 IMMEDIATE recoveries through 100 slots against 1,000 bare workflows.

Baseline, run first: 1,000 ``BareRecovery`` workflows of three no-op activities
each, all started at once (no slot limit: the least Temporal needs for the same
work), wall time from the first start until the last result.

Product: one coordinator configured with ``max_concurrent_recoveries=100``; the
1,000 services are sent by batch update, each with a TCP health check against the
bench's loopback listener (a healthy service), so every recovery resets, checks
and closes once. Wall time runs from the first batch until the coordinator reports
no unfinished recovery; then visibility must show all 1,000 Completed (succeeded).
After 150 s the bench stops waiting (the figures after this one keep their share
of the run's time budget), says how many had finished, and cancels the rest.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.baseline import BareRecovery
from bench.environment import Bench
from bench.report import Report, Row, Target, seconds
from bench.scheduling import poll_until, requests, schedule_in_batches, tcp_policy
from bench.status_calls import raw_status
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryStrategy

RECOVERIES = 1000
SLOTS = 100
# How long the product may take before the bench stops waiting (the figures after
# this one keep their time); the row then says how many had finished by then.
PATIENCE = 150.0
VISIBILITY_TIMEOUT = 30.0
# The target of issue 8: at most this many times the bare workflows' wall time.
RATIO_TARGET = 1.5


@dataclass(frozen=True)
class ThroughputRun:
    """What the history figures read afterwards: whose histories to count."""

    coordinator_id: str
    recovery_ids: list[str]
    bare_ids: list[str]


@dataclass(frozen=True)
class TimedRecoveries:
    """One run of the recoveries: how long, how many finished, and what went wrong."""

    wall_seconds: float
    finished: int
    error: str | None  # None: all succeeded
    coordinator_id: str
    service_names: list[str]


async def measure_throughput(bench: Bench, report: Report) -> ThroughputRun:
    """Add the throughput row; return the workflows it ran."""
    bare_ids = [f"bare-recovery-{bench.run_id}-{index:04d}" for index in range(RECOVERIES)]
    began = time.perf_counter()
    handles = await asyncio.gather(
        *(
            bench.client.start_workflow(
                BareRecovery.run, workflow_id, id=workflow_id, task_queue=bench.bare_queue
            )
            for workflow_id in bare_ids
        )
    )
    await asyncio.gather(*(handle.result() for handle in handles))
    theirs = time.perf_counter() - began

    timed = await time_recoveries(bench, "throughput")
    ours, error = timed.wall_seconds, timed.error
    ratio = ours / theirs
    report.add(
        Row(
            f"{RECOVERIES:,} IMMEDIATE recoveries, {SLOTS} slots: wall",
            seconds(ours) if error is None else f"> {seconds(ours)}",
            seconds(theirs),
            ratio,
            [Target(f"≤ {RATIO_TARGET:g}× bare workflows", ratio, RATIO_TARGET, False, "×")],
            error=error,
            data={
                "product_seconds": round(ours, 3),
                "bare_seconds": round(theirs, 3),
                "product_rate": round(timed.finished / ours, 2),
                "bare_rate": round(RECOVERIES / theirs, 2),
            },
        )
    )
    return ThroughputRun(
        coordinator_id=timed.coordinator_id,
        recovery_ids=[recovery_workflow_id(name) for name in timed.service_names],
        bare_ids=bare_ids,
    )


async def time_recoveries(
    bench: Bench, figure: str, task_queue: str | None = None
) -> TimedRecoveries:
    """Run the 1,000 IMMEDIATE recoveries through ``SLOTS`` slots on ``task_queue``'s worker."""
    orchestrator, coordinator = await bench.orchestrator(figure, slots=SLOTS, task_queue=task_queue)
    prefix = f"{figure}-{bench.run_id}-"
    names = [f"{prefix}{index:04d}" for index in range(RECOVERIES)]
    active = RECOVERIES

    async def finished() -> bool:
        nonlocal active
        active = int((await raw_status(bench.client, coordinator.workflow_id))["active_recoveries"])
        return active == 0

    began = time.perf_counter()
    await schedule_in_batches(
        coordinator,
        requests(names, RecoveryStrategy.IMMEDIATE, policy=tcp_policy(bench.healthy_port)),
    )
    error = None
    try:
        await poll_until(finished, PATIENCE, f"{RECOVERIES:,} recoveries finished")
        wall = time.perf_counter() - began
        succeeded = await _succeeded(bench, recovery_workflow_id(prefix))
        if succeeded < RECOVERIES:
            error = f"only {succeeded:,} of {RECOVERIES:,} succeeded"
    except TimeoutError:
        wall = time.perf_counter() - began
        error = (
            f"stopped waiting after {wall:.0f} s: "
            f"{RECOVERIES - active:,} of {RECOVERIES:,} finished"
        )
        await orchestrator.stop()  # cancel the rest: they must not load the next figures
    return TimedRecoveries(wall, RECOVERIES - active, error, coordinator.workflow_id, names)


async def _succeeded(bench: Bench, id_prefix: str) -> int:
    """Return how many of the recoveries visibility shows Completed (waiting for it to catch up)."""
    query = (
        f"WorkflowType = 'ServiceRecovery' AND WorkflowId STARTS_WITH '{id_prefix}' "
        "AND ExecutionStatus = 'Completed'"
    )
    count = 0

    async def all_there() -> bool:
        nonlocal count
        count = (await bench.client.count_workflows(query)).count
        return count >= RECOVERIES

    try:
        await poll_until(all_there, VISIBILITY_TIMEOUT, "visibility")
    except TimeoutError:
        pass  # the count so far is the figure
    return count
