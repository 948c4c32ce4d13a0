"""A recovery tells its coordinator only what the coordinator cannot infer.

When every phase was reported and breaker writes were activities (before 0.7), an
attempt wrote about 33 events, half of them reports; progress detail now stays in the
recovery's own ``status`` query, and breaker writes are local activities.
"""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import TcpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from tests.helpers.coordination import coordinator_history, wait_all_finished
from tests.helpers.recoveries import patch_markers
from tests.helpers.servers import free_port
from tests.helpers.workers import orchestrator_on
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryPolicy, RecoveryStrategy

pytestmark = pytest.mark.timeout(60)
ATTEMPTS = 4
# What the issue measured before the change: about 33 events per attempt.
EVENTS_PER_ATTEMPT_BEFORE = 33


async def test_a_failing_recovery_reports_only_its_end_and_halves_its_events(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    policy = RecoveryPolicy(
        max_retry_attempts=ATTEMPTS, initial_delay_ms=50, max_delay_ms=50,
        health_check=TcpHealthCheck(host="127.0.0.1", port=free_port(), timeout_ms=300),
    )
    store.set_state(service, BreakerState.OPEN)  # a recovery creates no breaker
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, RecoveryStrategy.EXPONENTIAL_BACKOFF, policy=policy)
        final = await wait_all_finished(orch, timeout=30)
        coordinator = await coordinator_history(orch)
    assert final["recent_history"][-1]["attempt_number"] == ATTEMPTS
    handle = dev_env.client.get_workflow_handle(recovery_workflow_id(service))
    history = await handle.fetch_history()
    types = [EventType.Name(e.event_type) for e in history.events]
    # Pinned to its build, a recovery needs no patch branch but the one that lets 0.8's
    # unversioned runs move onto this build (workflows/recovery_notices.py).
    assert patch_markers(history) == {"recovery-notifications"}
    assert types.count("EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED") == 1
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" in types  # the health check stays an activity
    assert types.count("EVENT_TYPE_MARKER_RECORDED") >= 2 * ATTEMPTS  # breaker writes
    # One attempt with its backoff: from one timer's firing to the next's.
    fired = [i for i, name in enumerate(types) if name == "EVENT_TYPE_TIMER_FIRED"]
    assert len(fired) == ATTEMPTS - 1
    assert fired[2] - fired[1] <= EVENTS_PER_ATTEMPT_BEFORE / 2
    # Start, search attributes and the end included: at most half the old figure, not
    # counting the ``failed`` notification (docs/notifications.md): its patch marker, the
    # child's start (initiated, started) and the workflow task that hears of it.
    assert types.count("EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED") == 1
    assert types.count("EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED") == 1
    announcement = 1 + 2 + 3
    assert (len(types) - announcement) / ATTEMPTS <= EVENTS_PER_ATTEMPT_BEFORE / 2
    reports = [
        e for e in coordinator.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == "recovery_report"
    ]
    assert len(reports) == 1


async def test_a_manual_recovery_reports_each_state_change(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    policy = RecoveryPolicy(
        max_retry_attempts=2,
        health_check=TcpHealthCheck(host="127.0.0.1", port=free_port(), timeout_ms=300),
    )
    store.set_state(service, BreakerState.OPEN)
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(service, RecoveryStrategy.MANUAL, policy=policy)
        first = await orch.execute_recovery(service)
        assert not first.success
        status = await orch.get_recovery_status()
        assert status["services"][service]["state"] == "awaiting_manual"
        assert status["services"][service]["attempt_count"] == 1
        await orch.execute_recovery(service)
        await wait_all_finished(orch, timeout=30)
    history = await dev_env.client.get_workflow_handle(recovery_workflow_id(service)).fetch_history()
    signalled = [
        e for e in history.events
        if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    ]
    # in_progress and back to awaiting_manual after attempt 1, in_progress for 2, the end.
    assert len(signalled) == 4
