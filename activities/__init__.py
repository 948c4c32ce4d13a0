"""Side effects: circuit-breaker stores and actions, health checks.

This package imports nothing else of the project, so workflows may import its
input types without the two packages leaning on each other.
"""

from activities.breaker_store import BreakerRecord, BreakerState, CircuitBreakerStore, open_store
from activities.circuit_breakers import (
    CircuitBreakerActivities,
    CircuitBreakerRegistry,
    SetBreakerStateInput,
)
from activities.health_check_specs import (
    CallableHealthCheck,
    HealthCheck,
    HealthCheckInput,
    HealthCheckOutcome,
    HttpHealthCheck,
    TcpHealthCheck,
)
from activities.health_checks import HealthCheckActivities, allowed_modules_from_env

__all__ = [
    "BreakerRecord",
    "BreakerState",
    "CallableHealthCheck",
    "CircuitBreakerActivities",
    "CircuitBreakerRegistry",
    "CircuitBreakerStore",
    "HealthCheck",
    "HealthCheckActivities",
    "HealthCheckInput",
    "HealthCheckOutcome",
    "HttpHealthCheck",
    "SetBreakerStateInput",
    "TcpHealthCheck",
    "allowed_modules_from_env",
    "open_store",
]
