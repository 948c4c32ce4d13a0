"""The breaker store taken away mid-recovery and given back (issue 10, item 4).

A real worker process on a real dev server, its breaker store first a real Redis, then
a SQLite file. In each case a recovery's attempt 1 has reset the breaker and is in its
health check (a gated server holds it) when the store goes away; the check then fails,
so the attempt must re-open the breaker while the store is gone:

- Redis is stopped (SIGTERM, its append-only file complete) and started again on the
  same port 10 s later;
- the SQLite database and its write-ahead log are made immutable (``chattr +i``: as
  root nothing less stops a write, see ``kills_outages``) and restored 6 s later.

What the product documents: a breaker write is retried (every 0.5 s rising to 5 s,
for up to ``BREAKER_OUTAGE_LIMIT``, 2 minutes) rather than spend an attempt on an
outage that is not the service's fault. So the re-open is recorded once, within one
retry interval of the store's return, after more than one try; the attempt keeps its
own outcome (the failed check, not the outage); the worker holds its workflow task
(no timeout); the backoff and attempt 2 follow on time; one check per attempt; and
the store ends with the breaker closed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.redis_store import RedisBreakerStore
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState, CircuitBreakerStore
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
from tests.helpers.servers import gated_health_server
from tests.reliability.kills_history import Timeline, read_timeline
from tests.reliability.kills_outages import unwritable_sqlite
from tests.reliability.kills_verdict import examine
from workflows.constants import TASK_QUEUE
from workflows.models import RecoveryPolicy, RecoveryStrategy, ServiceRecoveryInput
from workflows.recovery_checks import BREAKER_RETRY

REDIS_DOWN_S = 10.0
SQLITE_DOWN_S = 6.0
BACKOFF_MS = 2_000
SLOW_CHECK_MS = 20_000
WAIT_S = 60.0
# A store that is back is written at the next retry of the write, this long at most.
RETRY_CAP = BREAKER_RETRY.maximum_interval or timedelta(0)


@pytest_asyncio.fixture(scope="module")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory, own_redis: RedisServer
) -> AsyncIterator[Cluster]:
    """A dev server and a worker (its store chosen by each test)."""
    async with running_cluster(tmp_path_factory.mktemp("outages"), own_redis.url) as running:
        yield running


async def recover_through_outage(
    cluster: Cluster, take_away: Callable[[], None], give_back: Callable[[], None], down_s: float
) -> tuple[str, list[str]]:
    """Run a recovery whose attempt 1 must re-open its breaker while the store is away.

    Returns:
        The service's name and every problem found (empty: as documented).
    """
    service = f"outage-{uuid.uuid4().hex[:8]}"
    async with gated_health_server() as gate:
        policy = RecoveryPolicy(
            max_retry_attempts=3,
            initial_delay_ms=BACKOFF_MS,
            max_delay_ms=BACKOFF_MS,
            health_check=HttpHealthCheck(url=gate.url, timeout_ms=SLOW_CHECK_MS),
        )
        cluster.open_breakers([service])
        handle = await start_recovery(
            cluster.client,
            TASK_QUEUE,
            ServiceRecoveryInput(service_name=service, strategy=RecoveryStrategy.LINEAR_BACKOFF, policy=policy),
        )
        await asyncio.wait_for(gate.arrived.wait(), WAIT_S)  # the breaker is half-open
        take_away()
        down_at = now()
        gate.release(503)
        await eventually(lambda: read_timeline(handle), _check_done, timeout=WAIT_S, interval=0.1)
        gate.status = 200  # attempt 2's check passes
        await asyncio.sleep(max(0.0, down_s - (now() - down_at).total_seconds()))
        give_back()
        back_at = now()
        # The workflow has its store again one retry interval after its return at the
        # latest: every step that fell due during the outage is due then.
        store_outage = Outage(down_at=down_at, back_at=back_at + RETRY_CAP)
        verdict = await asyncio.wait_for(examine(cluster.client, service, store_outage), WAIT_S)
        checks = gate.requests
    result, timeline, problems = verdict.result, verdict.timeline, verdict.problems
    if not (result.success and result.attempt_number == 2):
        problems.append(f"ended {result.state.value} after {result.attempt_number} attempts")
    first = timeline.attempts[0]
    if first.end is None or first.end.tries < 2:
        problems.append("attempt 1's re-open was not retried: the store was never away")
    if verdict.records and not (verdict.records[0].error or "").startswith("health check failed"):
        problems.append(f"the outage changed attempt 1's outcome: {verdict.records[0].error}")
    if timeline.task_timeouts:
        problems.append(f"workflow tasks timed out: {timeline.task_timeouts}")
    if checks != result.attempt_number:
        problems.append(f"{checks} health requests for {result.attempt_number} attempts")
    return service, problems


def _check_done(timeline: Timeline) -> bool:
    attempts = timeline.attempts
    return bool(attempts) and attempts[0].check is not None and attempts[0].check.finished_at is not None


def breaker_state(store: CircuitBreakerStore, service: str) -> BreakerState | None:
    """Return the breaker's state in ``store`` (and close the store)."""
    try:
        record = store.get_state(service)
        return None if record is None else record.state
    finally:
        store.close()


@pytest.mark.timeout(90)
async def test_redis_stopped_for_ten_seconds_mid_recovery(cluster: Cluster, own_redis: RedisServer) -> None:
    await cluster.use_store(own_redis.url)
    try:
        service, problems = await recover_through_outage(cluster, own_redis.stop, own_redis.start, REDIS_DOWN_S)
    finally:
        own_redis.start()
    assert not problems, "\n".join(problems)
    assert breaker_state(RedisBreakerStore(own_redis.client()), service) is BreakerState.CLOSED


@pytest.mark.timeout(90)
async def test_sqlite_made_unwritable_mid_recovery(cluster: Cluster, tmp_path: Path) -> None:
    database = tmp_path / "breakers.db"
    await cluster.use_store(f"sqlite:///{database}")
    with ExitStack() as outage:
        service, problems = await recover_through_outage(
            cluster, lambda: outage.enter_context(unwritable_sqlite(database)), outage.close, SQLITE_DOWN_S
        )
    assert not problems, "\n".join(problems)
    assert breaker_state(SQLiteBreakerStore(database), service) is BreakerState.CLOSED
