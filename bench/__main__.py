"""Run the benchmark: ``make bench`` (or ``python -m bench``).

Starts a ``temporal`` dev server on loopback and a worker in this process, then
measures each operation through the product and through bare Temporal (the
baseline named in ROADMAP §4), side by side, and prints the figures.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.health_check_specs import TcpHealthCheck
from activities.sqlite_store import SQLiteBreakerStore
from bench.baseline import BareEntity, BareRecovery, noop
from starter.connection import ensure_search_attributes
from starter.dev import find_binary
from starter.orchestrator import RecoveryOrchestrator
from worker import build_worker
from workflows.converter import data_converter
from workflows.models import RecoveryPolicy, RecoveryStrategy

READS = 300
CONCURRENT_READERS = 20
SCHEDULES = 100
QUEUED = 200
RECOVERIES = 60
SLOTS = 10


def percentile(samples: list[float], fraction: float) -> float:
    """Return the ``fraction`` percentile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """Run ``call`` ``count`` times in a row; return each latency in ms."""
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


async def throughput(call: Callable[[], Awaitable[object]], total: int, concurrency: int) -> float:
    """Return calls per second with ``concurrency`` callers sharing ``total`` calls."""
    remaining = total

    async def reader() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


def row(name: str, ours: str, bare: str) -> None:
    """Print one line of the results table."""
    print(f"{name:<44} {ours:>22} {bare:>22}", flush=True)


def latency_text(samples: list[float]) -> str:
    """Return ``p50 / p99`` in ms."""
    return f"{statistics.median(samples):.1f} / {percentile(samples, 0.99):.1f} ms"


async def main() -> None:
    """Measure and print."""
    with tempfile.TemporaryDirectory() as tmp:
        env = await WorkflowEnvironment.start_local(
            data_converter=data_converter,
            dev_server_existing_path=find_binary("temporal"),
        )
        async with env:
            await ensure_search_attributes(env.client)
            store = SQLiteBreakerStore(Path(tmp) / "breakers.db")
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            async with build_worker(env.client, store, task_queue=queue), Worker(
                env.client,
                task_queue=f"{queue}-bare",
                workflows=[BareEntity, BareRecovery],
                activities=[noop],
            ):
                await run_benchmarks(env.client, queue)
            store.close()


async def run_benchmarks(client: Client, queue: str) -> None:
    """Each figure: ours, then bare Temporal, one after the other in the same run."""
    orchestrator = RecoveryOrchestrator(
        client=client,
        task_queue=queue,
        coordinator_workflow_id=f"coordinator-{queue}",
        max_concurrent_recoveries=1,
    )
    await orchestrator.start()
    blocker = RecoveryPolicy(
        initial_delay_ms=3_600_000,
        max_delay_ms=3_600_000,
        health_check=TcpHealthCheck(host="127.0.0.1", port=9, timeout_ms=200),
    )
    await orchestrator.schedule_recovery("bench-blocker", policy=blocker)
    bare = await client.start_workflow(
        BareEntity.run, id=f"bare-{queue}", task_queue=f"{queue}-bare"
    )

    print(f"{'operation':<44} {'recovery-orchestrator':>22} {'bare Temporal':>22}")
    ours = await timed(
        lambda: orchestrator.schedule_recovery(f"s-{uuid.uuid4().hex[:8]}", priority=5), SCHEDULES
    )
    theirs = await timed(lambda: bare.execute_update(BareEntity.add, uuid.uuid4().hex), SCHEDULES)
    row(f"schedule, {SCHEDULES} in a row (p50 / p99)", latency_text(ours), latency_text(theirs))

    for i in range(QUEUED - SCHEDULES):
        await orchestrator.schedule_recovery(f"q-{i}", priority=i % 10)
    for i in range(QUEUED - SCHEDULES):
        await bare.execute_update(BareEntity.add, f"q-{i}")
    ours = await timed(orchestrator.get_recovery_status, READS)
    theirs = await timed(lambda: bare.query(BareEntity.status), READS)
    row(f"status read, {QUEUED} queued (p50 / p99)", latency_text(ours), latency_text(theirs))
    ours_rate = await throughput(orchestrator.get_recovery_status, READS, CONCURRENT_READERS)
    bare_rate = await throughput(lambda: bare.query(BareEntity.status), READS, CONCURRENT_READERS)
    row(
        f"status reads/s, {CONCURRENT_READERS} concurrent readers",
        f"{ours_rate:.0f} /s",
        f"{bare_rate:.0f} /s",
    )
    await orchestrator.stop()
    await bare.signal(BareEntity.stop)

    ours_rate = await recovery_rate(client, queue)
    bare_rate = await bare_rate_of(client, f"{queue}-bare")
    row(
        f"recoveries/s, {RECOVERIES} services, {SLOTS} slots",
        f"{ours_rate:.1f} /s",
        f"{bare_rate:.1f} /s",
    )


async def recovery_rate(client: Client, queue: str) -> float:
    """Recoveries per second through the coordinator (immediate success, no health check)."""
    orchestrator = RecoveryOrchestrator(
        client=client,
        task_queue=queue,
        coordinator_workflow_id=f"coordinator-{queue}-rate",
        max_concurrent_recoveries=SLOTS,
    )
    await orchestrator.start()
    start = time.perf_counter()
    await asyncio.gather(
        *(
            orchestrator.schedule_recovery(f"r-{i}", RecoveryStrategy.IMMEDIATE)
            for i in range(RECOVERIES)
        )
    )
    while (await orchestrator.get_recovery_status())["active_recoveries"]:
        await asyncio.sleep(0.05)
    return RECOVERIES / (time.perf_counter() - start)


async def bare_rate_of(client: Client, queue: str) -> float:
    """Three-activity workflows per second, at most ``SLOTS`` at once, started by the client."""
    slots = asyncio.Semaphore(SLOTS)

    async def one(i: int) -> None:
        async with slots:
            await client.execute_workflow(
                BareRecovery.run, f"b-{i}", id=f"bare-rec-{queue}-{i}", task_queue=queue
            )

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(RECOVERIES)))
    return RECOVERIES / (time.perf_counter() - start)


if __name__ == "__main__":
    asyncio.run(main())
