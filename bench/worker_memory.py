"""Figure 4: a worker's RSS with 1,000 recoveries waiting in backoff, against 1,000 bare timers.

Two fresh worker processes, each on a task queue of its own, so that nothing but
this figure's workflows is in either: the product's ``worker.py`` and
``bench.bare_worker``.

- Product: a coordinator with 1,000 slots (its ``MAX_RUNNING``), 1,000 EXPONENTIAL
  recoveries whose TCP check hits a closed loopback port: attempt 1 fails at once,
  then each waits ``initial_delay_ms`` = 10 minutes.
- Baseline: 1,000 ``BareTimers`` workflows on one 10-minute timer.

One side fills after the other, so neither's figure carries the other's load.
Waiting is confirmed per workflow from its history (a 10-minute timer started and
not ended), which does not touch the workers as a query would. After a short
settle the worker's ``VmRSS`` is read from ``/proc``. A side that is not all
waiting within ``FILL_TIMEOUT`` is read anyway and the row says how many were.
The workers are then stopped; their workflows stay on the server, untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from bench.baseline import BareTimers
from bench.environment import Bench
from bench.histories import waiting_on_timer
from bench.processes import WorkerProcess, start_bare_worker, start_product_worker
from bench.report import Report, Row, Target, megabytes
from bench.scheduling import poll_until, requests, schedule_in_batches, tcp_policy
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryStrategy

WAITING = 1000
BACKOFF = timedelta(minutes=10)
FILL_TIMEOUT = 130.0
SETTLE = 3.0
FETCH_CONCURRENCY = 32
# The target of issue 8: at most this many times the bare worker's RSS.
RATIO_TARGET = 1.5


@dataclass(frozen=True)
class Filled:
    """One worker's side: its RSS once its workflows wait, how long that took, how many wait."""

    rss: int
    idle_rss: int
    seconds: float
    waiting: int


async def measure_worker_memory(bench: Bench, report: Report) -> None:
    """Add the RSS rows (full, and grown since idle: what is fixed and what is per workflow)."""
    product = await start_product_worker(
        bench.client,
        bench.address,
        f"{bench.product_queue}-rss",
        bench.work_dir,
        "rss-product-worker",
    )
    try:
        bare = await start_bare_worker(
            bench.client,
            bench.address,
            f"{bench.bare_queue}-rss",
            bench.work_dir,
            "rss-bare-worker",
        )
        try:
            await asyncio.sleep(SETTLE)
            ours = await _fill(
                bench, product, lambda: _start_recoveries(bench, f"{bench.product_queue}-rss")
            )
            theirs = await _fill(
                bench, bare, lambda: _start_timers(bench, f"{bench.bare_queue}-rss")
            )
        finally:
            await bare.stop()
    finally:
        await product.stop()

    short = [
        f"{side}: only {filled.waiting:,} of {WAITING:,} waiting after {filled.seconds:.0f} s"
        for side, filled in (("product", ours), ("bare", theirs))
        if filled.waiting < WAITING
    ]
    ratio = ours.rss / theirs.rss
    report.add(
        Row(
            f"worker RSS, {WAITING:,} waiting in backoff",
            megabytes(ours.rss),
            megabytes(theirs.rss),
            ratio,
            [Target(f"≤ {RATIO_TARGET:g}× bare worker", ratio, RATIO_TARGET, False, "×")],
            error="; ".join(short) or None,
            data={"product": asdict(ours), "bare": asdict(theirs)},
        )
    )
    grown, bare_grown = ours.rss - ours.idle_rss, theirs.rss - theirs.idle_rss
    report.add(
        Row(
            f"worker RSS grown by {WAITING:,} waiting (− idle)",
            megabytes(grown),
            megabytes(bare_grown),
            grown / bare_grown if bare_grown > 0 else None,
        )
    )


async def _fill(
    bench: Bench, worker: WorkerProcess, start: Callable[[], Awaitable[list[str]]]
) -> Filled:
    idle = worker.rss_bytes()
    began = time.perf_counter()
    waiting = await _count_waiting(bench.client, await start(), began + FILL_TIMEOUT)
    took = time.perf_counter() - began
    await asyncio.sleep(SETTLE)
    return Filled(rss=worker.rss_bytes(), idle_rss=idle, seconds=round(took, 1), waiting=waiting)


async def _start_recoveries(bench: Bench, task_queue: str) -> list[str]:
    _, coordinator = await bench.orchestrator("memory", slots=WAITING, task_queue=task_queue)
    names = [f"memory-{bench.run_id}-{index:04d}" for index in range(WAITING)]
    backoff_ms = int(BACKOFF.total_seconds() * 1000)
    policy = tcp_policy(bench.closed_port, initial_delay_ms=backoff_ms, max_delay_ms=backoff_ms)
    await schedule_in_batches(
        coordinator, requests(names, RecoveryStrategy.EXPONENTIAL_BACKOFF, policy=policy)
    )
    return [recovery_workflow_id(name) for name in names]


async def _start_timers(bench: Bench, task_queue: str) -> list[str]:
    ids = [f"bare-waiting-{bench.run_id}-{index:04d}" for index in range(WAITING)]
    delay_ms = int(BACKOFF.total_seconds() * 1000)
    await asyncio.gather(
        *(
            bench.client.start_workflow(
                BareTimers.run, [delay_ms], id=workflow_id, task_queue=task_queue
            )
            for workflow_id in ids
        )
    )
    return ids


async def _count_waiting(client: Client, workflow_ids: list[str], deadline: float) -> int:
    """Read histories until every workflow waits or ``deadline``; return how many wait.

    Workflows start roughly in the order given, so each round reads them in that
    order, a few at a time, and stops at the first few not yet waiting: the rounds
    stay cheap while the workers fill, and every workflow is still read.
    """
    pending = list(workflow_ids)

    async def waiting(workflow_id: str) -> bool:
        try:
            return await waiting_on_timer(client, workflow_id, BACKOFF)
        except RPCError:  # not started yet
            return False

    async def all_waiting() -> bool:
        nonlocal pending
        while pending:
            chunk = pending[:FETCH_CONCURRENCY]
            answers = await asyncio.gather(*(waiting(workflow_id) for workflow_id in chunk))
            not_yet = [workflow_id for workflow_id, yes in zip(chunk, answers) if not yes]
            pending = not_yet + pending[len(chunk) :]
            if not_yet:
                return False
        return True

    try:
        await poll_until(
            all_waiting, max(0.0, deadline - time.perf_counter()), "all waiting", interval=1.0
        )
    except TimeoutError:
        pass  # the count so far is the figure
    return len(workflow_ids) - len(pending)
