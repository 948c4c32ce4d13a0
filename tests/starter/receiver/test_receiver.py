"""The receiver's doors on real HTTP and a real dev server: alerts and plain requests in.

One worker, store and health endpoint for the module; each test runs a receiver of its
own (a loopback port, milliseconds to start) and names services of its own. What the
coordinator does with an automatic request (storm guard, cool-downs, holds) is pinned
in ``test_coordinator_automation``; here, that the receiver's requests reach it as
automatic ones and that its answers come back per alert.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.client.connection import metrics_runtime
from starter.client.coordinator_client import CoordinatorClient
from starter.receiver import app as receiver_app
from starter.receiver.access_log import show_receiver_log
from starter.receiver.app import BindError
from tests.helpers.prometheus import scrape, value
from tests.helpers.receivers import TOKEN, ReceiverUnderTest, firing, serving_receiver, webhook
from tests.helpers.servers import free_port, health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.circuit_watch_models import ServiceSettings, WatchInput
from workflows.constants import recovery_workflow_id
from workflows.converter import data_converter
from workflows.coordinator_models import PauseServiceInput, ShutdownInput
from workflows.models import RecoveryPolicy

pytestmark = pytest.mark.timeout(60)


@dataclass
class Fleet:
    """What the module's tests share: a worker on its own task queue, its store, a policy."""

    client: Client
    task_queue: str
    store: SQLiteBreakerStore
    services: WatchInput


