"""The Temporal server SIGKILLed mid-backoff and mid-activity (issue 10, item 2).

A real ``temporal server start-dev`` on its SQLite file and a real worker process. The
coordinator holds two running recoveries (one waiting out a 12 s backoff, one whose
health check a gated server holds open), two queued behind them (no slot free), a
policy per service plus one for a service with no recovery, a default policy, and
two finished recoveries in its recent history. The server is SIGKILLed and started
again on the same file; the worker process stays up and reconnects by itself.

What the coordinator answers after the restart (``get_recovery_status`` minus its
timestamp, ``get_recovery_policy`` of every service and of the default) is what it
answered before; then every recovery finishes, each attempt once and on time, the
queued ones in priority order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from activities.health_check_specs import HttpHealthCheck
from starter.client.orchestrator import RecoveryOrchestrator
from tests.helpers.servers import GatedHealthServer, gated_health_server, health_server
from tests.helpers.waiting import eventually
from tests.reliability.kills_cluster import Cluster, running_cluster
from tests.reliability.kills_verdict import examine
from workflows.constants import COORDINATOR_WORKFLOW_ID, recovery_workflow_id
from workflows.models import RecoveryPolicy
from workflows.service_recovery import ServiceRecovery

BACKOFF_MS = 12_000  # >= 10 s: the coordinator's status shows when it ends
SLOW_CHECK_MS = 20_000
DOWN_S = 2.0  # how long the server stays dead
WAIT_S = 60.0


@pytest_asyncio.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A dev server and a worker (SQLite breaker store)."""
    async with running_cluster(tmp_path_factory.mktemp("kills-server")) as running:
        yield running


def check_policy(url: str, *, attempts: int = 3, delay_ms: int = 1000, timeout_ms: int = 2000) -> RecoveryPolicy:
    """An HTTP check of ``url``; ``attempts`` attempts ``delay_ms`` apart (linear)."""
    return RecoveryPolicy(
        max_retry_attempts=attempts,
        initial_delay_ms=delay_ms,
        max_delay_ms=delay_ms,
        health_check=HttpHealthCheck(url=url, timeout_ms=timeout_ms),
    )


async def coordinator_answers(client: Client, names: list[str]) -> dict[str, Any]:
    """Return the coordinator's status (minus its timestamp) and every policy it holds."""
    coordinator = client.get_workflow_handle(COORDINATOR_WORKFLOW_ID)
    status = await coordinator.query("get_recovery_status")
    status.pop("timestamp")
    policies = {
        name: await coordinator.query("get_recovery_policy", {"service_name": name})
        for name in [*names, "never-scheduled"]
    }
    return {"status": status, "policies": policies}


async def answering(client: Client, names: list[str]) -> dict[str, Any] | None:
    """``coordinator_answers``, or None while the server or the worker is not back yet."""
    try:
        return await asyncio.wait_for(coordinator_answers(client, names), 5)
    except Exception:
        return None


async def phase_of(client: Client, service: str) -> str | None:
    """Return the recovery's phase, or None before it runs."""
    try:
        status = await client.get_workflow_handle(recovery_workflow_id(service)).query(ServiceRecovery.status)
    except Exception:
        return None
    return status.phase.value


async def arrived(gate: GatedHealthServer) -> None:
    """Wait until the gated server holds a request."""
    await asyncio.wait_for(gate.arrived.wait(), WAIT_S)


@pytest.mark.timeout(150)
async def test_a_server_killed_mid_backoff_and_mid_activity_loses_nothing(cluster: Cluster) -> None:
    tag = uuid.uuid4().hex[:6]
    done, failed, backoff, activity, queued_low, queued_high, idle = (
        f"srv-{role}-{tag}" for role in ("done", "failed", "backoff", "activity", "low", "high", "idle")
    )
    names = [done, failed, backoff, activity, queued_low, queued_high, idle]
    async with health_server([200]) as healthy, health_server([503, 200]) as flaky, health_server(
        [503]
    ) as sick, gated_health_server() as gate:
        orchestrator = RecoveryOrchestrator(
            default_policy=check_policy(healthy.url, attempts=4),
            client=cluster.client,
            max_concurrent_recoveries=2,
        )
        await orchestrator.start()
        cluster.open_breakers(names)
        await orchestrator.set_recovery_policy(idle, check_policy(healthy.url, attempts=7))
        await orchestrator.set_recovery_policy(queued_low, check_policy(healthy.url, attempts=2))
        # Two finished recoveries in the recent history, in this order (one at a time: side
        # by side, either may finish first): one succeeded, one failed.
        for name, url, attempts in ((done, healthy.url, 3), (failed, sick.url, 1)):
            await orchestrator.schedule_recovery(name, policy=check_policy(url, attempts=attempts))
            await eventually(
                lambda: orchestrator.get_recovery_status(max_staleness=0),
                lambda s: s["active_recoveries"] == 0,
                timeout=WAIT_S,
            )
        # Two running (every slot taken), two queued behind them.
        await orchestrator.schedule_recovery(backoff, policy=check_policy(flaky.url, delay_ms=BACKOFF_MS))
        await orchestrator.schedule_recovery(
            activity, policy=check_policy(gate.url, timeout_ms=SLOW_CHECK_MS)
        )
        await orchestrator.schedule_recovery(queued_low, priority=3)
        await orchestrator.schedule_recovery(queued_high, priority=1, policy=check_policy(healthy.url))
        await arrived(gate)
        await eventually(
            lambda: phase_of(cluster.client, backoff), lambda p: p == "backoff", timeout=WAIT_S
        )
        before = await eventually(
            lambda: coordinator_answers(cluster.client, names),
            lambda a: a["status"]["services"][backoff]["next_attempt_at"] is not None,
            timeout=WAIT_S,
        )
        assert before["status"]["queued_recoveries"] == 2

        cluster.kill_server()
        await asyncio.sleep(DOWN_S)
        client = await cluster.start_server()
        after = await eventually(lambda: answering(client, names), lambda a: a is not None, timeout=WAIT_S)
        assert after == before

        # The held check goes on (or is retried); let it pass, and everything finishes.
        gate.release(200)
        final = await eventually(
            lambda: RecoveryOrchestrator(client=client).get_recovery_status(max_staleness=0),
            lambda s: s["active_recoveries"] == 0,
            timeout=WAIT_S,
        )
        verdicts = {
            name: await examine(client, name) for name in (backoff, activity, queued_low, queued_high)
        }
        problems = [p for verdict in verdicts.values() for p in verdict.problems]
        problems += [f"{n}: ended {v.result.state.value}" for n, v in verdicts.items() if not v.result.success]
        assert not problems, "\n".join(problems)
        started = {name: verdict.timeline.started_at for name, verdict in verdicts.items()}
        assert started[queued_high] <= started[queued_low], "the queue's priority order was lost"
        history = [(entry["service_name"], entry["state"]) for entry in final["recent_history"]]
        assert history[:2] == [(done, "succeeded"), (failed, "failed")]
        assert sorted(history[2:]) == sorted(
            (name, "succeeded") for name in (backoff, activity, queued_low, queued_high)
        )
        assert (flaky.requests, healthy.requests) == (2, 3)
