"""Stand-ins for the facade's status cache tests: a coordinator that answers when let, a clock.

``Coordinator.fetch`` is what ``StatusCache`` calls; the test opens and closes its
``gate`` and reads when each query was asked. ``Clock`` is moved by hand.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Coordinator:
    """Answers status queries when the test lets it; counts them.

    ``asked_at[n]`` is the clock when query ``n`` was sent (when a clock is given)
    and ``writes_before[n]`` how many writes preceded it.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.asked = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.clock = clock
        self.writes = 0
        self.asked_at: dict[int, float] = {}
        self.writes_before: dict[int, int] = {}

    async def fetch(self) -> dict[str, Any]:
        self.asked += 1
        number = self.asked
        if self.clock is not None:
            self.asked_at[number] = self.clock.now
        self.writes_before[number] = self.writes
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {"answer": number, "services": {}, "recent_history": []}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every task that can run do so (a few turns of the event loop), no timer involved."""
    for _ in range(5):
        await asyncio.sleep(0)
