"""The worker SIGKILLed at every phase of an attempt (issue 10, item 1).

Five recoveries run on one real worker process (``python -m worker`` on a real dev
server, its breaker store a real Redis behind ``BreakerStoreProxy``), each held at a
different phase when the worker is killed:

==========  ===================================================================
``timer``   waiting out a 10 s backoff that fires about 8 s after the kill
``reset``   its reset to half-open in flight (held before Redis: never landed)
``check``   its health check in flight (a gated server holds the request open)
``reopen``  its re-open in flight (held before Redis: never landed)
``between`` between its attempt and its next timer: the re-open landed in Redis,
            the worker died before the workflow recorded it
==========  ===================================================================

A new worker is started at once. Every recovery must then finish with each attempt
recorded once (one reset, one check, one close or re-open, one timer per backoff;
the history query and the health servers agree) and on time by the server's own
clock: each step within ``ON_TIME_S`` of when it was due, a lost breaker write redone
once the dead worker's workflow task times out, a lost check retried once its
heartbeats stop (seconds), not at its 25 s activity timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.redis_store import RedisBreakerStore
from recovery_breakers.store import BreakerState
from tests.helpers.recoveries import start_recovery
from tests.helpers.redis_server import RedisServer
from tests.helpers.waiting import eventually
from tests.reliability.kills_cluster import (  # noqa: F401 (own_redis: a fixture)
    Cluster,
    Outage,
    now,
    own_redis,
    running_cluster,
)
from tests.helpers.servers import GatedHealthServer, gated_health_server, health_server
from tests.reliability.kills_history import read_timeline
from tests.reliability.kills_redis_proxy import BreakerStoreProxy, Hold, breaker_store_proxy
from tests.reliability.kills_verdict import Lost, examine
from workflows.constants import TASK_QUEUE
from workflows.models import RecoveryPolicy, RecoveryResult, RecoveryStrategy, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery

TIMER_MS = 10_000  # the timer recovery's backoff; the kill comes 2 s into it
KILL_INTO_TIMER_S = 2.0
BACKOFF_MS = 2_000  # every other recovery's backoff
SLOW_CHECK_MS = 20_000  # a held check's timeout: its activity may run 25 s
WAIT_S = 30.0


class HealthEndpoint(Protocol):
    """A test health server: its URL and the requests it has seen."""

    requests: int

    @property
    def url(self) -> str: ...


@dataclass
class Case:
    """One recovery and the phase the kill catches it in."""

    phase: str
    endpoint: HealthEndpoint
    lost: dict[int, Lost]  # by attempt: the step in flight when the worker died
    rerun_checks: int = 0  # checks run again because their worker died
    rewritten: int | None = None  # index of a breaker write that landed, then was redone
    handle: WorkflowHandle[ServiceRecovery, RecoveryResult] | None = None
    service: str = field(init=False)

    def __post_init__(self) -> None:
        self.service = f"kill-{self.phase}-{uuid.uuid4().hex[:6]}"


@pytest_asyncio.fixture(scope="module")
async def proxy(own_redis: RedisServer) -> AsyncIterator[BreakerStoreProxy]:
    """The proxy the worker reaches Redis through."""
    async with breaker_store_proxy(own_redis.port) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory, proxy: BreakerStoreProxy
) -> AsyncIterator[Cluster]:
    """A dev server and a worker whose breaker store is Redis through the proxy."""
    async with running_cluster(tmp_path_factory.mktemp("kills-worker"), proxy.url) as running:
        yield running


def policy(url: str, delay_ms: int, *, check_timeout_ms: int = 2000) -> RecoveryPolicy:
    """Linear backoff of ``delay_ms``, three attempts, an HTTP check of ``url``."""
    return RecoveryPolicy(
        max_retry_attempts=3,
        initial_delay_ms=delay_ms,
        max_delay_ms=delay_ms,
        health_check=HttpHealthCheck(url=url, timeout_ms=check_timeout_ms),
    )


async def start(client: Client, case: Case, recovery_policy: RecoveryPolicy) -> None:
    """Start the case's recovery (no coordinator: the recovery alone)."""
    case.handle = await start_recovery(
        client,
        TASK_QUEUE,
        ServiceRecoveryInput(
            service_name=case.service, strategy=RecoveryStrategy.LINEAR_BACKOFF, policy=recovery_policy
        ),
    )


async def reopened_at(handle: WorkflowHandle[Any, Any]) -> datetime:
    """Wait until attempt 1 re-opened the breaker (its backoff timer starts with it); return when."""
    while True:
        attempts = (await read_timeline(handle)).attempts
        if attempts and attempts[0].end is not None:
            return attempts[0].end.at
        await asyncio.sleep(0.1)


