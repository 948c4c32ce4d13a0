"""Latency and rate summaries, the same arithmetic for every figure and its baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the ``fraction`` percentile of ``samples`` (nearest rank).

    Raises:
        ValueError: there are no samples.
    """
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True)
class Latency:
    """The median and the 99th percentile of a set of latencies, in ms."""

    p50: float
    p99: float
    samples: int

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Latency:
        """Summarise ``samples_ms``."""
        return cls(percentile(samples_ms, 0.5), percentile(samples_ms, 0.99), len(samples_ms))

    def text(self) -> str:
        """Return ``p50 / p99 ms``."""
        return f"{self.p50:.1f} / {self.p99:.1f} ms"

    def as_json(self) -> dict[str, float]:
        """Return the figures for the results file."""
        return {"p50_ms": round(self.p50, 3), "p99_ms": round(self.p99, 3), "samples": self.samples}
