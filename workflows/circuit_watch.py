"""``CircuitWatch``: find open breakers and hand them to the coordinator.

A Temporal Schedule (``recovery-circuit-watch``, every 10 s by default) starts one
short run at a time; each lists the breakers the store holds open and schedules
a recovery for each in one ``schedule_recoveries`` batch marked ``automatic``, so
the coordinator leaves alone what is already queued or running and holds back a
service whose hourly attempt budget is spent. The run's result says what it did
with every open breaker, which is what the Web UI shows for it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.circuit_watch_models import (
    HAND_OVER_ACTIVITY,
    HandOverInput,
    WatchInput,
    WatchResult,
)
from workflows.constants import CIRCUIT_WATCH_WORKFLOW, LOG_PREFIX
from workflows.coordinator_models import (
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryOrchestratorError, to_application_error
from workflows.models import validate_service_name
from workflows.payloads import one_input

with workflow.unsafe.imports_passed_through():
    from activities.circuit_breakers import CircuitBreakerActivities

# A run should end well before the next tick: a store or coordinator that is down
# fails this run (visible in the schedule's recent actions); the next one tries again.
LIST_TIMEOUT = timedelta(seconds=30)
HAND_OVER_TIMEOUT = timedelta(seconds=60)
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5), maximum_attempts=3
)
BATCH = 1000  # what one schedule_recoveries update takes
# Requests the coordinator refuses one by one (a bad hash, a dependency cycle) are dropped
# and the rest sent again; past this many, the whole hand-over is given up for this run.
MAX_DROPPED = 20
_REFUSED_ITEM = re.compile(r"^recoveries\[(\d+)\]")


@workflow.defn(name=CIRCUIT_WATCH_WORKFLOW)
class CircuitWatch:
    """One look at the breakers: schedule a recovery for each open one not yet in hand."""

    @workflow.run
    async def run(self, *args: Any) -> WatchResult:
        """List open breakers, hand them over, and say what became of each."""
        try:
            settings = one_input(WatchInput, args, "CircuitWatch input", optional=True)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None
        open_breakers = await workflow.execute_activity_method(
            CircuitBreakerActivities.list_open_breakers,
            start_to_close_timeout=LIST_TIMEOUT,
            retry_policy=QUICK_RETRY,
            summary="list open breakers",
        )
        result = WatchResult(open_breakers=[b.service_name for b in open_breakers])
        opened_at = {b.service_name: b.opened_at for b in open_breakers}
        # The most urgent first: if the coordinator is nearly full, they are the ones it takes.
        requests = sorted(self._requests(settings, result, opened_at), key=lambda r: r.priority)
        for start in range(0, len(requests), BATCH):
            batch = requests[start : start + BATCH]
            await self._hand_over(settings.coordinator_workflow_id, batch, result)
            if result.refused is not None:
                break
        if result.open_breakers:
            workflow.logger.info(
                "%s Circuit watch: %d open, scheduled %s, skipped %s",
                LOG_PREFIX,
                len(result.open_breakers),
                result.scheduled or "none",
                result.skipped or "none",
            )
        return result

    def _requests(
        self, settings: WatchInput, result: WatchResult, opened_at: dict[str, datetime | None]
    ) -> list[ScheduleRecoveryInput]:
        """Build one request per open breaker the settings cover; note why others are skipped."""
        requests: list[ScheduleRecoveryInput] = []
        for name in result.open_breakers:
            try:
                validate_service_name(name)
            except RecoveryOrchestratorError as err:
                result.skipped[name] = str(err)
                continue
            chosen = settings.settings_for(name)
            if chosen is None:
                result.skipped[name] = (
                    f"not listed in {settings.source or 'the services file'} "
                    "(recover_unlisted = false)"
                )
                continue
            requests.append(
                ScheduleRecoveryInput(
                    service_name=name,
                    strategy=chosen.strategy,
                    priority=chosen.priority,
                    policy=chosen.policy,
                    breaker_opened_at=opened_at.get(name),
                )
            )
        return requests

    async def _hand_over(
        self, coordinator: str, requests: list[ScheduleRecoveryInput], result: WatchResult
    ) -> None:
        """Send one batch; a request the coordinator refuses is dropped and the rest sent again."""
        dropped = 0
        while requests:
            try:
                outcomes = await workflow.execute_activity(
                    HAND_OVER_ACTIVITY,
                    HandOverInput(
                        coordinator_workflow_id=coordinator,
                        request=ScheduleRecoveriesInput(recoveries=requests, automatic=True),
                    ),
                    result_type=list[ScheduleRecoveryResult],
                    start_to_close_timeout=HAND_OVER_TIMEOUT,
                    retry_policy=QUICK_RETRY,
                    summary=f"hand {len(requests)} open breakers to the coordinator",
                )
            except ActivityError as err:
                cause = err.cause
                message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
                refused = _REFUSED_ITEM.match(message)
                dropped += 1
                if refused is None or int(refused.group(1)) >= len(requests) or dropped > MAX_DROPPED:
                    result.refused = message  # the whole hand-over: e.g. the orchestrator is stopped
                    workflow.logger.warning("%s Circuit watch refused: %s", LOG_PREFIX, message)
                    return
                request = requests.pop(int(refused.group(1)))
                result.skipped[request.service_name] = message
                continue
            for outcome in outcomes:
                if outcome.outcome in ("queued", "updated", "started"):
                    result.scheduled.append(outcome.service_name)
                else:
                    result.skipped[outcome.service_name] = outcome.reason or outcome.outcome
            return
