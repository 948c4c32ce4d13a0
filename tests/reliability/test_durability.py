"""Kill the server and the worker in the middle of a backoff: the recovery goes on.

This is what ``make dev`` promises: stop it, start it again, every recovery
resumes where it was. Real processes, SQLite persistence on disk, SIGKILL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.processes import DevServer, WorkerProcess, connect_when_up
from tests.helpers.recoveries import is_running
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from workflows.constants import COORDINATOR_WORKFLOW_ID
from workflows.models import RecoveryPolicy, RecoveryResult

pytestmark = pytest.mark.timeout(150)


async def test_a_recovery_survives_sigkill_of_server_and_worker_mid_backoff(
    killable_server: DevServer, tmp_path: Path, service: str
) -> None:
    worker = WorkerProcess(killable_server.address, tmp_path / "breakers.db")
    worker.start()
    try:
        client = await connect_when_up(killable_server.address)
        coordinator = client.get_workflow_handle(COORDINATOR_WORKFLOW_ID)
        # The worker started it (a fresh server and worker: slow on a loaded 2-core machine).
        await eventually(lambda: is_running(coordinator), bool, timeout=60)

        async with health_server([503, 200]) as health:
            orchestrator = RecoveryOrchestrator(client=client)
            await orchestrator.start()
            policy = RecoveryPolicy(
                initial_delay_ms=4000, health_check=HttpHealthCheck(url=health.url)
            )
            opened = SQLiteBreakerStore(tmp_path / "breakers.db")
            opened.set_state(service, BreakerState.OPEN)  # a recovery creates no breaker
            opened.close()
            await orchestrator.schedule_recovery(service, policy=policy)
            recovery = client.get_workflow_handle(f"recovery-{service}")
            # A 4 s backoff is the recovery's own news (the coordinator hears of 10 s+ ones).
            await eventually(
                lambda: _phase(recovery), lambda phase: phase == "backoff", timeout=30
            )
            assert health.requests == 1

            worker.kill()
            killable_server.kill()
            killable_server.start()
            worker.start()

            client = await connect_when_up(killable_server.address)
            handle = client.get_workflow_handle(f"recovery-{service}", result_type=RecoveryResult)
            result = await handle.result()
            assert result.success and result.attempt_number == 2
            assert health.requests == 2
            status = await RecoveryOrchestrator(client=client).get_recovery_status()
            assert status["recent_history"][-1]["service_name"] == service
            assert status["recent_history"][-1]["state"] == "succeeded"
    finally:
        code = worker.stop() if worker.process and worker.process.poll() is None else 0
    assert code == 0, Path(worker.log_path).read_text()[-2000:]


async def _phase(handle: WorkflowHandle[Any, Any]) -> str | None:
    try:
        status = await handle.query("status")
    except Exception:
        return None  # not started yet
    return str(status["phase"])
