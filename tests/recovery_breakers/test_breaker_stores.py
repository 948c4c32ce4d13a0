"""One suite for every breaker store (as pybreaker tests each of its storages with one suite).

Each test runs on the SQLite store and on the Redis store (a real ``redis-server``); a backend
also writes raw values past the store, as another program sharing the file or the Redis would.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import pybreaker
import pytest
import redis

from recovery_breakers.redis_store import RedisBreakerStore
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import (
    BreakerState,
    CircuitBreakerStore,
    InvalidBreakerValue,
)
from recovery_breakers.stores import open_store
from tests.helpers.breakers import state_of
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import free_port

OPEN, HALF_OPEN, CLOSED = BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED


class Backend(Protocol):
    """A store under test and raw access to what it stores."""

    store: CircuitBreakerStore

    def put(self, service: str, field: str, value: str | int) -> None:
        """Write one raw field of a breaker, bypassing the store."""

    def put_opened_at(self, service: str, when: datetime) -> None:
        """Write ``opened_at`` in the backend's own format."""

    def put_many(self, services: list[str], state: BreakerState) -> None:
        """Write many breakers at once (zero counters)."""

    def where(self, service: str, field: str) -> str:
        """Return how the store names one field in its errors and warnings."""


class SQLiteBackend:
    """The SQLite store on a file of its own, plus a second connection to that file."""

    def __init__(self, path: Path) -> None:
        self.store = open_store(f"sqlite:///{path}")
        self._raw = sqlite3.connect(path)

    def put(self, service: str, field: str, value: str | int) -> None:
        with self._raw:
            self._raw.execute(
                "INSERT OR IGNORE INTO breakers (service_name, state, updated_at) "
                "VALUES (?, 'closed', ?)",
                (service, datetime.now(timezone.utc).isoformat()),
            )
            self._raw.execute(
                f"UPDATE breakers SET {field} = ? WHERE service_name = ?", (value, service)
            )

    def put_opened_at(self, service: str, when: datetime) -> None:
        self.put(service, "opened_at", when.isoformat())

    def put_many(self, services: list[str], state: BreakerState) -> None:
        stamp = datetime.now(timezone.utc).isoformat()
        with self._raw:
            self._raw.executemany(
                "INSERT INTO breakers (service_name, state, updated_at) VALUES (?, ?, ?)",
                [(service, state.value, stamp) for service in services],
            )

    def where(self, service: str, field: str) -> str:
        return f"breakers.{field} of {service!r}"

    def close(self) -> None:
        self._raw.close()
        self.store.close()