@pytest_asyncio.fixture(scope="module")
async def fleet(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    task_queue = f"tq-receiver-{uuid.uuid4().hex[:8]}"
    store = SQLiteBreakerStore(tmp_path_factory.mktemp("receiver") / "breakers.db")
    async with health_server([200]) as health, running_worker(dev_env.client, store, task_queue):
        policy = RecoveryPolicy(
            max_retry_attempts=2, initial_delay_ms=50, max_delay_ms=50,
            health_check=HttpHealthCheck(url=health.url),
        )
        yield Fleet(dev_env.client, task_queue, store, WatchInput(defaults=ServiceSettings(policy=policy)))
    store.close()


@pytest_asyncio.fixture
async def receiver(fleet: Fleet) -> AsyncIterator[ReceiverUnderTest]:
    async with serving_receiver(fleet.client, fleet.task_queue, services=fleet.services) as running:
        yield running


async def never_started(client: Client, service: str) -> bool:
    try:
        await client.get_workflow_handle(recovery_workflow_id(service)).describe()
    except RPCError as err:
        return err.status is RPCStatusCode.NOT_FOUND
    return False


async def test_without_the_token_a_request_gets_401_and_nothing_is_scheduled(
    receiver: ReceiverUnderTest, fleet: Fleet, service: str
) -> None:
    fleet.store.set_state(service, BreakerState.OPEN)
    for path, body in (("/alertmanager", webhook(firing(service))), ("/recoveries", {"services": [service]})):
        for authorization in (
            None, "", "Bearer", "Bearer wrong-token-of-the-right-length", f"Basic {TOKEN}",
            f"Bearer {TOKEN.upper()}", f"Bearer {TOKEN}x",
        ):
            status, answer = await receiver.post(path, body, authorization=authorization)
            assert status == 401, (path, authorization)
            assert answer["error"]["code"] == "unauthorized"
    assert await never_started(fleet.client, service)
    assert (breaker := fleet.store.get_state(service)) is not None and breaker.state is BreakerState.OPEN


async def test_a_firing_alert_asks_for_an_automatic_recovery_that_closes_the_breaker(
    receiver: ReceiverUnderTest, fleet: Fleet, service: str
) -> None:
    fleet.store.set_state(service, BreakerState.OPEN)
    status, answer = await receiver.post("/alertmanager", webhook(firing(service)))
    assert status == 200, answer
    assert answer["scheduled"] == [service]
    [result] = answer["results"]
    assert result["outcome"] in ("queued", "started") and result["scheduled"] is True
    assert (result["status"], result["fingerprint"], result["alertname"]) == ("firing", "c0ffee", "ServiceDown")
    await eventually(
        lambda: asyncio.to_thread(fleet.store.get_state, service),
        lambda breaker: breaker is not None and breaker.state is BreakerState.CLOSED,
    )


async def test_the_answer_says_per_alert_what_was_scheduled_and_why_the_rest_was_not(
    receiver: ReceiverUnderTest, fleet: Fleet, service: str
) -> None:
    paused, resolved = f"{service}-paused", f"{service}-resolved"
    await receiver.coordinator.pause_service(
        PauseServiceInput(service_name=paused, duration_s=600, reason="maintenance")
    )
    body = webhook(
        firing(service),
        firing(resolved, status="resolved"),
        firing(None),
        firing("not a service name!"),
        firing(service),
        firing(paused),
    )
    status, answer = await receiver.post("/alertmanager", body)
    assert status == 200, answer
    outcomes = [(r["index"], r["service"], r["outcome"], r["scheduled"]) for r in answer["results"]]
    assert outcomes[0][2] in ("queued", "started")
    assert outcomes[1:] == [
        (1, resolved, "ignored", False),
        (2, None, "ignored", False),
        (3, None, "invalid", False),
        (4, service, "duplicate", False),
        (5, paused, "paused", False),
    ]
    reasons = [r["reason"] for r in answer["results"]]
    assert "resolved" in reasons[1] and "'service' label" in reasons[2]
    assert "service_name" in reasons[3] and "#0" in reasons[4] and "maintenance" in reasons[5]
    assert answer["scheduled"] == [service]
    assert await never_started(fleet.client, resolved) and await never_started(fleet.client, paused)
    # The same alert again: the coordinator leaves a queued or running recovery as it is.
    status, again = await receiver.post("/alertmanager", webhook(firing(service)))
    assert status == 200 and again["scheduled"] == []
    assert again["results"][0]["outcome"] in ("already_queued", "already_running", "already_recovered")


async def test_the_plain_form_asks_for_each_service(
    receiver: ReceiverUnderTest, fleet: Fleet, service: str
) -> None:
    first, second = f"{service}-a", f"{service}-b"
    for name in (first, second):
        fleet.store.set_state(name, BreakerState.OPEN)
    status, answer = await receiver.post("/recoveries", {"services": [first, second]})
    assert status == 200, answer
    assert sorted(answer["scheduled"]) == [first, second]
    assert [r["index"] for r in answer["results"]] == [0, 1]


async def test_a_service_the_file_does_not_list_is_not_asked_for_when_it_says_so(
    fleet: Fleet, service: str
) -> None:
    only = WatchInput(recover_unlisted=False, services={f"{service}-listed": fleet.services.defaults}, source="recovery.toml")
    async with serving_receiver(fleet.client, fleet.task_queue, services=only) as receiver:
        status, answer = await receiver.post("/recoveries", {"services": [service]})
    assert status == 200
    [result] = answer["results"]
    assert (result["outcome"], result["scheduled"]) == ("unlisted", False)
    assert "not listed in recovery.toml" in result["reason"]
    assert await never_started(fleet.client, service)


@pytest.mark.parametrize(
    ("path", "raw", "status", "field", "words"),
    [
        ("/alertmanager", b"{not json", 400, None, "not JSON"),
        ("/alertmanager", b"", 400, None, "empty"),
        ("/alertmanager", b"\xff\xfe", 400, None, "UTF-8"),
        ("/alertmanager", b"[" * 100_000, 400, None, "nested too deeply"),
        ("/alertmanager", b"[]", 422, None, "JSON object, not an array"),
        ("/alertmanager", b'{"version": "3", "alerts": []}', 422, "version", "'4'"),
        ("/alertmanager", b'{"version": "4"}', 422, "alerts", "required"),
        ("/alertmanager", b'{"version": "4", "alerts": [{"status": "burning"}]}', 422, "alerts[0].status", "burning"),
        ("/alertmanager", b'{"version": "4", "alerts": [{"status": "firing", "labels": {"service": 7}}]}',
         422, "alerts[0].labels.service", "string"),
        ("/recoveries", b'{"service": ["a"]}', 422, "services", "required"),
        ("/recoveries", b'{"services": ["a"], "priority": 1}', 422, "priority", "not permitted"),
        ("/recoveries", b'{"services": []}', 422, "services", "at least 1"),
        ("/recoveries", b'{"services": [true]}', 422, "services[0]", "string"),
        ("/recoveries", b'{"services": ["ok", "no spaces allowed"]}', 422, "services[1]", "invalid"),
        ("/recoveries", b'{"services": ["coordinator"]}', 422, "services[0]", "reserved"),
    ],
)
async def test_a_malformed_body_gets_a_4xx_naming_the_field_and_schedules_nothing(
    receiver: ReceiverUnderTest, path: str, raw: bytes, status: int, field: str | None, words: str
) -> None:
    got, answer = await receiver.post(path, None, raw=raw)
    assert got == status, answer
    assert answer["error"].get("field") == field
    assert words in answer["error"]["message"]


async def test_an_oversized_body_gets_413_whether_announced_or_streamed(fleet: Fleet, service: str) -> None:
    async with serving_receiver(fleet.client, fleet.task_queue, max_body=4096) as receiver:
        big = webhook(*[firing(f"{service}-{n}") for n in range(100)])
        status, answer = await receiver.post("/alertmanager", big)
        assert status == 413 and answer["error"]["code"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until too much
            for _ in range(20):
                yield b" " * 1024

        async with aiohttp.ClientSession() as session:
            async with session.post(
                receiver.url + "/recoveries", data=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
            ) as streamed:
                assert streamed.status == 413
    assert await never_started(fleet.client, f"{service}-0")


async def test_a_slow_client_is_cut_off(fleet: Fleet) -> None:
    async with serving_receiver(fleet.client, fleet.task_queue, read_timeout=0.5) as receiver:
        host, port = receiver.url.removeprefix("http://").split(":")
        # Headers that never end: the connection is closed.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /alertmanager HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        writer.close()
        # A body that never comes: 408.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n{"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]  # and closed: read() ended


async def test_requests_are_counted_by_path_and_outcome(fleet: Fleet, service: str) -> None:
    bind = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(bind)
    async with serving_receiver(fleet.client, fleet.task_queue, meter=runtime.metric_meter, services=fleet.services) as receiver:
        await receiver.post("/alertmanager", webhook(firing(service)), authorization=None)
        await receiver.post("/alertmanager", None, raw=b"{")
        await receiver.post("/recoveries", {"services": [service]})
        await receiver.post("/alertmanager", webhook(firing(service, status="resolved")))
    metrics = await eventually(
        lambda: asyncio.to_thread(scrape, bind),
        lambda text: "recovery_receiver_requests_total" in text,
    )
    counted = {
        (path, outcome): value(metrics, "recovery_receiver_requests_total", path=path, outcome=outcome)
        for path, outcome in [
            ("alertmanager", "unauthorized"), ("alertmanager", "malformed"),
            ("recoveries", "scheduled"), ("alertmanager", "nothing_scheduled"),
        ]
    }
    assert set(counted.values()) == {1.0}, counted


async def test_other_paths_and_methods_get_json_refusals_and_a_taken_port_is_bad_input(
    receiver: ReceiverUnderTest, fleet: Fleet
) -> None:
    async with aiohttp.ClientSession() as session:
        for method, path, status in (("GET", "/alertmanager", 405), ("POST", "/nowhere", 404)):
            async with session.request(method, receiver.url + path) as answer:
                assert answer.status == status
                assert (await answer.json())["error"]["code"] == "bad_request"
    taken = int(receiver.url.rsplit(":", 1)[1])
    with pytest.raises(BindError, match=f"cannot listen on 127.0.0.1:{taken}"):
        async with serving_receiver(fleet.client, fleet.task_queue, port=taken):
            pass


async def test_a_stopped_orchestrator_refuses_every_alert_and_says_so(fleet: Fleet, service: str) -> None:
    coordinator_id = f"coordinator-{fleet.task_queue}-stopped"
    async with serving_receiver(
        fleet.client, fleet.task_queue, services=fleet.services, coordinator_workflow_id=coordinator_id
    ) as receiver:
        await receiver.coordinator.shutdown(ShutdownInput())  # starts it, then stops it
        status, answer = await receiver.post("/alertmanager", webhook(firing(service), firing(f"{service}-2")))
    assert status == 200 and answer["scheduled"] == []
    assert [(r["outcome"], r["scheduled"]) for r in answer["results"]] == [("refused", False)] * 2
    assert "stopped" in answer["results"][0]["reason"]
    assert await never_started(fleet.client, service)


async def test_recoveryctl_serve_receives_until_interrupted_and_serves_its_metrics(
    fleet: Fleet, service: str
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": fleet.client.service_client.config.target_host,
        "RECOVERY_RECEIVER_TOKEN": TOKEN,
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "recoveryctl"),
        "--coordinator-id", f"coordinator-{fleet.task_queue}", "--task-queue", fleet.task_queue,
        "serve", "--bind", f"127.0.0.1:{port}", "--metrics-bind", f"127.0.0.1:{metrics_port}",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"Receiving on http://127.0.0.1:{port}" in line.decode(), line
        receiver = ReceiverUnderTest(
            f"http://127.0.0.1:{port}",
            CoordinatorClient(fleet.client, workflow_id=f"coordinator-{fleet.task_queue}", task_queue=fleet.task_queue),
        )
        assert (await receiver.post("/recoveries", {"services": [service]}, authorization=None))[0] == 401
        status, answer = await receiver.post("/recoveries", {"services": [service]})
        assert status == 200 and answer["scheduled"] == [service], answer
        metrics = await asyncio.to_thread(scrape, f"127.0.0.1:{metrics_port}")
        assert value(metrics, "recovery_receiver_requests_total", path="recoveries", outcome="scheduled") == 1
    finally:
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert TOKEN not in out.decode() + err.decode()
    # Its log says who reached it and what became of the request (no query string).
    log = err.decode()
    assert '"POST /recoveries" 401' in log and '"POST /recoveries" 200' in log, log
    assert f"{service} queued" in log, log


async def test_when_temporal_refuses_the_request_the_answer_is_503_and_safe_to_send_again(
    fleet: Fleet, service: str
) -> None:
    config = fleet.client.service_client.config
    elsewhere = await Client.connect(
        config.target_host, namespace=f"no-such-{uuid.uuid4().hex[:6]}", data_converter=data_converter
    )
    async with serving_receiver(elsewhere, fleet.task_queue, services=fleet.services) as receiver:
        status, answer = await receiver.post("/alertmanager", webhook(firing(service)))
    assert status == 503 and answer["error"]["code"] == "unavailable"
    assert "NOT_FOUND" in answer["error"]["message"] and "safe" in answer["error"]["message"]


async def test_when_temporal_does_not_answer_the_answer_is_503_in_bounded_time(
    fleet: Fleet, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: 503 within the bound, not after the SDK's retries."""
    monkeypatch.setattr(receiver_app, "TEMPORAL_ANSWER_WITHIN", 1.0)
    held: list[asyncio.StreamWriter] = []  # connections kept open, never answered

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    async with silent:
        stalled = await Client.connect(f"127.0.0.1:{port}", lazy=True, data_converter=data_converter)
        async with serving_receiver(stalled, fleet.task_queue, read_timeout=1.0) as receiver:
            began = asyncio.get_running_loop().time()
            status, answer = await receiver.post("/recoveries", {"services": [service]})
            waited = asyncio.get_running_loop().time() - began
    assert status == 503 and answer["error"]["code"] == "unavailable", answer
    assert "did not answer within 1 s" in answer["error"]["message"] and waited < 10


async def test_a_request_that_does_not_parse_costs_one_short_log_line(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp quoted the bytes in a traceback: 20 such requests grew the log by a megabyte."""
    show_receiver_log()
    async with serving_receiver(fleet.client, fleet.task_queue) as receiver:
        host, port = receiver.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        garbage = b"POST /recoveries HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" + b"X" * 60_000
        writer.write(garbage + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert answer.split(b" ", 2)[1] == b"400", answer[:80]
    server_lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert server_lines, "aiohttp said nothing of the request"
    assert all(r.exc_info is None and len(r.getMessage()) <= 200 for r in server_lines)
