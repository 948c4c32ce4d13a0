"""The HTTP receiver (``recoveryctl serve``) run inside a test, on loopback, and requests to it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import aiohttp
from temporalio.client import Client
from temporalio.common import MetricMeter

from starter.client.coordinator_client import CoordinatorClient
from starter.receiver.app import build_app, running
from starter.receiver.config import ReceiverConfig
from workflows.circuit_watch_models import WatchInput

TOKEN = "receiver-test-token-0123456789"
SECRET = b"link-secret-for-the-tests-0123456789"


@dataclass
class ReceiverUnderTest:
    """A running receiver: where it listens, and the coordinator it asks."""

    url: str
    coordinator: CoordinatorClient

    async def post(
        self,
        path: str,
        body: Any,
        *,
        authorization: str | None = f"Bearer {TOKEN}",
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """POST ``body`` as JSON (or ``raw`` bytes); return the status and the decoded answer."""
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        data = raw if raw is not None else json.dumps(body).encode()
        async with aiohttp.ClientSession() as session:
            async with session.post(self.url + path, data=data, headers=headers) as answer:
                text = await answer.text()
                return answer.status, json.loads(text) if text else None


def firing(service: str | None, *, status: str = "firing", **labels: str) -> dict[str, Any]:
    """One alert of an Alertmanager webhook body."""
    if service is not None:
        labels["service"] = service
    return {
        "status": status,
        "labels": {"alertname": "ServiceDown", **labels},
        "annotations": {},
        "startsAt": datetime.now(timezone.utc).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.invalid/graph",
        "fingerprint": "c0ffee",
    }


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) carrying ``alerts``."""
    return {
        "version": "4",
        "groupKey": "{}:{alertname=\"ServiceDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "recovery",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": list(alerts),
    }


@asynccontextmanager
async def serving_receiver(
    client: Client,
    task_queue: str,
    *,
    services: WatchInput | None = None,
    meter: MetricMeter | None = None,
    now: Callable[[], datetime] | None = None,
    port: int = 0,
    **config: Any,
) -> AsyncIterator[ReceiverUnderTest]:
    """Run a receiver on loopback (a free port by default), asking ``task_queue``'s coordinator."""
    settings = ReceiverConfig(
        **{
            "token": TOKEN.encode(),
            "link_secret": SECRET,
            "services": services or WatchInput(),
            "coordinator_workflow_id": f"coordinator-{task_queue}",
            "task_queue": task_queue,
            **config,
        }
    )
    app = build_app(client, settings, meter=meter, **({"now": now} if now else {}))
    async with running(app, "127.0.0.1", port) as (host, bound):
        yield ReceiverUnderTest(
            url=f"http://{host}:{bound}",
            coordinator=CoordinatorClient(
                client, workflow_id=settings.coordinator_workflow_id, task_queue=task_queue
            ),
        )