class RedisBackend:
    """The Redis store, plus a plain client writing pybreaker's keys."""

    def __init__(self, url: str) -> None:
        self.store = open_store(url)
        self._raw = redis.Redis.from_url(url)

    def put(self, service: str, field: str, value: str | int) -> None:
        self._raw.set(self.where(service, field), value)

    def put_opened_at(self, service: str, when: datetime) -> None:
        self.put(service, "opened_at", int(when.timestamp()))

    def put_many(self, services: list[str], state: BreakerState) -> None:
        with self._raw.pipeline(transaction=False) as pipe:
            for service in services:
                pipe.set(self.where(service, "state"), state.value)
                pipe.set(self.where(service, "fail_counter"), 0)
                pipe.set(self.where(service, "success_counter"), 0)
            pipe.execute()

    def where(self, service: str, field: str) -> str:
        return f"{service}:pybreaker:{field}"

    def close(self) -> None:
        self._raw.close()
        self.store.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store in turn, empty."""
    if request.param == "sqlite":
        opened: SQLiteBackend | RedisBackend = SQLiteBackend(tmp_path / "breakers.db")
    else:
        opened = RedisBackend(request.getfixturevalue("redis_url"))
    yield opened
    opened.close()


def whole_seconds_ago(seconds: int) -> datetime:
    """Return a UTC time to the second, as both stores keep ``opened_at``."""
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=seconds)


def test_a_breaker_never_seen_is_unknown(backend: Backend) -> None:
    assert backend.store.get_state("payments") is None
    assert backend.store.get_all_states() == {}
    assert backend.store.forget("payments") is False


@pytest.mark.parametrize("state", list(BreakerState))
def test_setting_a_new_breaker_creates_it_with_zero_counters(
    backend: Backend, state: BreakerState
) -> None:
    record = backend.store.set_state("payments", state)
    assert record.service_name == "payments" and record.state is state
    assert (record.fail_counter, record.success_counter) == (0, 0)
    assert (record.opened_at is not None) == (state is OPEN)
    assert backend.store.get_state("payments") == record
    assert backend.store.get_all_states() == {"payments": record}


def test_half_open_restarts_the_success_counter_and_keeps_the_rest(backend: Backend) -> None:
    opened = whole_seconds_ago(30)
    backend.store.set_state("payments", OPEN)
    backend.put("payments", "fail_counter", 5)
    backend.put("payments", "success_counter", 2)
    backend.put_opened_at("payments", opened)

    record = backend.store.set_state("payments", HALF_OPEN)

    assert record.state is HALF_OPEN
    assert (record.fail_counter, record.success_counter, record.opened_at) == (5, 0, opened)


def test_closing_restarts_both_counters_and_keeps_opened_at(backend: Backend) -> None:
    opened = whole_seconds_ago(30)
    backend.store.set_state("payments", HALF_OPEN)
    backend.put("payments", "fail_counter", 5)
    backend.put("payments", "success_counter", 1)
    backend.put_opened_at("payments", opened)

    record = backend.store.set_state("payments", CLOSED)

    assert record.state is CLOSED
    assert (record.fail_counter, record.success_counter, record.opened_at) == (0, 0, opened)


def test_opening_stamps_now_in_utc_and_keeps_the_failures(backend: Backend) -> None:
    backend.store.set_state("payments", HALF_OPEN)
    backend.put("payments", "fail_counter", 5)
    backend.put("payments", "success_counter", 1)
    backend.put_opened_at("payments", whole_seconds_ago(3600))
    before = whole_seconds_ago(0)

    record = backend.store.set_state("payments", OPEN)

    after = datetime.now(timezone.utc)
    assert record.state is OPEN and (record.fail_counter, record.success_counter) == (5, 0)
    assert record.opened_at is not None and record.opened_at.tzinfo is not None
    assert record.opened_at.utcoffset() == timedelta(0)
    assert before <= record.opened_at <= after


def test_opening_never_moves_opened_at_back(backend: Backend) -> None:
    later = whole_seconds_ago(-3600)  # e.g. written by a host whose clock runs ahead
    backend.store.set_state("payments", OPEN)
    backend.put_opened_at("payments", later)

    assert backend.store.set_state("payments", OPEN).opened_at == later


def test_setting_the_same_state_twice_is_harmless(backend: Backend) -> None:
    first = backend.store.set_state("payments", OPEN)
    second = backend.store.set_state("payments", OPEN)
    assert first.opened_at is not None and second.opened_at is not None
    assert second.opened_at >= first.opened_at
    assert second.model_dump(exclude={"opened_at", "updated_at"}) == first.model_dump(
        exclude={"opened_at", "updated_at"}
    )


@pytest.mark.parametrize("create", [True, False], ids=["create", "existing-only"])
@pytest.mark.parametrize("state", list(BreakerState))
def test_each_transition_matches_pybreakers_own(
    backend: Backend, state: BreakerState, create: bool
) -> None:
    # The same breaker twice, open an hour ago with 3 failures and 2 trial successes counted:
    # once in our store, once in pybreaker's memory storage moved by pybreaker itself.
    opened = whole_seconds_ago(3600)
    backend.store.set_state("payments", OPEN)
    backend.put("payments", "fail_counter", 3)
    backend.put("payments", "success_counter", 2)
    backend.put_opened_at("payments", opened)
    memory = pybreaker.CircuitMemoryStorage(pybreaker.STATE_OPEN)
    for _ in range(3):
        memory.increment_counter()
    for _ in range(2):
        memory.increment_success_counter()
    memory.opened_at = opened
    reference = pybreaker.CircuitBreaker(state_storage=memory)
    {HALF_OPEN: reference.half_open, CLOSED: reference.close, OPEN: reference.open}[state]()

    record = backend.store.set_state("payments", state, create=create)

    assert record is not None
    assert (record.state.value, record.fail_counter, record.success_counter) == (
        memory.state,
        memory.counter,
        memory.success_counter,
    )
    assert (record.opened_at == opened) == (memory.opened_at == opened)


def test_forget_deletes_a_breaker(backend: Backend) -> None:
    backend.store.set_state("payments", OPEN)
    backend.store.set_state("orders", OPEN)

    assert backend.store.forget("payments") is True
    assert backend.store.forget("payments") is False
    assert backend.store.get_state("payments") is None
    assert list(backend.store.get_all_states()) == ["orders"]


def test_a_bad_state_hides_a_breaker_but_a_bad_counter_or_time_does_not(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Only its state makes a breaker one: an open breaker with a garbled counter or
    ``opened_at`` is still listed (and so recovered), the bad value read as 0 or None."""
    backend.store.set_state("bad-state", CLOSED)
    backend.put("bad-state", "state", "tripped")
    backend.store.set_state("bad-counter", OPEN)
    backend.put("bad-counter", "fail_counter", "many")
    backend.store.set_state("bad-time", OPEN)
    backend.put("bad-time", "opened_at", "yesterday")
    backend.store.set_state("good", OPEN)

    with caplog.at_level(logging.WARNING):
        states = backend.store.get_all_states()

    assert sorted(states) == ["bad-counter", "bad-time", "good"]
    assert states["bad-counter"].state is OPEN and states["bad-counter"].fail_counter == 0
    assert states["bad-time"].state is OPEN and states["bad-time"].opened_at is None
    assert backend.where("bad-state", "state") in caplog.text
    assert backend.where("bad-counter", "fail_counter") in caplog.text
    assert backend.where("bad-time", "opened_at") in caplog.text
    with pytest.raises(InvalidBreakerValue, match=backend.where("bad-state", "state")):
        backend.store.get_state("bad-state")
    # Writing over a garbled time works, and reads back clean.
    reopened = backend.store.set_state("bad-time", OPEN)
    assert reopened.opened_at is not None


