"""Redis breaker store: the keys of pybreaker's ``CircuitRedisStorage``, namespace = service name.

    <name>:pybreaker:state            open | half-open | closed
    <name>:pybreaker:fail_counter     integer
    <name>:pybreaker:success_counter  integer
    <name>:pybreaker:opened_at        integer unix seconds (UTC), only ever moved forward

So a service guarded by ``CircuitBreaker(state_storage=CircuitRedisStorage(STATE_CLOSED, redis,
namespace=name))`` is recovered directly. pybreaker's storage falls back to a default state when
Redis fails; this store lets the error raise instead, so the activity fails and Temporal retries
it rather than acting on a state nobody stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Literal, cast, overload

import redis
from redis.client import Pipeline

from activities.settings import STORE_URL_ENV
from activities.time_bounds import within_bounds
from recovery_breakers.store import (
    BreakerRecord,
    BreakerState,
    InvalidBreakerValue,
    parse_counter,
    parse_state,
    tolerant,
)

logger = logging.getLogger(__name__)

FIELDS = ("state", "fail_counter", "success_counter", "opened_at")
STATE_KEY_PATTERN = "*:pybreaker:state"
_STATE_KEY_SUFFIX = ":pybreaker:state"
# Keys per SCAN step and breakers per MGET: few round trips, and no long pause of the server
# (KEYS would block every service sharing this Redis while it walks the whole keyspace).
SCAN_COUNT = 1000
FETCH_BATCH = 500
# A Redis that stops answering must fail the activity, not hang its thread; a URL's own
# ``?socket_timeout=`` wins over these.
_CLIENT_DEFAULTS = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}

RawValue = bytes | str | None


def breaker_key(service_name: str, field: str) -> str:
    """Return pybreaker's key for one field of a breaker."""
    return f"{service_name}:pybreaker:{field}"


