"""OpenTelemetry tracing: a recovery's workflow and activities become spans."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.connection import connect
from starter.client.recoveries import final_result
from starter.client.tracing import tracing_from_env, tracing_interceptors
from tests.helpers.recoveries import start_recovery
from worker import build_worker
from workflows.models import RecoveryState, RecoveryStrategy, ServiceRecoveryInput

pytestmark = pytest.mark.timeout(60)


async def test_a_recovery_and_its_activities_are_traced(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    client = await connect(
        dev_env.client.service_client.config.target_host,
        interceptors=tracing_interceptors(provider.get_tracer("test")),
    )
    store.set_state(service, BreakerState.OPEN)  # a recovery creates no breaker
    async with build_worker(client, store, task_queue=task_queue):
        handle = await start_recovery(
            client, task_queue,
            ServiceRecoveryInput(service_name=service, strategy=RecoveryStrategy.IMMEDIATE),
        )
        assert (await final_result(handle)).state is RecoveryState.SUCCEEDED
    names = [span.name for span in spans.get_finished_spans()]
    assert "StartWorkflow:ServiceRecovery" in names
    assert "RunWorkflow:ServiceRecovery" in names
    assert names.count("RunActivity:set_breaker_state") == 2  # reset, then close
    trace_ids = {span.context.trace_id for span in spans.get_finished_spans()}
    assert len(trace_ids) == 1, "one trace, from the start to the last activity"


def test_tracing_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOVERY_TRACING", raising=False)
    assert tracing_from_env() is False
    monkeypatch.setenv("RECOVERY_TRACING", "1")
    assert tracing_from_env() is True
