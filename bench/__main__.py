"""Run the benchmark: ``make bench`` (or ``python -m bench``).

Starts a ``temporal`` dev server on loopback (SQLite in memory), the product's
worker and a bare-Temporal worker in processes of their own, then measures each
figure of issue 8 through the product and through its baseline in the same run,
prints one table (figure, product, baseline, ratio, target, met or by how much
missed) and writes the same rows to ``bench/results/<UTC time>.json`` and
``bench/results/latest.json``. A figure that fails is a row with its error.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from bench.environment import Bench, bench_environment
from bench.history_figures import measure_history_figures
from bench.large_queue import measure_large_queue
from bench.recovery_throughput import measure_throughput
from bench.report import Report, failed
from bench.schedule_latency import measure_schedule_latency
from bench.status_reads import measure_status_reads
from bench.worker_memory import measure_worker_memory
from starter.devtools.dev import find_binary

T = TypeVar("T")

BUDGET_SECONDS = 600
# Kept back for starting the server and stopping everything at the end.
MARGIN_SECONDS = 45
NOTES = (
    "ratio = product ÷ baseline, both measured in this run on this machine.",
    "status: the facade's get_recovery_status() (default staleness) vs the raw "
    "get_recovery_status query on the coordinator; a read the server refuses is counted "
    "as refused, not as a read.",
    "schedule_recovery: the facade vs execute_update of a no-op workflow, calls alternating.",
    "1,000 recoveries: wall time from the first batch until the coordinator reports none "
    "unfinished (then all Completed in visibility); baseline: 1,000 workflows of 3 no-op "
    "activities, all started at once.",
    "worker RSS: VmRSS of worker.py vs bench.bare_worker, each a fresh process with only "
    "the 1,000 waiting workflows (10-minute backoff vs 10-minute timer).",
    "events per attempt: history length / attempts made; 33 is issue 8's pre-change figure.",
    "timer lateness: start of the workflow task after TimerFired minus TimerStarted + timeout.",
    "the dev server runs with GOGC=400 unless GOGC is set (Go's default is 100): "
    "docs/performance.md says why and what it moves.",
)


@dataclass(frozen=True)
class Figure:
    """A figure's time: at most ``cap`` seconds, and ``floor`` kept for it by those before."""

    name: str
    cap: float
    floor: float


SCHEDULE = Figure("schedule_recovery", cap=60, floor=30)
STATUS = Figure("status reads", cap=170, floor=50)
THROUGHPUT = Figure("1,000 recoveries", cap=240, floor=70)
HISTORIES = Figure("history events and timer lateness", cap=70, floor=25)
MEMORY = Figure("worker RSS", cap=200, floor=70)
QUEUE = Figure("10,000 queued", cap=70, floor=30)
ORDER = (SCHEDULE, STATUS, THROUGHPUT, HISTORIES, MEMORY, QUEUE)


@dataclass
class Runner:
    """Runs figures one after another inside the run's time budget.

    Each gets its cap, or less when the figures after it would otherwise lose their
    floor: the whole run ends within ``BUDGET_SECONDS`` however slow the product is,
    and a figure cut short is a row with its error.
    """

    report: Report
    bench: Bench
    began: float

    async def run(self, figure: Figure, work: Awaitable[T]) -> T | None:
        """Run one figure; a failure or a timeout becomes its row instead of ending the run."""
        later = sum(f.floor for f in ORDER[ORDER.index(figure) + 1 :])
        left = self.began + BUDGET_SECONDS - MARGIN_SECONDS - time.perf_counter() - later
        timeout = max(min(figure.cap, left), 1.0)
        _progress(self.began, f"{figure.name} (at most {timeout:.0f} s)…")
        try:
            return await asyncio.wait_for(work, timeout)
        except Exception as err:
            if isinstance(err, asyncio.TimeoutError):
                err = TimeoutError(f"{figure.name} did not finish within {timeout:.0f} s")
            worker = self.bench.product_worker
            if worker.process.returncode is not None:
                err = RuntimeError(f"{err} (product worker exited: {worker.log_tail(3)})")
            self.report.add(failed(figure.name, err))
            return None


async def measure(report: Report, began: float) -> None:
    """Every figure, in an order that keeps the heavy ones from weighing on the light ones."""
    async with bench_environment() as bench:
        _progress(
            began,
            f"dev server at {bench.address}; workers pid {bench.product_worker.pid} (product), "
            f"{bench.bare_worker.pid} (bare)",
        )
        runner = Runner(report, bench, began)
        await runner.run(SCHEDULE, measure_schedule_latency(bench, report))
        await runner.run(STATUS, measure_status_reads(bench, report))
        throughput = await runner.run(THROUGHPUT, measure_throughput(bench, report))
        if throughput is not None:
            await runner.run(HISTORIES, measure_history_figures(bench, report, throughput))
        await runner.run(MEMORY, measure_worker_memory(bench, report))
        await runner.run(QUEUE, measure_large_queue(bench, report))
    _progress(began, "done")


def machine() -> dict[str, Any]:
    """Describe what the figures were measured on (the README quotes it)."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    server = subprocess.run(
        [find_binary("temporal"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_kb / 1e6, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": server,
        "server_gogc": os.environ.get("GOGC", "100"),
    }


def _progress(began: float, message: str) -> None:
    print(f"[{time.perf_counter() - began:6.1f} s] {message}", file=sys.stderr, flush=True)


def main() -> None:
    """Measure, print the table and the notes, write the results."""
    stamp = datetime.now(timezone.utc)
    began = time.perf_counter()
    report = Report()
    asyncio.run(measure(report, began))
    wall = time.perf_counter() - began
    about = machine()
    print()
    server = about["temporal_cli"].splitlines()[0] if about["temporal_cli"] else "temporal ?"
    print(
        f"recovery-orchestrator bench, {stamp:%Y-%m-%d %H:%M} UTC, "
        f"{about['cpus']} × {about['cpu']}, {about['memory_gb']} GB, {server}, "
        f"server GOGC={about['server_gogc']}"
    )
    print(report.table())
    for note in NOTES:
        print(f"  · {note}")
    print(f"total wall time {wall:.0f} s (budget {BUDGET_SECONDS} s)")
    path = report.write(
        {
            "started_at": stamp.isoformat(),
            "wall_seconds": round(wall, 1),
            "machine": about,
            "notes": list(NOTES),
        },
        stamp,
    )
    print(f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
