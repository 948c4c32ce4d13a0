"""One recovery end to end: real health endpoints on loopback, a real breaker store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import CallableHealthCheck, HttpHealthCheck, TcpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from tests.helpers.breakers import state_of
from tests.helpers.histories import record_history
from tests.helpers.policies import blocking_policy
from tests.helpers.workers import running_worker
from starter.client.recoveries import final_result
from tests.helpers.recoveries import event_types, start_recovery, status_of
from tests.helpers.servers import free_port, health_server
from tests.helpers.waiting import eventually
from workflows.constants import recovery_workflow_id
from workflows.models import (
    CancelInput,
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    ServiceRecoveryInput,
)
from workflows.service_recovery import ServiceRecovery


@pytest.mark.parametrize("k", [1, 3])
async def test_succeeds_at_attempt_k_against_a_real_http_server(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str, k: int
) -> None:
    store.set_state(service, BreakerState.OPEN)  # a recovery touches only an existing breaker
    async with health_server([503] * (k - 1) + [200]) as server:
        policy = RecoveryPolicy(health_check=HttpHealthCheck(url=server.url))
        async with running_worker(time_env.client, store, task_queue):
            handle = await start_recovery(
                time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            result = await final_result(handle)
            history = await handle.query(ServiceRecovery.history)
            if k == 3:
                record_history(await handle.fetch_history(), "service_recovery_http_success")
    assert result.success and result.state is RecoveryState.SUCCEEDED
    assert result.attempt_number == k and result.total_attempts == 5
    assert result.health_check_passed is True and result.error_message is None
    assert server.requests == k
    assert [a.result for a in history] == ["failure"] * (k - 1) + ["success"]
    assert all(a.breaker_reset and a.breaker_found for a in history)
    assert [a.evidence for a in history] == [None] * (k - 1) + ["health_check"]
    if k > 1:
        assert "answered 503" in (history[0].error or "")
    breaker = store.get_state(service)
    assert breaker is not None and breaker.state is BreakerState.CLOSED


async def test_all_attempts_failing_ends_failed_with_every_attempt_recorded(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, BreakerState.OPEN)
    async with health_server([500]) as server:
        policy = RecoveryPolicy(max_retry_attempts=3, health_check=HttpHealthCheck(url=server.url))
        async with running_worker(time_env.client, store, task_queue):
            handle = await start_recovery(
                time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            result = await final_result(handle)
            history = await handle.query(ServiceRecovery.history)
            status = await status_of(handle)
            with pytest.raises(WorkflowFailureError) as ended:
                await handle.result()
            description = await handle.describe()
    # Failed in Temporal too: the Web UI colours it, ExecutionStatus='Failed' finds it, and
    # the failure (type RecoveryFailed) carries the RecoveryResult in its details.
    assert description.status is WorkflowExecutionStatus.FAILED
    failure = ended.value.cause
    assert isinstance(failure, ApplicationError) and failure.type == "RecoveryFailed"
    assert failure.non_retryable and "failed after 3 attempt(s)" in failure.message
    assert RecoveryResult.model_validate(failure.details[0]) == result
    assert result.state is RecoveryState.FAILED and not result.success
    assert result.attempt_number == 3 and result.health_check_passed is False
    assert result.error_message is not None and "answered 500" in result.error_message
    assert [a.attempt for a in history] == [1, 2, 3]
    assert [a.delay_ms for a in history] == [0, 1000, 2000]
    assert all(a.result == "failure" and a.finished_at is not None for a in history)
    assert status.state is RecoveryState.FAILED and status.phase is RecoveryPhase.FINISHED
    breaker = store.get_state(service)
    assert breaker is not None and breaker.state is BreakerState.OPEN and breaker.opened_at


async def test_no_health_check_succeeds_when_the_breaker_resets(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, BreakerState.OPEN)
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service)
        )
        result = await final_result(handle)
    assert result.success and result.attempt_number == 1 and result.health_check_passed is False
    assert state_of(store, service) is BreakerState.CLOSED


@pytest.mark.parametrize("listening", [False, True])
async def test_tcp_check_against_a_closed_and_an_open_port(
    time_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    listening: bool,
) -> None:
    async with health_server([200]) as server:
        port = server.port if listening else free_port()
        policy = RecoveryPolicy(
            max_retry_attempts=1, health_check=TcpHealthCheck(host="127.0.0.1", port=port)
        )
        async with running_worker(time_env.client, store, task_queue):
            handle = await start_recovery(
                time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            result = await final_result(handle)
    assert result.success is listening
    if not listening:
        assert "refused" in (result.error_message or "")


@pytest.mark.timeout(60)
async def test_a_hung_http_check_is_cut_by_its_timeout(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with health_server(hang=True) as server:
        check = HttpHealthCheck(url=server.url, timeout_ms=300)
        policy = RecoveryPolicy(max_retry_attempts=2, health_check=check)
        async with running_worker(time_env.client, store, task_queue):
            handle = await start_recovery(
                time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            result = await final_result(handle)
    assert result.state is RecoveryState.FAILED and result.attempt_number == 2
    assert "timed out after 300 ms" in (result.error_message or "")


@pytest.mark.timeout(60)
async def test_a_hung_callable_check_is_cut_by_its_timeout(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    check = CallableHealthCheck(ref="tests.helpers.checks:never_answers", timeout_ms=200)
    policy = RecoveryPolicy(max_retry_attempts=1, health_check=check)
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        result = await final_result(handle)
    assert not result.success and "timed out after 200 ms" in (result.error_message or "")


async def test_callable_checks_run_only_from_allowed_modules(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    allowed = RecoveryPolicy(health_check=CallableHealthCheck(ref="tests.helpers.checks:always_healthy"))
    refused = RecoveryPolicy(
        max_retry_attempts=1, health_check=CallableHealthCheck(ref="os.path:exists")
    )
    async with running_worker(time_env.client, store, task_queue):
        ok = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=allowed)
        )
        assert (await final_result(ok)).success
        bad = await start_recovery(
            time_env.client,
            task_queue,
            ServiceRecoveryInput(service_name=service + "-x", policy=refused),
        )
        result = await final_result(bad)
    assert not result.success
    assert "'os.path' is not in the worker's RECOVERY_HEALTH_CHECK_MODULES" in (
        result.error_message or ""
    )


async def test_cancel_signal_during_a_one_hour_backoff_ends_cancelled_at_once(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    policy = blocking_policy(check_timeout_ms=2000)
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        waiting = await eventually(
            lambda: status_of(handle), lambda s: s.phase is RecoveryPhase.BACKOFF
        )
        assert waiting.state is RecoveryState.IN_PROGRESS and waiting.next_attempt_at
        assert (waiting.next_attempt_at - waiting.scheduled_at) >= timedelta(minutes=59)
        await handle.signal(ServiceRecovery.cancel, CancelInput(reason="maintenance window"))
        result = await final_result(handle)
        record_history(await handle.fetch_history(), "service_recovery_cancel_signal")
    assert result.state is RecoveryState.CANCELLED and result.attempt_number == 1
    assert result.elapsed_time_ms < 60_000
    assert result.error_message == "cancelled: maintenance window"
    assert "EVENT_TYPE_TIMER_FIRED" not in await event_types(handle)


async def test_workflow_cancellation_during_a_backoff_ends_cancelled(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    policy = blocking_policy(check_timeout_ms=2000)
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        await eventually(lambda: status_of(handle), lambda s: s.phase is RecoveryPhase.BACKOFF)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        status = await status_of(handle)
    assert isinstance(caught.value.cause, CancelledError)
    assert status.state is RecoveryState.CANCELLED and status.phase is RecoveryPhase.FINISHED
    kinds = await event_types(handle)
    assert kinds[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"
    assert "EVENT_TYPE_TIMER_FIRED" not in kinds


async def test_a_wrong_constitutional_hash_fails_before_any_activity(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client,
            task_queue,
            ServiceRecoveryInput(service_name=service, constitutional_hash="0000000000000000"),
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "RecoveryConstitutionalError"
    assert "'0000000000000000'" in cause.message and cause.non_retryable
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in await event_types(handle)
    assert store.get_state(service) is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"max_retry_attempts": 0}, "max_retry_attempts must be >= 1"),
        ({"backoff_multiplier": 0.9}, "backoff_multiplier must be >= 1.0"),
        ({"initial_delay_ms": -5}, "initial_delay_ms must be >= 0"),
        ({"initial_delay_ms": 10, "max_delay_ms": 1}, "max_delay_ms must be >= initial_delay_ms"),
        ({"constitutional_hash": "nope"}, "'nope'"),
    ],
)
async def test_raw_json_input_breaking_a_constraint_fails_with_its_message(
    time_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    policy: dict[str, object],
    message: str,
) -> None:
    """What a user of `temporal workflow start --input '{…}'` sees for a bad policy."""
    async with running_worker(time_env.client, store, task_queue):
        handle = await time_env.client.start_workflow(
            "ServiceRecovery",
            {"service_name": service, "policy": policy},
            id=recovery_workflow_id(service),
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and message in cause.message
    assert cause.type in {"RecoveryValidationError", "RecoveryConstitutionalError"}
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in await event_types(handle)
