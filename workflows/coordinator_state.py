"""``RecoveryLedger``: the coordinator's carried state and its rules, in one handle.

The rules live one concern per module in ``workflows.ledger`` (and
``workflows.dependencies``); the ledger composes them over the state the coordinator
carries across continue-as-new, and is the only code that changes it. Every method
is synchronous and takes the time as an argument, so the rules are unit-tested
without a server and, inside the workflow, no state change ever straddles an
``await``: a handler decides under the ledger, then does its Temporal I/O with what
the ledger returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from workflows.carried_state import CoordinatorConfig, CoordinatorState
from workflows.coordinator_details import queue_details
from workflows.coordinator_models import (
    CancelRecoveryResult,
    ConfigureInput,
    PauseServiceInput,
    PauseServiceResult,
    ResumeServiceResult,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryValidationError
from workflows.ledger import (
    automation,
    budget,
    cancels,
    history,
    operator_word,
    queue,
    reports,
    view,
)
from workflows.ledger.budget import CARRIED_STATE_BUDGET, HAND_OVER_LIMIT, json_bytes
from workflows.ledger.cancels import ChildRef
from workflows.ledger.history import MAX_FINISHED_RUNS, MAX_MESSAGE, MAX_REJECTED_SIGNALS
from workflows.ledger.lifecycle import ActiveRecovery
from workflows.ledger.operator_word import (
    CANCEL_HOLD,
    COOL_DOWN_BASE,
    COOL_DOWN_MAX,
    MAX_PAUSED,
    cool_down,
)
from workflows.ledger.queue import MAX_RUNNING
from workflows.ledger.storm_guard import BUDGET_WINDOW
from workflows.models import (
    RecoveryPolicy,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryTask,
)

__all__ = [
    "BUDGET_WINDOW",
    "CANCEL_HOLD",
    "CARRIED_STATE_BUDGET",
    "COOL_DOWN_BASE",
    "COOL_DOWN_MAX",
    "ChildRef",
    "HAND_OVER_LIMIT",
    "MAX_FINISHED_RUNS",
    "MAX_MESSAGE",
    "MAX_PAUSED",
    "MAX_REJECTED_SIGNALS",
    "MAX_RUNNING",
    "RecoveryLedger",
    "cool_down",
    "json_bytes",
    "unknown_service",
]


def unknown_service(service_name: str) -> RecoveryValidationError:
    """Return the original's error for a service with no queued or running recovery."""
    return RecoveryValidationError(
        f"No active recovery task for service '{service_name}'",
        code="unknown_service",
        service=service_name,
    )


