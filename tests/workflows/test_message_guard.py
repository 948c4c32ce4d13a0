"""The guard (``workflows.guard``): whatever a handler raises is an answer, never a failed task.

The doors refuse what they foresee; the guard is the net under them. A workflow whose
handlers have a bug (they divide by zero) runs behind it: the signal is recorded as
refused, the update and the validator answer with code ``internal``, the query fails
alone, and no workflow task ever fails.
"""

from __future__ import annotations

import uuid

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from worker import WORKFLOW_INTERCEPTORS
from workflows.converter import worker_data_converter
from workflows.models import CancelInput

pytestmark = pytest.mark.timeout(60)


@workflow.defn(name="BuggyHandlers", sandboxed=False)
class BuggyHandlers:
    def __init__(self) -> None:
        self.refused: list[str] = []
        self.divisor = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def poke(self, input: CancelInput) -> None:
        _ = len(input.reason) / self.divisor

    @workflow.update
    def crash(self, input: CancelInput) -> int:
        return len(input.reason) // self.divisor

    @workflow.update
    def crash_in_validator(self, input: CancelInput) -> int:
        return 1

    @crash_in_validator.validator
    def _check(self, input: CancelInput) -> None:
        _ = 1 / self.divisor

    @workflow.query
    def refusals(self) -> list[str]:
        return self.refused

    def refuse_signal(self, signal: str, reason: str) -> None:
        self.refused.append(f"{signal}: {reason}")


async def test_what_a_handler_raises_is_an_answer_and_no_task_fails(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    decoding = client.config()  # the worker's own converter, as ``worker.py`` builds it
    decoding["data_converter"] = worker_data_converter
    async with Worker(
        Client(**decoding),
        task_queue=task_queue,
        workflows=[BuggyHandlers],
        interceptors=WORKFLOW_INTERCEPTORS,
    ):
        handle = await client.start_workflow(
            BuggyHandlers.run, id=f"buggy-{uuid.uuid4()}", task_queue=task_queue
        )
        await handle.signal(BuggyHandlers.poke, CancelInput(reason="x"))
        await handle.signal("poke", args=[{"reason": 1}, {"reason": 2}])
        for update in ("crash", "crash_in_validator"):
            with pytest.raises(WorkflowUpdateFailedError) as caught:
                await handle.execute_update(update, CancelInput(reason="x"))
            cause = caught.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.details[0]["code"] == "internal"
            assert "ZeroDivisionError" in cause.message
        with pytest.raises(WorkflowUpdateFailedError, match="update failed") as caught:
            await handle.execute_update("crash", args=[])
        assert "takes one JSON object (CancelInput), got 0 inputs" in str(caught.value.cause)
        refused = await handle.query(BuggyHandlers.refusals)
        assert refused[0].startswith("poke: ZeroDivisionError")
        assert refused[1] == "poke: poke signal takes one JSON object (CancelInput), got 2 inputs"
        history = await handle.fetch_history()
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events)
        # A validator's refusal writes nothing; ``crash`` has no validator, so both its
        # calls were accepted first (why every update of the product has one: ``validated``).
        accepted = [
            e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            for e in history.events
            if e.HasField("workflow_execution_update_accepted_event_attributes")
        ]
        assert accepted == ["crash", "crash"]
        await handle.terminate("test over")
