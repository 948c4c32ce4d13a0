"""Turning the services a request names into automatic requests, and saying what became of each.

The receiver asks exactly as the circuit watch does: one ``schedule_recoveries`` batch
marked ``automatic``, each service with the strategy, priority and policy the services
file gives it. So the coordinator applies the same rules to an alert as to an open
breaker (SPEC §4, §10): a service already queued or running is left as it is, the
storm guard, cool-downs, an operator's cancel hold and pauses hold it back, and the
recovery runs under the evidence rule. The coordinator's per-service answer is passed
on as it is; the receiver adds its own reasons only for what it never sent (not
listed in the services file, named twice in one request).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from starter.client.coordinator_client import CoordinatorClient
from workflows.circuit_watch_models import WatchInput
from workflows.coordinator_models import (
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryOrchestratorError

logger = logging.getLogger(__name__)

# The coordinator's outcomes that mean a recovery was asked for and will run.
SCHEDULED_OUTCOMES = frozenset({"queued", "updated", "started"})
# Requests the coordinator refuses one by one (a reserved name, a bad policy) are dropped
# and the rest sent again, as the watch does; past this many the rest is refused too.
MAX_DROPPED = 20


@dataclass(frozen=True)
class Ask:
    """One service a request names (a valid name): where in the request, when its trouble began."""

    index: int
    service_name: str
    # An alert's ``startsAt`` (aware, 2000 to 2200): a recovery that ended after it makes
    # the alert stale.
    began_at: datetime | None = None


class ItemAnswer(BaseModel):
    """What became of one alert (or one named service): scheduled, or why not.

    ``outcome`` is the coordinator's (``queued``, ``already_running``, ``held_back``,
    ``paused``…) or, for what the receiver never sent, ``ignored`` (a resolved alert,
    one without the label), ``invalid`` (the label is no service name), ``unlisted``
    (the services file does not recover it) or ``duplicate`` (named before in the same
    request: one recovery is asked for).
    """

    index: int
    service: str | None = None
    scheduled: bool = False
    outcome: str
    reason: str | None = None
    # The policy it runs under has no health check: only the service's own calls can
    # close its breaker (the evidence rule).
    no_health_check: bool = False
    # Alerts only.
    status: Literal["firing", "resolved"] | None = None
    fingerprint: str | None = None
    alertname: str | None = None


class ReceiverAnswer(BaseModel):
    """The JSON answer of ``/alertmanager`` and ``/recoveries``."""

    scheduled: list[str]
    results: list[ItemAnswer]


async def ask_for_recoveries(
    coordinator: CoordinatorClient, services: WatchInput, asks: list[Ask]
) -> dict[int, ItemAnswer]:
    """Ask the coordinator for an automatic recovery of each service; answer per ask.

    Raises:
        temporalio.service.RPCError: the Temporal server could not be reached (the
            receiver answers 503, and Alertmanager sends the alerts again).
    """
    answers: dict[int, ItemAnswer] = {}
    first: dict[str, Ask] = {}
    requests: list[ScheduleRecoveryInput] = []
    for ask in asks:
        name = ask.service_name
        if name in first:
            continue  # answered below, from the first ask's answer
        first[name] = ask
        chosen = services.settings_for(name)
        if chosen is None:
            answers[ask.index] = _left(ask, "unlisted", services.not_listed())
            continue
        requests.append(chosen.request(name, ask.began_at))
    for outcome in await _hand_over(coordinator, requests):
        ask = first[outcome.service_name]
        answers[ask.index] = ItemAnswer(
            index=ask.index,
            service=outcome.service_name,
            scheduled=outcome.outcome in SCHEDULED_OUTCOMES,
            outcome=outcome.outcome,
            reason=outcome.reason,
            no_health_check=outcome.no_health_check,
        )
    for ask in asks:
        original = first[ask.service_name]
        if original is not ask:
            answers[ask.index] = _left(
                ask, "duplicate", f"named before in this request (#{original.index}): "
                f"{answers[original.index].outcome}"
            )
    return answers


async def _hand_over(
    coordinator: CoordinatorClient, requests: list[ScheduleRecoveryInput]
) -> list[ScheduleRecoveryResult]:
    """Send the batch; drop what the coordinator refuses one by one and send the rest again."""
    outcomes: list[ScheduleRecoveryResult] = []
    dropped = 0
    while requests:
        try:
            answered = await coordinator.schedule_recoveries(
                ScheduleRecoveriesInput(recoveries=requests, automatic=True)
            )
        except RecoveryOrchestratorError as err:
            index = err.names.get("index")
            dropped += 1
            if type(index) is not int or not 0 <= index < len(requests) or dropped > MAX_DROPPED:
                # The batch as a whole: the orchestrator is stopped, say.
                return outcomes + [_refused(request, err) for request in requests]
            outcomes.append(_refused(requests.pop(index), err))
            continue
        for outcome in answered:
            if outcome.outcome in SCHEDULED_OUTCOMES:
                logger.info("alert receiver: %s %s", outcome.service_name, outcome.outcome)
        return outcomes + answered
    return outcomes


def _refused(request: ScheduleRecoveryInput, err: RecoveryOrchestratorError) -> ScheduleRecoveryResult:
    return ScheduleRecoveryResult(
        service_name=request.service_name, outcome="refused", state="idle", reason=str(err)
    )


def _left(ask: Ask, outcome: str, reason: str) -> ItemAnswer:
    return ItemAnswer(index=ask.index, service=ask.service_name, outcome=outcome, reason=reason)
