"""The coordinator through three worker SIGKILLs (issue 10, item 3).

Fifty services of mixed priorities are scheduled in one batch on a coordinator with 3
slots; every health check takes half a second, one service in ten fails. While they run,
the worker process is SIGKILLed and a new one started, three times. Proven from what
the server recorded, not from what the coordinator says of itself:

- all fifty end in a final state (Completed, or Failed for the failing ones);
- each ``recovery-<name>`` ran exactly once (visibility lists one run; the
  coordinator's histories, across any continue-as-new, hold one child start for it);
- the coordinator started them in priority order, FIFO within a priority: every one
  of them was queued from the start, so whenever a slot was free it had to go to the
  best waiting service, and the start order is exactly that order;
- never more than three recoveries worked at once (their breaker writes, by the
  server's timestamps, never overlap four deep);
- each recovery made each attempt once; a check run again was one lost with a killed
  worker (noticed by its heartbeat), and the health endpoint saw no more requests
  than runs of the check.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus

from activities.health_check_specs import HttpHealthCheck
from starter.client.coordinator_client import CoordinatorClient
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.waiting import eventually
from tests.reliability.kills_cluster import Cluster, Outage, running_cluster
from tests.reliability.kills_health import SlowHealthServer, slow_health_server
from tests.reliability.kills_history import Timeline
from tests.reliability.kills_verdict import Verdict, examine
from workflows.constants import COORDINATOR_WORKFLOW_ID, recovery_workflow_id
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryInput
from workflows.models import RecoveryPolicy

SERVICES = 50
SLOTS = 3
PRIORITIES = 5
CHECK_S = 0.5  # each health check answers after this long
FAILING_EVERY = 10  # one service in ten fails (its check answers 503)
KILL_AFTER_FINISHED = (8, 20, 32)  # kill and restart the worker as these have finished
RECOVERY = "WorkflowType='ServiceRecovery'"


@pytest_asyncio.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A dev server and a worker (SQLite breaker store)."""
    async with running_cluster(tmp_path_factory.mktemp("kills-coordinator")) as running:
        yield running


async def finished_count(client: Client) -> int:
    """Return how many recoveries have closed, as visibility lists them."""
    return (await client.count_workflows(f"{RECOVERY} AND ExecutionStatus!='Running'")).count


async def child_start_order(client: Client) -> list[str]:
    """Return the workflow ids the coordinator started, in order, across all its runs."""
    runs = [run async for run in client.list_workflows(f"WorkflowId='{COORDINATOR_WORKFLOW_ID}'")]
    order: list[str] = []
    for run in sorted(runs, key=lambda r: r.start_time):
        handle = client.get_workflow_handle(COORDINATOR_WORKFLOW_ID, run_id=run.run_id)
        async for event in handle.fetch_history_events():
            if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                order.append(event.start_child_workflow_execution_initiated_event_attributes.workflow_id)
    return order


def most_at_once(timelines: list[Timeline]) -> int:
    """Return how many recoveries were between their first and their last breaker write at once."""
    edges: list[tuple[datetime, int]] = []
    for timeline in timelines:
        first, last = timeline.attempts[0].reset.at, timeline.attempts[-1].end
        assert last is not None
        edges += [(first, 1), (last.at, -1)]
    running = most = 0
    for _, step in sorted(edges):
        running += step
        most = max(most, running)
    return most


async def examined(client: Client, name: str, endpoint: SlowHealthServer) -> Verdict:
    """Examine the recovery (no timing: it lived through three kills); also count its checks.

    A check lost with a killed worker is run again once its heartbeats stop; the lost
    run may have died before its request went out, so the endpoint sees one request per
    attempt at least and one per run of the check at most.
    """
    verdict = await examine(client, name, timed=False)
    checks = [a.check for a in verdict.timeline.attempts if a.check is not None]
    runs = sum(check.tries for check in checks)
    if not len(checks) <= (made := endpoint.requests_of(name)) <= runs:
        verdict.problems.append(f"{name}: {made} health requests for {len(checks)} checks run {runs} times")
    for check in checks:
        if check.tries > 1 and check.retried_after != "HEARTBEAT":
            verdict.problems.append(f"{name}: a check was run again after {check.retried_after}")
    return verdict


@pytest.mark.timeout(200)
async def test_fifty_recoveries_through_three_worker_kills_keep_order_and_run_once(
    cluster: Cluster,
) -> None:
    tag = uuid.uuid4().hex[:6]
    shuffled = random.Random(tag).sample(range(SERVICES), SERVICES)
    services = [f"crd-{tag}-{i:02}" for i in shuffled]  # scheduled in this order
    priority = {name: i % PRIORITIES for name, i in zip(services, shuffled)}
    failing = {name for name, i in zip(services, shuffled) if i % FAILING_EVERY == 0}
    client = cluster.client
    async with slow_health_server(CHECK_S) as healthy, slow_health_server(CHECK_S, 503) as sick:

        def endpoint(name: str) -> SlowHealthServer:
            return sick if name in failing else healthy

        orchestrator = RecoveryOrchestrator(client=client, max_concurrent_recoveries=SLOTS)
        await orchestrator.start()
        requests = [
            ScheduleRecoveryInput(
                service_name=name,
                priority=priority[name],
                policy=RecoveryPolicy(
                    max_retry_attempts=1,
                    health_check=HttpHealthCheck(
                        url=endpoint(name).url(name), timeout_ms=5000
                    ),
                ),
            )
            for name in services
        ]
        cluster.open_breakers(services)
        await CoordinatorClient(client).schedule_recoveries(ScheduleRecoveriesInput(recoveries=requests))

        outages: list[Outage] = []
        for threshold in KILL_AFTER_FINISHED:
            await eventually(lambda: finished_count(client), lambda n: n >= threshold, timeout=60, interval=0.2)
            outages.append(await cluster.restart_worker())
        await eventually(lambda: finished_count(client), lambda n: n >= SERVICES, timeout=90, interval=0.5)
        status = await eventually(
            lambda: orchestrator.get_recovery_status(max_staleness=0),
            lambda s: s["active_recoveries"] == 0,
            timeout=30,
        )

        runs = [run async for run in client.list_workflows(RECOVERY)]
        ids = sorted(run.id for run in runs)
        assert ids == sorted(recovery_workflow_id(name) for name in services), "a recovery ran twice or never"
        expected_status = {
            recovery_workflow_id(name): (
                WorkflowExecutionStatus.FAILED if name in failing else WorkflowExecutionStatus.COMPLETED
            )
            for name in services
        }
        assert {run.id: run.status for run in runs} == expected_status

        order = await child_start_order(client)
        best_first = sorted(services, key=lambda name: priority[name])  # stable: FIFO within one
        assert order == [recovery_workflow_id(name) for name in best_first], "started out of priority order"

        verdicts = await asyncio.gather(*(examined(client, name, endpoint(name)) for name in services))
        problems = [problem for verdict in verdicts for problem in verdict.problems]
        assert not problems, "\n".join(problems)
        assert most_at_once([verdict.timeline for verdict in verdicts]) <= SLOTS
        assert len(status["recent_history"]) == 10
        retried = sum(healthy.requests.values()) + sum(sick.requests.values()) - SERVICES
    print(f"{len(outages)} worker kills; {retried} checks lost with a worker and run again")
