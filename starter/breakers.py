"""The service side of the circuit breakers, under the import SPEC §9 pins: ``starter.breakers``.

The code lives in ``recovery_breakers`` (``pybreaker_adapter`` and ``registry``); this module
only re-exports it, so services written against ``from starter.breakers import breaker`` keep
working::

    payments = breaker("payments", fail_max=5, reset_timeout=30)
    payments.call(charge, order)
"""

from __future__ import annotations

from recovery_breakers.pybreaker_adapter import SQLiteCircuitStorage, breaker, circuit_storage
from recovery_breakers.registry import (
    CRITICAL,
    DEGRADED,
    HEALTHY,
    CircuitBreakerRegistry,
    circuit_breaker_health_check,
)

__all__ = [
    "CRITICAL",
    "DEGRADED",
    "HEALTHY",
    "CircuitBreakerRegistry",
    "SQLiteCircuitStorage",
    "breaker",
    "circuit_breaker_health_check",
    "circuit_storage",
]
