"""Callable health checks for the tests (module-level, importable by the worker)."""

from __future__ import annotations

import time


def always_healthy() -> bool:
    """Return True."""
    return True


def never_answers() -> bool:
    """Block far longer than the tests' check timeouts (200 ms)."""
    time.sleep(3)
    return True
