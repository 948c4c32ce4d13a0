"""The determinism guard: a recorded history for every workflow type x strategy x ending.

``tests/workflows/test_replay.py`` replays every ``tests/histories/*.json`` against today's
workflow code, so a change that would break a running workflow fails CI. This module
makes sure there *is* a history for every combination a running workflow can be in:
each case below drives a real recovery (the product's worker, a real HTTP health
endpoint on loopback, a real SQLite breaker store) to one ending, checks the ending,
and records the run as ``tests/histories/matrix_<strategy>_<ending>.json`` when
``RECORD_HISTORIES=1``. Run without it, a case fails unless its file is checked in:
a new combination cannot land without a history.

``ServiceRecovery``: every strategy x ending, on the time-skipping server, except

- ``manual`` x ``escalated``: not a combination. ``escalate_to_manual`` hands a
  recovery whose attempts are used up to an operator; a MANUAL recovery already
  waits for an operator before every attempt, and ends ``failed`` when its attempts
  are used up (``ServiceRecovery._recover``: ``if manual or not escalate_to_manual``).
  ``manual`` x ``failed`` covers that path.

Each recovery reports to a stand-in coordinator (``ReportSink``), as a recovery the
coordinator starts does, so its history holds the ``recovery_report`` signals of its
state changes (a recovery started alone signals nobody and would leave that code
unguarded).

Where each ending is reached (the wait a running workflow really sits in):

- ``cancelled_by_signal`` / ``cancelled_by_temporal``: during the backoff timer for
  ``exponential_backoff`` and ``linear_backoff``; during the health check for
  ``immediate`` (it has no timer to interrupt: the cancel is honoured when the check
  returns, the breaker is re-opened); while awaiting approval for ``manual``.
- ``escalated``: two failed attempts, the recovery is seen ``awaiting_manual``, then
  an operator's approval runs attempt 3, which succeeds.

One more ``ServiceRecovery`` history, ``matrix_cancelled_before_first_reset``: a
cancel that arrives with the start, honoured before the first breaker reset (no
other history stops there).

``ServiceRecovery`` runs pinned to the build that started it (``workflows/versioning.py``),
so these histories are recorded by today's code and hold no patch marker; a change to
its commands is re-recorded here, never patched (``docs/versioning.md``).

``RecoveryCoordinator``: ``shutdown`` (a running recovery cancelled through Temporal
by the ``shutdown`` update) and ``continue_as_new`` (a run that hands over to the
next, recorded on today's code: ``coordinator_continued_as_new.json`` predates every
coordinator patch, so it only exercises the old branches). No existing history held
a ``shutdown`` update. Both on the dev server, through the facade, as the other
coordinator tests run.

``CircuitWatch``: not recorded here; ``circuit_watch_long_lived.json`` (recorded by
``tests/workflows/test_circuit_watch_long_lived.py``) is a run of the long-lived watch through
pauses, a hand-over and a continue-as-new (the workflow has no patches).

Finally, the guard is shown to bite: the real ``ServiceRecovery`` with one change
(breaker writes as activities instead of local activities) fails the replay of a
recorded history.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from temporalio.workflow import NondeterminismError

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.recoveries import final_result
from tests.helpers.coordination import coordinator_history
from tests.helpers.histories import HISTORIES, load_history, record_history
from tests.helpers.policies import HOUR_MS
from tests.helpers.recoveries import patch_markers, start_recovery, status_of
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on, running_worker
from tests.helpers.servers import (
    GatedHealthServer,
    ScriptedHealthServer,
    gated_health_server,
    health_server,
)
from worker import WORKFLOW_INTERCEPTORS, WORKFLOW_RUNNER, WORKFLOWS
from workflows.constants import recovery_workflow_id
from workflows.converter import worker_data_converter
from workflows.errors import RECOVERY_FAILED
from workflows.models import (
    ApproveInput,
    CancelInput,
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
    ServiceRecoveryInput,
)
from workflows.service_recovery import REPORT_SIGNAL, ServiceRecovery

pytestmark = pytest.mark.timeout(30)

RECORDING = os.environ.get("RECORD_HISTORIES") == "1"
STRATEGIES = [s.value for s in RecoveryStrategy]
ENDINGS = ["succeeded", "failed", "cancelled_by_signal", "cancelled_by_temporal", "escalated"]
# Combinations that cannot happen, and why (see the module docstring).
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("manual", "escalated"): "a MANUAL recovery already waits for an operator before every attempt",
}
MATRIX = [(s, e) for s in STRATEGIES for e in ENDINGS if (s, e) not in NOT_APPLICABLE]
SHORT_DELAY_MS = 100
Handle = WorkflowHandle[ServiceRecovery, RecoveryResult]


def matrix_file(name: str) -> Path:
    """Return the checked-in history of one matrix case."""
    return HISTORIES / f"matrix_{name}.json"


def record_or_require(history: WorkflowHistory, name: str) -> None:
    """Record the case's history (RECORD_HISTORIES=1), else require the checked-in one."""
    record_history(history, f"matrix_{name}")
    if not RECORDING:
        assert matrix_file(name).exists(), (
            f"{matrix_file(name).name} is not checked in: record the matrix with "
            f"RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/workflows/test_history_matrix.py"
        )


