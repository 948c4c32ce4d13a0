"""Approvals that answer: one attempt per wait, whatever the interleaving (issue 19, row 9).

Five operators who saw attempt 1 waiting approve at once; the recovery's attempts
fail fast, so without the attempt number a late approval counted for attempt 2.
"""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import TcpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.recoveries import start_recovery, status_of
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.models import (
    ApproveInput,
    ApproveResult,
    AttemptAnswer,
    AttemptResultInput,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(60)

FAILS_FAST = RecoveryPolicy(
    max_retry_attempts=3,
    health_check=TcpHealthCheck(host="127.0.0.1", port=free_port(), timeout_ms=300),
)


async def attempt_result(
    handle: WorkflowHandle[ServiceRecovery, RecoveryResult], attempt: int
) -> AttemptAnswer:
    """The ``attempt_result`` update (the SDK types an async update's answer as its coroutine)."""
    answer = await handle.execute_update(
        ServiceRecovery.attempt_result, AttemptResultInput(attempt=attempt)
    )
    return cast(AttemptAnswer, answer)


async def test_five_concurrent_approvals_of_one_wait_start_one_attempt(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with running_worker(client, store, task_queue):
        handle = await start_recovery(
            client,
            task_queue,
            ServiceRecoveryInput(service_name=service, strategy=RecoveryStrategy.MANUAL, policy=FAILS_FAST),
        )
        await eventually(lambda: status_of(handle), lambda s: s.state is RecoveryState.AWAITING_MANUAL)

        async def approve(operator: str, attempt: int = 1) -> ApproveResult | ApplicationError:
            try:
                return await handle.execute_update(
                    ServiceRecovery.approve_attempt, ApproveInput(operator=operator, attempt=attempt)
                )
            except WorkflowUpdateFailedError as err:
                assert isinstance(err.cause, ApplicationError)
                return err.cause

        answers = await asyncio.gather(*(approve(f"op{n}") for n in range(5)))
        admitted = [a for a in answers if isinstance(a, ApproveResult)]
        refused = [a for a in answers if isinstance(a, ApplicationError)]
        assert len(admitted) == 1 and admitted[0].attempt == 1
        assert all(r.details[0]["code"] == "not_awaiting_approval" for r in refused)
        # Attempt 1 fails fast and the recovery waits for attempt 2's approval; no late
        # approval of attempt 1 starts it.
        status = await eventually(
            lambda: status_of(handle),
            lambda s: s.attempt_count == 1 and s.state is RecoveryState.AWAITING_MANUAL,
        )
        late = await approve("late")
        assert isinstance(late, ApplicationError) and "stale" in late.message
        await handle.signal(ServiceRecovery.approve, ApproveInput(operator="late-signal", attempt=1))
        status = await eventually(
            lambda: status_of(handle), lambda s: any("late-signal" in i for i in s.ignored_signals)
        )
        assert status.attempt_count == 1 and status.state is RecoveryState.AWAITING_MANUAL
        # The approval of the attempt that waits counts.
        second = await approve("bob", attempt=2)
        assert isinstance(second, ApproveResult) and second.attempt == 2
        await handle.cancel()


async def test_waiting_on_an_attempt_nobody_approved_is_refused_not_hung(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """``attempt_result`` answers when the attempt ran; a wait nothing would end is refused.

    Refused at once, by the validator: the server holds ten updates in flight per workflow,
    so waits for an approval nobody gave would hold back the approvals themselves.
    """
    client = time_env.client
    async with running_worker(client, store, task_queue):
        handle = await start_recovery(
            client,
            task_queue,
            ServiceRecoveryInput(service_name=service, strategy=RecoveryStrategy.MANUAL, policy=FAILS_FAST),
        )
        for attempt, code in ((1, "approval_not_taken"), (2, "bad_field")):
            with pytest.raises(WorkflowUpdateFailedError) as caught:
                await attempt_result(handle, attempt)
            cause = caught.value.cause
            assert isinstance(cause, ApplicationError) and cause.details[0]["code"] == code
        # Approved, the same wait answers with that attempt's record (it failed: no server).
        await handle.execute_update(ServiceRecovery.approve_attempt, ApproveInput(attempt=1))
        answer = await attempt_result(handle, 1)
        assert answer.attempt is not None and answer.attempt.result == "failure"
        assert answer.status.state is RecoveryState.AWAITING_MANUAL
        for beyond in (3, 4):  # not begun (2 is next), and past the last attempt (3)
            with pytest.raises(WorkflowUpdateFailedError, match="update failed"):
                await attempt_result(handle, beyond)
        await handle.terminate("test over")
