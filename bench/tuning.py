"""``python -m bench.tuning``: the worker settings of README's *Worker tuning*, measured.

Not part of ``make bench`` (it would not fit in its 10 minutes beside the other
figures). For each setting of ``RECOVERY_WORKER_TUNING`` below, a fresh product
worker on a task queue of its own runs the throughput figure's work: 1,000
IMMEDIATE recoveries with healthy TCP checks through 100 slots. It prints, per
setting, the wall time to all succeeded, the worker's CPU seconds and its RSS
afterwards, and writes them to ``bench/results/tuning-<UTC time>.json``. The
settings run one after another on one dev server, so they compare on one machine
in one run; the defaults run first and last, so the drift over the run shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.environment import Bench, bench_environment
from bench.processes import start_product_worker
from bench.recovery_throughput import RECOVERIES, SLOTS, time_recoveries
from activities.worker_tuning import WORKER_TUNING_ENV, WorkerTuning

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = (
    "",  # the SDK's defaults: what worker.py runs with unless told otherwise
    "workflow_pollers=2,activity_pollers=2",
    "workflow_pollers=10,activity_pollers=10",
    "max_concurrent_workflow_tasks=10,max_concurrent_activities=10",
    "max_cached_workflows=50",  # below the 100 running recoveries plus the coordinator
    "",  # the defaults again: how far the server's own state drifts the figures over a run
)


@dataclass(frozen=True)
class Measured:
    """One setting's figures."""

    setting: str
    wall_seconds: float
    finished: int
    worker_cpu_seconds: float
    worker_rss_mb: float
    error: str | None


async def measure(bench: Bench, index: int, raw: str) -> Measured:
    """Run the recoveries on a fresh worker with ``raw`` as its tuning."""
    tuning = WorkerTuning.parse(raw)
    queue = f"{bench.product_queue}-tuning-{index}"
    worker = await start_product_worker(
        bench.client, bench.address, queue, bench.work_dir, f"tuning-{index}",
        {WORKER_TUNING_ENV: raw},
    )
    try:
        cpu_before = worker.cpu_seconds()
        timed = await time_recoveries(bench, f"tuning{index}", queue)
        return Measured(
            setting=tuning.describe(),
            wall_seconds=round(timed.wall_seconds, 2),
            finished=timed.finished,
            worker_cpu_seconds=round(worker.cpu_seconds() - cpu_before, 1),
            worker_rss_mb=round(worker.rss_bytes() / 2**20, 1),
            error=timed.error,
        )
    finally:
        await worker.stop()


async def main() -> None:
    """Measure every setting; print the table; write the JSON."""
    rows: list[Measured] = []
    async with bench_environment() as bench:
        for index, raw in enumerate(SETTINGS):
            rows.append(await measure(bench, index, raw))
            print(_line(rows[-1]), flush=True)
    when = datetime.now(timezone.utc)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tuning-{when:%Y%m%dT%H%M%SZ}.json"
    path.write_text(
        json.dumps(
            {
                "when": when.isoformat(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "work": f"{RECOVERIES:,} IMMEDIATE recoveries, {SLOTS} slots",
                "rows": [asdict(row) for row in rows],
            },
            indent=2,
        )
    )
    print(f"written: {path.relative_to(RESULTS.parent.parent)}")


def _line(row: Measured) -> str:
    rate = row.finished / row.wall_seconds
    shown = f"{row.setting:<62} {row.wall_seconds:7.1f} s {rate:6.1f}/s "
    shown += f"cpu {row.worker_cpu_seconds:6.1f} s  rss {row.worker_rss_mb:6.1f} MB"
    return shown + (f"  ({row.error})" if row.error else "")


if __name__ == "__main__":
    argparse.ArgumentParser(
        prog="python -m bench.tuning",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    ).parse_args()
    asyncio.run(main())
