"""Bare-Temporal baselines: the least a workflow can do for each measured operation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop(step: str) -> str:
    """Do nothing (stands for one breaker write or health check)."""
    return step


@workflow.defn(name="BenchBareEntity")
class BareEntity:
    """A long-running workflow with a trivial query and update (status/schedule baseline)."""

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
        """Store one item."""
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