def test_names_with_dots_and_dashes_are_kept_exactly(backend: Backend) -> None:
    names = ["payments.eu-west-1", "auth_service", "a.b.c", "x-y-z", "v2.0-beta_1"]
    for name in names:
        backend.store.set_state(name, OPEN)
    backend.store.set_state("auth_service", CLOSED)

    states = backend.store.get_all_states()

    assert sorted(states) == sorted(names)
    assert {name: r.state for name, r in states.items()} == {
        **{name: OPEN for name in names},
        "auth_service": CLOSED,
    }


def test_many_breakers_are_all_listed(backend: Backend) -> None:
    names = [f"svc-{i:04d}.eu-west" for i in range(2000)]
    backend.put_many(names, OPEN)
    backend.store.set_state("svc-0007.eu-west", HALF_OPEN)

    states = backend.store.get_all_states()

    assert sorted(states) == names
    assert states["svc-0007.eu-west"].state is HALF_OPEN
    assert sum(r.state is OPEN for r in states.values()) == 1999


def test_redis_lists_with_scan_never_keys(redis_url: str) -> None:  # noqa: F811
    backend = RedisBackend(redis_url)
    backend.put_many([f"svc-{i}" for i in range(1500)], OPEN)
    with redis.Redis.from_url(redis_url) as raw:
        raw.set("unrelated:key", "x")
        raw.set("pybreaker:state", "open")  # a breaker without a namespace has no service name
        raw.config_resetstat()

        assert len(backend.store.get_all_states()) == 1500

        stats = raw.info("commandstats")
    backend.close()
    assert "cmdstat_scan" in stats and "cmdstat_keys" not in stats


def test_redis_reads_missing_counters_as_zero_like_pybreaker(redis_url: str) -> None:  # noqa: F811
    with redis.Redis.from_url(redis_url) as raw:
        raw.set("payments:pybreaker:state", "open")
        record = open_store(redis_url).get_state("payments")
    assert record is not None and record.state is OPEN
    assert (record.fail_counter, record.success_counter, record.opened_at) == (0, 0, None)


def test_redis_errors_raise_so_the_activity_is_retried(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    unreachable = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(redis.exceptions.ConnectionError):
        unreachable.get_all_states()
    with pytest.raises(redis.exceptions.ConnectionError):
        unreachable.set_state("payments", OPEN)


def test_redis_data_survives_a_server_restart(redis_server: RedisServer) -> None:  # noqa: F811
    redis_server.start()
    redis_server.flushall()
    store = open_store(redis_server.url)
    store.set_state("payments", OPEN)
    redis_server.stop()
    with pytest.raises(redis.exceptions.ConnectionError):
        store.get_state("payments")
    redis_server.start()
    record = store.get_state("payments")
    assert record is not None and record.state is OPEN


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:1/0", RedisBreakerStore),
        ("rediss://cache.example:6380/2", RedisBreakerStore),
    ],
)
def test_open_store_chooses_redis_by_url(url: str, kind: type) -> None:
    assert isinstance(open_store(url), kind)  # connecting waits for the first command