def event_names(history: WorkflowHistory) -> list[str]:
    """Return the type of every event, e.g. ``EVENT_TYPE_TIMER_STARTED``."""
    return [EventType.Name(e.event_type) for e in history.events]


def updates_in(history: WorkflowHistory) -> set[str]:
    """Return the names of the updates the history accepted."""
    return {
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    }


def assert_reported(history: WorkflowHistory) -> None:
    """The recovery signalled its (stand-in) coordinator, and every signal arrived."""
    names = event_names(history)
    assert "EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED" in names
    assert "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED" not in names


# ----- ServiceRecovery: strategy x ending ---------------------------------------------


@workflow.defn(name="MatrixReportSink", sandboxed=False)
class ReportSink:
    """Stands in for the coordinator: takes the recovery's ``recovery_report`` signals.

    A recovery started by the coordinator signals it (its end, its state changes, a
    long backoff); one started alone issues no such command. The matrix records the
    coordinator's case, which is how recoveries run in production.
    """

    def __init__(self) -> None:
        self._reports = 0

    @workflow.run
    async def run(self) -> None:
        """Wait until the test terminates it."""
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=REPORT_SIGNAL)
    def report(self, *args: Any) -> None:
        """Count one report (its content is the coordinator's business, not the matrix's)."""
        self._reports += 1

    @workflow.query(name="reports")
    def reports(self) -> int:
        """Return how many reports arrived."""
        return self._reports


