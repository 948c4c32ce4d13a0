"""Callable health checks that quote a worker secret, for the redaction tests.

A careless check repeats what it was given: ``repr`` of the secret in its exception
or its result. The worker masks it before the detail reaches the history.
"""

from __future__ import annotations

import os

VARIABLE = "RECOVERY_SECRET_PLANTED_CALLABLE"


def raises_with_secret() -> bool:
    """Raise with the secret as Python and JSON would quote it (escaped forms)."""
    value = os.environ[VARIABLE]
    raise ValueError(f"auth failed for {value!r} / {value.encode()!r}")


def returns_secret() -> str:
    """Return the secret itself: truthy, and the detail would repeat it."""
    return os.environ[VARIABLE]
