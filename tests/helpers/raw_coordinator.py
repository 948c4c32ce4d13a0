"""A coordinator driven the way a script or the ``temporal`` CLI would: raw updates and signals.

No facade between the test and the workflow: what is sent is exactly what a hostile or
careless caller could send, and ``Coordinator`` then reads what the server recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from starter.devtools.dev import find_binary
from tests.helpers.recoveries import BENIGN_CAUSES, task_failures
from tests.helpers.waiting import eventually

ADMITTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED


@dataclass
class Coordinator:
    """A coordinator of the test's own, driven by raw updates and signals."""

    client: Client
    handle: WorkflowHandle[Any, Any]
    task_queue: str
    address: str

    async def update(self, name: str, *args: Any, update_id: str | None = None) -> Any:
        """Run an update as a script would, resending Temporal's passing refusals."""
        sent_as = update_id or str(uuid.uuid4())
        return await passing_refusals_resent(
            lambda: self.handle.execute_update(name, args=list(args), id=sent_as)
        )

    async def admitted(self, *update_ids: str) -> bool:
        """Whether the server holds every update ``update_ids`` names (run or still waiting).

        An update sent while no worker runs waits on the server for the next workflow
        task: a test that needs several in that one task starts the worker once this holds.
        """
        for update_id in update_ids:
            reference = UpdateRef(
                workflow_execution=WorkflowExecution(workflow_id=self.handle.id),
                update_id=update_id,
            )
            request = PollWorkflowExecutionUpdateRequest(
                namespace=self.client.namespace,
                update_ref=reference,
                wait_policy=WaitPolicy(lifecycle_stage=ADMITTED),
            )
            try:
                await self.client.workflow_service.poll_workflow_execution_update(request)
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND:  # not arrived yet
                    return False
                raise
        return True

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await passing_refusals_resent(
            lambda: self.handle.query("get_recovery_status")
        )
        return status

    async def configuration(self) -> dict[str, Any]:
        configuration: dict[str, Any] = await passing_refusals_resent(
            lambda: self.handle.query("get_configuration")
        )
        return configuration

    async def events(self, handle: WorkflowHandle[Any, Any] | None = None) -> list[str]:
        from temporalio.api.enums.v1 import EventType

        target = handle or self.handle
        return [EventType.Name(e.event_type) async for e in target.fetch_history_events()]

    async def assert_never_failed_a_task(self, benign: frozenset[int] = BENIGN_CAUSES) -> None:
        """No run of the coordinator (it may have continued-as-new) ever failed a task."""
        async for run in self.client.list_workflows(f"WorkflowId = '{self.handle.id}'"):
            handle = self.client.get_workflow_handle(self.handle.id, run_id=run.run_id)
            assert await task_failures(handle, benign) == [], run.run_id

    async def assert_still_recovers(
        self, service: str, benign: frozenset[int] = BENIGN_CAUSES
    ) -> None:
        """A good IMMEDIATE recovery is scheduled, runs and succeeds."""
        name = f"{service}-afterwards"
        await self.update(
            "schedule_recovery", {"service_name": name, "strategy": "immediate", "priority": 1}
        )
        status = await eventually(
            self.status,
            lambda s: any(r["service_name"] == name for r in s["recent_history"]),
            timeout=30,
        )
        assert [r["state"] for r in status["recent_history"] if r["service_name"] == name] == [
            "succeeded"
        ]
        await self.assert_never_failed_a_task(benign)

    async def temporal(self, *argv: str) -> tuple[int, str]:
        """Run the official ``temporal`` CLI against this test's server."""
        process = await asyncio.create_subprocess_exec(
            find_binary("temporal"),
            *argv,
            "--address",
            self.address,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode is not None
        return process.returncode, out.decode()


async def passing_refusals_resent(call: Callable[[], Awaitable[Any]]) -> Any:
    """Send again what the server refused because a continue-as-new raced it.

    When a hand-over races an incoming message, the server fails that one workflow
    task (cause UnhandledCommand, which ``assert_never_failed_a_task`` tells apart)
    and refuses the updates and queries in flight; a client sends them again, as the
    product's own client does.
    """
    for delay in (0.1, 0.2, 0.4, 0.8, 1.6, None):
        try:
            return await call()
        except RPCError as err:
            if delay is None or err.status is not RPCStatusCode.FAILED_PRECONDITION:
                raise
        await asyncio.sleep(delay)
