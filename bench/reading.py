"""Concurrent readers for a fixed time: the status figures' measuring loop.

A window of fixed length (rather than a fixed number of calls) gives a slow path
and a fast one comparable rates without either taking minutes. Every reader yields
to the event loop between calls, as a real caller that does something with the
answer would, so a cache hit cannot starve the facade's own background work.
A refused read (``consistent query buffer is full``) counts as an error, not a read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import Latency

ERROR_PAUSE = 0.05


@dataclass
class ReadSample:
    """The reads a group of readers completed in one window (or several, combined)."""

    count: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None

    @property
    def rps(self) -> float:
        """Return completed reads per second."""
        return self.count / self.elapsed if self.elapsed else 0.0

    def latency(self) -> Latency | None:
        """Return p50/p99, or None when no read completed."""
        return Latency.of(self.latencies_ms) if self.latencies_ms else None

    def as_json(self) -> dict[str, Any]:
        """Return the figures for the results file (latencies summarised)."""
        latency = self.latency()
        return {
            "reads": self.count,
            "errors": self.errors,
            "seconds": round(self.elapsed, 3),
            "rps": round(self.rps, 1),
            **(latency.as_json() if latency else {}),
            **({"first_error": self.first_error} if self.first_error else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReadSample:
        """Rebuild a sample a reader process printed (``bench.readers``)."""
        return cls(
            count=data["count"],
            errors=data["errors"],
            elapsed=data["elapsed"],
            latencies_ms=list(data["latencies_ms"]),
            first_error=data["first_error"],
        )

    def to_json(self) -> dict[str, Any]:
        """Return everything, latencies included, for a reader process to print."""
        return {
            "count": self.count,
            "errors": self.errors,
            "elapsed": self.elapsed,
            "latencies_ms": self.latencies_ms,
            "first_error": self.first_error,
        }


def side_by_side(samples: list[ReadSample]) -> ReadSample:
    """Combine windows measured at the same time (reader processes).

    All their reads over the longest window: what the processes did together, never
    flattered by a process whose window closed early.
    """
    total = ReadSample()
    for sample in samples:
        total.count += sample.count
        total.errors += sample.errors
        total.elapsed = max(total.elapsed, sample.elapsed)
        total.latencies_ms += sample.latencies_ms
        total.first_error = total.first_error or sample.first_error
    return total


async def read_for(
    call: Callable[[], Awaitable[object]], readers: int, seconds: float
) -> ReadSample:
    """Run ``readers`` concurrent loops of ``call`` for ``seconds``; time every call."""
    deadline = time.perf_counter() + seconds
    return await read_while(call, readers, lambda: time.perf_counter() < deadline)


async def read_while(
    call: Callable[[], Awaitable[object]], readers: int, going: Callable[[], bool]
) -> ReadSample:
    """Run ``readers`` concurrent loops of ``call`` while ``going()``; time every call.

    The window closes when the last in-flight call returns, so a slow call counts
    in full and the rate is never flattered by cutting it off.
    """
    sample = ReadSample()
    start = time.perf_counter()

    async def reader() -> None:
        while going():
            began = time.perf_counter()
            try:
                await call()
            except Exception as err:  # a refused read is a figure too
                sample.errors += 1
                sample.first_error = sample.first_error or f"{type(err).__name__}: {err}"
                await asyncio.sleep(ERROR_PAUSE)
                continue
            sample.latencies_ms.append((time.perf_counter() - began) * 1000)
            sample.count += 1
            await asyncio.sleep(0)

    await asyncio.gather(*(reader() for _ in range(readers)))
    sample.elapsed = time.perf_counter() - start
    return sample
