"""End to end with the real Alertmanager (Debian's ``prometheus-alertmanager``).

An alert posted to Alertmanager's API reaches the receiver through a ``webhook_configs``
receiver with ``authorization: credentials``, and the recovery starts and closes the
breaker. With the wrong credentials Alertmanager's notification is refused (401) and
nothing is scheduled. ``make test`` installs the package (``ensure-debian-packages``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.health_check_specs import HttpHealthCheck
from recovery_breakers.sqlite_store import SQLiteBreakerStore
from recovery_breakers.store import BreakerState
from starter.devtools.dev import find_binary
from tests.helpers.prometheus import scrape, value
from tests.helpers.receivers import TOKEN, ReceiverUnderTest, serving_receiver
from tests.helpers.servers import free_port, health_server
from tests.helpers.waiting import eventually
from tests.helpers.workers import running_worker
from workflows.circuit_watch_models import ServiceSettings, WatchInput
from workflows.constants import recovery_workflow_id
from workflows.models import RecoveryPolicy

pytestmark = pytest.mark.timeout(90)

CONFIG = """\
route:
  receiver: recovery
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: recovery
    webhook_configs:
      - url: {url}/alertmanager
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            credentials: {token}
"""


@contextmanager
def alertmanager(tmp_path: Path, receiver_url: str, token: str) -> Iterator[str]:
    """Run Alertmanager on loopback, its one route sending to the receiver; yield its address."""
    (tmp_path / "alertmanager.yml").write_text(CONFIG.format(url=receiver_url, token=token))
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            find_binary("prometheus-alertmanager"),
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
            "--cluster.listen-address=",  # no gossip: one instance, no ports beyond loopback
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def post_alert(address: str, service: str) -> None:
    """Post one firing alert naming ``service`` to Alertmanager's API (v2)."""
    alert = [{"labels": {"alertname": "ServiceDown", "service": service}}]
    request = urllib.request.Request(
        f"http://{address}/api/v2/alerts",
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


async def ready(address: str) -> bool:
    try:
        with await asyncio.to_thread(urllib.request.urlopen, f"http://{address}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@asynccontextmanager
async def fleet_and_receiver(
    dev_env: WorkflowEnvironment, tmp_path: Path, health_url: str
) -> AsyncIterator[tuple[SQLiteBreakerStore, ReceiverUnderTest]]:
    task_queue = f"tq-am-{uuid.uuid4().hex[:8]}"
    store = SQLiteBreakerStore(tmp_path / "breakers.db")
    policy = RecoveryPolicy(
        max_retry_attempts=2, initial_delay_ms=50, max_delay_ms=50, health_check=HttpHealthCheck(url=health_url)
    )
    services = WatchInput(defaults=ServiceSettings(policy=policy))
    try:
        async with running_worker(dev_env.client, store, task_queue), serving_receiver(
            dev_env.client, task_queue, services=services
        ) as receiver:
            yield store, receiver
    finally:
        store.close()


async def test_an_alert_posted_to_alertmanager_starts_the_recovery(
    dev_env: WorkflowEnvironment, tmp_path: Path, service: str
) -> None:
    async with health_server([200]) as health, fleet_and_receiver(dev_env, tmp_path, health.url) as (store, receiver):
        store.set_state(service, BreakerState.OPEN)
        with alertmanager(tmp_path, receiver.url, TOKEN) as address:
            await eventually(lambda: ready(address), bool, timeout=30)
            post_alert(address, service)
            await eventually(
                lambda: asyncio.to_thread(store.get_state, service),
                lambda breaker: breaker is not None and breaker.state is BreakerState.CLOSED,
                timeout=30,
            )
        assert health.requests >= 1


async def test_alertmanager_with_the_wrong_credentials_is_refused_and_schedules_nothing(
    dev_env: WorkflowEnvironment, tmp_path: Path, service: str
) -> None:
    async with health_server([200]) as health, fleet_and_receiver(dev_env, tmp_path, health.url) as (store, receiver):
        store.set_state(service, BreakerState.OPEN)
        with alertmanager(tmp_path, receiver.url, "not-the-receivers-token") as address:
            await eventually(lambda: ready(address), bool, timeout=30)
            post_alert(address, service)
            await eventually(
                lambda: asyncio.to_thread(scrape, address),
                lambda metrics: value(
                    metrics, "alertmanager_notifications_failed_total", integration="webhook"
                ) >= 1,
                timeout=30,
            )
        with pytest.raises(RPCError) as missing:
            await dev_env.client.get_workflow_handle(recovery_workflow_id(service)).describe()
        assert missing.value.status is RPCStatusCode.NOT_FOUND
        assert (breaker := store.get_state(service)) is not None and breaker.state is BreakerState.OPEN