async def arrived(gate: GatedHealthServer) -> None:
    """Wait until the gated server holds a request."""
    await asyncio.wait_for(gate.arrived.wait(), WAIT_S)


async def answer_then_hold(
    proxy: BreakerStoreProxy, gate: GatedHealthServer, service: str, how: Hold
) -> None:
    """Fail the held check (503), hold the re-open that follows, answer later checks 200."""
    held = proxy.hold(service, how)
    gate.release(503)
    await asyncio.wait_for(held.wait(), WAIT_S)
    gate.status = 200  # the 503 is answered: the re-open it caused is held


async def problems_of(case: Case, client: Client, outage: Outage, proxy: BreakerStoreProxy) -> list[str]:
    """Return what went wrong with the case's recovery: doubled, missing or late."""
    verdict = await examine(client, case.service, outage, case.lost)
    found, attempts = [], verdict.result.attempt_number
    # One request per attempt, and one more for a check lost with its worker.
    if (made := case.endpoint.requests) != attempts + case.rerun_checks:
        found.append(f"{made} health requests for {attempts} attempts")
    # The store saw each write once, but one that landed as its worker died: the next
    # worker wrote it again (a harmless, idempotent repeat).
    expected = list(verdict.timeline.breaker_states)
    if case.rewritten is not None:
        expected.insert(case.rewritten, expected[case.rewritten])
    if (stored := proxy.states_written(case.service)) != expected:
        found.append(f"the store saw {stored}, expected {expected}")
    if not verdict.result.success:
        found.append(f"ended {verdict.result.state.value}: {verdict.result.error_message}")
    return verdict.problems + [f"{case.service}: {problem}" for problem in found]


async def requests_of(gate: GatedHealthServer) -> int:
    """Return the requests the gated server has seen."""
    return gate.requests


@pytest.mark.timeout(150)
async def test_a_worker_killed_at_every_phase_loses_and_doubles_nothing(
    cluster: Cluster, proxy: BreakerStoreProxy, own_redis: RedisServer
) -> None:
    client = cluster.client
    async with (
        health_server([503, 200]) as timer_health,
        health_server([200]) as reset_health,
        gated_health_server() as check_gate,
        gated_health_server() as reopen_gate,
        gated_health_server() as between_gate,
    ):
        cases = {
            "timer": Case("timer", timer_health, {}),
            "reset": Case("reset", reset_health, {1: "reset"}),
            "check": Case("check", check_gate, {1: "check"}, rerun_checks=1),
            "reopen": Case("reopen", reopen_gate, {1: "end"}),
            "between": Case("between", between_gate, {1: "end"}, rewritten=1),
        }
        # Each service has its open breaker (a recovery creates none), written past the
        # proxy so that it counts only the recoveries' own writes.
        store = RedisBreakerStore.from_url(own_redis.url)
        for case in cases.values():
            store.set_state(case.service, BreakerState.OPEN)
        store.close()
        reset_held = proxy.hold(cases["reset"].service, Hold.REQUEST)
        # One after the other: five first workflow tasks at once are slow on a busy machine.
        for case in cases.values():
            delay_ms = TIMER_MS if case.phase == "timer" else BACKOFF_MS
            check_ms = SLOW_CHECK_MS if isinstance(case.endpoint, GatedHealthServer) else 2000
            await start(client, case, policy(case.endpoint.url, delay_ms, check_timeout_ms=check_ms))
        gates = [check_gate, reopen_gate, between_gate]
        timer_handle = cases["timer"].handle
        assert timer_handle is not None
        await asyncio.wait_for(reset_held.wait(), WAIT_S)
        await asyncio.gather(*(arrived(gate) for gate in gates))
        timer_started = await asyncio.wait_for(reopened_at(timer_handle), WAIT_S)
        # Kill about 2 s into the 10 s backoff: it fires some 8 s after the kill, after
        # the next worker is up, while the server still counts the dead one as polling.
        await asyncio.sleep(max(0.0, (timer_started - now()).total_seconds() + KILL_INTO_TIMER_S - 1))
        await answer_then_hold(proxy, reopen_gate, cases["reopen"].service, Hold.REQUEST)
        await answer_then_hold(proxy, between_gate, cases["between"].service, Hold.REPLY)

        killed = cluster.kill_worker()
        proxy.release()
        outage = Outage(down_at=killed, back_at=await cluster.start_worker())

        # The check lost with the dead worker is retried on the new one: let it pass.
        await eventually(lambda: requests_of(check_gate), lambda n: n >= 2, timeout=WAIT_S)
        check_gate.release(200)
        problems = [
            problem
            for case in cases.values()
            for problem in await asyncio.wait_for(problems_of(case, client, outage, proxy), WAIT_S)
        ]
    assert not problems, "\n".join(problems) + f"\n(outage {outage})"