@asynccontextmanager
async def report_sink(env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[str]:
    """Run a ``ReportSink`` on a task queue of its own; yield its workflow id.

    Once the recovery has ended and time is skipped, the server may jump to the sink's
    (ten-year) execution timeout: the recovery's reports have all arrived by then, which
    ``assert_reported`` checks in its history.
    """
    sink_queue, sink_id = f"{task_queue}-sink", f"sink-{uuid.uuid4().hex[:10]}"
    async with Worker(env.client, task_queue=sink_queue, workflows=[ReportSink]):
        handle = await env.client.start_workflow(ReportSink.run, id=sink_id, task_queue=sink_queue)
        try:
            yield sink_id
        finally:
            try:
                await handle.terminate("matrix case done")
            except RPCError as err:  # the time-skipping server may have run out its timeout
                if err.status is not RPCStatusCode.NOT_FOUND:
                    raise


@dataclass
class Outcome:
    """What a driven recovery ended with, plus what was seen on the way."""

    handle: Handle
    result: RecoveryResult
    status: WorkflowExecutionStatus
    seen: RecoveryStatus | None = None


def http_policy(
    url: str, attempts: int, delay_ms: int = SHORT_DELAY_MS, **fields: object
) -> RecoveryPolicy:
    """A policy checking ``url`` over HTTP, with a fixed backoff of ``delay_ms``."""
    return RecoveryPolicy(
        max_retry_attempts=attempts,
        initial_delay_ms=delay_ms,
        max_delay_ms=delay_ms,
        health_check=HttpHealthCheck(url=url),
        **fields,
    )


async def wait_for(handle: Handle, accept: Callable[[RecoveryStatus], bool]) -> RecoveryStatus:
    """Poll the recovery's ``status`` until ``accept`` holds (time is not skipped meanwhile)."""
    return await eventually(lambda: status_of(handle), accept, timeout=15)


async def approve(handle: Handle, operator: str) -> None:
    """Signal ``approve`` as an operator would."""
    await handle.signal(ServiceRecovery.approve, ApproveInput(operator=operator, note="matrix"))


async def approve_twice(handle: Handle) -> RecoveryStatus:
    """Approve attempt 1, wait for the recovery to await an operator again, approve attempt 2."""
    await wait_for(handle, lambda s: s.state is RecoveryState.AWAITING_MANUAL)
    await approve(handle, "alice")
    seen = await wait_for(
        handle, lambda s: s.attempt_count == 1 and s.state is RecoveryState.AWAITING_MANUAL
    )
    await approve(handle, "bob")
    return seen


async def wait_where_a_cancel_lands(
    handle: Handle, strategy: RecoveryStrategy, gate: GatedHealthServer | None
) -> RecoveryStatus:
    """Wait until the recovery sits in the wait its strategy really has (see the docstring)."""
    if strategy is RecoveryStrategy.MANUAL:
        return await wait_for(handle, lambda s: s.phase is RecoveryPhase.AWAITING_APPROVAL)
    if strategy is RecoveryStrategy.IMMEDIATE:
        assert gate is not None
        await asyncio.wait_for(gate.arrived.wait(), timeout=15)
        return await wait_for(handle, lambda s: s.phase is RecoveryPhase.HEALTH_CHECK)
    return await wait_for(handle, lambda s: s.phase is RecoveryPhase.BACKOFF)


@asynccontextmanager
async def endpoint(
    strategy: RecoveryStrategy, ending: str
) -> AsyncIterator[ScriptedHealthServer | GatedHealthServer]:
    """The health endpoint a case needs: scripted answers, or one held open (immediate cancels)."""
    if ending.startswith("cancelled") and strategy is RecoveryStrategy.IMMEDIATE:
        async with gated_health_server() as gated:
            yield gated
        return
    statuses = {
        "succeeded": [503, 200],
        "failed": [503],
        "escalated": [503, 503, 200],
    }.get(ending, [503])
    async with health_server(statuses) as scripted:
        yield scripted


def policy_for(strategy: RecoveryStrategy, ending: str, url: str) -> RecoveryPolicy:
    """The smallest policy that reaches ``ending``: two or three attempts, short timers."""
    if ending == "escalated":
        return http_policy(url, attempts=2, escalate_to_manual=True)
    if ending.startswith("cancelled") and strategy in (
        RecoveryStrategy.EXPONENTIAL_BACKOFF, RecoveryStrategy.LINEAR_BACKOFF
    ):
        return http_policy(url, attempts=2, delay_ms=HOUR_MS)  # sits in its backoff
    return http_policy(url, attempts=3 if ending == "succeeded" else 2)


async def drive(
    handle: Handle,
    strategy: RecoveryStrategy,
    ending: str,
    server: ScriptedHealthServer | GatedHealthServer,
) -> Outcome:
    """Take a started recovery to ``ending``; return its result and Temporal status."""
    gate = server if isinstance(server, GatedHealthServer) else None
    seen: RecoveryStatus | None = None
    manual = strategy is RecoveryStrategy.MANUAL
    if ending in ("succeeded", "failed") and manual:
        seen = await approve_twice(handle)
    elif ending == "escalated":
        seen = await wait_for(handle, lambda s: s.state is RecoveryState.AWAITING_MANUAL)
        await approve(handle, "oncall")
    elif ending == "cancelled_by_signal":
        seen = await wait_where_a_cancel_lands(handle, strategy, gate)
        await handle.signal(ServiceRecovery.cancel, CancelInput(reason="matrix: cancel signal"))
        if gate is not None:
            gate.release(503)  # the check returns; the cancel is honoured, the breaker re-opened
    elif ending == "cancelled_by_temporal":
        seen = await wait_where_a_cancel_lands(handle, strategy, gate)
        await handle.cancel(reason="matrix: temporal cancellation")
    result = await final_result(handle)
    if gate is not None:
        gate.release(503)
    status = (await handle.describe()).status
    assert status is not None
    return Outcome(handle=handle, result=result, status=status, seen=seen)


def check_ending(outcome: Outcome, strategy: RecoveryStrategy, ending: str) -> None:
    """Assert the ending: Temporal's status, the RecoveryResult, and what was seen on the way."""
    result, status = outcome.result, outcome.status
    if ending == "succeeded":
        assert status is WorkflowExecutionStatus.COMPLETED
        assert result.state is RecoveryState.SUCCEEDED and result.success
        assert result.attempt_number == 2 and result.health_check_passed
    elif ending == "failed":
        assert status is WorkflowExecutionStatus.FAILED
        assert result.state is RecoveryState.FAILED and not result.success
        assert result.attempt_number == 2 and "answered 503" in (result.error_message or "")
    elif ending == "cancelled_by_signal":
        # The bare signal ends the recovery cancelled, but only Temporal's own
        # cancellation may end a workflow Canceled (SPEC §4): it Completed.
        assert status is WorkflowExecutionStatus.COMPLETED
        assert result.state is RecoveryState.CANCELLED and not result.success
        assert result.error_message == "cancelled: matrix: cancel signal"
    elif ending == "cancelled_by_temporal":
        assert status is WorkflowExecutionStatus.CANCELED
        assert result.state is RecoveryState.CANCELLED and not result.success
    elif ending == "escalated":
        assert outcome.seen is not None and outcome.seen.attempt_count == 2
        assert status is WorkflowExecutionStatus.COMPLETED
        assert result.state is RecoveryState.SUCCEEDED and result.attempt_number == 3
    if ending.startswith("cancelled"):
        expected = 0 if strategy is RecoveryStrategy.MANUAL else 1
        assert result.attempt_number == expected


def check_breaker(
    store: SQLiteBreakerStore, service: str, strategy: RecoveryStrategy, ending: str
) -> None:
    """The breaker ends closed on success, open otherwise, untouched if no attempt ran."""
    record = store.get_state(service)
    assert record is not None
    if ending.startswith("cancelled") and strategy is RecoveryStrategy.MANUAL:
        # No attempt was approved: the breaker is never touched (still open, never written).
        assert record.state is BreakerState.OPEN and record.updated_at == record.opened_at
        return
    closed = ending in ("succeeded", "escalated")
    assert record.state is (BreakerState.CLOSED if closed else BreakerState.OPEN)


@pytest.mark.parametrize(("strategy", "ending"), MATRIX, ids=[f"{s}-{e}" for s, e in MATRIX])
async def test_service_recovery_ending_is_recorded(
    time_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    strategy: str,
    ending: str,
) -> None:
    """Drive one strategy to one ending on the time-skipping server; record its history."""
    kind = RecoveryStrategy(strategy)
    async with endpoint(kind, ending) as server, report_sink(time_env, task_queue) as sink, (
        running_worker(time_env.client, store, task_queue)
    ):
        input = ServiceRecoveryInput(
            service_name=service,
            strategy=kind,
            policy=policy_for(kind, ending, server.url),
            coordinator_workflow_id=sink,
        )
        store.set_state(service, BreakerState.OPEN)  # its own breaker opened: what it recovers
        handle = await start_recovery(time_env.client, task_queue, input)
        outcome = await drive(handle, kind, ending, server)
        history = await handle.fetch_history()
    check_ending(outcome, kind, ending)
    assert_reported(history)
    check_breaker(store, service, kind, ending)
    if ending == "failed":
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == RECOVERY_FAILED
    record_or_require(history, f"{strategy}_{ending}")


async def test_a_cancel_before_the_first_reset_is_recorded(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """A cancel that arrives with the start is honoured before the first breaker reset.

    No other history stops there (the check runs only when a cancel is already
    pending as an attempt begins).
    """
    async with report_sink(time_env, task_queue) as sink, (
        running_worker(time_env.client, store, task_queue)
    ):
        handle: Handle = await time_env.client.start_workflow(
            ServiceRecovery.run,
            ServiceRecoveryInput(
                service_name=service,
                policy=http_policy("http://127.0.0.1:9/", attempts=2),
                coordinator_workflow_id=sink,
            ),
            id=recovery_workflow_id(service),
            task_queue=task_queue,
            start_signal="cancel",
            start_signal_args=[CancelInput(reason="matrix: false alarm")],
        )
        result = await final_result(handle)
        status = (await handle.describe()).status
        history = await handle.fetch_history()
    assert_reported(history)
    assert status is WorkflowExecutionStatus.COMPLETED
    assert result.state is RecoveryState.CANCELLED and result.attempt_number == 0
    assert scheduled_activities(history) == [] and store.get_state(service) is None
    # Pinned to the build that started it: no patch branch, so no patch marker.
    assert patch_markers(history) == set()
    record_or_require(history, "cancelled_before_first_reset")


def test_the_matrix_names_every_combination() -> None:
    """Every strategy x ending is recorded or explained; nothing is both."""
    assert {(s, e) for s in STRATEGIES for e in ENDINGS} == set(MATRIX) | set(NOT_APPLICABLE)
    assert not set(MATRIX) & set(NOT_APPLICABLE)


# ----- RecoveryCoordinator: shutdown, continue-as-new ---------------------------------


@pytest.mark.timeout(45)
async def test_coordinator_shutdown_is_recorded(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """``shutdown`` cancels a recovery sitting in its backoff; the coordinator sees it end."""
    async with health_server([503]) as server, orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(
            service, RecoveryStrategy.EXPONENTIAL_BACKOFF,
            policy=http_policy(server.url, attempts=2, delay_ms=HOUR_MS),
        )
        await eventually(
            orch.get_recovery_status,
            lambda s: (s["services"].get(service) or {}).get("next_attempt_at") is not None,
        )
        await orch.stop()
        status = await orch.get_recovery_status()
        child = dev_env.client.get_workflow_handle(recovery_workflow_id(service))
        await eventually(
            child.describe, lambda d: d.status is WorkflowExecutionStatus.CANCELED
        )
        history = await eventually(
            lambda: coordinator_history(orch),
            lambda h: "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED" in event_names(h),
        )
    assert status["orchestrator_running"] is False
    assert (status["active_recoveries"], status["queued_recoveries"]) == (0, 0)
    [ended] = [r for r in status["recent_history"] if r["service_name"] == service]
    assert ended["state"] == "cancelled"
    assert {"schedule_recovery", "shutdown"} <= updates_in(history)
    record_or_require(history, "coordinator_shutdown")


@pytest.mark.timeout(45)
async def test_coordinator_continue_as_new_is_recorded(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """A coordinator with a finished recovery and a policy hands over; its first run is kept."""
    client = dev_env.client
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        coordinator = client.get_workflow_handle(orch.coordinator_workflow_id)
        first_run = (await coordinator.describe()).run_id
        await coordinator.execute_update("configure", {"continue_as_new_after_events": 100})
        await orch.set_recovery_policy(f"{service}-kept", RecoveryPolicy(max_retry_attempts=7))
        await orch.schedule_recovery(service, RecoveryStrategy.IMMEDIATE)
        await eventually(orch.get_recovery_status, lambda s: s["active_recoveries"] == 0)
        for i in range(60):  # cheap updates until the history is long enough to hand over
            if (await coordinator.describe()).run_id != first_run:
                break
            await coordinator.execute_update("configure", {"recent_history_size": 10 + i % 2})
        await eventually(coordinator.describe, lambda d: d.run_id != first_run)
        kept = await orch.get_recovery_policy(f"{service}-kept")
        status = await orch.get_recovery_status()
        history = await client.get_workflow_handle(coordinator.id, run_id=first_run).fetch_history()
    assert event_names(history)[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
    assert kept.max_retry_attempts == 7
    assert [r["state"] for r in status["recent_history"] if r["service_name"] == service] == [
        "succeeded"
    ]
    record_or_require(history, "coordinator_continue_as_new")


# ----- The guard bites: a real change to ServiceRecovery fails a recorded history -----

# Two attempts (breaker writes, a health check each), reports, and the end as Failed.
GUARDED = "matrix_immediate_failed"


def load(name: str) -> WorkflowHistory:
    """Load a checked-in history."""
    return load_history(HISTORIES / f"{name}.json")


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    """Return the type of every (non-local) activity the history scheduled."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def replay(name: str) -> None:
    """Replay a checked-in history against today's workflows; raise on any failure."""
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=worker_data_converter,
        workflow_runner=WORKFLOW_RUNNER,
        interceptors=WORKFLOW_INTERCEPTORS,  # as the worker runs them (workflows/guard.py)
    )
    await replayer.replay_workflow(load(name))


@pytest.mark.timeout(30)
async def test_a_real_change_to_the_recovery_fails_the_replay() -> None:
    """The replay guard catches a change to the product's own workflow code.

    Breaker writes are local activities (one marker each, inside the workflow task that
    asked). The same code with them as ordinary activities, as before 0.7, schedules an
    activity where the recorded history holds a marker: the replay fails. The sandbox
    passes ``temporalio`` through, so patching the module attribute reaches the workflow.
    """
    history = load(GUARDED)
    assert scheduled_activities(history) == ["run_health_check"] * 2
    assert patch_markers(history) == set()
    await replay(GUARDED)  # today's code replays its own history
    as_activities = workflow.execute_activity_method
    with mock.patch.object(workflow, "execute_local_activity_method", as_activities):
        with pytest.raises(NondeterminismError, match="LocalActivity"):
            await replay(GUARDED)
