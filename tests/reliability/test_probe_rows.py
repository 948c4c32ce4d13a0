"""Rows of the adversarial probe (issue 19) that no test held: names, races and doors."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.circuit_breakers import CircuitBreakerActivities, SetBreakerStateInput
from recovery_breakers.redis_store import RedisBreakerStore, breaker_key
from recovery_breakers.store import BreakerState, InvalidBreakerValue, parse_counter

from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.coordinator_client import CoordinatorClient
from tests.helpers.redis_server import RedisServer
from tests.helpers.workers import orchestrator_on
from workflows.coordinator_models import ScheduleRecoveriesInput, ScheduleRecoveryInput
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryStrategy, validate_service_name

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("name", ["coordinator", "circuit-watch", "circuit-watch-1700000000"])
def test_names_that_take_the_products_own_workflow_ids_are_refused(name: str) -> None:
    with pytest.raises(RecoveryValidationError, match="is reserved"):
        validate_service_name(name)
    with pytest.raises(ValueError, match="is reserved"):
        ScheduleRecoveryInput(service_name=name)


@pytest.mark.parametrize("name", ["Coordinator", "coordinators", "my-coordinator", "circuit"])
def test_names_near_the_reserved_ones_are_fine(name: str) -> None:
    assert validate_service_name(name) == name


async def test_the_coordinators_own_name_is_refused_at_the_facade_and_the_raw_update(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str
) -> None:
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        with pytest.raises(RecoveryValidationError, match="reserved"):
            await orch.schedule_recovery("coordinator")
        raw = dev_env.client.get_workflow_handle(f"coordinator-{task_queue}")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await raw.execute_update(
                "schedule_recovery", {"service_name": "coordinator", "priority": 1}
            )
        assert "reserved" in str(refused.value.cause)
        status = await orch.get_recovery_status(max_staleness=0)
        assert "coordinator" not in status["services"]


async def test_execute_does_not_start_a_service_ahead_of_a_dependency_awaiting_an_operator(
    dev_env: WorkflowEnvironment, store: SQLiteBreakerStore, task_queue: str, service: str
) -> None:
    database, api = f"{service}-db", f"{service}-api"
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        await orch.schedule_recovery(database, strategy=RecoveryStrategy.MANUAL)
        await orch.schedule_recovery(api, policy=RecoveryPolicy(depends_on=[database]))
        with pytest.raises(RecoveryOrchestratorError, match=f"waiting for '{database}'"):
            await orch.execute_recovery(api)
        status = await orch.get_recovery_status(max_staleness=0)
        assert status["services"][api]["state"] == "scheduled"
        client = CoordinatorClient(
            dev_env.client, workflow_id=f"coordinator-{task_queue}", task_queue=task_queue
        )
        # Automation's hand-over of the same service changes nothing either.
        [again] = await client.schedule_recoveries(
            ScheduleRecoveriesInput(recoveries=[ScheduleRecoveryInput(service_name=api)], automatic=True)
        )
        assert again.outcome == "already_queued"


def test_a_breaker_key_of_another_redis_type_ends_the_write_at_once(redis_server: RedisServer) -> None:
    redis_server.flushall()
    store = RedisBreakerStore.from_url(redis_server.url)
    store.set_state("garbled", BreakerState.OPEN)
    client = redis_server.client()
    client.delete(breaker_key("garbled", "opened_at"))
    client.rpush(breaker_key("garbled", "opened_at"), "not", "a", "time")
    for create in (True, False):
        with pytest.raises(InvalidBreakerValue, match="WRONGTYPE"):
            store.set_state("garbled", BreakerState.OPEN, create=create)


async def test_the_write_activity_does_not_retry_what_retrying_cannot_mend(
    redis_server: RedisServer,
) -> None:
    redis_server.flushall()
    store = RedisBreakerStore.from_url(redis_server.url)
    store.set_state("garbled", BreakerState.OPEN)
    client = redis_server.client()
    client.delete(breaker_key("garbled", "opened_at"))
    client.rpush(breaker_key("garbled", "opened_at"), "x")
    activities = CircuitBreakerActivities(store)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            activities.set_breaker_state,
            SetBreakerStateInput(service_name="garbled", state=BreakerState.OPEN),
        )
    assert refused.value.non_retryable and refused.value.type == "InvalidBreakerValue"


def test_one_breaker_with_a_5000_digit_counter_does_not_hide_the_others(
    redis_server: RedisServer,
) -> None:
    redis_server.flushall()
    store = RedisBreakerStore.from_url(redis_server.url)
    store.set_state("fine", BreakerState.OPEN)
    store.set_state("huge", BreakerState.OPEN)
    redis_server.client().set(breaker_key("huge", "fail_counter"), "9" * 5000)
    states = store.get_all_states()
    assert set(states) == {"fine", "huge"}
    assert states["huge"].fail_counter == 0  # read as 0, logged; its state still counts
    with pytest.raises(InvalidBreakerValue) as invalid:
        parse_counter("huge:pybreaker:fail_counter", "9" * 5000)
    assert len(str(invalid.value)) < 300


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("RECOVERY_CIRCUIT_STORE", "sqlite:////proc/1/x.db", "cannot open the SQLite circuit store"),
        ("RECOVERY_WATCH_INTERVAL", "inf", "RECOVERY_WATCH_INTERVAL='inf'"),
        ("RECOVERY_WATCH_INTERVAL", "1e20", "RECOVERY_WATCH_INTERVAL='1e20'"),
    ],
)
def test_a_bad_worker_setting_stops_it_with_exit_2_and_one_line(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    named: str,
) -> None:
    import worker

    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        worker.main([])
    assert stopped.value.code == 2
    assert any(named in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--address", "", "status"], "--address must be HOST:PORT"),
        (["--address", "  ", "status"], "--address must be HOST:PORT"),
        (["--profile", "", "status"], "--profile must name a profile"),
    ],
)
def test_an_empty_connection_flag_is_bad_input_not_a_silent_default(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    from starter.cli import run

    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("recoveryctl: error: ") and named in err and err.count("\n") == 1


def test_dev_on_a_taken_port_is_bad_input_with_the_cli_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    from starter.cli import run

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert run(["dev", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recoveryctl: error: port ") and "already in use" in err


@pytest.mark.parametrize("opened_at", ["0", "-5", "946684799", "10000000000", "253402300799"])
def test_an_opened_at_no_opening_can_have_is_that_breakers_bad_value_only(
    redis_server: RedisServer, opened_at: str
) -> None:
    redis_server.flushall()
    store = RedisBreakerStore.from_url(redis_server.url)
    store.set_state("fine", BreakerState.OPEN)
    store.set_state("odd", BreakerState.OPEN)
    redis_server.client().set(breaker_key("odd", "opened_at"), opened_at)
    states = store.get_all_states()
    assert states["odd"].state is BreakerState.OPEN and states["odd"].opened_at is None
    assert states["fine"].opened_at is not None


@pytest.mark.parametrize(
    "opened_at",
    ["1999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"],
)
def test_a_sqlite_opened_at_out_of_range_spoils_only_its_breaker(tmp_path: Path, opened_at: str) -> None:
    import sqlite3

    store = SQLiteBreakerStore(tmp_path / "breakers.db")
    store.set_state("fine", BreakerState.OPEN)
    store.set_state("odd", BreakerState.OPEN)
    with sqlite3.connect(tmp_path / "breakers.db") as raw:
        raw.execute("UPDATE breakers SET opened_at = ? WHERE service_name = 'odd'", (opened_at,))
    states = store.get_all_states()
    assert states["odd"].opened_at is None and states["fine"].opened_at is not None
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/health?%74oken=abc",
        "http://127.0.0.1:9/health?auth_token=abc",
        "http://127.0.0.1:9/health?X-Amz-Signature=abc",
        "http://127.0.0.1:9/health?a=1;token=abc",
        "http://127.0.0.1:9/health#access_token=abc",
        "http://127.0.0.1:9/health?jwt=abc",
    ],
)
def test_a_check_url_with_a_credential_in_its_query_is_refused(url: str) -> None:
    from activities.health_check_specs import HttpHealthCheck

    with pytest.raises(ValueError, match="must not carry a credential in its query string") as refused:
        HttpHealthCheck(url=url)
    assert "abc" not in str(refused.value).split("input_value")[0]


def test_a_redis_password_with_a_hash_is_masked_where_the_url_is_quoted() -> None:
    from activities.redaction import redact

    text = "cannot reach the circuit store redis://default:6391#Xs3cret@127.0.0.1:6391/0"
    assert "Xs3cret" not in redact(text) and "6391#" not in redact(text)
