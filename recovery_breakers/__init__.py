"""The circuit-breaker library: the store services and the orchestrator share, and pybreaker on it.

- ``store``: what a breaker is (``BreakerState``, ``BreakerRecord``) and the store interface
  (``CircuitBreakerStore``), with the rules for reading stored values;
- ``sqlite_store``, ``redis_store``: the two backends;
- ``stores``: ``open_store(url)``, the one place a store URL (``RECOVERY_CIRCUIT_STORE``) is read;
- ``pybreaker_adapter``: ``breaker(...)``, a pybreaker breaker whose state lives in the store;
- ``registry``: ``CircuitBreakerRegistry`` and ``circuit_breaker_health_check``, read-only views.

Services import the last two through ``starter.breakers`` (SPEC §9); the worker's activities
(``activities.circuit_breakers``) use the store. The store half leans only on three leaf
modules of ``activities`` (``settings``, ``redaction``, ``time_bounds``); the service half also
on ``workflows.models``' service-name rule. This file imports none of the modules, so a
workflow reading ``BreakerState`` pulls in neither pybreaker, redis nor sqlite3.
"""
