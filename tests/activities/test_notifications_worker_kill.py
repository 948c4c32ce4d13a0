"""Once per event across worker kills, and no secret in any history or log (SPEC §10).

Real processes: a dev server and ``python -m worker`` with ``RECOVERY_NOTIFY_URLS``,
SIGKILLed after each announcement and once in the middle of a delivery's retry
backoff; the loopback endpoint must still receive every event exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from activities.health_check_specs import HttpHealthCheck
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.notify_sink import notify_sink
from tests.helpers.processes import DevServer, WorkerProcess, connect_when_up
from tests.helpers.recoveries import is_running
from tests.helpers.servers import health_server
from tests.helpers.waiting import eventually
from workflows.constants import COORDINATOR_WORKFLOW_ID, recovery_workflow_id
from workflows.models import ApproveInput, RecoveryPolicy, RecoveryResult, RecoveryStrategy
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(180)

# The webhook's secret, as a real one is: a token in its path.
TOKEN = "hooks-T0KEN-5ecret-0f-the-webhook"


def restarted(worker: WorkerProcess) -> None:
    """SIGKILL the worker (no graceful shutdown) and start another on the same settings."""
    worker.kill()
    worker.start()


async def closed(client: Client, workflow_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    await eventually(
        lambda: handle.describe(),
        lambda d: d.status is WorkflowExecutionStatus.COMPLETED,
        timeout=60,
    )


async def test_each_event_arrives_once_across_worker_kills_and_no_secret_is_recorded(
    killable_server: DevServer, tmp_path: Path, service: str
) -> None:
    # The first post is answered 500: the delivery is retried a second later, and the
    # worker is killed in that second.
    async with notify_sink([500, 200]) as sink, health_server([503, 200]) as health:
        worker = WorkerProcess(killable_server.address, tmp_path / "breakers.db")
        worker.env["RECOVERY_NOTIFY_URLS"] = sink.url(f"/{TOKEN}")
        worker.start()
        try:
            client = await connect_when_up(killable_server.address)
            coordinator = client.get_workflow_handle(COORDINATOR_WORKFLOW_ID)
            await eventually(lambda: is_running(coordinator), bool, timeout=60)
            orchestrator = RecoveryOrchestrator(client=client)
            await orchestrator.start()
            policy = RecoveryPolicy(
                max_retry_attempts=2, health_check=HttpHealthCheck(url=health.url)
            )
            await orchestrator.schedule_recovery(service, RecoveryStrategy.MANUAL, policy=policy)
            handle = client.get_workflow_handle(
                recovery_workflow_id(service), result_type=RecoveryResult
            )

            async def refused() -> int:
                return sink.refused

            await eventually(refused, lambda n: n == 1, timeout=90)
            restarted(worker)  # in the delivery's backoff
            await sink.wait_for(1, timeout=90)
            await closed(client, f"notify-{sink.bodies()[0]['event_id']}")
            # After the announcement and its recorded delivery. (Killed between the post and
            # its record, a worker would post again, with the same event_id: at least once.)
            restarted(worker)

            await handle.signal(ServiceRecovery.approve, ApproveInput(operator="alice"))
            await sink.wait_for(2, timeout=90)
            await closed(client, f"notify-{sink.bodies()[1]['event_id']}")
            restarted(worker)
            await handle.signal(ServiceRecovery.approve, ApproveInput(operator="bob"))
            assert (await handle.result()).success
            await sink.wait_for(3, timeout=90)
            bodies = sink.bodies()
            for body in bodies:
                await closed(client, f"notify-{body['event_id']}")
            histories = [await handle.fetch_history()] + [
                await client.get_workflow_handle(f"notify-{b['event_id']}").fetch_history()
                for b in bodies
            ]
        finally:
            code = worker.stop() if worker.process and worker.process.poll() is None else 0
    assert code == 0
    assert [(b["event"], b["attempt"]) for b in sink.bodies()] == [
        ("awaiting_operator", 1),
        ("awaiting_operator", 2),
        ("recovered", 2),
    ]
    assert sink.refused == 1
    for history in histories:
        assert TOKEN not in history.to_json()
    log = worker.log_path.read_text()
    assert "notify" in log.lower() or "polling task queue" in log, "the log was written"
    assert TOKEN not in log
