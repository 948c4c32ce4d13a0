"""Signals ``approve`` and ``cancel``: bad payloads are recorded, stale approvals ignored.

Every signal goes out raw (by name, with exactly the payloads a client might send);
none may fail a workflow task, and a good signal must still work afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import CallableHealthCheck, HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from tests.helpers.histories import record_history
from tests.helpers.workers import running_worker
from starter.client.recoveries import final_result
from tests.helpers.recoveries import (
    event_types,
    quiescent,
    start_recovery,
    status_of,
    task_failures,
)
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from workflows.constants import recovery_workflow_id
from workflows.models import (
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.service_recovery import MAX_IGNORED_SIGNALS, ServiceRecovery


Handle = WorkflowHandle[ServiceRecovery, RecoveryResult]


def manual_input(service: str, url: str, attempts: int = 3) -> ServiceRecoveryInput:
    """A MANUAL recovery checked against ``url``."""
    policy = RecoveryPolicy(max_retry_attempts=attempts, health_check=HttpHealthCheck(url=url))
    return ServiceRecoveryInput(
        service_name=service, strategy=RecoveryStrategy.MANUAL, policy=policy
    )


async def awaiting(handle: Handle, attempts: int = 0) -> RecoveryStatus:
    """Wait until the recovery awaits an operator after ``attempts`` attempts."""
    return await eventually(
        lambda: status_of(handle),
        lambda s: s.state is RecoveryState.AWAITING_MANUAL and s.attempt_count == attempts,
    )


async def ignored(handle: Handle, count: int) -> list[str]:
    """Wait until ``count`` signals are recorded as ignored; return the entries."""
    status = await eventually(
        lambda: status_of(handle), lambda s: len(s.ignored_signals) >= count
    )
    return status.ignored_signals


async def result_of(handle: Handle) -> RecoveryResult:
    """Wait (bounded) for the recovery's result."""
    return await asyncio.wait_for(final_result(handle), timeout=30)


def raw(client: Client, handle: Handle) -> WorkflowHandle[Any, Any]:
    """An untyped handle: signals by name with raw payloads."""
    return client.get_workflow_handle(handle.id)


BAD_APPROVALS: dict[str, tuple[list[Any], str]] = {
    "two payloads": ([{"operator": "a"}, {"operator": "b"}], "got 2 inputs"),
    "a string": (["alice"], "got str"),
    "a list": ([["alice"]], "got list"),
    "an unknown field": ([{"operator": "alice", "urgent": True}], "urgent"),
    "a bad field": ([{"operator": 42}], "operator"),
    "an oversized note": ([{"operator": "alice", "note": "x" * 5000}], "note"),
}


@pytest.mark.parametrize("case", list(BAD_APPROVALS))
async def test_a_bad_approve_is_recorded_as_rejected_and_a_good_one_still_counts(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, case: str
) -> None:
    payloads, expected = BAD_APPROVALS[case]
    client = dev_env.client
    async with health_server([200]) as server, running_worker(client, store, task_queue):
        handle = await start_recovery(client, task_queue, manual_input(service, server.url))
        await awaiting(handle)
        await raw(client, handle).signal("approve", args=payloads)
        [entry] = await ignored(handle, 1)
        status = await status_of(handle)
        assert status.attempt_count == 0 and status.state is RecoveryState.AWAITING_MANUAL
        await raw(client, handle).signal("approve", {"operator": "alice"})
        result = await result_of(handle)
        history = await handle.query(ServiceRecovery.history)
    assert " approve: rejected: approve signal" in entry and expected in entry
    assert result.success and [a.approved_by for a in history] == ["alice"]
    assert await task_failures(handle) == []


