"""The worker's Prometheus endpoint after recoveries of every ending, scraped over HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.connection import connect, metrics_runtime
from starter.client.fleet_metrics import AWAITING_QUERY, publish_fleet_gauges
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.prometheus import scrape, value
from tests.helpers.servers import free_port, health_server
from tests.helpers.waiting import eventually
from worker import build_worker
from workflows.models import RecoveryPolicy, RecoveryStrategy

pytestmark = pytest.mark.timeout(90)


async def test_the_endpoint_counts_recoveries_by_strategy_and_outcome(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    client = await connect(dev_env.client.service_client.config.target_host, runtime=runtime)
    stop = asyncio.Event()
    gauges = asyncio.create_task(
        publish_fleet_gauges(client, runtime, stop, interval=timedelta(milliseconds=300))
    )
    orchestrator = RecoveryOrchestrator(
        client=client, task_queue=task_queue, coordinator_workflow_id=f"coordinator-{task_queue}"
    )
    # The gauge is namespace-wide: other tests' MANUAL recoveries may still be waiting.
    before = (await client.count_workflows(AWAITING_QUERY)).count
    async with health_server([503]) as down, build_worker(client, store, task_queue=task_queue):
        await orchestrator.start()
        await orchestrator.schedule_recovery(f"{service}-ok", RecoveryStrategy.IMMEDIATE)
        failing = RecoveryPolicy(
            max_retry_attempts=2, initial_delay_ms=100, max_delay_ms=100,
            health_check=HttpHealthCheck(url=down.url),
        )
        await orchestrator.schedule_recovery(f"{service}-bad", policy=failing)
        await orchestrator.schedule_recovery(f"{service}-manual", RecoveryStrategy.MANUAL)
        await orchestrator.execute_recovery(f"{service}-ok")
        await orchestrator.execute_recovery(f"{service}-bad")
        metrics = await eventually(
            lambda: asyncio.to_thread(scrape, address),
            lambda text: value(text, "recovery_awaiting_operator") == before + 1,
        )
        await orchestrator.cancel_recovery(f"{service}-manual")
        metrics = await eventually(
            lambda: asyncio.to_thread(scrape, address),
            lambda text: value(text, "recovery_ended_total", outcome="cancelled") == 1
            and value(text, "recovery_awaiting_operator") == before,
        )
        await orchestrator.stop()
    stop.set()
    await gauges
    assert value(metrics, "recovery_started_total", strategy="immediate") == 1
    assert value(metrics, "recovery_started_total", strategy="exponential_backoff") == 1
    assert value(metrics, "recovery_ended_total", strategy="immediate", outcome="succeeded") == 1
    assert value(metrics, "recovery_ended_total", strategy="exponential_backoff", outcome="failed") == 1
    assert value(metrics, "recovery_ended_total", strategy="manual", outcome="cancelled") == 1
    assert value(metrics, "recovery_attempts_total", strategy="exponential_backoff", result="failure") == 2
    assert value(metrics, "recovery_attempts_total", strategy="immediate", result="success") == 1
    assert value(metrics, "recovery_backoff_seconds_count", strategy="exponential_backoff") == 1
    assert value(metrics, "recovery_backoff_seconds_bucket", strategy="exponential_backoff", le="300") == 1
    assert value(metrics, "recovery_awaiting_operator") == before
    assert value(metrics, "temporal_workflow_completed_total") >= 1, "the SDK's own metrics too"
