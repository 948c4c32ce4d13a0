"""The facade's status cache: coalescing, bounded staleness, refresh ahead, invalidation.

Pure asyncio with a clock the test moves, so each rule is checked exactly; the
facade's use of it against a real coordinator is in ``test_status_reads``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from starter.status_cache import StatusCache, copied


class Coordinator:
    """Answers status queries when the test lets it; counts them."""

    def __init__(self) -> None:
        self.asked = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def fetch(self) -> dict[str, Any]:
        self.asked += 1
        number = self.asked
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {"answer": number, "services": {}, "recent_history": []}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coordinator() -> Coordinator:
    return Coordinator()


@pytest.fixture
def cache(coordinator: Coordinator, clock: Clock) -> StatusCache:
    return StatusCache(coordinator.fetch, clock=clock)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


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
