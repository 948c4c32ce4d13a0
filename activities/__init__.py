"""Side effects: circuit-breaker stores and actions, health checks.

This package imports nothing else of the project, so workflows may import its
input types without the two packages leaning on each other. Import what you need
from its modules (``activities.health_check_specs``, ``activities.breaker_store``,
…): this file imports none of them, so reading a spec type pulls in neither httpx
nor a store.
"""
