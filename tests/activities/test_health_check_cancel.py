"""An operator's cancel during a health check: the check stops, and the worker logs one line.

The recovery closes at once; its check learns of it at its next heartbeat, when the
server no longer knows the activity. The SDK logged that bare cancellation as a failed
activity with a traceback of its own (httpx's) on every such cancel.
"""

from __future__ import annotations

import logging

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.recoveries import recovery_status
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import orchestrator_on
from workflows.models import RecoveryPolicy

pytestmark = pytest.mark.timeout(60)


async def test_a_cancel_during_a_health_check_logs_one_line_not_a_traceback(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="temporalio.activity")
    async with health_server(hang=True) as hung, orchestrator_on(dev_env, store, task_queue) as orch:
        check = HttpHealthCheck(url=hung.url, timeout_ms=30_000)
        await orch.schedule_recovery(
            service, policy=RecoveryPolicy(max_retry_attempts=1, health_check=check)
        )

        async def phase() -> str | None:
            status = await recovery_status(dev_env.client, service)
            return None if status is None else status.phase.value

        await eventually(phase, lambda p: p == "health_check", timeout=20)
        await orch.cancel_recovery(service)

        async def completed() -> list[logging.LogRecord]:
            failed = "Completing activity as failed"  # the SDK's words, at WARNING or DEBUG
            return [r for r in caplog.records if r.getMessage().startswith(failed)]

        (record,) = await eventually(completed, lambda records: len(records) == 1, timeout=20)
    assert record.levelno == logging.DEBUG, "a cancel by the recovery's close is not a warning"
    assert "its recovery has closed" in str(record.exc_info[1] if record.exc_info else "")
