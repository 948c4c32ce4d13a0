"""Bare-Temporal baselines: the least a workflow can do for each measured operation.

They run on their own worker process (``bench.bare_worker``) with the SDK's default
data converter and worker settings, so every product figure stands beside what
Temporal itself costs for the same work on the same server in the same run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop(step: str) -> str:
    """Do nothing (stands for one breaker write or health check)."""
    return step


@workflow.defn(name="BenchBareEntity")
class BareEntity:
    """A long-running workflow with a trivial query and updates (status/schedule baseline)."""

    def __init__(self) -> None:
        self._items: dict[str, int] = {}
        self._done = False

    @workflow.run
    async def run(self) -> None:
        """Wait until told to stop."""
        await workflow.wait_condition(lambda: self._done)

    @workflow.query(name="status")
    def status(self) -> dict[str, Any]:
        """Return a small dict."""
        return {"items": len(self._items)}

    @workflow.update(name="add")
    def add(self, name: str) -> int:
        """Store one item (the bare counterpart of scheduling one recovery)."""
        self._items[name] = len(self._items)
        return len(self._items)

    @workflow.update(name="add_many")
    def add_many(self, names: list[str]) -> int:
        """Store a batch of items (the bare counterpart of a batch schedule)."""
        for name in names:
            self._items[name] = len(self._items)
        return len(self._items)

    @workflow.signal(name="stop")
    def stop(self) -> None:
        """End the workflow."""
        self._done = True


@workflow.defn(name="BenchBareRecovery")
class BareRecovery:
    """Three activities in a row: what one successful recovery attempt does, without any logic."""

    @workflow.run
    async def run(self, name: str) -> str:
        """Run the three steps."""
        for step in ("reset", "check", "close"):
            await workflow.execute_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=10)
            )
        return name


@workflow.defn(name="BenchBareTimers")
class BareTimers:
    """Durable timers one after the other: the bare counterpart of waiting in backoff."""

    @workflow.run
    async def run(self, delays_ms: list[int]) -> int:
        """Sleep each delay in turn; return how many timers fired."""
        for delay in delays_ms:
            await asyncio.sleep(delay / 1000)
        return len(delays_ms)


BARE_WORKFLOWS = [BareEntity, BareRecovery, BareTimers]
