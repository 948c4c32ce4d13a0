"""The service side and the orchestrator share one breaker: pybreaker in a service process,
the store in the orchestrator's, on a real ``redis-server`` and a real SQLite file.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pybreaker
import pytest
import redis

from recovery_breakers.store import BreakerState
from recovery_breakers.stores import open_store
from starter.breakers import (
    CircuitBreakerRegistry,
    SQLiteCircuitStorage,
    breaker,
    circuit_breaker_health_check,
)
from tests.helpers.pybreaker_service import SERVICE, backdate_opened_at, running_service
from workflows.constants import CONSTITUTIONAL_HASH
from workflows.errors import RecoveryValidationError

OPEN, HALF_OPEN, CLOSED = BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED

def test_a_service_breaker_and_the_orchestrator_share_every_transition(
    store_url: str, tmp_path: Path
) -> None:
    store = open_store(store_url)
    with running_service(store_url, tmp_path) as service:
        # The service fails fail_max calls: its breaker trips, and the orchestrator sees it.
        outcomes = [service.ask("fail")["outcome"] for _ in range(3)]
        assert outcomes == ["failed", "failed", "rejected"]  # the third call trips it
        tripped = store.get_state(SERVICE)
        assert tripped is not None and tripped.state is OPEN and tripped.fail_counter == 3
        assert tripped.opened_at is not None
        assert abs(datetime.now(timezone.utc) - tripped.opened_at) < timedelta(seconds=5)
        assert service.ask("call")["outcome"] == "rejected"  # its reset timeout holds

        # The orchestrator resets it to half-open: the service lets a trial call through.
        store.set_state(SERVICE, HALF_OPEN)
        assert service.ask("state")["state"] == "half-open"
        trial = service.ask("call")
        assert trial["outcome"] == "ok" and trial["state"] == "half-open"
        assert trial["success_counter"] == 1  # one of success_threshold=2

        # The orchestrator closes it: counters restart at 0 and calls go through.
        store.set_state(SERVICE, CLOSED)
        closed = service.ask("state")
        assert closed["state"] == "closed"
        assert (closed["fail_counter"], closed["success_counter"]) == (0, 0)
        assert service.ask("call")["outcome"] == "ok"
        counting = service.ask("fail")
        assert counting["outcome"] == "failed" and counting["state"] == "closed"
        assert counting["fail_counter"] == 1

        # The orchestrator re-opens it: a fresh opened_at restarts the service's reset
        # timeout, which had long run out (as if the breaker had opened an hour ago).
        backdate_opened_at(store_url, datetime.now(timezone.utc) - timedelta(hours=1))
        store.set_state(SERVICE, OPEN)
        reopened = service.ask("call")
        assert reopened["outcome"] == "rejected" and reopened["state"] == "open"
        assert isinstance(reopened["opened_at"], float)
        assert reopened["opened_at"] >= tripped.opened_at.timestamp()
        record = store.get_state(SERVICE)
        assert record is not None and record.fail_counter == 1  # opening keeps the failures
    store.close()


def test_a_successful_trial_closes_the_breaker_for_the_orchestrator_too(
    store_url: str, tmp_path: Path
) -> None:
    store = open_store(store_url)
    store.set_state(SERVICE, HALF_OPEN)
    with running_service(store_url, tmp_path) as service:
        outcomes = [service.ask("call") for _ in range(2)]  # success_threshold=2
    assert [o["outcome"] for o in outcomes] == ["ok", "ok"]
    assert outcomes[-1]["state"] == "closed"
    record = store.get_state(SERVICE)
    assert record is not None and record.state is CLOSED
    assert (record.fail_counter, record.success_counter) == (0, 0)
    store.close()


def test_breaker_is_pybreaker_on_the_store_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("RECOVERY_CIRCUIT_STORE", url)
    guard = breaker("orders", fail_max=2, reset_timeout=30)

    assert isinstance(guard, pybreaker.CircuitBreaker) and guard.name == "orders"
    assert (guard.fail_max, guard.reset_timeout) == (2, 30)
    assert isinstance(guard._state_storage, SQLiteCircuitStorage)

    @guard
    def place_order() -> str:
        return "placed"

    assert place_order() == "placed"
    registry = CircuitBreakerRegistry(url)
    assert registry.get_state("orders") == {
        "state": "closed",
        "fail_counter": 0,
        "success_counter": 0,
        "opened_at": None,
    }
    registry.close()


def test_breaker_on_redis_uses_pybreakers_own_storage(redis_url: str) -> None:  # noqa: F811
    guard = breaker("orders", store_url=redis_url)
    assert isinstance(guard._state_storage, pybreaker.CircuitRedisStorage)
    with redis.Redis.from_url(redis_url) as raw:
        assert raw.get("orders:pybreaker:state") == b"closed"


@pytest.mark.parametrize("name", ["", "pay ments", "orders:v2", "x" * 201])
def test_breaker_refuses_an_invalid_service_name(name: str, tmp_path: Path) -> None:
    with pytest.raises(RecoveryValidationError, match="service_name"):
        breaker(name, store_url=f"sqlite:///{tmp_path}/b.db")


def test_breaker_refuses_an_unsupported_store_url() -> None:
    with pytest.raises(ValueError, match="sqlite:///path or redis://"):
        breaker("orders", store_url="memcached://localhost")


def test_registry_lists_every_breaker_in_the_reference_shape(store_url: str) -> None:
    store = open_store(store_url)
    store.set_state("payments", OPEN)
    store.set_state("orders", CLOSED)
    registry = CircuitBreakerRegistry(store_url)

    states = registry.get_all_states()

    assert sorted(states) == ["orders", "payments"]
    assert all(
        set(s) == {"state", "fail_counter", "success_counter", "opened_at"}
        for s in states.values()
    )
    assert states["payments"]["state"] == "open" and states["orders"]["opened_at"] is None
    opened_at = states["payments"]["opened_at"]
    assert isinstance(opened_at, str)
    assert datetime.fromisoformat(opened_at).utcoffset() == timedelta(0)
    assert registry.get_state("payments") == states["payments"]
    assert registry.get_state("unknown") is None
    registry.close()
    store.close()


@pytest.mark.parametrize(
    ("states", "overall"),
    [
        ({}, "healthy"),
        ({"a": CLOSED, "b": CLOSED}, "healthy"),
        ({"a": OPEN, "b": CLOSED}, "degraded"),
        ({"a": HALF_OPEN, "b": CLOSED}, "degraded"),
        ({"a": OPEN, "b": HALF_OPEN}, "degraded"),
        ({"a": OPEN, "b": OPEN}, "critical"),
    ],
)
def test_health_check_summarises_the_fleet(
    store_url: str, states: dict[str, BreakerState], overall: str
) -> None:
    store = open_store(store_url)
    for name, state in states.items():
        store.set_state(name, state)

    health = circuit_breaker_health_check(store_url)

    assert set(health) == {
        "overall_health",
        "open_circuits",
        "circuit_states",
        "constitutional_hash",
        "timestamp",
    }
    assert health["overall_health"] == overall
    assert health["open_circuits"] == sorted(n for n, s in states.items() if s is OPEN)
    assert health["circuit_states"] == {n: s.value for n, s in states.items()}
    assert health["constitutional_hash"] == CONSTITUTIONAL_HASH
    assert isinstance(health["timestamp"], str)
    assert datetime.fromisoformat(health["timestamp"]).tzinfo is not None
    store.close()