@pytest.mark.parametrize("payloads", [[], [None]], ids=["no payload", "null"])
async def test_an_approve_without_a_payload_counts_as_the_default_operator(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    payloads: list[Any],
) -> None:
    client = dev_env.client
    async with health_server([200]) as server, running_worker(client, store, task_queue):
        handle = await start_recovery(client, task_queue, manual_input(service, server.url))
        await awaiting(handle)
        await raw(client, handle).signal("approve", args=payloads)
        result = await result_of(handle)
        history = await handle.query(ServiceRecovery.history)
        status = await status_of(handle)
    assert result.success and [a.approved_by for a in history] == ["unknown"]
    assert status.ignored_signals == []
    assert await task_failures(handle) == []


BAD_CANCELS: dict[str, tuple[list[Any], str]] = {
    "two payloads": ([{"reason": "a"}, {"reason": "b"}], "got 2 inputs"),
    "a number": ([7], "got int"),
    "an unknown field": ([{"why": "maintenance"}], "why"),
}


@pytest.mark.parametrize("case", list(BAD_CANCELS))
async def test_a_bad_cancel_is_recorded_as_rejected_and_a_good_one_still_cancels(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, case: str
) -> None:
    payloads, expected = BAD_CANCELS[case]
    client = dev_env.client
    async with health_server([200]) as server, running_worker(client, store, task_queue):
        handle = await start_recovery(client, task_queue, manual_input(service, server.url))
        await awaiting(handle)
        await raw(client, handle).signal("cancel", args=payloads)
        [entry] = await ignored(handle, 1)
        assert (await status_of(handle)).state is RecoveryState.AWAITING_MANUAL
        await raw(client, handle).signal("cancel")
        result = await result_of(handle)
    assert " cancel: rejected: cancel signal" in entry and expected in entry
    assert result.state is RecoveryState.CANCELLED and result.attempt_number == 0
    assert result.error_message == "cancelled: no reason given"
    assert await task_failures(handle) == []


