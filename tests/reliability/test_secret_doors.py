"""Issue 19, rows 1–3: a secret planted at each door is found in no sink.

- row 1: the Redis password of ``RECOVERY_CIRCUIT_STORE`` is not in the worker's log
  (its start-up line names the store with ``default:***@``);
- row 2: a secret header value with a trailing tab (``RECOVERY_SECRET_X=$'Bearer
  t0ken\\t'``) is refused before any request, naming the variable: the token is in no
  history, query, result or log line (httpx's ``Illegal header value b'Bearer
  t0ken\\t'`` quoted it, escaped, past the old redaction); a callable check that quotes
  a secret has it masked in its detail;
- row 3: a literal token given as a ``headers_from_env`` value is refused naming the
  header, never quoting the token: not in ``rejected_signals`` (``get_configuration``),
  an update's refusal or the log; in ``recovery.toml``, not in the worker's start-up error.

Written without importing ``activities.redaction``, so that they run (and fail) on the
code from before it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.health_check_specs import CallableHealthCheck, HealthCheckInput, HttpHealthCheck
from activities.health_checks import HealthCheckActivities
from activities.target_vetting import TargetAllowList
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from starter.client.connection import connect
from starter.client.recoveries import final_result
from starter.client.services_file import ServicesFileError, load_services_file
from starter.devtools.dev import find_binary
from tests.helpers.recoveries import start_recovery
from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import free_port
from tests.helpers.waiting import eventually
from tests.helpers.watching import watch_id, watch_until
from tests.helpers.workers import orchestrator_on, running_worker
from tests.reliability import checks_secret_callables
from tests.reliability.checks_servers import Answer, fault_server
from workflows.constants import CONSTITUTIONAL_HASH, TASK_QUEUE
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy, ServiceRecoveryInput
from workflows.service_recovery import ServiceRecovery

pytestmark = pytest.mark.timeout(90)

WORKER = str(Path(sys.executable).parent / "recovery-worker")


def readable(history: WorkflowHistory) -> str:
    """Every event as text, payloads as their bytes (``to_json`` would hide them in base64)."""
    return "\n".join(str(event) for event in history.events)


def leaks(secret: str, places: dict[str, str]) -> list[str]:
    """Return the names of the places that hold ``secret``."""
    return [place for place, text in places.items() if secret in text]


def literal_token() -> str:
    """A token of this test's own, shaped like a real one (no scheme word a rule keys on)."""
    return f"ghp_{uuid.uuid4().hex}"


# --- row 1: the store URL's password, in a real worker's log ---


@pytest_asyncio.fixture
async def own_server() -> AsyncIterator[str]:
    """A dev server of this test's own: a real worker there starts the coordinator and watch."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=find_binary("temporal"))
    async with env:
        yield env.client.service_client.config.target_host


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, str]]:
    """A Redis of this test's own that requires a password."""
    password = f"PW-{uuid.uuid4().hex}"
    with RedisServer(tmp_path / "redis") as server:
        with server.client() as client:
            client.config_set("requirepass", password)
        yield server, password


async def read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    """Read lines into ``seen`` until one holds ``marker``."""
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"the worker exited before {marker!r}:\n{''.join(seen)}")
        seen.append(line)
        if marker in line:
            return


