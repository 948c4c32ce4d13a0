"""The one results table: each figure beside its baseline, its target, met or by how much missed.

The same rows go to ``bench/results/<UTC time>.json`` and ``bench/results/latest.json``
so that runs compare. A figure that could not be measured is a row too, with its
error, counted as a missed target: a failure is a result, never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHOWN_ERROR = 110
NO_BASELINE = "—"


@dataclass(frozen=True)
class Target:
    """A measured quantity held against a bound (``at_least`` or at most)."""

    text: str
    measured: float | None
    bound: float
    at_least: bool
    unit: str = ""

    @property
    def met(self) -> bool:
        """Return True when the measured quantity is on the right side of the bound."""
        if self.measured is None:
            return False
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    def miss(self) -> str:
        """Say how far off the bound the figure is (for a missed target)."""
        if self.measured is None:
            return f"{self.text}: not measured"
        gap = abs(self.bound - self.measured)
        side = "short by" if self.at_least else "over by"
        return (
            f"{_number(self.measured)}{self.unit} vs {self.text}: {side} {_number(gap)}{self.unit}"
        )

    def as_json(self) -> dict[str, Any]:
        """Return the target for the results file."""
        return {
            "target": self.text,
            "measured": self.measured,
            "bound": self.bound,
            "at_least": self.at_least,
            "met": self.met,
        }


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.1f}"


@dataclass
class Row:
    """One figure: the product, its baseline measured in the same run, and its targets."""

    figure: str
    product: str
    baseline: str = NO_BASELINE
    ratio: float | None = None
    targets: list[Target] = field(default_factory=list)
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """Return whether every target is met; None for a figure without a target."""
        if self.error is not None:
            return False
        if not self.targets:
            return None
        return all(target.met for target in self.targets)

    def verdict(self) -> str:
        """Return ``met``, ``info``, or ``MISSED`` with each shortfall (and the error)."""
        if self.met is None:
            return "info"
        if self.met:
            return "met"
        misses = [t.miss() for t in self.targets if not t.met]
        return "MISSED: " + "; ".join(([self.error] if self.error else []) + misses)

    def as_json(self) -> dict[str, Any]:
        """Return the row for the results file."""
        return {
            "figure": self.figure,
            "product": self.product,
            "baseline": self.baseline,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "targets": [target.as_json() for target in self.targets],
            "met": self.met,
            "verdict": self.verdict(),
            "error": self.error,
            "data": self.data,
        }


def failed(figure: str, err: BaseException) -> Row:
    """Return the row for a figure that could not be measured."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return Row(figure, "not measured", error=f"{type(err).__name__}: {message}"[:2000])


@dataclass
class Report:
    """Rows in the order measured, printed as one table and written as JSON."""

    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        """Add a measured (or failed) figure."""
        self.rows.append(row)

    def table(self) -> str:
        """Return the table: figure, product, baseline, ratio, target, verdict."""
        header = (
            f"{'figure':<52} {'product':>22} {'baseline':>22} {'ratio':>7}  "
            f"{'target (ratios first)':<34} result"
        )
        lines = [header, "-" * len(header)]
        for row in self.rows:
            ratio = "" if row.ratio is None else _ratio(row.ratio)
            target = ", ".join(t.text for t in row.targets) or "—"
            verdict = row.verdict()
            if len(verdict) > SHOWN_ERROR + 8:
                verdict = verdict[:SHOWN_ERROR] + "…"
            lines.append(
                f"{row.figure:<52} {row.product:>22} {row.baseline:>22} {ratio:>7}  "
                f"{target:<34} {verdict}"
            )
        met = sum(1 for row in self.rows if row.met)
        graded = sum(1 for row in self.rows if row.met is not None)
        lines.append(f"{met} of {graded} graded figures met their targets")
        return "\n".join(lines)

    def write(self, meta: dict[str, Any], stamp: datetime) -> Path:
        """Write ``<UTC time>.json`` and ``latest.json``; return the first's path."""
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        document = {**meta, "rows": [row.as_json() for row in self.rows]}
        text = json.dumps(document, indent=2) + "\n"
        path = RESULTS_DIR / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(text)
        (RESULTS_DIR / "latest.json").write_text(text)
        return path


def _ratio(value: float) -> str:
    return "<0.01×" if value < 0.01 else f"{value:.3g}×"


def rate(value: float) -> str:
    """Return a rate as ``1,234/s``."""
    return f"{value:,.0f}/s" if value >= 10 else f"{value:.1f}/s"


def megabytes(value: float) -> str:
    """Return bytes as ``12.3 MB``."""
    return f"{value / 1e6:,.1f} MB"


def seconds(value: float) -> str:
    """Return seconds as ``12.3 s``."""
    return f"{value:,.1f} s"
