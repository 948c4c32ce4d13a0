"""Callable health checks for the tests (module-level, importable by the worker)."""

from __future__ import annotations

import threading
import time


def always_healthy() -> bool:
    """Return True."""
    return True


def never_answers() -> bool:
    """Block far longer than the tests' check timeouts (200 ms)."""
    time.sleep(3)
    return True


def hangs_for_ever() -> bool:
    """Block without end, as a check stuck on a dead socket does (a daemon thread: harmless)."""
    threading.Event().wait()
    return True


def raises_a_megabyte() -> bool:
    """Fail with a message of 1.2 MB, as a check that dumps a whole response might."""
    raise RuntimeError("x" * 1_200_000)
