"""Status reads that do not each cost a query: coalesced, bounded in staleness.

One workflow answers queries one at a time (about 90 a second on a 2-core machine
with 1,000 services tracked, fewer while recoveries report in). A dashboard or a
``while status['active_recoveries']`` loop in many tasks would queue behind each
other there. So a facade keeps the last answer and serves it while it is young:

- ``max_staleness``: a read is answered from a query that *started* at most that
  many seconds before the read (0: a query that starts after the read: fresh).
- single flight: concurrent reads that a query in flight satisfies wait for it
  instead of sending their own.
- refresh ahead: a read that finds the answer older than half its allowance starts
  a refresh in the background and returns at once, so readers wait only when a
  query takes longer than that half.
- read-your-writes: ``invalidate()`` (called after each write through the facade)
  makes every earlier answer and query in flight too old for later reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("recovery_orchestrator")

Document = dict[str, Any]


@dataclass(frozen=True)
class _Answer:
    """A status document and when (monotonic) the query behind it started."""

    document: Document
    asked_at: float
    generation: int


class StatusCache:
    """Bounded-staleness, single-flight reads of one coordinator's status.

    Args:
        fetch: Reads the whole status from the coordinator (one or more queries).
        clock: Monotonic seconds (a parameter for tests).
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Document]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._generation = 0
        self._answer: _Answer | None = None
        self._in_flight: tuple[float, int, asyncio.Future[_Answer]] | None = None

    def invalidate(self) -> None:
        """Forget every answer so far: the caller's own write must show in later reads."""
        self._generation += 1

    async def read(self, max_staleness: float) -> Document:
        """Return a status no older than ``max_staleness`` seconds (shared: copy before changing)."""
        now = self._clock()
        oldest = now - max_staleness
        answer = self._answer
        if answer is not None and self._fits(answer.asked_at, answer.generation, oldest):
            if answer.asked_at < now - max_staleness / 2:
                self._refresh_in_background()
            return answer.document
        flight = self._in_flight
        if flight is not None and self._fits(flight[0], flight[1], oldest):
            return (await asyncio.shield(flight[2])).document
        # Shielded: a reader cancelled while it waits must not cancel the query it shares.
        return (await asyncio.shield(self._ask())).document

    def _fits(self, asked_at: float, generation: int, oldest: float) -> bool:
        return generation == self._generation and asked_at > oldest

    def _refresh_in_background(self) -> None:
        if self._in_flight is not None and self._in_flight[1] == self._generation:
            return
        future = asyncio.ensure_future(self._ask())
        future.add_done_callback(_log_failed_refresh)

    def _ask(self) -> asyncio.Future[_Answer]:
        """Start one query; every read it satisfies shares it."""
        asked_at, generation = self._clock(), self._generation
        future: asyncio.Future[_Answer] = asyncio.ensure_future(
            self._answered(asked_at, generation)
        )
        self._in_flight = (asked_at, generation, future)
        future.add_done_callback(self._landed)
        return future

    def _landed(self, future: asyncio.Future[_Answer]) -> None:
        """Forget the query in flight once it has ended (this one, not a later one)."""
        if self._in_flight is not None and self._in_flight[2] is future:
            self._in_flight = None

    async def _answered(self, asked_at: float, generation: int) -> _Answer:
        answer = _Answer(await self._fetch(), asked_at, generation)
        if self._answer is None or answer.asked_at >= self._answer.asked_at:
            self._answer = answer
        return answer


def _log_failed_refresh(future: asyncio.Future[_Answer]) -> None:
    """A background refresh that failed: the next read that needs one asks again."""
    if not future.cancelled() and future.exception() is not None:
        logger.warning("status refresh failed: %s", future.exception())


def copied(document: Document) -> Document:
    """Return a copy of a status document that the caller may change freely.

    Two levels (the document, each service entry and history item) plus the few
    nested values the document has: far cheaper than ``copy.deepcopy``.
    """
    copy = dict(document)
    services = {name: dict(entry) for name, entry in document["services"].items()}
    for entry in services.values():
        if "waiting_for" in entry:
            entry["waiting_for"] = list(entry["waiting_for"])
    copy["services"] = services
    copy["recent_history"] = [dict(item) for item in document["recent_history"]]
    if "held_back" in document:
        copy["held_back"] = {name: dict(held) for name, held in document["held_back"].items()}
    return copy
