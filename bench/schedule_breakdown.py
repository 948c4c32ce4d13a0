"""Where ``schedule_recovery``'s time goes: ``python -m bench.schedule_breakdown [ROUNDS]``.

``make bench``'s schedule row holds the facade against a bare update. This runs that
figure alone, and beside it the same request sent three thinner ways, one call of each
in turn so that all four see the same machine from moment to moment:

- ``facade``: ``RecoveryOrchestrator.schedule_recovery`` (what the row measures);
- ``client``: ``CoordinatorClient.schedule_recovery`` (update-with-start, retries);
- ``update``: ``execute_update("schedule_recovery")`` on the coordinator's handle;
- ``bare``: ``BareEntity.add`` on a no-op workflow (the row's baseline).

facade − client is the facade's own work, client − update the price of
update-with-start, update − bare the coordinator's validator and handler. Each round
starts a fresh server and workers; the rows print p50 / p99 and the p99 ratio to bare.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from bench.baseline import BareEntity
from bench.blocker import hold_the_slot
from bench.environment import Bench, bench_environment
from bench.stats import Latency
from workflows.coordinator import RecoveryCoordinator
from workflows.coordinator_models import ScheduleRecoveryInput

CALLS = 300
WARM_UP = 10
WAYS = ("facade", "client", "update", "bare")


async def measure_breakdown(bench: Bench, figure: str) -> dict[str, Latency]:
    """Return each way's latency, ``CALLS`` calls each, alternating."""
    orchestrator, coordinator = await bench.orchestrator(figure, slots=1)
    await hold_the_slot(bench, orchestrator, figure)
    handle = coordinator.handle()
    bare = await bench.client.start_workflow(
        BareEntity.run, id=f"bare-entity-{figure}-{bench.run_id}", task_queue=bench.bare_queue
    )

    def name(way: str, index: int) -> str:
        return f"{figure}-{way}-{index:04d}"

    calls: dict[str, Callable[[int], Awaitable[object]]] = {
        "facade": lambda i: orchestrator.schedule_recovery(name("facade", i), priority=5),
        "client": lambda i: coordinator.schedule_recovery(
            ScheduleRecoveryInput(service_name=name("client", i), priority=5)
        ),
        "update": lambda i: handle.execute_update(
            RecoveryCoordinator.schedule_recovery,
            ScheduleRecoveryInput(service_name=name("update", i), priority=5),
        ),
        "bare": lambda i: bare.execute_update(BareEntity.add, f"item-{i}"),
    }
    samples: dict[str, list[float]] = {way: [] for way in WAYS}
    for index in range(WARM_UP + CALLS):
        for way in WAYS:
            began = time.perf_counter()
            await calls[way](index)
            if index >= WARM_UP:
                samples[way].append((time.perf_counter() - began) * 1000)
    await bare.signal(BareEntity.stop)
    return {way: Latency.of(values) for way, values in samples.items()}


async def main(rounds: int) -> None:
    """Measure ``rounds`` times, each on a fresh server, and print each round's rows."""
    for round_number in range(1, rounds + 1):
        async with bench_environment() as bench:
            figures = await measure_breakdown(bench, f"breakdown{round_number}")
        bare = figures["bare"]
        print(f"round {round_number} ({CALLS} calls each, alternating):")
        for way in WAYS:
            latency = figures[way]
            print(
                f"  {way:<7} p50 {latency.p50:6.1f} ms   p99 {latency.p99:6.1f} ms   "
                f"p99 ÷ bare {latency.p99 / bare.p99:4.2f}×   p50 ÷ bare {latency.p50 / bare.p50:4.2f}×"
            )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
