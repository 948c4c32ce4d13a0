"""What ``/alertmanager`` and ``/recoveries`` ask for, and the answer they give.

An Alertmanager body is answered alert by alert: a resolved alert changes nothing, a
firing one whose label (``RECOVERY_RECEIVER_LABEL``, default ``service``) names a
service asks for its recovery, and one without the label, or whose label is no
service name, is left with the reason. One bad alert never costs the others their
recovery: monitoring sends what it sends. The plain form is a request of our own
making, so a name that is no service name refuses the whole request (422), naming it.
"""

from __future__ import annotations

from datetime import datetime

from activities.time_bounds import within_bounds
from starter.client.coordinator_client import CoordinatorClient
from starter.receiver.bodies import AlertmanagerWebhook, RequestRefused, RecoveriesRequest
from starter.receiver.config import ReceiverConfig
from starter.receiver.scheduling import Ask, ItemAnswer, ReceiverAnswer, ask_for_recoveries
from workflows.errors import RecoveryValidationError
from workflows.models import validate_service_name

RESOLVED_REASON = "resolved: a resolved alert changes nothing"


async def answer_alertmanager(
    body: AlertmanagerWebhook, config: ReceiverConfig, coordinator: CoordinatorClient
) -> ReceiverAnswer:
    """Ask for a recovery of the service each firing alert names; answer per alert."""
    answers: dict[int, ItemAnswer] = {}
    asks: list[Ask] = []
    for index, alert in enumerate(body.alerts):
        name = alert.labels.get(config.label)
        if alert.status == "resolved":
            answers[index] = ItemAnswer(
                index=index, service=name, outcome="ignored", reason=RESOLVED_REASON
            )
        elif name is None:
            answers[index] = ItemAnswer(
                index=index, outcome="ignored", reason=f"no {config.label!r} label: no service named"
            )
        else:
            try:
                asks.append(Ask(index, validate_service_name(name), _began_at(alert.startsAt)))
            except RecoveryValidationError as err:
                answers[index] = ItemAnswer(
                    index=index, outcome="invalid", reason=f"label {config.label!r}: {err}"
                )
    answers.update(await ask_for_recoveries(coordinator, config.services, asks))
    results = [
        answers[index].model_copy(
            update={
                "status": alert.status,
                "fingerprint": alert.fingerprint,
                "alertname": alert.labels.get("alertname"),
            }
        )
        for index, alert in enumerate(body.alerts)
    ]
    return _answer(results)


async def answer_recoveries(
    body: RecoveriesRequest, config: ReceiverConfig, coordinator: CoordinatorClient
) -> ReceiverAnswer:
    """Ask for a recovery of each named service; answer per service.

    Raises:
        RequestRefused: a name is no service name (422, naming ``services[i]``); nothing is asked.
    """
    asks: list[Ask] = []
    for index, name in enumerate(body.services):
        try:
            asks.append(Ask(index, validate_service_name(name)))
        except RecoveryValidationError as err:
            raise RequestRefused(422, f"services[{index}]: {err}", f"services[{index}]") from None
    answers = await ask_for_recoveries(coordinator, config.services, asks)
    return _answer([answers[index] for index in range(len(body.services))])


def _began_at(starts_at: datetime | None) -> datetime | None:
    """An alert's ``startsAt``, if it is a time the coordinator takes (aware, 2000 to 2200)."""
    return starts_at if starts_at is not None and within_bounds(starts_at) else None


def _answer(results: list[ItemAnswer]) -> ReceiverAnswer:
    scheduled = [item.service for item in results if item.scheduled and item.service is not None]
    return ReceiverAnswer(scheduled=scheduled, results=results)