class RedisBreakerStore:
    """Breakers as pybreaker keeps them in Redis; safe to share between threads."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    @property
    def client(self) -> redis.Redis:
        """Return the Redis client (pybreaker's own ``CircuitRedisStorage`` shares it)."""
        return self._redis

    @classmethod
    def from_url(cls, url: str) -> RedisBreakerStore:
        """Open ``redis://[user:password@]host:port/db`` (or ``rediss://`` for TLS).

        Raises:
            ValueError: the URL does not parse. Its message quotes none of the URL: a
                password with ``/``, ``#`` or ``?`` in it ends the host early, and the
                parser's own message would quote a piece of the password.
        """
        try:
            return cls(redis.Redis.from_url(url, **_CLIENT_DEFAULTS))
        except ValueError:
            raise ValueError(
                f"{STORE_URL_ENV}: the Redis URL does not parse: write it as "
                "redis://[user:password@]host:port/db, with '/', '#', '?' and '@' in the "
                "password percent-encoded (%2F, %23, %3F, %40)"
            ) from None

    def get_all_states(self) -> dict[str, BreakerRecord]:
        """Return every readable breaker by service name, logging and skipping invalid ones."""
        names = self._breaker_names()
        records: dict[str, BreakerRecord] = {}
        for start in range(0, len(names), FETCH_BATCH):
            batch = names[start : start + FETCH_BATCH]
            values = self._redis.mget([breaker_key(name, f) for name in batch for f in FIELDS])
            for i, name in enumerate(batch):
                raw = values[i * len(FIELDS) : (i + 1) * len(FIELDS)]
                if raw[0] is None:
                    continue  # deleted between SCAN and MGET
                try:
                    records[name] = _record(name, raw)
                except InvalidBreakerValue as invalid:
                    logger.warning("skipping breaker %r: %s", name, invalid)
        return records

    def get_state(self, service_name: str) -> BreakerRecord | None:
        """Return one breaker, or None if its state key does not exist.

        Raises:
            InvalidBreakerValue: one of its keys holds a value no breaker could.
        """
        raw = self._redis.mget([breaker_key(service_name, f) for f in FIELDS])
        return None if raw[0] is None else _record(service_name, raw)

    @overload
    def set_state(
        self, service_name: str, state: BreakerState, *, create: Literal[True] = True
    ) -> BreakerRecord: ...

    @overload
    def set_state(
        self, service_name: str, state: BreakerState, *, create: bool
    ) -> BreakerRecord | None: ...

    def set_state(
        self, service_name: str, state: BreakerState, *, create: bool = True
    ) -> BreakerRecord | None:
        """Set a breaker's state as pybreaker would, in one MULTI/EXEC; see ``recovery_breakers.store``.

        Opening watches ``opened_at`` (pybreaker's set-if-greater transaction), so a service
        opening its breaker at the same moment never has its later time overwritten.

        Without ``create`` the write is one Lua script, which Redis runs atomically: a
        breaker whose state key is absent (never created, or deleted at this very moment)
        is not written, and None is returned.
        """
        with _wrong_types_refused(service_name):
            if not create:
                return self._set_existing(service_name, state)
            return self._set_created(service_name, state)

    def _set_created(self, service_name: str, state: BreakerState) -> BreakerRecord:
        """Write ``state`` in one MULTI/EXEC, creating the breaker if it is new."""
        opened_at_key = breaker_key(service_name, "opened_at")
        fail_key = breaker_key(service_name, "fail_counter")
        now = int(time.time())

        def write(pipe: Pipeline) -> None:
            stored = pipe.get(opened_at_key) if state is BreakerState.OPEN else None
            pipe.multi()
            pipe.set(breaker_key(service_name, "state"), state.value)
            pipe.set(breaker_key(service_name, "success_counter"), 0)
            if state is BreakerState.CLOSED:
                pipe.set(fail_key, 0)
            else:
                pipe.setnx(fail_key, 0)  # a new breaker starts at 0, as pybreaker's does
            if state is BreakerState.OPEN and _earlier_than(stored, now):
                pipe.set(opened_at_key, now)
            pipe.mget([breaker_key(service_name, f) for f in FIELDS])

        watched = [opened_at_key] if state is BreakerState.OPEN else []
        results = cast(list[object], self._redis.transaction(write, *watched))
        return _record(service_name, cast(list[RawValue], results[-1]))

    def _set_existing(self, service_name: str, state: BreakerState) -> BreakerRecord | None:
        """Write the same transition as ``set_state``, only if the breaker's state key exists."""
        keys = [breaker_key(service_name, f) for f in FIELDS]
        raw = self._redis.eval(
            _SET_EXISTING_SCRIPT, len(keys), *keys, state.value, int(time.time())
        )
        if raw is None:
            return None
        return _record(service_name, cast(list[RawValue], raw))

    def forget(self, service_name: str) -> bool:
        """Delete one breaker's keys; return whether any existed."""
        return self._redis.delete(*(breaker_key(service_name, f) for f in FIELDS)) > 0

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()

    def _breaker_names(self) -> list[str]:
        """Return the names of every ``<name>:pybreaker:state`` key, sorted (SCAN may repeat one)."""
        names: set[str] = set()
        for key in self._redis.scan_iter(match=STATE_KEY_PATTERN, count=SCAN_COUNT):
            try:
                text = key.decode("utf-8") if isinstance(key, bytes) else str(key)
            except UnicodeDecodeError:
                logger.warning("skipping breaker key %r: not UTF-8", key)
                continue
            names.add(text.removesuffix(_STATE_KEY_SUFFIX))
        return sorted(names)


# KEYS: state, fail_counter, success_counter, opened_at (FIELDS order); ARGV: state, now.
# The transitions of ``set_state`` (see ``recovery_breakers.store``), on an existing breaker only;
# ``opened_at`` moves forward only, and a value that is no integer is replaced (as
# ``_earlier_than`` does). Returns the four values after the write, or nil if absent.
_SET_EXISTING_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local state = ARGV[1]
redis.call('SET', KEYS[1], state)
redis.call('SET', KEYS[3], 0)
if state == 'closed' then
  redis.call('SET', KEYS[2], 0)
else
  redis.call('SETNX', KEYS[2], 0)
end
if state == 'open' then
  local now = tonumber(ARGV[2])
  local stored = redis.call('GET', KEYS[4])
  if (not stored) or (not string.match(stored, '^-?%d+$')) or now > tonumber(stored) then
    redis.call('SET', KEYS[4], ARGV[2])
  end
end
return redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
"""


@contextmanager
def _wrong_types_refused(service_name: str) -> Iterator[None]:
    """Turn Redis's WRONGTYPE into ``InvalidBreakerValue``: retrying will not mend it.

    A breaker key that something else made a list or a hash fails every write the same
    way; retried, a recovery held its slot for many minutes.
    """
    try:
        yield
    except redis.ResponseError as err:
        if not str(err).startswith("WRONGTYPE"):
            raise
        raise InvalidBreakerValue(
            breaker_key(service_name, "*"), "a key of another Redis type (WRONGTYPE)"
        ) from None


def _earlier_than(stored: RawValue, now: int) -> bool:
    """Return whether ``now`` is later than a stored ``opened_at``; an unreadable one is replaced."""
    try:
        return stored is None or now > parse_counter("opened_at", stored)
    except InvalidBreakerValue:
        return True


def _record(service_name: str, raw: Sequence[RawValue]) -> BreakerRecord:
    """Return the breaker four raw values (in ``FIELDS`` order) describe."""
    state, fail_counter, success_counter, opened_at = raw
    return BreakerRecord(
        service_name=service_name,
        state=parse_state(breaker_key(service_name, "state"), state),
        fail_counter=tolerant(
            parse_counter, breaker_key(service_name, "fail_counter"), fail_counter, 0
        ),
        success_counter=tolerant(
            parse_counter, breaker_key(service_name, "success_counter"), success_counter, 0
        ),
        opened_at=tolerant(_opened_at, breaker_key(service_name, "opened_at"), opened_at, None),
    )


def _opened_at(where: str, raw: RawValue) -> datetime | None:
    """Return pybreaker's integer unix seconds as a UTC time (empty means never opened)."""
    if raw is None or raw in (b"", ""):
        return None
    seconds = parse_counter(where, raw)
    try:
        opened = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise InvalidBreakerValue(where, raw) from None
    if not within_bounds(opened):  # 0, or year 9999: no opening the coordinator can use
        raise InvalidBreakerValue(where, raw)
    return opened
