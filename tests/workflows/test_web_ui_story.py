"""What the Web UI shows of a recovery: Temporal's status per ending, current details, summaries.

Everything is read back the way the Web UI reads it: ``describe`` for the status, the
``__temporal_workflow_metadata`` query for the current details, and the history's
user metadata for activity summaries.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.orchestrator import RecoveryOrchestrator
from starter.client.recoveries import final_result, recovery_handle
from tests.helpers.breakers import state_of
from tests.helpers.coordination import coordinator_history
from tests.helpers.histories import record_history
from tests.helpers.paths import REPO
from tests.helpers.recoveries import start_recovery, status_of
from tests.helpers.servers import gated_health_server, health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.service_recovery import ServiceRecovery
from workflows.models import (
    RecoveryPhase,
    RecoveryPolicy,
    RecoveryState,
    RecoveryStrategy,
    ServiceRecoveryInput,
)

pytestmark = pytest.mark.timeout(90)


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """Read the current details as the Web UI does (the SDK's metadata query)."""
    metadata = await handle.query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return str(metadata.current_details)


async def test_a_failed_recovery_ends_failed_with_its_result_in_the_details_and_says_so(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with health_server([503]) as server, running_worker(dev_env.client, store, task_queue):
        policy = RecoveryPolicy(
            max_retry_attempts=3, initial_delay_ms=1500, max_delay_ms=1500,
            health_check=HttpHealthCheck(url=server.url),
        )
        handle = await start_recovery(
            dev_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        await eventually(lambda: status_of(handle), lambda s: s.phase is RecoveryPhase.BACKOFF)
        waiting = await current_details(handle)
        result = await final_result(handle)
        ended = await current_details(handle)
        description = await handle.describe()
        record_history(await handle.fetch_history(), "service_recovery_ends_failed")
        # Activities, and the breaker writes (local activities: markers), each with its summary.
        summaries = [
            json.loads(event.user_metadata.summary.data or b'""')
            async for event in handle.fetch_history_events()
            if event.HasField("activity_task_scheduled_event_attributes")
            or event.HasField("marker_recorded_event_attributes")
        ]
    assert waiting.startswith("Backoff before attempt 2/3 until ")
    assert f"Last error: health check failed: GET {server.url} answered 503" in waiting
    assert ended.startswith("Recovery failed after 3 attempt(s).")
    assert description.status is WorkflowExecutionStatus.FAILED
    assert result.state is RecoveryState.FAILED and result.attempt_number == 3
    assert f"http GET {server.url}" in summaries
    assert summaries.count("reset breaker to half-open") == 3


async def test_a_manual_recovery_says_it_waits_for_an_operator_and_how_to_approve(
    time_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    async with running_worker(time_env.client, store, task_queue):
        handle = await start_recovery(
            time_env.client,
            task_queue,
            ServiceRecoveryInput(service_name=service, strategy=RecoveryStrategy.MANUAL),
        )
        await eventually(lambda: status_of(handle), lambda s: s.state is RecoveryState.AWAITING_MANUAL)
        details = await current_details(handle)
        await handle.cancel()
    assert details.startswith(f"**Waiting for an operator** to approve attempt 1/5 of `{service}`.")
    assert f"`recoveryctl approve {service} --operator <you>`" in details
    assert "signal `approve`" in details


async def test_temporal_cancellation_ends_canceled_with_its_reason_and_the_breaker_open(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    store.set_state(service, BreakerState.OPEN)  # a recovery creates no breaker
    async with gated_health_server() as health, running_worker(dev_env.client, store, task_queue):
        policy = RecoveryPolicy(health_check=HttpHealthCheck(url=health.url, timeout_ms=30_000))
        handle = await start_recovery(
            dev_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
        )
        await asyncio.wait_for(health.arrived.wait(), timeout=30)
        assert state_of(store, service) is BreakerState.HALF_OPEN
        await handle.cancel(reason="db failover in progress")
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        result = await final_result(handle)
        description = await handle.describe()
        record_history(await handle.fetch_history(), "service_recovery_temporal_cancel_reopens")
    assert description.status is WorkflowExecutionStatus.CANCELED
    assert result.state is RecoveryState.CANCELLED
    assert result.error_message == "cancelled: db failover in progress"
    assert state_of(store, service) is BreakerState.OPEN, "the reset is undone"


async def test_the_products_cancel_ends_the_workflow_canceled_and_the_coordinator_keeps_the_reason(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, store: SQLiteBreakerStore,
    service: str,
) -> None:
    store.set_state(service, BreakerState.OPEN)
    async with gated_health_server() as health:
        policy = RecoveryPolicy(health_check=HttpHealthCheck(url=health.url, timeout_ms=30_000))
        await orchestrator.schedule_recovery(service, policy=policy)
        await asyncio.wait_for(health.arrived.wait(), timeout=30)
        assert await orchestrator.cancel_recovery(service)
        handle = recovery_handle(dev_env.client, service)
        result = await asyncio.wait_for(final_result(handle), timeout=30)
        description = await handle.describe()
        record_history(await coordinator_history(orchestrator), "coordinator_cancel_through_temporal")
    assert description.status is WorkflowExecutionStatus.CANCELED
    assert result.state is RecoveryState.CANCELLED
    # The operator's reason, not the server's wording of a request from another workflow.
    assert result.error_message == "cancelled: cancelled by operator"
    status = await orchestrator.get_recovery_status()
    [ended] = [r for r in status["recent_history"] if r["service_name"] == service]
    assert ended["state"] == "cancelled" and ended["error_message"].startswith("cancelled: ")
    assert state_of(store, service) is BreakerState.OPEN


async def test_the_coordinator_records_a_failed_childs_own_result(
    dev_env: WorkflowEnvironment, orchestrator: RecoveryOrchestrator, service: str
) -> None:
    async with health_server([503]) as server:
        policy = RecoveryPolicy(
            max_retry_attempts=2, initial_delay_ms=50, max_delay_ms=50,
            health_check=HttpHealthCheck(url=server.url),
        )
        await orchestrator.schedule_recovery(service, policy=policy)
        result = await orchestrator.execute_recovery(service)
        status = await eventually(
            orchestrator.get_recovery_status,
            lambda s: any(r["service_name"] == service for r in s["recent_history"]),
        )
    assert result.state is RecoveryState.FAILED and result.attempt_number == 2
    [ended] = [r for r in status["recent_history"] if r["service_name"] == service]
    assert ended["state"] == "failed" and ended["attempt_number"] == 2
    assert "answered 503" in ended["error_message"]
    description = await recovery_handle(dev_env.client, service).describe()
    assert description.status is WorkflowExecutionStatus.FAILED


@pytest.mark.timeout(180)
async def test_the_screenshot_script_shows_the_current_details_page(tmp_path: Path) -> None:
    """`make screenshots` regenerates docs/web-ui.md's pictures; here one page, into tmp."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed here: the screenshot script is not run")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "scripts/web_ui_screenshots.py", "--out", str(tmp_path),
        "--only", "manual-recovery-details",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=150)
    assert process.returncode == 0, err.decode()[-2000:]
    shot = tmp_path / "manual-recovery-details.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30_000


async def test_a_cancel_signal_and_a_temporal_cancel_together_end_canceled_with_the_first_reason(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    """Both wait in history before the first workflow task: the signal's reason, Canceled.

    (Sent apart, a signal that ends the recovery before the cancellation request arrives
    ends it Completed: the request then finds nothing running, as the README says.)
    """
    from tests.helpers.policies import blocking_policy
    from workflows.models import CancelInput

    handle = await start_recovery(
        dev_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=blocking_policy())
    )
    await handle.signal(ServiceRecovery.cancel, CancelInput(reason="by signal"))
    await handle.cancel(reason="by temporal")
    async with running_worker(dev_env.client, store, task_queue):
        result = await asyncio.wait_for(final_result(handle), timeout=20)
        description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.CANCELED
    assert result.error_message == "cancelled: by signal"
    assert store.get_state(service) is None, "stopped before it touched the breaker"


async def test_a_coordinator_run_that_is_not_the_live_one_says_so(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    from workflows.coordinator import RecoveryCoordinator

    client = dev_env.client
    async with running_worker(client, store, task_queue):
        refused = await client.start_workflow(
            "RecoveryCoordinator", {"config": {"queue_limit": 0}},
            id=f"coordinator-refused-{task_queue}", task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError):
            await refused.result()
        page = await current_details(refused)
        assert page.startswith("**Not the live run**: this run did not start"), page

        live = await client.start_workflow(
            RecoveryCoordinator.run, id=f"coordinator-live-{task_queue}", task_queue=task_queue
        )
        page = await eventually(lambda: current_details(live), lambda p: "running" in p)
        assert not page.startswith("**Not the live run**"), page
        await live.terminate("test over")