async def test_only_the_last_20_ignored_signals_are_kept(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    async with health_server([200]) as server, running_worker(client, store, task_queue):
        handle = await start_recovery(client, task_queue, manual_input(service, server.url))
        await awaiting(handle)
        for number in range(MAX_IGNORED_SIGNALS + 5):
            await raw(client, handle).signal("approve", {"operator": "x", f"bad{number}": 1})
        entries = await eventually(
            lambda: status_of(handle),
            lambda s: any(f"bad{MAX_IGNORED_SIGNALS + 4}" in e for e in s.ignored_signals),
        )
        await raw(client, handle).signal("approve", {"operator": "alice"})
        result = await result_of(handle)
    assert len(entries.ignored_signals) == MAX_IGNORED_SIGNALS
    assert "bad5:" in entries.ignored_signals[0]
    assert result.success
    assert await task_failures(handle) == []


async def test_an_approval_during_a_backoff_is_ignored_not_kept_for_the_escalation(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """Issue item 9: the early approver must not approve the escalated attempt."""
    client = dev_env.client
    async with health_server([500, 500, 200]) as server:
        policy = RecoveryPolicy(
            max_retry_attempts=2,
            initial_delay_ms=1500,
            escalate_to_manual=True,
            health_check=HttpHealthCheck(url=server.url),
        )
        async with running_worker(client, store, task_queue):
            handle = await start_recovery(
                client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            await eventually(lambda: status_of(handle), lambda s: s.phase is RecoveryPhase.BACKOFF)
            await raw(client, handle).signal("approve", {"operator": "alice"})
            [entry] = await ignored(handle, 1)
            await awaiting(handle, attempts=2)
            await quiescent(handle)  # a kept approval would have started attempt 3
            still = await status_of(handle)
            assert still.state is RecoveryState.AWAITING_MANUAL and still.attempt_count == 2
            assert server.requests == 2
            await raw(client, handle).signal("approve", {"operator": "bob"})
            result = await result_of(handle)
            history = await handle.query(ServiceRecovery.history)
            record_history(await handle.fetch_history(), "service_recovery_stale_approval")
    assert entry.endswith(
        " approve: approve from alice ignored: recovery was in_progress (backoff), "
        "not awaiting_manual"
    )
    assert result.success and result.attempt_number == 3 and server.requests == 3
    assert [a.approved_by for a in history] == [None, None, "bob"]
    assert await task_failures(handle) == []


async def test_an_approval_while_an_attempt_runs_is_ignored(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    client = dev_env.client
    # The check hangs until its 1.5 s timeout: time enough to approve in the middle of it.
    check = CallableHealthCheck(ref="tests.helpers.checks:never_answers", timeout_ms=1500)
    policy = RecoveryPolicy(max_retry_attempts=2, health_check=check)
    recovery = ServiceRecoveryInput(
        service_name=service, strategy=RecoveryStrategy.MANUAL, policy=policy
    )
    async with running_worker(client, store, task_queue):
        handle = await start_recovery(client, task_queue, recovery)
        await awaiting(handle)
        await raw(client, handle).signal("approve", {"operator": "alice"})
        await eventually(
            lambda: status_of(handle), lambda s: s.phase is RecoveryPhase.HEALTH_CHECK
        )
        await raw(client, handle).signal("approve", {"operator": "bob"})
        [entry] = await ignored(handle, 1)
        await awaiting(handle, attempts=1)
        await raw(client, handle).signal("approve", {"operator": "carol"})
        result = await result_of(handle)
        history = await handle.query(ServiceRecovery.history)
    assert entry.endswith(
        " approve: approve from bob ignored: recovery was in_progress (health_check), "
        "not awaiting_manual"
    )
    assert result.state is RecoveryState.FAILED and result.attempt_number == 2
    assert [a.approved_by for a in history] == ["alice", "carol"]
    assert await task_failures(handle) == []


async def test_two_approvals_in_one_workflow_task_run_one_attempt(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """Started and approved twice while no worker runs: the first task holds all three."""
    client = dev_env.client
    async with health_server([500, 200]) as server:
        handle = await start_recovery(client, task_queue, manual_input(service, server.url))
        await raw(client, handle).signal("approve", {"operator": "alice"})
        await raw(client, handle).signal("approve", {"operator": "bob"})
        async with running_worker(client, store, task_queue):
            await awaiting(handle, attempts=1)
            [entry] = await ignored(handle, 1)
            await quiescent(handle)  # a kept approval would have started attempt 2
            assert (await status_of(handle)).attempt_count == 1 and server.requests == 1
            await raw(client, handle).signal("approve", {"operator": "carol"})
            result = await result_of(handle)
            history = await handle.query(ServiceRecovery.history)
            record_history(await handle.fetch_history(), "service_recovery_two_approvals")
    assert entry.endswith(" approve: approve from bob ignored: attempt 1 already approved by alice")
    assert result.success and [a.approved_by for a in history] == ["alice", "carol"]
    kinds = await event_types(handle)
    assert await task_failures(handle) == []
    # All three arrived before the first workflow task was completed.
    first_completed = kinds.index("EVENT_TYPE_WORKFLOW_TASK_COMPLETED")
    assert kinds[:first_completed].count("EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED") == 2


async def test_an_approval_sent_with_the_start_counts(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """Signal-with-start: the approval arrives in the same workflow task as the start."""
    client = dev_env.client
    async with health_server([200]) as server, running_worker(client, store, task_queue):
        recovery = manual_input(service, server.url)
        handle: Handle = await client.start_workflow(
            ServiceRecovery.run,
            recovery,
            id=recovery_workflow_id(service),
            task_queue=task_queue,
            start_signal="approve",
            start_signal_args=[{"operator": "dave"}],
        )
        result = await result_of(handle)
        history = await handle.query(ServiceRecovery.history)
        status = await status_of(handle)
    assert result.success and [a.approved_by for a in history] == ["dave"]
    assert status.ignored_signals == []
    assert await task_failures(handle) == []
