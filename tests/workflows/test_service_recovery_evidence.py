"""The evidence rule and no phantom breakers (SPEC §4), on real servers and real stores.

An operator's recovery keeps the reference rule (no check: success, "closed without a
health check"); an automatic one (``automatic=True``: the circuit watch, an alert)
closes a breaker only on evidence the service answers: its check passed, or, with no
check, the service's own pybreaker calls closed the half-open breaker. No recovery ever
creates a breaker the store does not hold.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from recovery_breakers.stores import open_store
from starter.client.coordinator_client import CoordinatorClient
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.recoveries import final_result
from tests.helpers.breakers import state_of
from tests.helpers.pybreaker_service import running_service
from tests.helpers.recoveries import start_recovery, status_of, timers
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.constants import recovery_workflow_id
from workflows.coordinator_models import CancelRecoveryInput
from workflows.models import (
    CancelInput,
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.recovery_checks import (
    BREAKER_TRIAL_S,
    BREAKER_TRIAL_WAITS_S,
    TRIAL_NO_EVIDENCE,
    TRIAL_REOPENED,
)
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(120)

OPEN, HALF_OPEN, CLOSED = BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED
ONE_ATTEMPT = RecoveryPolicy(max_retry_attempts=1)


async def current_details(handle: WorkflowHandle[ServiceRecovery, RecoveryResult]) -> str:
    """Read the current details as the Web UI does (the SDK's metadata query)."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def start_automatic(
    client: Client, task_queue: str, service: str, policy: RecoveryPolicy | None = None
) -> WorkflowHandle[ServiceRecovery, RecoveryResult]:
    """Start a recovery as automation asks for one (``automatic``: the evidence rule)."""
    return await start_recovery(
        client,
        task_queue,
        ServiceRecoveryInput(service_name=service, automatic=True, policy=policy),
    )


async def watching_the_trial(handle: WorkflowHandle[ServiceRecovery, RecoveryResult]) -> str:
    """Wait until the recovery watches the breaker's own trial; return what its details say."""
    return await eventually(lambda: current_details(handle), lambda d: "own calls" in d)


# ----- operator-scheduled recoveries: the reference rule, no phantom breakers ----------


async def test_an_operator_recovery_with_no_check_says_closed_without_a_health_check(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, OPEN)
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service)
        )
        result = await final_result(handle)
        history = await handle.query(ServiceRecovery.history)
        details = await current_details(handle)
    assert result.success and result.health_check_passed is False
    assert state_of(store, service) is CLOSED
    assert [(a.breaker_found, a.breaker_reset, a.evidence) for a in history] == [
        (True, True, "none")
    ]
    assert details == (
        "Recovery succeeded after 1 attempt(s): breaker closed without a health check."
    )


async def test_an_operator_recovery_of_a_service_with_no_breaker_creates_none(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """The reference rule still holds (success, health_check_passed false), and no breaker
    appears: the store holds none for the service afterwards."""
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service)
        )
        result = await final_result(handle)
        history = await handle.query(ServiceRecovery.history)
        details = await current_details(handle)
    assert result.success and result.state is RecoveryState.SUCCEEDED
    assert result.attempt_number == 1 and result.health_check_passed is False
    assert store.get_state(service) is None and store.get_all_states() == {}
    assert [(a.breaker_found, a.breaker_reset, a.evidence) for a in history] == [
        (False, False, "none")
    ]
    assert "no breaker" in details and details.startswith("Recovery succeeded after 1 attempt(s)")


