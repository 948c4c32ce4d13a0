"""Callable health checks for the trust tests: one defined here, one merely imported.

A worker that lists this module in ``RECOVERY_HEALTH_CHECK_MODULES`` runs
``healthy``, and refuses ``getcwd``: a name a module imports is not one it offers.
"""

from __future__ import annotations

from os import getcwd  # noqa: F401  (imported on purpose: the refused case)


def healthy() -> bool:
    """Return True."""
    return True
