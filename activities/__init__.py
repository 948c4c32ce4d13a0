"""Side effects: circuit-breaker actions, health checks, workflow lookups, the watch's hand-over.

The modules workflows import (``activities.health_check_specs``,
``activities.circuit_breakers``, ``activities.health_checks``, …) import nothing of the
project but each other and the breaker store (``recovery_breakers.store``), so the two
packages never lean on each other. ``activities.coordinator_handoff`` is a client of the
coordinator: ``worker.py`` hands it the typed client, so no module here imports ``starter``. This file
imports none of the modules, so reading a spec type pulls in neither httpx nor a store.
"""