async def test_a_failing_operator_recovery_of_a_service_with_no_breaker_creates_none(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """The failure that re-opened a breaker for a service that never had one (issue 17)."""
    async with health_server([503]) as server, running_worker(
        time_env.client, store, task_queue
    ):
        policy = RecoveryPolicy(max_retry_attempts=2, health_check=HttpHealthCheck(url=server.url))
        handle = await start_recovery(
            time_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        result = await final_result(handle)
        history = await handle.query(ServiceRecovery.history)
    assert result.state is RecoveryState.FAILED and result.attempt_number == 2
    assert server.requests == 2  # the check still ran each attempt
    assert store.get_state(service) is None
    assert all(a.breaker_found is False and a.result == "failure" for a in history)


# ----- automatic recoveries: the evidence rule ----------------------------------------


async def test_automatic_with_no_check_and_no_breaker_fails_at_once_and_creates_none(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_automatic(time_env.client, task_queue, service)  # 5 attempts allowed
        result = await final_result(handle)
        history = await handle.query(ServiceRecovery.history)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        started_timers = await timers(handle)
    assert result.state is RecoveryState.FAILED and not result.success
    assert result.attempt_number == 1, "nothing could ever be evidence: no further attempts"
    assert "no health check is configured and the store holds no breaker" in (
        result.error_message or ""
    )
    assert started_timers == []
    assert store.get_state(service) is None
    assert history[0].breaker_found is False and history[0].evidence is None


async def test_automatic_with_no_check_and_no_calls_never_closes_the_breaker(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, OPEN)
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_automatic(time_env.client, task_queue, service, ONE_ATTEMPT)
        result = await final_result(handle)
        history = await handle.query(ServiceRecovery.history)
        started_timers = await timers(handle)
    assert not result.success and result.state is RecoveryState.FAILED
    assert result.error_message == TRIAL_NO_EVIDENCE
    assert f"within {BREAKER_TRIAL_S} s" in TRIAL_NO_EVIDENCE
    assert state_of(store, service) is OPEN, "re-opened after the trial window, never closed"
    assert history[0].breaker_reset and history[0].evidence is None
    assert [duration for duration, _ in started_timers] == [
        s * 1000 for s in BREAKER_TRIAL_WAITS_S
    ]
    assert all(summary.startswith("breaker trial") for _, summary in started_timers)


async def test_automatic_with_a_check_closes_on_the_check_as_before(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, OPEN)
    async with health_server([200]) as server, running_worker(
        time_env.client, store, task_queue
    ):
        policy = RecoveryPolicy(health_check=HttpHealthCheck(url=server.url))
        handle = await start_automatic(time_env.client, task_queue, service, policy)
        result = await final_result(handle)
        history = await handle.query(ServiceRecovery.history)
    assert result.success and result.health_check_passed is True
    assert state_of(store, service) is CLOSED and history[-1].evidence == "health_check"


async def test_automatic_with_no_check_succeeds_when_the_services_own_calls_close_it(
    dev_env: WorkflowEnvironment, redis_url: str, tmp_path: Path, task_queue: str, service: str
) -> None:
    """pybreaker's own trial, observed: two successful calls while half-open close it."""
    store = open_store(redis_url)
    with running_service(redis_url, tmp_path, service) as guarded:
        assert [guarded.ask("fail")["outcome"] for _ in range(3)][-1] == "rejected"  # tripped
        assert state_of(store, service) is OPEN
        async with running_worker(dev_env.client, store, task_queue):
            handle = await start_automatic(dev_env.client, task_queue, service, ONE_ATTEMPT)
            await eventually(lambda: asyncio.to_thread(state_of, store, service), lambda s: s is HALF_OPEN)
            watching = await watching_the_trial(handle)
            calls = [guarded.ask("call") for _ in range(2)]  # success_threshold=2
            assert [c["outcome"] for c in calls] == ["ok", "ok"]
            assert calls[-1]["state"] == "closed"
            result = await final_result(handle)
            history = await handle.query(ServiceRecovery.history)
            details = await current_details(handle)
    store.close()
    assert "no health check configured" in watching
    assert result.success and result.state is RecoveryState.SUCCEEDED
    assert result.health_check_passed is False, "no check ran"
    assert history[-1].evidence == "breaker_trial" and history[-1].health_check is None
    assert details == (
        "Recovery succeeded after 1 attempt(s): closed by the service's own calls "
        "(no health check configured)."
    )


async def test_automatic_with_no_check_fails_when_the_services_trial_call_fails(
    dev_env: WorkflowEnvironment, redis_url: str, tmp_path: Path, task_queue: str, service: str
) -> None:
    store = open_store(redis_url)
    store.set_state(service, OPEN)
    with running_service(redis_url, tmp_path, service) as guarded:
        async with running_worker(dev_env.client, store, task_queue):
            handle = await start_automatic(dev_env.client, task_queue, service, ONE_ATTEMPT)
            await eventually(lambda: asyncio.to_thread(state_of, store, service), lambda s: s is HALF_OPEN)
            trial = guarded.ask("fail")  # pybreaker re-opens a half-open breaker on a failure
            assert trial["outcome"] in ("failed", "rejected") and trial["state"] == "open"
            result = await final_result(handle)
    assert not result.success and result.error_message == TRIAL_REOPENED
    assert state_of(store, service) is OPEN
    store.close()


async def test_a_cancel_signal_during_the_trial_reopens_the_breaker(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, OPEN)
    async with running_worker(dev_env.client, store, task_queue):
        handle = await start_automatic(dev_env.client, task_queue, service)
        await watching_the_trial(handle)
        assert state_of(store, service) is HALF_OPEN
        await handle.signal(ServiceRecovery.cancel, CancelInput(reason="false alarm"))
        result = await final_result(handle)
        history = await handle.query(ServiceRecovery.history)
        details = await current_details(handle)
    assert result.state is RecoveryState.CANCELLED
    assert result.error_message == "cancelled: false alarm"
    assert history[-1].result == "cancelled"
    assert state_of(store, service) is OPEN
    assert details == "Recovery cancelled after 1 attempt(s): cancelled: false alarm."


async def test_a_temporal_cancellation_during_the_trial_reopens_the_breaker(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, OPEN)
    async with running_worker(dev_env.client, store, task_queue):
        handle = await start_automatic(dev_env.client, task_queue, service)
        await watching_the_trial(handle)
        await handle.cancel(reason="operator takes over")
        with pytest.raises(WorkflowFailureError) as ended:
            await asyncio.wait_for(handle.result(), timeout=30)
        status = await status_of(handle)
        details = await current_details(handle)
        description = await handle.describe()
    assert isinstance(ended.value.cause, CancelledError)
    assert description.status is WorkflowExecutionStatus.CANCELED
    assert status.state is RecoveryState.CANCELLED and status.phase is RecoveryPhase.FINISHED
    assert status.last_error == "cancelled: operator takes over"
    assert "operator takes over" in details
    assert state_of(store, service) is OPEN


# ----- endings read as outcomes --------------------------------------------------------


async def test_a_failed_recoverys_failure_has_its_message_and_result_but_no_stack_trace(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, OPEN)
    async with health_server([503]) as server, running_worker(dev_env.client, store, task_queue):
        policy = RecoveryPolicy(max_retry_attempts=1, health_check=HttpHealthCheck(url=server.url))
        handle = await start_recovery(
            dev_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        with pytest.raises(WorkflowFailureError) as ended:
            await asyncio.wait_for(handle.result(), timeout=30)
        events = [e async for e in handle.fetch_history_events()]
    failed = [
        e.workflow_execution_failed_event_attributes.failure
        for e in events
        if e.HasField("workflow_execution_failed_event_attributes")
    ]
    assert len(failed) == 1
    failure = failed[0]
    assert failure.stack_trace == ""
    assert "failed after 1 attempt(s)" in failure.message and "answered 503" in failure.message
    assert failure.application_failure_info.type == "RecoveryFailed"
    assert failure.application_failure_info.non_retryable
    payloads = failure.application_failure_info.details.payloads
    assert len(payloads) == 1 and b'"state":"failed"' in payloads[0].data.replace(b" ", b"")
    cause = ended.value.cause
    assert isinstance(cause, ApplicationError)
    result = RecoveryResult.model_validate(cause.details[0])
    assert result.state is RecoveryState.FAILED and result.service_name == service


async def test_a_refused_input_fails_without_a_stack_trace_too(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with running_worker(dev_env.client, store, task_queue):
        handle = await start_recovery(
            dev_env.client,
            task_queue,
            ServiceRecoveryInput(service_name=service, constitutional_hash="0000000000000000"),
        )
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=30)
        events = [e async for e in handle.fetch_history_events()]
    failure = next(
        e.workflow_execution_failed_event_attributes.failure
        for e in events
        if e.HasField("workflow_execution_failed_event_attributes")
    )
    assert failure.application_failure_info.type == "RecoveryConstitutionalError"
    assert "Constitutional hash mismatch" in failure.message and failure.stack_trace == ""


async def test_a_recovery_cancelled_through_the_coordinator_names_the_reason(
    orchestrator: RecoveryOrchestrator, dev_env: WorkflowEnvironment, task_queue: str, service: str
) -> None:
    """The coordinator's cancel (a Temporal cancellation carrying the reason): the
    recovery's current details and result, and the coordinator's history, name it."""
    await orchestrator.schedule_recovery(service, RecoveryStrategy.MANUAL)
    handle: WorkflowHandle[ServiceRecovery, RecoveryResult] = dev_env.client.get_workflow_handle(
        recovery_workflow_id(service), result_type=RecoveryResult
    )

    async def state_or_none() -> RecoveryState | None:
        try:
            return (await status_of(handle)).state
        except RPCError:  # the coordinator has not started it yet
            return None

    await eventually(state_or_none, lambda s: s is RecoveryState.AWAITING_MANUAL, timeout=30)
    coordinator = CoordinatorClient(
        dev_env.client, workflow_id=orchestrator.coordinator_workflow_id, task_queue=task_queue
    )
    answer = await coordinator.cancel_recovery(
        CancelRecoveryInput(service_name=service, reason="db failover in progress")
    )
    assert answer is not None and answer.cancelled
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout=30)
    description = await handle.describe()
    details = await current_details(handle)
    status = await status_of(handle)
    coordinator_status = await eventually(
        orchestrator.get_recovery_status,
        lambda s: any(r["service_name"] == service for r in s["recent_history"]),
    )
    assert description.status is WorkflowExecutionStatus.CANCELED
    assert details == "Recovery cancelled after 0 attempt(s): cancelled: db failover in progress."
    assert status.last_error == "cancelled: db failover in progress"
    ended = [r for r in coordinator_status["recent_history"] if r["service_name"] == service]
    assert ended[-1]["state"] == "cancelled"
    assert "db failover in progress" in (ended[-1]["error_message"] or "")


async def test_no_recovery_creates_a_breaker_on_either_store(
    time_env: WorkflowEnvironment, store_url: str, task_queue: str, service: str
) -> None:
    """Operator and automatic, succeeding and failing: the store holds nothing afterwards."""
    shared = open_store(store_url)
    refused = RecoveryPolicy(
        max_retry_attempts=1, health_check=HttpHealthCheck(url="http://127.0.0.1:1/health")
    )
    inputs = [
        ServiceRecoveryInput(service_name=f"{service}-operator"),
        ServiceRecoveryInput(service_name=f"{service}-failing", policy=refused),
        ServiceRecoveryInput(service_name=f"{service}-automatic", automatic=True),
        ServiceRecoveryInput(service_name=f"{service}-auto-failing", automatic=True, policy=refused),
    ]
    async with running_worker(time_env.client, shared, task_queue):
        results = [
            await final_result(await start_recovery(time_env.client, task_queue, given))
            for given in inputs
        ]
    assert [r.state for r in results] == [
        RecoveryState.SUCCEEDED,
        RecoveryState.FAILED,
        RecoveryState.FAILED,
        RecoveryState.FAILED,
    ]
    assert shared.get_all_states() == {}
    shared.close()
