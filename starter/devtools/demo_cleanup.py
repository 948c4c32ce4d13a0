"""Undoing the demo: cancel its services' unfinished recoveries and forget their breakers.

A cancelled recovery may re-open its breaker as it stops, and the watch may hand a
breaker over again before it is forgotten: so the demo forgets, waits for the watch's
look in flight, cancels, waits for the runs to close, and goes round again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from recovery_breakers.store import CircuitBreakerStore
from starter.client.coordinator_client import CoordinatorClient
from starter.client.watch_control import WatchNotRunning, look_now
from starter.devtools.demo_services import DEMO_NAMES
from workflows.constants import recovery_workflow_id
from workflows.coordinator_models import CancelRecoveryInput
from workflows.errors import RecoveryOrchestratorError

# Cancel, then forget: a cancelled recovery may re-open its breaker as it stops, and
# the watch may schedule it again before the breaker is forgotten; this many rounds.
RETIRE_ROUNDS = 3
CLEANUP_STEP_TIMEOUT = 20.0
# How long to wait for cancelled runs to close.
CLOSE_TIMEOUT = 10.0


@dataclass(frozen=True)
class WorkflowRun:
    """One run of a workflow, which a later run under the same id must not be taken for."""

    workflow_id: str
    run_id: str


class Retirement:
    """Retires the demo services' recoveries and breakers on one client and coordinator."""

    def __init__(
        self,
        client: Client,
        coordinator: CoordinatorClient,
        store: CircuitBreakerStore,
        status: Callable[[], Awaitable[dict[str, Any]]],
    ) -> None:
        self.client = client
        self.coordinator = coordinator
        self.store = store
        self._status = status

    async def retire(self, reason: str) -> list[str]:
        """Cancel the demo services' unfinished recoveries and forget their breakers.

        Returns the services whose recoveries were cancelled.
        """
        cancelled: list[str] = []
        for _ in range(RETIRE_ROUNDS):
            await asyncio.to_thread(self._forget_breakers)
            await self._until_watch_runs_end()
            services = (await self._status())["services"]
            unfinished = [
                name for name in sorted(DEMO_NAMES)
                if services.get(name, {}).get("state", "idle") != "idle"
            ]
            if not unfinished:
                return cancelled
            runs = [await self._latest_run(name) for name in unfinished]
            for name in unfinished:
                with suppress(RecoveryOrchestratorError):  # it finished meanwhile
                    await self.coordinator.cancel_recovery(
                        CancelRecoveryInput(service_name=name, reason=reason)
                    )
            await self._until_closed([run for run in runs if run is not None])
            cancelled += [n for n in unfinished if n not in cancelled]
        await asyncio.to_thread(self._forget_breakers)
        return cancelled

    def _forget_breakers(self) -> None:
        for name in sorted(DEMO_NAMES):
            self.store.forget(name)

    async def _until_watch_runs_end(self) -> None:
        """Wait (bounded) for the watch's look in flight: it may have listed a demo breaker
        before it was forgotten, and would hand it over after its recovery is cancelled.
        ``look_now`` answers once a look that ends after it arrived has ended."""
        with suppress(WatchNotRunning, TimeoutError):
            await asyncio.wait_for(look_now(self.client), CLEANUP_STEP_TIMEOUT)

    async def _latest_run(self, service: str) -> WorkflowRun | None:
        """Return the service's running recovery, None if none runs (a queued one, say)."""
        workflow_id = recovery_workflow_id(service)
        try:
            found = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return None
        if found.status is not WorkflowExecutionStatus.RUNNING:
            return None
        return WorkflowRun(workflow_id, found.run_id)

    async def _until_closed(self, runs: list[WorkflowRun]) -> None:
        """Wait (bounded) until these workflow runs have closed."""
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for run in runs:
            handle = self.client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
            while time.monotonic() < deadline:
                if (await handle.describe()).status is not WorkflowExecutionStatus.RUNNING:
                    break
                await asyncio.sleep(0.2)
