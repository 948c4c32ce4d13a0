"""The times the product accepts from outside: between the years 2000 and 2200, in UTC.

The coordinator adds hours to the times it is given (cool-downs, budgets) and compares
them with its own: year 9999 overflows, year 1970 (an ``opened_at`` of 0) is no opening.
The breaker stores read a time outside these bounds as a bad value of that breaker only,
and the workflows' doors refuse one.
"""

from __future__ import annotations

from datetime import datetime, timezone

EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=timezone.utc)


def within_bounds(value: datetime) -> bool:
    """Return True for an aware time between ``EARLIEST_TIME`` and ``LATEST_TIME``."""
    if value.utcoffset() is None:
        return False
    try:
        return EARLIEST_TIME <= value < LATEST_TIME
    except OverflowError:  # an offset that pushes it past datetime's own range
        return False
