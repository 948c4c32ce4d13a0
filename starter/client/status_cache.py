"""Status reads that do not each cost a query: coalesced, bounded in staleness.

One workflow answers queries one at a time (about 90 a second on a 2-core machine
with 1,000 services tracked, fewer while recoveries report in: then one query can
take a second or more). A dashboard or a ``while status['active_recoveries']`` loop
in many tasks would queue behind each other there. So a facade keeps the last
answer and serves it while it is young. Ages are measured from the *start* of the
query behind an answer to the start of the read it answers:

- ``max_staleness`` (the target): an answer younger than this is served at once;
  0 means a query that starts after the read (fresh).
- refresh ahead: a read that finds the answer older than half ``max_staleness``
  starts a refresh in the background and returns at once.
- ``stale_while_refreshing`` (the hard bound, optional, at least ``max_staleness``):
  while that refresh is in flight, the previous answer may still be served until
  it is this old, so a busy coordinator's slow query does not stall every reader.
  Past it, or with no refresh in flight, a read waits for a query: the one in
  flight if it started within the bound, else a new one. No read is ever served an
  answer older than the larger of the two; a failed query reaches the reads that
  wait for it instead of stale answers past the bound. Without the option, or
  with ``max_staleness`` 0, ``max_staleness`` alone is the bound.
- single flight: concurrent reads that a query in flight satisfies wait for it
  instead of sending their own.
- read-your-writes: ``invalidate()`` (called after each write through the facade)
  makes every earlier answer and query in flight too old for later reads, whatever
  the bounds: the next read waits for a query that started after the write.
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

# A read that finds the answer older than this fraction of ``max_staleness`` refreshes it.
REFRESH_AHEAD = 0.5


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

    async def read(
        self, max_staleness: float, stale_while_refreshing: float | None = None
    ) -> Document:
        """Return a status within the staleness bound (shared: copy before changing).

        Args:
            max_staleness: Serve an answer this young at once (refreshed ahead past
                half of it); else wait for a query that started within the bound.
            stale_while_refreshing: While a refresh is in flight, an answer up to this
                old (and from after the last ``invalidate()``) is served instead of
                waiting; None, not above ``max_staleness``, or ``max_staleness`` 0
                (fresh): no such grace.
        """
        now = self._clock()
        bound = max_staleness
        if stale_while_refreshing is not None and max_staleness > 0:
            bound = max(max_staleness, stale_while_refreshing)
        answer = self._answer
        if answer is not None and answer.generation == self._generation:
            age = now - answer.asked_at
            if age < max_staleness:
                if age > max_staleness * REFRESH_AHEAD:
                    self._refresh_in_background()
                return answer.document
            if age < bound and self._refreshing():
                return answer.document
        # Within the bound, the query in flight serves: a second one beside it would
        # be refused by a busy workflow (its query buffer) and answer no sooner.
        oldest = now - bound
        flight = self._in_flight
        if flight is not None and self._fits(flight[0], flight[1], oldest):
            return (await asyncio.shield(flight[2])).document
        # Shielded: a reader cancelled while it waits must not cancel the query it shares.
        return (await asyncio.shield(self._ask())).document

    def _refreshing(self) -> bool:
        """Return True while a query asked since the last ``invalidate()`` is in flight."""
        return self._in_flight is not None and self._in_flight[1] == self._generation

    def _fits(self, asked_at: float, generation: int, oldest: float) -> bool:
        return generation == self._generation and asked_at > oldest

    def _refresh_in_background(self) -> None:
        if self._refreshing():
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
