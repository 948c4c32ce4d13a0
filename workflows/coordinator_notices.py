"""The coordinator's notifications: ``held_back``, ``paused``, ``resumed`` (SPEC §10).

Handlers note an event (``Notices.tell``); one task of the coordinator starts each
event's ``RecoveryNotification`` (``workflows.notification.announce``), so that the
handlers stay synchronous and an update's answer never waits on a notification. The
coordinator lets that task finish before it continues as new (``Notices.idle``): an
event noted is an event announced.

Coordinators that ran before notifications replay their recorded answers without
one: every notice is behind ``workflow.patched(PATCH_COORDINATOR_NOTIFICATIONS)``,
because the coordinator takes a new build in the middle of its run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow

from workflows.carried_state import CoordinatorState
from workflows.coordinator_models import ScheduleRecoveryResult
from workflows.ledger.operator_word import CANCEL_HOLD
from workflows.notification import announce, service_event

with workflow.unsafe.imports_passed_through():
    from activities.notification_event import NotificationEvent

PATCH_COORDINATOR_NOTIFICATIONS = "coordinator-notifications"
# Event ids remembered within one run, so a hold seen again is not announced again (the
# server refuses a repeat after a continue-as-new: the notification's id is the event's).
MAX_REMEMBERED = 1000


class Notices:
    """Events noted by the coordinator's handlers, announced by its one task."""

    def __init__(self) -> None:
        self._pending: list[NotificationEvent] = []
        self._announcing = 0
        self._told: dict[str, None] = {}

    def tell(self, event: NotificationEvent) -> None:
        """Note ``event`` for announcing, once per id in this run (never in runs from before)."""
        if event.event_id in self._told:
            return
        if not workflow.patched(PATCH_COORDINATOR_NOTIFICATIONS):
            return
        self._told[event.event_id] = None
        for old in list(self._told)[: max(0, len(self._told) - MAX_REMEMBERED)]:
            del self._told[old]
        self._pending.append(event)

    def idle(self) -> bool:
        """Whether every noted event has been announced (the coordinator may continue as new)."""
        return not self._pending and self._announcing == 0

    async def keep_announcing(self) -> None:
        """Announce noted events as they come, for the coordinator's whole run."""
        while True:
            await workflow.wait_condition(lambda: bool(self._pending))
            events, self._pending = self._pending, []
            self._announcing += len(events)
            try:
                await asyncio.gather(*(announce(event) for event in events))
            finally:
                self._announcing -= len(events)

    def paused(self, service: str, until: datetime, reason: str) -> None:
        """Note that an operator paused automatic recovery of ``service``."""
        self.tell(
            service_event(
                "paused",
                service,
                f"automatic recovery of '{service}' paused until {until.isoformat()}: {reason}",
                until=until,
            )
        )

    def resumed(self, service: str, lifted: list[str]) -> None:
        """Note that an operator resumed ``service`` (only when something was lifted)."""
        if lifted:
            self.tell(
                service_event(
                    "resumed",
                    service,
                    f"automatic recovery of '{service}' resumed (lifted: {', '.join(lifted)})",
                )
            )

    def held_back(
        self, state: CoordinatorState, results: list[ScheduleRecoveryResult], now: datetime
    ) -> None:
        """Note each automatic request the storm guard or a failure's cool-down held back.

        Once per hold: its event id is fixed by when the hold ends. A service held by
        an operator's cancel only is not told of: the operator knows.
        """
        for result in results:
            if result.outcome != "held_back":
                continue
            name = result.service_name
            cancelled_at = state.operator_cancels.get(name)
            if cancelled_at is not None and cancelled_at + CANCEL_HOLD > now:
                continue
            guard, streak = state.held_back.get(name), state.failure_streaks.get(name)
            ends = [hold.until for hold in (guard, streak) if hold is not None and hold.until > now]
            if not ends:
                continue
            until = max(ends)
            self.tell(
                service_event(
                    "held_back",
                    name,
                    f"automatic recovery of '{name}' held back until {until.isoformat()}: "
                    f"{result.reason or 'no reason recorded'}",
                    until=until,
                )
            )
