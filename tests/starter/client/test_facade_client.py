"""The typed coordinator client without a server: one update id per logical call."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import pytest
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from starter.client.coordinator_client import RETRY_SENDS, CoordinatorClient
from workflows.converter import data_converter
from workflows.coordinator_models import (
    CancelRecoveryInput,
    CancelRecoveryResult,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)


class FlakyServer:
    """Stands in for the client: refuses the first sends, then answers; records each send."""

    data_converter = data_converter  # the client measures a request with it before sending

    def __init__(self, failures: list[BaseException], answer: Any) -> None:
        self.failures = list(failures)
        self.answer = answer
        self.sends: list[tuple[str, str | None]] = []

    def _send(self, update: Any, update_id: str | None) -> Any:
        self.sends.append((update._defn.name, update_id))
        if self.failures:
            raise self.failures.pop(0)
        return self.answer

    async def execute_update_with_start_workflow(
        self, update: Any, arg: Any, *, start_workflow_operation: Any, id: str | None = None
    ) -> Any:
        return self._send(update, id)

    def get_workflow_handle_for(self, run: Any, workflow_id: str) -> FlakyServer:
        return self

    async def execute_update(self, update: Any, arg: Any, *, id: str | None = None) -> Any:
        return self._send(update, id)


def on(server: FlakyServer) -> CoordinatorClient:
    """The typed client over the stand-in (the cast says what it stands in for)."""
    return CoordinatorClient(cast(Client, server))


def passing_refusals() -> list[BaseException]:
    return [
        RPCError("too many updates in flight", RPCStatusCode.RESOURCE_EXHAUSTED, b""),
        WorkflowUpdateRPCTimeoutOrCancelledError(),  # the RPC timed out: maybe applied
        RPCError("update aborted by continue-as-new", RPCStatusCode.ABORTED, b""),
    ]


async def test_every_retry_of_one_update_with_start_call_reuses_its_update_id() -> None:
    answer = ScheduleRecoveryResult(service_name="db", outcome="queued", state="scheduled")
    server = FlakyServer(passing_refusals(), answer)
    coordinator = on(server)

    result = await coordinator.schedule_recovery(ScheduleRecoveryInput(service_name="db"))

    assert result is answer
    assert [name for name, _ in server.sends] == ["schedule_recovery"] * 4
    ids = {update_id for _, update_id in server.sends}
    assert len(ids) == 1 and uuid.UUID(ids.pop() or "").version == 4


async def test_every_retry_of_one_plain_update_reuses_its_update_id() -> None:
    answer = CancelRecoveryResult(service_name="db", cancelled=True, was="in_progress")
    server = FlakyServer(passing_refusals()[:2], answer)
    coordinator = on(server)

    result = await coordinator.cancel_recovery(CancelRecoveryInput(service_name="db"))

    assert result is answer
    assert [name for name, _ in server.sends] == ["cancel_recovery"] * 3
    assert len({update_id for _, update_id in server.sends}) == 1


async def test_two_logical_calls_get_two_update_ids() -> None:
    answer = ScheduleRecoveryResult(service_name="db", outcome="queued", state="scheduled")
    server = FlakyServer([], answer)
    coordinator = on(server)

    await coordinator.schedule_recovery(ScheduleRecoveryInput(service_name="db"))
    await coordinator.schedule_recovery(ScheduleRecoveryInput(service_name="db"))

    first, second = (update_id for _, update_id in server.sends)
    assert first != second


async def test_a_refusal_that_does_not_pass_is_not_retried() -> None:
    server = FlakyServer([RPCError("denied", RPCStatusCode.PERMISSION_DENIED, b"")], None)
    coordinator = on(server)

    with pytest.raises(RPCError, match="denied"):
        await coordinator.schedule_recovery(ScheduleRecoveryInput(service_name="db"))
    assert len(server.sends) == 1


async def test_a_passing_refusal_is_resent_ten_times_over_about_21_s_then_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    busy = RPCError("too many updates in flight", RPCStatusCode.RESOURCE_EXHAUSTED, b"")
    server = FlakyServer([busy] * (RETRY_SENDS + 1), None)
    coordinator = on(server)
    waits: list[float] = []
    real_sleep, this_test = asyncio.sleep, asyncio.current_task()

    async def sleep(seconds: float, *args: Any) -> None:
        if asyncio.current_task() is not this_test:  # another test's task on the shared loop
            return await real_sleep(seconds, *args)
        waits.append(seconds)
        return await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(RPCError, match="too many updates"):
        await coordinator.schedule_recovery(ScheduleRecoveryInput(service_name="db"))
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert len(server.sends) == RETRY_SENDS + 1
    assert len({update_id for _, update_id in server.sends}) == 1
