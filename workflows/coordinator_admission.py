"""What the coordinator refuses before anything is written: its update validators' rules.

An update's validator runs before the update is accepted into history, so a refusal
here costs no event and reaches the caller as a specific ``ApplicationError`` (its
``code`` and names, SPEC §3). The ``schedule_recovery`` signal is held to the same
rules, and a refused one is recorded as rejected by the guard. A request's own
constitutional hash has been checked by then (``workflows.guard``): only the hashes of
the requests inside a batch are checked here. Validators are not replayed: nothing here
may change state that a replay would need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.coordinator_models import (
    ExecuteRecoveryInput,
    ScheduleRecoveriesInput,
    ScheduleRecoveryInput,
    SetRecoveryPolicyInput,
)
from workflows.coordinator_state import RecoveryLedger, json_bytes, unknown_service
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError, to_application_error
from workflows.ledger.budget import STATE_TOO_LARGE
from workflows.ledger.history import MAX_MESSAGE, MAX_REJECTED_SIGNALS
from workflows.models import RecoveryReport, check_constitutional_hashes

# How far ahead of the coordinator's clock a report's times may be: clocks of workers
# differ a little; a report from days ahead is forged, and would hold its service for ever.
REPORT_CLOCK_SKEW = timedelta(hours=1)
# What the carried state may have grown by since it was measured, at most. What the
# coordinator keeps comes from what its history was told (an update's request, a
# report, a child's start), written more compactly than in the history, plus a few
# times and names of its own per event: twice the history's growth and 200 bytes an
# event over-count it by far. Two parts grow past what told them: the storm guard's
# attempt times (one report may log up to twice a service's hourly budget), counted
# as they stand, and the refusals kept, counted at their most. The bound only spares
# a measure: it never admits what the true size would refuse.
GROWTH_PER_HISTORY_BYTE = 2
GROWTH_PER_EVENT = 200
ATTEMPT_TIME_BYTES = 40  # one time in an attempt log, as JSON, and its comma
REJECTIONS_AT_MOST = MAX_REJECTED_SIGNALS * MAX_MESSAGE * 4  # UTF-8: four bytes a character


class Admission:
    """The coordinator's rules for requests, over its ledger."""

    def __init__(self, ledger: RecoveryLedger) -> None:
        self._ledger = ledger
        # The carried state's last measure: see _within_budget.
        self._measure: _Measure | None = None

    def check_schedule(self, input: ScheduleRecoveryInput, *, validating: bool) -> None:
        """Refuse a recovery that may not be scheduled, or does not fit.

        Args:
            input: The request.
            validating: Called from an update's validator (which may use this task's
                measure of the carried state), not from the signal's handler.
        """
        self._check_running()
        self._check_dependencies([input])
        self._check_room([input], validating=validating)

    def check_batch(self, input: ScheduleRecoveriesInput) -> None:
        """Refuse a batch any of whose requests may not be scheduled (naming which one).

        An operator's batch must fit whole; automation's takes what fits, and refuses a
        cycle per request (the ledger).
        """
        self._check_running()  # once, for the whole batch
        for index, item in enumerate(input.recoveries):
            try:
                # The guard checked the batch's own hash; each request's is checked here,
                # where the refusal can name the request.
                check_constitutional_hashes(item)
            except RecoveryOrchestratorError as err:
                # Which request: the watch drops that one and sends the rest again.
                raise ApplicationError(
                    f"recoveries[{index}] ({item.service_name}): {err}",
                    {"code": err.code, **err.names, "index": index, "service": item.service_name},
                    type=type(err).__name__,
                    non_retryable=True,
                ) from None
        if not input.automatic:
            self._check_dependencies(input.recoveries)
            self._check_room(input.recoveries, validating=True)

    def check_known(self, service_name: str) -> None:
        """Refuse unless the service is queued or running."""
        if not self._ledger.is_unfinished(service_name):
            raise to_application_error(unknown_service(service_name))

    def check_execute(self, input: ExecuteRecoveryInput) -> None:
        """Refuse to run a recovery that is not unfinished, or whose dependencies are not."""
        self.check_known(input.service_name)
        queued = self._ledger.queued(input.service_name)
        if queued is not None:
            try:
                self._ledger.check_dependencies_recovered(queued)
            except RecoveryOrchestratorError as err:
                raise to_application_error(err) from None

    def check_policy(self, input: SetRecoveryPolicyInput) -> None:
        """Refuse a policy that closes a dependency cycle, or has no room to be kept."""
        size = json_bytes(input)

        def check(carried: int) -> int:
            self._ledger.check_size(size, carried=carried)
            return size

        try:
            self._ledger.check_policy_dependencies(input.service_name, input.policy)
            self._within_budget(check)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None

    def check_pause(self, service_name: str, now: datetime) -> None:
        """Refuse a pause that no longer fits."""
        try:
            self._ledger.check_pause(service_name, now)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None

    @staticmethod
    def report_from_the_future(report: RecoveryReport, now: datetime) -> str | None:
        """Return why a report's times cannot be a recovery's, or None if they can."""
        # Not next_attempt_at: it may lie ahead by a whole backoff (up to a day, the longest).
        latest = max(report.past_times(), default=now)
        if latest > now + REPORT_CLOCK_SKEW:
            return f"a report dated {latest.isoformat()} is from the future (now {now.isoformat()})"
        return None

    def _check_running(self) -> None:
        if not self._ledger.state.orchestrator_running:
            raise to_application_error(
                RecoveryOrchestratorError(
                    "Recovery orchestrator is not running (it was stopped): start it with "
                    "RecoveryOrchestrator.start() or `recoveryctl configure --start`",
                    code="stopped",
                )
            )

    def _check_dependencies(self, requests: Iterable[ScheduleRecoveryInput]) -> None:
        try:
            self._ledger.check_dependencies(requests)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None

    def _check_room(self, requests: Iterable[ScheduleRecoveryInput], *, validating: bool) -> None:
        """Refuse what does not fit; an update's validator may spare the measure (_within_budget)."""
        requests = list(requests)
        try:
            if validating:
                self._within_budget(lambda carried: self._ledger.check_room(requests, carried=carried))
            else:
                self._ledger.check_room(requests)
        except RecoveryOrchestratorError as err:
            raise to_application_error(err) from None

    def _within_budget(self, check: Callable[[int], int]) -> int:
        """Run an update validator's budget ``check`` at the least cost that decides it.

        Measuring the carried state is serialising all of it (milliseconds for a few
        hundred services, tens for 10,000), and every update is a workflow task of its
        own. So a measure is reused: within its workflow task as it stands (plus what
        the updates validated since will add: their handlers run after the
        validators), and in later tasks as a bound (the growth the history allows
        since, ``GROWTH_PER_*``). A check that passes against the bound passes against
        the true size; one the bound refuses is decided on a fresh measure, so every
        refusal quotes the exact size. Validators are not replayed: nothing replayed
        depends on when the state was measured.

        Args:
            check: Raises ``RecoveryValidationError`` when the request does not fit on
                top of the carried size it is given; returns what the request adds.

        Returns:
            What the request adds, now counted into the measure.
        """
        info = workflow.info()
        now = _Growth(
            events=info.get_current_history_length(),
            history_bytes=info.get_current_history_size(),
            attempt_times=sum(len(log.started) for log in self._ledger.state.attempt_logs.values()),
        )
        measure = self._measure
        if measure is not None and measure.at.events != now.events:
            try:
                return measure.count(check(measure.bound(now)))
            except RecoveryValidationError as err:
                if err.code != STATE_TOO_LARGE:
                    raise
                measure = None  # the bound refuses it: the true size decides
        if measure is None:
            measure = self._measure = _Measure(now, self._ledger.carried_bytes())
        return measure.count(check(measure.size + measure.accepted))


@dataclass(frozen=True)
class _Growth:
    """What the carried state's growth is read from: the history's length and size, the attempt logs."""

    events: int
    history_bytes: int
    attempt_times: int


@dataclass
class _Measure:
    """The carried state's size as measured in one workflow task, and what was added since."""

    at: _Growth
    size: int
    accepted: int = 0

    def bound(self, now: _Growth) -> int:
        """Return what the carried state may have grown to by a later workflow task, at most."""
        grown = (
            GROWTH_PER_HISTORY_BYTE * (now.history_bytes - self.at.history_bytes)
            + GROWTH_PER_EVENT * (now.events - self.at.events)
            + ATTEMPT_TIME_BYTES * max(0, now.attempt_times - self.at.attempt_times)
            + REJECTIONS_AT_MOST
        )
        return self.size + self.accepted + grown

    def count(self, added: int) -> int:
        """Count a request just validated into the measure; return what it adds."""
        self.accepted += added
        return added