@pytest.mark.timeout(120)
async def test_a_redis_password_in_the_store_url_is_not_in_the_worker_log(
    own_server: str, password_redis: tuple[RedisServer, str], tmp_path: Path
) -> None:
    server, password = password_redis
    store = f"redis://default:{password}@127.0.0.1:{server.port}/0"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": own_server,
        "RECOVERY_CIRCUIT_STORE": store,
        "RECOVERY_WATCH_INTERVAL": "1",
    }
    env.pop("RECOVERY_SERVICES_FILE", None)
    process = await asyncio.create_subprocess_exec(
        WORKER, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        await asyncio.wait_for(read_until(process.stdout, "circuit watch", seen), timeout=90)
        # The watch's first look reads the store, with the password: wait until it has looked.
        client = await connect(target_host=own_server, namespace="default")
        await watch_until(client, watch_id(TASK_QUEUE), lambda state: state.looks >= 1, timeout=60)
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = "".join(seen) + (rest or b"").decode(errors="replace")
    assert f"redis://default:***@127.0.0.1:{server.port}/0" in log, log
    assert password not in log, log


async def test_a_password_in_a_refused_store_url_is_not_in_the_start_up_error(
    tmp_path: Path,
) -> None:
    """Errors that name the store URL are redacted like the start-up line."""
    password = f"PW-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "RECOVERY_CIRCUIT_STORE": f"mysql://default:{password}@127.0.0.1:3306/db",
    }
    process = await asyncio.create_subprocess_exec(
        WORKER, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    log = (out + err).decode(errors="replace")
    assert process.returncode == 2 and "unsupported circuit store" in log, log
    assert password not in log and "mysql://default:***@127.0.0.1:3306/db" in log, log


# --- row 2: a secret header value with a trailing tab ---


async def test_a_secret_header_with_a_trailing_tab_reaches_no_sink(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = f"t0ken{uuid.uuid4().hex}"
    monkeypatch.setenv("RECOVERY_SECRET_X", f"Bearer {token}\t")
    async with fault_server(Answer()) as server:
        check = HttpHealthCheck(
            url=server.url(), headers_from_env={"Authorization": "RECOVERY_SECRET_X"}
        )
        policy = RecoveryPolicy(max_retry_attempts=2, initial_delay_ms=10, health_check=check)
        async with running_worker(dev_env.client, store, task_queue):
            handle = await start_recovery(
                dev_env.client, task_queue, ServiceRecoveryInput(service_name=service, policy=policy)
            )
            result = await final_result(handle)
            status = await handle.query(ServiceRecovery.status)
            attempts = await handle.query(ServiceRecovery.history)
            history = await handle.fetch_history()
    assert not result.success and result.attempt_number == 2, result
    assert server.requests == [], "refused before any request"
    error = attempts[0].error or ""
    assert "RECOVERY_SECRET_X" in error and "Authorization" in error, error
    places = {
        "history": readable(history),
        "history query": json.dumps([a.model_dump(mode="json") for a in attempts]),
        "status query": status.model_dump_json(),
        "last_error": status.last_error or "",
        "result": json.dumps(result.to_dict(), default=str),
        "log": caplog.text,
    }
    assert leaks(token, places) == []


@pytest.mark.parametrize("function", ["raises_with_secret", "returns_secret"])
async def test_a_callable_check_quoting_a_secret_has_it_masked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, function: str
) -> None:
    caplog.set_level(logging.DEBUG)
    token = f"t0ken{uuid.uuid4().hex}"
    monkeypatch.setenv(checks_secret_callables.VARIABLE, f"Bearer {token}\t")
    activities = HealthCheckActivities(
        [checks_secret_callables.__name__], allowed_targets=TargetAllowList()
    )
    check = CallableHealthCheck(ref=f"{checks_secret_callables.__name__}:{function}")
    outcome = await ActivityEnvironment().run(
        activities.run_health_check, HealthCheckInput(service_name="svc", check=check)
    )
    assert function in outcome.detail
    assert leaks(token, {"detail": outcome.detail, "log": caplog.text}) == []


# --- row 3: a literal token where a variable's name belongs ---


def token_check(url: str, token: str) -> dict[str, Any]:
    """An http check that gives the token itself as the header's value."""
    return {"kind": "http", "url": url, "headers_from_env": {"Authorization": token}}


def assert_refusal_names_the_header(message: str, token: str) -> None:
    assert token not in message, message
    assert "Authorization" in message and "RECOVERY_SECRET_" in message, message


@pytest.mark.parametrize("shape", ["{}", "Bearer {}"])
def test_a_literal_token_is_refused_without_quoting_it(shape: str) -> None:
    token = literal_token()
    with pytest.raises(RecoveryValidationError) as refused:
        RecoveryPolicy(health_check=token_check("http://svc/health", shape.format(token)))
    assert_refusal_names_the_header(str(refused.value), token)


async def test_a_literal_token_in_a_schedule_signal_is_not_kept_or_logged(
    dev_env: WorkflowEnvironment,
    store: SQLiteBreakerStore,
    task_queue: str,
    service: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = literal_token()
    request = {
        "service_name": service,
        "policy": {"health_check": token_check("http://127.0.0.1:9/health", token)},
        "constitutional_hash": CONSTITUTIONAL_HASH,
    }
    async with orchestrator_on(dev_env, store, task_queue) as orch:
        coordinator = dev_env.client.get_workflow_handle(orch.coordinator_workflow_id)
        await coordinator.signal("schedule_recovery", request)
        configuration: dict[str, Any] = await eventually(
            lambda: coordinator.query("get_configuration"),
            lambda c: bool(c["rejected_signals"]),
        )
        with pytest.raises(WorkflowUpdateFailedError) as update:
            await coordinator.execute_update("schedule_recovery", request)
    rejected = configuration["rejected_signals"][-1]
    assert "schedule_recovery signal rejected" in rejected
    assert_refusal_names_the_header(rejected, token)
    assert_refusal_names_the_header(str(update.value.cause), token)
    places = {"get_configuration": json.dumps(configuration), "log": caplog.text}
    assert leaks(token, places) == []


def write_services_file(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "recovery.toml"
    path.write_text(
        "[services.billing]\n"
        'health_check = { kind = "http", url = "http://billing/health", '
        f"headers_from_env = {{ Authorization = {value} }} }}\n"
    )
    return path


@pytest.mark.parametrize("shape", ['"{}"', '"Bearer {}"', "{}"])
def test_a_literal_token_in_the_services_file_is_not_echoed(tmp_path: Path, shape: str) -> None:
    token = literal_token() if shape != "{}" else str(uuid.uuid4().int)[:18]  # a bare number
    path = write_services_file(tmp_path, shape.format(token))
    with pytest.raises(ServicesFileError) as refused:
        load_services_file(path)
    assert token not in str(refused.value), str(refused.value)
    assert "[services.billing]" in str(refused.value) and "Authorization" in str(refused.value)


@pytest.mark.parametrize("shape", ['"{}"', '"Bearer {}"'])
async def test_a_literal_token_in_the_services_file_is_not_in_the_start_up_error(
    tmp_path: Path, shape: str
) -> None:
    token = literal_token()
    path = write_services_file(tmp_path, shape.format(token))
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "RECOVERY_CIRCUIT_STORE": f"sqlite:///{tmp_path / 'breakers.db'}",
        "RECOVERY_SERVICES_FILE": str(path),
    }
    process = await asyncio.create_subprocess_exec(
        WORKER, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    log = (out + err).decode(errors="replace")
    assert process.returncode == 2, log
    assert "cannot start" in log and str(path) in log, log
    assert_refusal_names_the_header(log, token)
