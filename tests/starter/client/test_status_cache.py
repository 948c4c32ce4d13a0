"""The facade's status cache: coalescing, bounded staleness, refresh ahead, invalidation.

Also the grace of ``stale_while_refreshing``: a slow refresh does not hold readers
up until the previous answer reaches the hard bound, never past it, never after an
``invalidate()``, and a failing refresh is an error, not an answer past the bound.

Pure asyncio with a clock the test moves, so each rule is checked exactly; the
facade's use of it against a real coordinator is in ``test_status_reads``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from starter.client.status_cache import StatusCache, copied
from tests.helpers.status_fakes import Clock, Coordinator, settle

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coordinator(clock: Clock) -> Coordinator:
    return Coordinator(clock)


@pytest.fixture
def cache(coordinator: Coordinator, clock: Clock) -> StatusCache:
    return StatusCache(coordinator.fetch, clock=clock)


async def test_concurrent_reads_share_one_query(cache: StatusCache, coordinator: Coordinator) -> None:
    coordinator.gate.clear()
    reads = [asyncio.ensure_future(cache.read(1.0)) for _ in range(32)]
    await settle()
    coordinator.gate.set()
    answers = await asyncio.gather(*reads)
    assert coordinator.asked == 1
    assert {a["answer"] for a in answers} == {1}


async def test_young_answer_is_reused_and_old_one_is_refreshed_ahead(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    assert (await cache.read(1.0))["answer"] == 1
    clock.now += 0.4  # younger than half the allowance: no query at all
    assert (await cache.read(1.0))["answer"] == 1
    assert coordinator.asked == 1
    clock.now += 0.2  # past half: answered at once, refreshed in the background
    coordinator.gate.clear()
    assert (await cache.read(1.0))["answer"] == 1
    await settle()
    assert coordinator.asked == 2
    coordinator.gate.set()
    await settle()
    assert (await cache.read(1.0))["answer"] == 2


async def test_too_old_answer_waits_for_a_new_query(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await cache.read(1.0)
    clock.now += 1.5
    assert (await cache.read(1.0))["answer"] == 2


async def test_zero_staleness_always_asks(cache: StatusCache, coordinator: Coordinator) -> None:
    for expected in (1, 2, 3):
        assert (await cache.read(0))["answer"] == expected


async def test_a_write_makes_earlier_answers_and_queries_in_flight_too_old(
    cache: StatusCache, coordinator: Coordinator
) -> None:
    await cache.read(60)
    coordinator.gate.clear()
    before_write = asyncio.ensure_future(cache.read(0))  # query 2, in flight
    await settle()
    cache.invalidate()  # the caller's own write returned
    after_write = asyncio.ensure_future(cache.read(60))
    await settle()
    coordinator.gate.set()
    assert (await before_write)["answer"] == 2
    assert (await after_write)["answer"] == 3  # not the answer asked before the write
    assert (await cache.read(60))["answer"] == 3


async def test_failed_query_reaches_its_readers_and_the_next_read_asks_again(
    cache: StatusCache, coordinator: Coordinator
) -> None:
    coordinator.fail = RuntimeError("server unreachable")
    with pytest.raises(RuntimeError, match="server unreachable"):
        await cache.read(1.0)
    coordinator.fail = None
    assert (await cache.read(1.0))["answer"] == 2


def test_copy_protects_the_cached_document() -> None:
    document: dict[str, Any] = {
        "services": {"a": {"state": "scheduled", "waiting_for": ["b"]}},
        "recent_history": [{"service_name": "c"}],
        "held_back": {"d": {"until": "x"}},
    }
    mine = copied(document)
    mine["services"]["a"]["state"] = "changed"
    mine["services"]["a"]["waiting_for"].append("z")
    mine["recent_history"][0]["service_name"] = "changed"
    mine["held_back"]["d"]["until"] = "changed"
    mine["services"]["new"] = {}
    assert document == {
        "services": {"a": {"state": "scheduled", "waiting_for": ["b"]}},
        "recent_history": [{"service_name": "c"}],
        "held_back": {"d": {"until": "x"}},
    }


async def test_a_cancelled_reader_leaves_the_shared_query_to_the_others(
    cache: StatusCache, coordinator: Coordinator
) -> None:
    coordinator.gate.clear()
    first = asyncio.ensure_future(cache.read(1.0))
    await settle()
    second = asyncio.ensure_future(cache.read(1.0))
    await settle()
    first.cancel()
    await settle()
    coordinator.gate.set()
    assert (await second)["answer"] == 1
    assert coordinator.asked == 1


# The grace while a refresh is in flight: target 1 s, hard bound 3 s.
TARGET, BOUND = 1.0, 3.0


async def refresh_in_flight(cache: StatusCache, coordinator: Coordinator, clock: Clock) -> None:
    """Answer 1 asked at 100.0; answer 2 asked at 100.6 and held back by the coordinator."""
    assert (await cache.read(TARGET, BOUND))["answer"] == 1
    clock.now += 0.6
    coordinator.gate.clear()
    assert (await cache.read(TARGET, BOUND))["answer"] == 1
    await settle()
    assert coordinator.asked == 2


async def test_slow_refresh_does_not_hold_readers_up_within_the_bound(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await refresh_in_flight(cache, coordinator, clock)
    for now in (100.0 + TARGET, 100.0 + BOUND - 0.01):  # past the target, inside the bound
        clock.now = now
        answers = await asyncio.wait_for(
            asyncio.gather(*(cache.read(TARGET, BOUND) for _ in range(32))), 1.0
        )
        assert {a["answer"] for a in answers} == {1}
        assert coordinator.asked == 2  # no query beside the one in flight
    clock.now = 100.6 + 0.9
    coordinator.gate.set()
    await settle()
    assert (await cache.read(TARGET, BOUND))["answer"] == 2


async def test_past_the_bound_readers_wait_for_the_refresh_in_flight(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await refresh_in_flight(cache, coordinator, clock)
    clock.now = 100.0 + BOUND  # answer 1 is exactly as old as the bound: too old
    late = asyncio.ensure_future(cache.read(TARGET, BOUND))
    await settle()
    assert not late.done()
    assert coordinator.asked == 2  # the query in flight started inside the bound: shared
    coordinator.gate.set()
    assert (await late)["answer"] == 2


async def test_past_the_bound_a_refresh_too_old_itself_is_not_waited_for(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await refresh_in_flight(cache, coordinator, clock)
    clock.now = 100.6 + BOUND + 0.1  # the refresh in flight (asked at 100.6) is too old too
    late = asyncio.ensure_future(cache.read(TARGET, BOUND))
    await settle()
    assert not late.done()
    assert coordinator.asked == 3
    coordinator.gate.set()
    assert (await late)["answer"] == 3


async def test_without_a_refresh_in_flight_an_answer_past_the_target_is_not_served(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await cache.read(TARGET, BOUND)
    clock.now += 1.5  # nobody read in between: no refresh started
    coordinator.gate.clear()
    late = asyncio.ensure_future(cache.read(TARGET, BOUND))
    await settle()
    assert not late.done()
    coordinator.gate.set()
    assert (await late)["answer"] == 2


async def test_no_grace_without_the_option_nor_for_fresh_reads(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await refresh_in_flight(cache, coordinator, clock)
    clock.now = 101.5
    hard = asyncio.ensure_future(cache.read(TARGET))  # max_staleness alone: a hard bound
    fresh = asyncio.ensure_future(cache.read(0, BOUND))
    await settle()
    assert not hard.done() and not fresh.done()
    coordinator.gate.set()
    assert (await hard)["answer"] == 2  # the refresh in flight started within 1 s
    assert (await fresh)["answer"] == 3  # a query that started after the read


async def test_a_write_ends_the_grace_even_while_an_older_refresh_is_in_flight(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await refresh_in_flight(cache, coordinator, clock)
    coordinator.writes += 1
    cache.invalidate()
    after_write = []
    for age in (0.0, 1.5):  # young or in the grace: neither answer 1 nor the refresh
        clock.now = 100.6 + age
        after_write.append(asyncio.ensure_future(cache.read(TARGET, BOUND)))
        await settle()
        assert not after_write[-1].done()
    assert coordinator.asked == 3  # one query after the write, shared
    coordinator.gate.set()
    assert [(await read)["answer"] for read in after_write] == [3, 3]


async def test_a_failing_refresh_is_an_error_not_an_answer_past_the_bound(
    cache: StatusCache, coordinator: Coordinator, clock: Clock
) -> None:
    await refresh_in_flight(cache, coordinator, clock)
    coordinator.fail = RuntimeError("query buffer is full")
    clock.now = 101.5
    assert (await cache.read(TARGET, BOUND))["answer"] == 1  # in the grace while in flight
    coordinator.gate.set()
    await settle()  # the refresh failed
    clock.now = 101.6  # inside the bound, but no refresh in flight: ask, do not serve 1
    with pytest.raises(RuntimeError, match="buffer is full"):
        await cache.read(TARGET, BOUND)
    coordinator.gate.clear()
    clock.now = 102.0
    waiting = asyncio.ensure_future(cache.read(TARGET, BOUND))  # query 4, held back
    await settle()
    clock.now = 103.2  # answer 1 is past the bound: wait for query 4, do not serve 1
    past_bound = asyncio.ensure_future(cache.read(TARGET, BOUND))
    await settle()
    assert not waiting.done() and not past_bound.done()
    coordinator.gate.set()
    for read in (waiting, past_bound):
        with pytest.raises(RuntimeError, match="buffer is full"):
            await read
    assert coordinator.asked == 4
    coordinator.fail = None
    assert (await cache.read(TARGET, BOUND))["answer"] == 5


@pytest.mark.parametrize("seed", range(20))
async def test_no_answer_is_ever_older_than_the_bound_nor_from_before_a_write(
    cache: StatusCache, coordinator: Coordinator, clock: Clock, seed: int
) -> None:
    """Random reads, clock steps, slow, failing and answered queries, writes."""
    rng = random.Random(seed)
    reads: list[tuple[float, int, int, float, asyncio.Future[dict[str, Any]]]] = []
    for _ in range(300):
        step = rng.random()
        if step < 0.3:
            clock.now += rng.uniform(0, 0.8)
        elif step < 0.45:
            if coordinator.gate.is_set():
                coordinator.gate.clear()
            else:
                coordinator.gate.set()
        elif step < 0.5:
            coordinator.fail = None if coordinator.fail else RuntimeError("refused")
        elif step < 0.55:
            coordinator.writes += 1
            cache.invalidate()
        else:
            target = rng.choice((0.0, 0.5, TARGET))
            grace = rng.choice((None, 2.0, BOUND))
            bound = target if grace is None or target == 0 else max(target, grace)
            read = asyncio.ensure_future(cache.read(target, grace))
            reads.append((clock.now, coordinator.writes, coordinator.asked, bound, read))
        await settle()
    coordinator.fail = None
    coordinator.gate.set()
    outcomes = await asyncio.gather(*(read for *_, read in reads), return_exceptions=True)
    answered = 0
    for (read_at, writes, asked_before, bound, _), outcome in zip(reads, outcomes):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, RuntimeError)
            continue
        answered += 1
        number = outcome["answer"]
        if bound > 0:
            assert coordinator.asked_at[number] > read_at - bound
        else:
            assert number > asked_before  # fresh: a query sent after the read began
        assert coordinator.writes_before[number] >= writes  # read-your-writes
    assert answered > 0