def test_open_store_chooses_sqlite_by_url_and_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/b.db"), SQLiteBreakerStore)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECOVERY_CIRCUIT_STORE", raising=False)
    assert isinstance(open_store(), SQLiteBreakerStore)
    assert (tmp_path / ".recovery" / "breakers.db").exists()


def test_an_unsupported_store_url_names_both_forms() -> None:
    with pytest.raises(ValueError, match="unsupported circuit store") as error:
        open_store("memcached://localhost:11211")
    assert "sqlite:///" in str(error.value) and "redis://" in str(error.value)


def test_a_sqlite_row_in_another_encoding_does_not_stop_every_read(tmp_path: Path) -> None:
    store = SQLiteBreakerStore(tmp_path / "b.db")
    store.set_state("good", OPEN)
    with sqlite3.connect(tmp_path / "b.db") as raw:
        raw.execute(
            "INSERT INTO breakers (service_name, state, updated_at) "
            "VALUES (CAST(x'ff41' AS TEXT), 'open', '2026-11-28T00:00:00+00:00')"
        )
    raw.close()
    states = store.get_all_states()
    assert states["good"].state is OPEN
    assert "\ufffdA" in states, "read with a replacement character: no valid service name, so skipped by the watch"
    store.close()


@pytest.mark.parametrize("state", list(BreakerState))
def test_without_create_an_absent_breaker_is_not_written(
    backend: Backend, state: BreakerState
) -> None:
    """A recovery never makes up a breaker (SPEC §4): absent stays absent."""
    assert backend.store.set_state("payments", state, create=False) is None
    assert backend.store.get_state("payments") is None
    assert backend.store.get_all_states() == {}
    assert backend.store.forget("payments") is False  # not one field was written


def test_without_create_an_existing_breaker_is_written_and_returned(backend: Backend) -> None:
    backend.store.set_state("payments", OPEN)
    backend.store.set_state("orders", OPEN)

    half_open = backend.store.set_state("payments", HALF_OPEN, create=False)

    assert half_open is not None and half_open.state is HALF_OPEN
    assert backend.store.get_state("payments") == half_open
    assert state_of(backend.store, "orders") is OPEN
    backend.store.forget("payments")
    assert backend.store.set_state("payments", CLOSED, create=False) is None
    assert backend.store.get_state("payments") is None


def test_without_create_opening_never_moves_opened_at_back_and_mends_a_bad_one(
    backend: Backend,
) -> None:
    later = whole_seconds_ago(-3600)
    backend.store.set_state("payments", CLOSED)
    backend.put_opened_at("payments", later)
    reopened = backend.store.set_state("payments", OPEN, create=False)
    assert reopened is not None and reopened.opened_at == later

    backend.put("payments", "opened_at", "yesterday")
    before = whole_seconds_ago(0)
    mended = backend.store.set_state("payments", OPEN, create=False)
    assert mended is not None and mended.opened_at is not None
    assert before <= mended.opened_at <= datetime.now(timezone.utc)


def test_without_create_a_breaker_deleted_meanwhile_is_never_brought_back(
    backend: Backend,
) -> None:
    """Delete and write race: whichever runs first, the breaker ends up gone, whole.

    A check-then-write (read the state, then write it) would, now and then, write
    some of a just-deleted breaker's fields back: a half-made breaker.
    """
    errors: list[BaseException] = []
    for round in range(150):
        name = f"svc-{round}"
        backend.store.set_state(name, OPEN)
        start = threading.Barrier(2)

        def delete(name: str = name) -> None:
            start.wait()
            backend.store.forget(name)

        def write(name: str = name) -> None:
            start.wait()
            try:
                backend.store.set_state(name, HALF_OPEN, create=False)
            except BaseException as err:  # noqa: BLE001 (reported below)
                errors.append(err)

        threads = [threading.Thread(target=delete), threading.Thread(target=write)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert backend.store.get_state(name) is None
        assert backend.store.forget(name) is False, f"{name}: a field was written back"
    assert errors == []


def test_redis_without_create_writes_no_key_of_an_absent_breaker(
    redis_url: str,  # noqa: F811
) -> None:
    store = open_store(redis_url)
    with redis.Redis.from_url(redis_url) as raw:
        raw.set("payments:pybreaker:opened_at", 5)  # a stray field is no breaker
        assert store.set_state("payments", OPEN, create=False) is None
        assert sorted(raw.keys("payments:*")) == [b"payments:pybreaker:opened_at"]
        assert raw.get("payments:pybreaker:opened_at") == b"5"
    store.close()