class RecoveryLedger:
    """Queue, running recoveries, policies and recent history of one coordinator."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        # Services whose previous run, forgotten at this run's start, was found still
        # closing: not started again until a short wait has passed (not carried).
        self.closing_elsewhere: set[str] = set()

    # ----- reading (workflows.ledger.queue, .view) -------------------------------------

    @property
    def config(self) -> CoordinatorConfig:
        """Return the coordinator's settings."""
        return self.state.config

    def queued(self, service_name: str) -> RecoveryTask | None:
        """Return the service's queue entry, if it is queued."""
        return queue.queued(self.state, service_name)

    def live(self, service_name: str) -> ActiveRecovery | None:
        """Return the service's running recovery, unless its end is already recorded."""
        return queue.live(self.state, service_name)

    def holds_run_of(self, service_name: str) -> bool:
        """Return True if a run of the service is in hand, closing ones included."""
        return service_name in self.state.active

    def is_closing(self, service_name: str) -> bool:
        """Return True if the service's previous run may still be closing: one run per id."""
        return service_name in self.state.active or service_name in self.closing_elsewhere

    def is_unfinished(self, service_name: str) -> bool:
        """Return True if the service is queued or running."""
        return self.queued(service_name) is not None or self.live(service_name) is not None

    def unfinished_names(self) -> set[str]:
        """Return every service queued or running."""
        return queue.unfinished_names(self.state)

    def slots_in_use(self) -> int:
        """Return how many slots running recoveries hold (closing ones included)."""
        return queue.slots_in_use(self.state)

    def unfinished_count(self) -> int:
        """Return how many recoveries are queued or running (what ``queue_limit`` bounds)."""
        return queue.unfinished_count(self.state)

    def policy(self, service_name: str) -> RecoveryPolicy:
        """Return the service's policy, else the default policy."""
        return self.state.policies.get(service_name, self.config.default_policy)

    def policy_for(self, input: ScheduleRecoveryInput) -> RecoveryPolicy:
        """The policy passed in, else the one set for the service, else the default."""
        return queue.policy_for(self.state, input)

    def queue_index(self) -> dict[str, RecoveryTask]:
        """Return the queue by service name: for many lookups in one go (a batch)."""
        return queue.queue_index(self.state)

    def waiting_for(self, task: RecoveryTask, unfinished: set[str] | None = None) -> list[str]:
        """Return the task's dependencies that are still queued or recovering."""
        return queue.waiting_for(self.state, task, unfinished)

    def status(self, now: datetime) -> dict[str, Any]:
        """Return the reference document's status shape (SPEC §6)."""
        return view.status(self.state, now)

    def status_paused(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Return the pauses in force: ``{service: {until, reason}}``."""
        return operator_word.paused_now(self.state, now)

    def holds(self, now: datetime, unfinished: set[str] | None = None) -> dict[str, dict[str, Any]]:
        """Return what holds automation off each service now (not those queued or running)."""
        unfinished = self.unfinished_names() if unfinished is None else unfinished
        return operator_word.holds(self.state, now, unfinished)

    def configuration(self) -> dict[str, Any]:
        """Return the settings, the slot use and the recently rejected requests."""
        return {
            "config": self.config.model_dump(mode="json"),
            "orchestrator_running": self.state.orchestrator_running,
            "slots_in_use": self.slots_in_use(),
            "unfinished": self.unfinished_count(),
            "rejected_signals": list(self.state.rejected_signals),
        }

    def details(self, now: datetime) -> str:
        """Return the Web UI's "Current Details": the queue as an operator wants to see it."""
        return queue_details(
            now=now,
            running=self.state.orchestrator_running,
            slots=(self.slots_in_use(), self.config.max_concurrent_recoveries),
            queue=self.state.queue,
            queued=len(self.state.queue),
            active=self.state.active.values(),
            holds=self.holds(now),
            paused=self.status_paused(now),
        )

    # ----- checks before scheduling (.budget, .queue, workflows.dependencies) -----------

    def carried_bytes(self) -> int:
        """Return the size of the state as a continue-as-new would carry it (JSON, bytes)."""
        return budget.carried_bytes(self.state)

    def check_room(self, requests: Iterable[ScheduleRecoveryInput], *, carried: int | None = None) -> int:
        """Refuse scheduling past ``queue_limit`` or the size budget; return the bytes added."""
        return budget.check_room(self.state, requests, carried=carried)

    def check_size(self, incoming_bytes: int, *, carried: int | None = None) -> None:
        """Refuse a request that would grow the carried state past its budget."""
        budget.check_size(self.state, incoming_bytes, carried=carried)

    def check_dependencies(self, requests: Iterable[ScheduleRecoveryInput]) -> None:
        """Refuse a request whose ``depends_on`` names itself or closes a cycle."""
        queue.check_dependencies(self.state, requests)

    def check_policy_dependencies(self, service_name: str, policy: RecoveryPolicy) -> None:
        """Refuse a service policy whose ``depends_on`` names the service or closes a cycle."""
        queue.check_policy_dependencies(self.state, service_name, policy)

    def check_dependencies_recovered(self, task: RecoveryTask) -> None:
        """Refuse to start a queued task ahead of a dependency that has not recovered."""
        queue.check_dependencies_recovered(self.state, task)

    def check_can_run_one_more(self) -> None:
        """Refuse to start a recovery outside the queue when the running set is full."""
        queue.check_can_run_one_more(self.state)

    def check_pause(self, service_name: str, now: datetime) -> None:
        """Refuse a pause past ``MAX_PAUSED`` services at once."""
        operator_word.check_pause(self.state, service_name, now)

    # ----- scheduling (.queue, .automation) ---------------------------------------------

    def schedule(
        self,
        input: ScheduleRecoveryInput,
        now: datetime,
        index: dict[str, RecoveryTask] | None = None,
        *,
        automatic: bool = False,
    ) -> ScheduleRecoveryResult:
        """Queue a recovery, update its queue entry, or report it already running."""
        return queue.schedule(self.state, input, now, index, automatic=automatic)

    def schedule_automatically(
        self, requests: list[ScheduleRecoveryInput], now: datetime, *, respect_operator: bool = True
    ) -> list[ScheduleRecoveryResult]:
        """Schedule automation's batch: what fits, best priority first; say why for the rest."""
        return automation.schedule_automatically(
            self.state, requests, now, respect_operator=respect_operator
        )

    def schedule_automatic(
        self,
        input: ScheduleRecoveryInput,
        now: datetime,
        *,
        respect_operator: bool = True,
        index: dict[str, RecoveryTask] | None = None,
    ) -> ScheduleRecoveryResult:
        """Schedule for automation, which never overrules an operator or repeats itself."""
        return automation.schedule_automatic(
            self.state, input, now, respect_operator=respect_operator, index=index
        )

    def unchanged_answers(
        self, requests: list[ScheduleRecoveryInput], now: datetime
    ) -> list[ScheduleRecoveryResult] | None:
        """Return automation's answers if its batch would change nothing; None if it would."""
        return automation.unchanged_answers(self.state, requests, now)

    def next_startable(self) -> RecoveryTask | None:
        """Return the task to start next: a MANUAL one at once, else the best if a slot is free."""
        return queue.next_startable(self.state, self.closing_elsewhere)

    def take_startable(self, limit: int | None = None) -> list[ActiveRecovery]:
        """Take the tasks that may start now off the queue (at most ``limit``)."""
        return queue.take_startable(self.state, self.closing_elsewhere, limit)

    def take(self, task: RecoveryTask, *, outside_slots: bool) -> ActiveRecovery:
        """Count a queued task as running (before its start completes, so slots add up)."""
        return queue.take(self.state, task, outside_slots=outside_slots)

    def requeue(self, active: ActiveRecovery) -> None:
        """Put back a task whose start found its previous run still closing."""
        queue.requeue(self.state, active)

    def start_refused(self, service_name: str, message: str, now: datetime) -> None:
        """End a recovery whose start the server refused, where operators look for endings."""
        ended = self.unreported_result(service_name, RecoveryState.FAILED, message, now)
        self.state.active.pop(service_name, None)
        self.record(ended, run_id=None)
        self.reject(message, now)

    def started(self, active: ActiveRecovery, run_id: str) -> None:
        """Note the run id of a started child (a run cancelled before it started stays so)."""
        reports.started(self.state, active, run_id)

    # ----- operators (.operator_word, .cancels) -----------------------------------------

    def pause(self, input: PauseServiceInput, now: datetime) -> PauseServiceResult:
        """Hold automation off the service until the pause ends; a new pause replaces it.

        A recovery automation queued and that has not started is taken off the queue (it
        ends cancelled, naming the pause): nothing automatic starts while paused. One that
        runs goes on; an operator cancels it if they mean to.
        """
        operator_word.drop_expired_pauses(self.state, now)
        self.check_pause(input.service_name, now)
        queued = self.queued(input.service_name)
        if queued is not None and queued.automatic:
            self.state.queue.remove(queued)
            self.record(history.cancelled(queued, f"paused: {input.reason}", now), run_id=None)
        pause = operator_word.set_pause(self.state, input, now)
        return PauseServiceResult(service_name=input.service_name, until=pause.until, reason=pause.reason)

    def resume(self, service_name: str, now: datetime) -> ResumeServiceResult:
        """Lift whatever an operator's word or a failure put on the service."""
        return operator_word.resume(self.state, service_name, now)

    def operator_scheduled(self, service_name: str) -> None:
        """An operator scheduled the service: their word replaces earlier holds (not a pause)."""
        operator_word.operator_scheduled(self.state, service_name)

    def note_operator_cancel(self, service_name: str, now: datetime) -> None:
        """Remember that an operator cancelled the service: automation leaves it alone."""
        operator_word.note_operator_cancel(self.state, service_name, now)

    def cancel(
        self, service_name: str, reason: str, now: datetime
    ) -> tuple[CancelRecoveryResult, ChildRef | None]:
        """Cancel at once; return the result and the child to tell to stop, if any."""
        return cancels.cancel(self.state, service_name, reason, now)

    def shutdown(self, reason: str, now: datetime) -> tuple[list[str], list[ChildRef]]:
        """Stop: cancel every unfinished recovery; return them and the children to tell."""
        return cancels.shutdown(self.state, reason, now)

    def approval_to_send(self, active: ActiveRecovery) -> bool:
        """Return True if an approval must be sent now; one per wait, however many ask."""
        if active.approval_for_attempt == active.task.attempt_count:
            return False
        active.approval_for_attempt = active.task.attempt_count
        return True

    def configure(self, input: ConfigureInput) -> CoordinatorConfig:
        """Change the settings given; leave the others."""
        config = self.config
        for field in (
            "max_concurrent_recoveries",
            "recent_history_size",
            "default_policy",
            "continue_as_new_after_events",
            "reconcile_interval_seconds",
            "queue_limit",
        ):
            value = getattr(input, field)
            if value is not None:
                setattr(config, field, value)
        history.trim(self.state)
        if input.orchestrator_running is not None:
            self.state.orchestrator_running = input.orchestrator_running
        return config

    def set_policy(self, service_name: str, policy: RecoveryPolicy) -> None:
        """Set the policy for the service's next recoveries."""
        self.state.policies[service_name] = policy

    # ----- children (.reports) and history (.history) -----------------------------------

    def apply_report(
        self, report: RecoveryReport, *, watched: bool, trust_unknown_run: bool = False
    ) -> None:
        """Apply a child's report, in order; a late, repeated or foreign one changes nothing."""
        reports.apply_report(
            self.state, report, watched=watched, trust_unknown_run=trust_unknown_run
        )

    def settle(self, service_name: str, run_id: str, result: RecoveryResult) -> None:
        """Free the run's slot (if it still holds one) and record its result once."""
        reports.settle(self.state, service_name, run_id, result)

    def unreported_result(
        self, service_name: str, state: RecoveryState, error: str, now: datetime
    ) -> RecoveryResult:
        """Describe a recovery that ended without reporting its own result."""
        active = self.state.active.get(service_name)
        return history.unreported(service_name, active.task if active else None, state, error, now)

    def unwatched(self, watched: set[str]) -> dict[str, str]:
        """Return run id → service of children whose close this run cannot see."""
        return reports.unwatched(self.state, watched)

    def forget_closing(self) -> list[str]:
        """At a new run: free the slots of children that have sent their final report."""
        return reports.forget_closing(self.state)

    def record(
        self, result: RecoveryResult, run_id: str | None, policy: RecoveryPolicy | None = None
    ) -> None:
        """Add a finished recovery to the recent history, once per run."""
        reports.record(self.state, result, run_id, policy)

    def reject(self, message: str, now: datetime) -> None:
        """Keep a refused request where ``get_configuration`` shows it (the last few)."""
        history.reject(self.state, message, now)

    def fit_for_hand_over(self, encoded: int | None = None) -> list[str]:
        """Trim what can go until a hand-over fits; return what was given up, if anything."""
        return budget.fit_for_hand_over(self.state, encoded)
