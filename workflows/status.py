"""The status document of SPEC §6, built in one place.

The coordinator's ``get_recovery_status`` query and the facade's answer for a
namespace with no coordinator yet both come from here, so the pinned shape has
one definition. Pure functions: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from workflows.constants import CONSTITUTIONAL_HASH
from workflows.models import RecoveryResult, RecoveryState, RecoveryStrategy, RecoveryTask


def status_document(
    *,
    timestamp: datetime,
    orchestrator_running: bool,
    services: dict[str, dict[str, Any]],
    queued: int,
    unfinished: int,
    recent_history: Iterable[RecoveryResult],
) -> dict[str, Any]:
    """Return the reference status dict (``unfinished`` counts queued ones too)."""
    return {
        "constitutional_hash": CONSTITUTIONAL_HASH,
        "timestamp": timestamp.isoformat(),
        "orchestrator_running": orchestrator_running,
        "active_recoveries": unfinished,
        "queued_recoveries": queued,
        "services": services,
        "recent_history": [result.to_dict() for result in recent_history],
    }


def status_page(
    document: dict[str, Any], *, names: Iterable[str] | None, limit: int, offset: int
) -> dict[str, Any]:
    """Return ``document`` with a page of its ``services``, in name order, and where it ends.

    Adds ``total_services`` (how many the selection holds) and ``next_offset`` (None
    on the last page); every other key is the whole document's.
    """
    services = document["services"]
    selected = sorted(services if names is None else set(names) & services.keys())
    page = selected[offset : offset + limit]
    end = offset + len(page)
    return {
        **document,
        "services": {name: services[name] for name in page},
        "total_services": len(selected),
        "next_offset": end if end < len(selected) else None,
    }


def task_entry(task: RecoveryTask) -> dict[str, Any]:
    """Return the ``services`` entry of a queued or running recovery."""
    return {
        "state": task.state.value,
        "strategy": task.strategy.value,
        "priority": task.priority,
        "attempt_count": task.attempt_count,
        "max_attempts": task.policy.max_retry_attempts,
        "scheduled_at": _iso(task.scheduled_at),
        "last_attempt_at": _iso(task.last_attempt_at),
        "next_attempt_at": _iso(task.next_attempt_at),
    }


def idle_entry(max_attempts: int) -> dict[str, Any]:
    """Return the ``services`` entry of a service that only has a policy set."""
    return {
        "state": RecoveryState.IDLE.value,
        "strategy": RecoveryStrategy.EXPONENTIAL_BACKOFF.value,
        "priority": None,
        "attempt_count": 0,
        "max_attempts": max_attempts,
        "scheduled_at": None,
        "last_attempt_at": None,
        "next_attempt_at": None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
