"""The coordinator's rules, apart from Temporal I/O: queue, slots, reports, history.

``RecoveryLedger`` wraps the state the coordinator carries across continue-as-new
and is the only code that changes it. Every method is synchronous and takes the
time as an argument, so the rules are unit-tested without a server and, inside
the workflow, no state change ever straddles an ``await``: a handler decides
under the ledger, then does its Temporal I/O with what the ledger returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel

from workflows.coordinator_models import (
    ActiveRecovery,
    AttemptLog,
    CancelRecoveryResult,
    ConfigureInput,
    CoordinatorConfig,
    CoordinatorState,
    FailureStreak,
    HeldBack,
    Pause,
    PauseServiceInput,
    PauseServiceResult,
    ResumeServiceResult,
    ScheduleOutcome,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.dependencies import dependency_cycles
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError, clipped
from workflows.models import (
    RecoveryPolicy,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryStrategy,
    RecoveryTask,
)
from workflows.status import idle_entry, status_document, task_entry

MAX_REJECTED_SIGNALS = 20
MAX_FINISHED_RUNS = 200
# Temporal refuses a payload over 2 MB, and the whole state is the continue-as-new
# input: a state that outgrew it could never hand over, and the coordinator would be
# stuck. Requests that would grow it past this budget are refused; the margin is for
# what grows without a request (recent history up to its size, rejections, reports).
CARRIED_STATE_BUDGET = 1_400_000
# Past this, a continue-as-new input is trimmed of what can go (old history, rejections).
HAND_OVER_LIMIT = 1_900_000
# Temporal allows a workflow 2,000 pending children and 2,000 pending signals: the
# coordinator keeps its running recoveries well inside both (shutdown signals each).
MAX_RUNNING = 1000
# What one message, error or reason may take of the carried state.
MAX_MESSAGE = 500
# The storm guard's window: a budget of attempts per rolling hour.
BUDGET_WINDOW = timedelta(hours=1)
# Operator cancels remembered for automation to respect (each about 60 bytes).
MAX_OPERATOR_CANCELS = 500
# A cancelled recovery re-opens the breaker it had reset, which renews ``opened_at``
# (breaker writes retry for up to 2 minutes): an opening this soon after the cancel is
# that clean-up, not the service failing anew.
CANCEL_SETTLING = timedelta(minutes=5)
# After a recovery fails, automation waits this long before trying the service again,
# doubling with each failure in a row up to the cap (an operator may act at any time).
COOL_DOWN_BASE = timedelta(minutes=5)
COOL_DOWN_MAX = timedelta(hours=6)
# An operator's cancel holds automation off the service this long (or until resumed).
CANCEL_HOLD = timedelta(hours=1)
# Services paused at once, and failure streaks remembered (each carries a policy).
MAX_PAUSED = 500
MAX_FAILURE_STREAKS = 200
# How long a recovery's end is remembered to recognise a stale hand-over: longer than
# a watch run (its listing, then its hand-over) ever takes.
RECENTLY_ENDED_WINDOW = timedelta(minutes=10)
# Stores keep ``opened_at`` to the second (pybreaker's Redis layout): an opening in the
# same second as a recovery's end may be a new one, so only earlier ones count as stale.
STORE_CLOCK_GRAIN = timedelta(seconds=1)
# What the status says of an automatic recovery whose policy has no health check.
NO_CHECK_REASON = (
    "no health check: automation closes its breaker only if the service's own calls "
    "close it while half-open"
)
# A queue entry's own fields in the carried state's compact form, besides its name and
# policy (measured: about 50; ``workflows.compact_state``).
TASK_BYTES = 100


def _cascade(
    dependency: RecoveryResult, waiting_on: dict[str, list[RecoveryTask]], taken: set[str]
) -> list[RecoveryResult]:
    """End what waits, directly or not, on a recovery that did not succeed.

    Each ends as its dependency did (failed, or cancelled), saying why; ``taken``
    gains their names. A walk with no recursion: a chain of thousands must not
    overflow the stack (that would fail the workflow task).
    """
    ended: list[RecoveryResult] = []
    frontier = [dependency]
    while frontier:
        cause = frontier.pop()
        verb = "failed" if cause.state is RecoveryState.FAILED else "was cancelled"
        for task in waiting_on.get(cause.service_name, []):
            if task.service_name in taken:
                continue
            taken.add(task.service_name)
            result = RecoveryResult(
                service_name=task.service_name,
                success=False,
                attempt_number=0,
                total_attempts=task.policy.max_retry_attempts,
                elapsed_time_ms=max(
                    0.0, (cause.timestamp - task.scheduled_at).total_seconds() * 1000
                ),
                state=cause.state,
                error_message=f"not attempted: dependency '{cause.service_name}' {verb}",
                timestamp=cause.timestamp,
            )
            ended.append(result)
            frontier.append(result)
    return ended


def _depends_on_itself(service_name: str) -> RecoveryValidationError:
    return RecoveryValidationError(
        f"{service_name}: depends_on names the service itself",
        code="dependency_cycle",
        service=service_name,
    )


def _cycle_refusal(cycle: list[str], asked: set[str]) -> RecoveryValidationError:
    """Return the refusal of a ``depends_on`` cycle, told from the first service asked about."""
    ring = cycle[:-1]
    start = next((i for i, name in enumerate(ring) if name in asked), 0)
    ring = ring[start:] + ring[:start]
    return RecoveryValidationError(
        f"depends_on cycle: {' -> '.join([*ring, ring[0]])}",
        code="dependency_cycle",
        service=ring[0],
    )


def cool_down(failures: int) -> timedelta:
    """Return how long automation waits after ``failures`` failed recoveries in a row."""
    doublings = min(max(failures, 1) - 1, 16)
    longer: timedelta = COOL_DOWN_BASE * (1 << doublings)
    return min(longer, COOL_DOWN_MAX)


def _starts_before(task: RecoveryTask, other: RecoveryTask) -> bool:
    """Return True if ``task`` goes first: MANUAL ones (they hold no slot), then queue order."""
    manual, other_manual = (
        t.strategy is RecoveryStrategy.MANUAL for t in (task, other)
    )
    if manual != other_manual:
        return manual
    return task.queue_key < other.queue_key


def json_bytes(model: BaseModel) -> int:
    """Return the size of ``model`` as JSON in UTF-8: what Temporal's payload limit counts.

    Not ``len`` of the JSON text: pydantic writes non-ASCII as is, so a character may
    take up to four bytes on the wire.
    """
    return len(model.model_dump_json().encode())


class GrowthEstimate:
    """About how many bytes each request of one batch adds to the carried state.

    The entry's own fields and name, plus its policy unless it is the default or equals
    the policy of the last request queued in the same batch: the compact form writes
    each distinct policy once, and a batch usually gives one policy. A policy the
    carried state already holds is counted again (an over-estimate by one policy, which
    matters only at the edge of the budget). Nothing outlives the batch, so a replayed
    handler reaches the same answer whatever an update's validator (not replayed)
    measured before it.
    """

    def __init__(self, ledger: RecoveryLedger) -> None:
        self._ledger = ledger
        self._carried: RecoveryPolicy | None = None

    def of(self, request: ScheduleRecoveryInput) -> int:
        """Return the bytes queueing ``request`` adds, about."""
        policy = self._ledger.policy_for(request)
        carried = policy is self._ledger.config.default_policy or policy == self._carried
        policy_bytes = 0 if carried else json_bytes(policy)
        return TASK_BYTES + len(request.service_name.encode()) + policy_bytes

    def queued(self, request: ScheduleRecoveryInput) -> None:
        """Note that ``request`` was queued: its policy is carried from now on."""
        self._carried = self._ledger.policy_for(request)

    def new_policy(self, request: ScheduleRecoveryInput, current: RecoveryPolicy) -> int:
        """Return what updating a queued entry to ``request`` adds: a policy it did not have."""
        policy = self._ledger.policy_for(request)
        unchanged = policy == current or policy is self._ledger.config.default_policy
        if unchanged or policy == self._carried:
            return 0
        self._carried = policy
        return json_bytes(policy)

    def total(self, requests: Iterable[ScheduleRecoveryInput]) -> int:
        """Return the bytes queueing all of ``requests`` adds, about."""
        size = 0
        for request in requests:
            size += self.of(request)
            self.queued(request)
        return size


class ChildRef(NamedTuple):
    """A running recovery to signal: its service and run (the run id may not be known yet)."""

    service_name: str
    run_id: str | None


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

    # ----- reading ---------------------------------------------------------------------

    @property
    def config(self) -> CoordinatorConfig:
        """Return the coordinator's settings."""
        return self.state.config

    def queued(self, service_name: str) -> RecoveryTask | None:
        """Return the service's queue entry, if it is queued."""
        return next((t for t in self.state.queue if t.service_name == service_name), None)

    def live(self, service_name: str) -> ActiveRecovery | None:
        """Return the service's running recovery, unless its finish is already recorded."""
        active = self.state.active.get(service_name)
        return active if active is not None and not active.finished else None

    def is_unfinished(self, service_name: str) -> bool:
        """Return True if the service is queued or running."""
        return self.queued(service_name) is not None or self.live(service_name) is not None

    def unfinished_names(self) -> set[str]:
        """Return every service queued or running: one pass, for checks over many services."""
        names = {task.service_name for task in self.state.queue}
        names.update(name for name, active in self.state.active.items() if not active.finished)
        return names

    def slots_in_use(self) -> int:
        """Return how many slots running recoveries hold (closing ones included)."""
        return sum(1 for active in self.state.active.values() if not active.outside_slots)

    def unfinished_count(self) -> int:
        """Return how many recoveries are queued or running (what ``queue_limit`` bounds)."""
        live = sum(1 for active in self.state.active.values() if not active.finished)
        return len(self.state.queue) + live

    def policy(self, service_name: str) -> RecoveryPolicy:
        """Return the service's policy, else the default policy."""
        return self.state.policies.get(service_name, self.config.default_policy)

    def status(self, now: datetime) -> dict[str, Any]:
        """Return the reference document's status shape (SPEC §6)."""
        services = {
            name: idle_entry(policy.max_retry_attempts)
            for name, policy in self.state.policies.items()
        }
        unfinished = self.unfinished_names()
        for task in self.state.queue:
            services[task.service_name] = task_entry(task)
            if task.automatic and task.policy.health_check is None:
                services[task.service_name]["health_check"] = None
                services[task.service_name]["reason"] = NO_CHECK_REASON
            waiting = self.waiting_for(task, unfinished)
            if waiting:  # only with depends_on: the reference shape stays exact without it
                services[task.service_name]["waiting_for"] = waiting
                services[task.service_name]["reason"] = self._waiting_reason(waiting)
        live = [active for active in self.state.active.values() if not active.finished]
        for active in live:
            entry = services[active.task.service_name] = task_entry(active.task)
            if active.task.automatic and active.task.policy.health_check is None:
                # Only for automation's recoveries, as above: the evidence rule (SPEC §4).
                entry["health_check"] = None
                entry["reason"] = NO_CHECK_REASON
            next_at = active.task.next_attempt_at
            if next_at is not None and next_at <= now:
                # Its reported backoff is over: the attempt is under way, its time unknown here.
                entry["next_attempt_at"] = None
        document = status_document(
            timestamp=now,
            orchestrator_running=self.state.orchestrator_running,
            services=services,
            queued=len(self.state.queue),
            unfinished=len(self.state.queue) + len(live),
            recent_history=self.state.recent_history,
        )
        held_back = self.holds(now, unfinished)
        if held_back:  # only when something holds automation back, as above
            document["held_back"] = held_back
        paused = self.status_paused(now)
        if paused:
            document["paused"] = paused
        return document

    def status_paused(self, now: datetime) -> dict[str, dict[str, Any]]:
        """Return the pauses in force, as the status shows them: ``{service: {until, reason}}``."""
        return {
            name: {"until": pause.until.isoformat(), "reason": pause.reason}
            for name, pause in self.state.paused.items()
            if pause.until > now
        }

    def holds(
        self, now: datetime, unfinished: set[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Return what holds automation off each service now: storm guard, cool-down, cancel.

        Each as ``{"reason", "until", ...}``; where several hold a service, the one
        that ends last is shown. A service queued or running is not held back: it is in
        hand (``unfinished``: ``unfinished_names()``, if the caller has it).

        Args:
            now: The workflow's time.
            unfinished: The services queued or running; measured here if not given.
        """
        unfinished = self.unfinished_names() if unfinished is None else unfinished
        holds: dict[str, dict[str, Any]] = {}

        def hold(name: str, until: datetime, entry: dict[str, Any]) -> None:
            shown = holds.get(name)
            if name not in unfinished and until > now and (shown is None or shown["until"] < until.isoformat()):
                holds[name] = {**entry, "until": until.isoformat()}

        for name, held in self.state.held_back.items():
            hold(name, held.until, held.model_dump(mode="json"))
        for name, streak in self.state.failure_streaks.items():
            entry = {"reason": _cool_down_reason(streak), "failures_in_a_row": streak.failures}
            hold(name, streak.until, entry)
        for name, cancelled_at in self.state.operator_cancels.items():
            hold(name, cancelled_at + CANCEL_HOLD, {"reason": _cancel_hold_reason(cancelled_at)})
        return holds

    def waiting_for(self, task: RecoveryTask, unfinished: set[str] | None = None) -> list[str]:
        """Return the task's dependencies that are still queued or recovering.

        Args:
            task: A queued task.
            unfinished: ``unfinished_names()``, when the caller asks about many tasks.
        """
        if not task.policy.depends_on:
            return []
        unfinished = self.unfinished_names() if unfinished is None else unfinished
        return [name for name in task.policy.depends_on if name in unfinished]

    def check_dependencies_recovered(self, task: RecoveryTask) -> None:
        """Refuse to start a queued task ahead of a dependency that has not recovered.

        Raises:
            RecoveryOrchestratorError: naming the dependencies, their states, and what
                the operator can do instead.
        """
        waiting = self.waiting_for(task)
        if waiting:
            raise RecoveryOrchestratorError(
                f"'{task.service_name}' is not started ahead of its dependencies: it is "
                f"{self._waiting_reason(waiting)}; execute, approve or cancel "
                f"{', '.join(repr(name) for name in waiting)} first",
                code="dependency_pending",
                service=task.service_name,
            )

    def _waiting_reason(self, waiting: list[str]) -> str:
        described = ", ".join(f"'{name}' ({self._state_of(name)})" for name in waiting)
        return f"waiting for {described} to recover first (depends_on)"

    def _state_of(self, service_name: str) -> str:
        active = self.live(service_name)
        return active.task.state.value if active is not None else RecoveryState.SCHEDULED.value

    # ----- scheduling ------------------------------------------------------------------

    def carried_bytes(self) -> int:
        """Return the size of the state as a continue-as-new would carry it (JSON, bytes)."""
        return json_bytes(self.state)

    def check_room(
        self, requests: Iterable[ScheduleRecoveryInput], *, carried: int | None = None
    ) -> int:
        """Refuse scheduling past ``queue_limit`` or past what a hand-over can carry.

        A request for a service already queued grows the state too when it gives the
        entry a new policy: that is counted as well.

        Args:
            requests: What is to be scheduled.
            carried: ``carried_bytes()`` if the caller knows it already (see ``check_size``).

        Returns:
            About how many bytes the requests add (what ``carried`` must grow by when
            the same workflow task checks another request against it).

        Raises:
            RecoveryValidationError: saying what is full and how to make room.
        """
        requests = list(requests)
        unfinished = self.unfinished_names()
        new = {r.service_name: r for r in requests if r.service_name not in unfinished}
        self._check_count(len(unfinished), len(new))
        queued = self.queue_index()
        requeued = {r.service_name: r for r in requests if r.service_name in queued}
        estimate = GrowthEstimate(self)
        added = estimate.total(new.values()) + sum(
            estimate.new_policy(request, queued[name].policy) for name, request in requeued.items()
        )
        self.check_size(added, carried=carried)
        return added

    def _check_count(self, held: int, more: int) -> None:
        limit = self.config.queue_limit
        if held + more > limit:
            raise RecoveryValidationError(
                f"the coordinator already holds {held} unfinished recoveries and its "
                f"queue_limit is {limit}: {more} more do not fit; wait for some to "
                f"finish, cancel some, or raise it with configure(queue_limit=...)",
                code="queue_full",
            )

    def check_size(self, incoming_bytes: int, *, carried: int | None = None) -> None:
        """Refuse a request that would grow the carried state past its budget.

        Args:
            incoming_bytes: About what the request adds.
            carried: The state's size measured earlier in this workflow task, for an
                update's validator (measuring 10,000 services takes tens of ms; what
                this task's earlier handlers added is inside the budget's margin).
                Anything replayed (handlers, signals) passes None: measured now.

        Raises:
            RecoveryValidationError: with the sizes, and how to make room.
        """
        size = self.carried_bytes() if carried is None else carried
        if size + incoming_bytes > CARRIED_STATE_BUDGET:
            raise RecoveryValidationError(
                f"the coordinator's state is {size:,} bytes and this request adds about "
                f"{incoming_bytes:,}: past its {CARRIED_STATE_BUDGET:,}-byte budget (Temporal "
                f"carries at most 2 MB across continue-as-new); let recoveries finish, cancel "
                f"some, or clear policies you no longer need",
                code="state_too_large",
            )

    def check_dependencies(self, requests: Iterable[ScheduleRecoveryInput]) -> None:
        """Refuse a request whose ``depends_on`` would make recoveries wait on each other forever.

        The graph is the queued and running recoveries' dependencies, with the
        request's own in place of theirs.

        Raises:
            RecoveryValidationError: naming the service, or the cycle's path.
        """
        graph = {t.service_name: t.policy.depends_on for t in self.state.queue}
        for active in self.state.active.values():
            if not active.finished:
                graph[active.task.service_name] = active.task.policy.depends_on
        requests = list(requests)
        for request in requests:
            graph[request.service_name] = self.policy_for(request).depends_on
        for request in requests:
            if request.service_name in graph[request.service_name]:
                raise _depends_on_itself(request.service_name)
        # What was queued before had no cycle: any cycle now runs through a request,
        # and is told from there.
        asked = {request.service_name for request in requests}
        for cycle in dependency_cycles(graph):
            raise _cycle_refusal(cycle, asked)

    def check_policy_dependencies(self, service_name: str, policy: RecoveryPolicy) -> None:
        """Refuse a service policy whose ``depends_on`` names the service or closes a cycle.

        The graph is every policy set, with the queued and running recoveries' own
        policies over them, and this one in place of the service's.

        Raises:
            RecoveryValidationError: naming the service, or the cycle's path.
        """
        if service_name in policy.depends_on:
            raise _depends_on_itself(service_name)
        graph = {name: p.depends_on for name, p in self.state.policies.items()}
        graph.update({t.service_name: t.policy.depends_on for t in self.state.queue})
        for active in self.state.active.values():
            if not active.finished:
                graph[active.task.service_name] = active.task.policy.depends_on
        graph[service_name] = policy.depends_on
        for cycle in dependency_cycles(graph):
            if service_name in cycle:
                raise _cycle_refusal(cycle, {service_name})

    def schedule_automatically(
        self,
        requests: list[ScheduleRecoveryInput],
        now: datetime,
        *,
        respect_operator: bool = True,
    ) -> list[ScheduleRecoveryResult]:
        """Schedule automation's batch: what fits, best priority first; say why for the rest.

        An operator's batch is all or none (its validator checks the room); automation
        would rather have the most urgent recoveries start than none at all.
        """
        unfinished = self.unfinished_names()
        held, size = len(unfinished), self.carried_bytes()
        blocked = self._held_dependencies(requests, unfinished, now)
        results: dict[int, ScheduleRecoveryResult] = {}
        growth = GrowthEstimate(self)
        queue = self.queue_index()  # kept current by schedule(): one search per request
        for index, request in sorted(enumerate(requests), key=lambda item: item[1].priority):
            grows = 0
            name = request.service_name
            if respect_operator and name not in unfinished:
                refusal = self._cycle_in(request)
                if refusal is not None:  # one bad request must not keep the rest from starting
                    results[index] = self._left(request, "refused", refusal)
                    continue
            if name in blocked and name not in unfinished:
                self.state.held_back[name] = blocked[name]
                results[index] = ScheduleRecoveryResult(
                    service_name=name, outcome="held_back", state=RecoveryState.IDLE.value,
                    reason=blocked[name].reason,
                )
                continue
            if name not in unfinished:
                grows = growth.of(request)
                try:
                    self._check_count(held, 1)
                    if size + grows > CARRIED_STATE_BUDGET:
                        self.check_size(grows)
                except RecoveryValidationError as err:
                    results[index] = ScheduleRecoveryResult(
                        service_name=name, outcome="no_room", state=RecoveryState.IDLE.value,
                        reason=str(err),
                    )
                    continue
            result = self.schedule_automatic(
                request, now, respect_operator=respect_operator, index=queue
            )
            if result.outcome == "queued":
                growth.queued(request)
                unfinished.add(name)
                held, size = held + 1, size + grows
            results[index] = result
        return [results[index] for index in range(len(requests))]

    def _held_dependencies(
        self, requests: list[ScheduleRecoveryInput], unfinished: set[str], now: datetime
    ) -> dict[str, HeldBack]:
        """Return the requests that wait for a dependency the storm guard holds back.

        A held dependency (its breaker still open, so in the batch) is not being
        recovered, but it has not succeeded either: its dependents must not go ahead of
        it, directly or through one another.
        """
        # Only what this batch asks for: a dependency that is not in it has no open breaker
        # (it recovered, or was reset by hand), and holds nothing back.
        holds: dict[str, HeldBack] = {}
        for request in requests:
            if request.service_name not in unfinished:
                spent = self._spent_budget(request.service_name, self.policy_for(request), now)
                if spent is not None:
                    holds[request.service_name] = spent
        if not holds:
            return {}
        depends = {r.service_name: self.policy_for(r).depends_on for r in requests}
        blocked: dict[str, HeldBack] = {}
        changed = True
        while changed:  # to a fixed point: dependents of dependents too
            changed = False
            for name, dependencies in depends.items():
                if name in blocked:
                    continue
                cause = next((d for d in dependencies if d in holds or d in blocked), None)
                if cause is not None:
                    hold = holds.get(cause) or blocked[cause]
                    blocked[name] = hold.model_copy(
                        update={
                            "reason": f"waits for '{cause}', held back until "
                            f"{_clock(hold.until)}: {hold.reason}"
                        }
                    )
                    changed = True
        return blocked

    def schedule_automatic(
        self,
        input: ScheduleRecoveryInput,
        now: datetime,
        *,
        respect_operator: bool = True,
        index: dict[str, RecoveryTask] | None = None,
    ) -> ScheduleRecoveryResult:
        """Schedule for automation, which never overrules an operator or repeats itself.

        It leaves be a service that is queued or running, paused, recovered since the
        request's breaker opened, cooling down after a failure, held after an operator's
        cancel, or past its hourly attempt budget; after a cool-down it tries again with
        the policy the last recovery failed with.

        Args:
            input: The request.
            now: The workflow's time.
            respect_operator: False only to replay coordinators from before 0.8, whose
                automation knew no pause, cool-down or stale hand-over.
            index: ``queue_index()``, kept current here, when scheduling a batch.
        """
        name = input.service_name
        in_hand = self._in_hand(input, index)
        if in_hand is not None:
            return in_hand
        if respect_operator:
            refused = self._operator_holds(input, now)
            if refused is not None:
                return refused
            streak = self.state.failure_streaks.get(name)
            if streak is not None and streak.policy is not None:
                # Never a different policy than the one it failed with.
                input = input.model_copy(update={"policy": streak.policy})
        else:
            refused = self._cancelled_since_opening(input)
            if refused is not None:
                return refused
        held = self._spent_budget(name, self.policy_for(input), now)
        if held is not None:
            self.state.held_back[name] = held
            return self._left(input, "held_back", held.reason)
        result = self.schedule(input, now, index, automatic=respect_operator)
        if self.policy_for(input).health_check is None:
            result.no_health_check = True
        return result

    def unchanged_answers(
        self, requests: list[ScheduleRecoveryInput], now: datetime
    ) -> list[ScheduleRecoveryResult] | None:
        """Return automation's answers if its batch would change nothing; None if it would.

        Each request must be already queued or running, held by an operator's word,
        stale, held by a storm guard already recorded, or refused for a dependency cycle.
        The coordinator's validator then refuses the batch with these answers, and the
        watch, which hands the same open breakers over every few seconds, writes no
        history while they wait.
        """
        answers: list[ScheduleRecoveryResult] = []
        queue = self.queue_index()
        for request in requests:
            name = request.service_name
            in_hand = self._in_hand(request, queue)
            if in_hand is not None:
                answers.append(in_hand)
                continue
            held = self._operator_holds(request, now)
            if held is not None:
                answers.append(held)
                continue
            spent = self._spent_budget(name, self.policy_for(request), now)
            if spent is not None and self.state.held_back.get(name) == spent:
                answers.append(self._left(request, "held_back", spent.reason))
                continue
            refusal = self._cycle_in(request)
            if refusal is not None:
                answers.append(self._left(request, "refused", refusal))
                continue
            return None
        return answers

    def _cycle_in(self, request: ScheduleRecoveryInput) -> str | None:
        """Return why a request's ``depends_on`` would close a cycle, or None.

        Only a request with dependencies can close one: the check (a walk of the whole
        queue) is skipped for the others, or a batch of 1,000 over a queue of 5,000 took
        seconds and stalled the coordinator (a potential deadlock, to the SDK).
        """
        if not self.policy_for(request).depends_on:
            return None
        try:
            self.check_dependencies([request])
        except RecoveryValidationError as err:
            return str(err)
        return None

    def _in_hand(
        self, input: ScheduleRecoveryInput, index: dict[str, RecoveryTask] | None = None
    ) -> ScheduleRecoveryResult | None:
        """Return automation's answer for a service already queued or running, else None."""
        name = input.service_name
        queued = index.get(name) if index is not None else self.queued(name)
        if queued is not None:
            return ScheduleRecoveryResult(
                service_name=name, outcome="already_queued", state=queued.state.value,
                reason="already queued",
            )
        active = self.live(name)
        if active is not None:
            state = active.task.state.value
            return ScheduleRecoveryResult(
                service_name=name, outcome="already_running", state=state,
                reason=f"already recovering ({state})",
            )
        return None

    def _operator_holds(
        self, input: ScheduleRecoveryInput, now: datetime
    ) -> ScheduleRecoveryResult | None:
        """Return why automation must leave the service alone, or None."""
        name = input.service_name
        pause = self.state.paused.get(name)
        if pause is not None and pause.until > now:
            return self._left(
                input, "paused", f"paused until {_clock(pause.until)}: {pause.reason}"
            )
        ended = self.state.recently_ended.get(name)
        opened_at = input.breaker_opened_at
        if ended is not None and opened_at is not None and opened_at + STORE_CLOCK_GRAIN <= ended:
            return self._left(
                input,
                "already_recovered",
                f"its recovery ended at {_clock(ended)}, after this breaker opened at "
                f"{_clock(opened_at)}: the hand-over is stale",
            )
        cancelled_at = self.state.operator_cancels.get(name)
        if cancelled_at is not None and cancelled_at + CANCEL_HOLD > now:
            return self._left(input, "held_back", _cancel_hold_reason(cancelled_at))
        streak = self.state.failure_streaks.get(name)
        if streak is not None and streak.until > now:
            return self._left(input, "held_back", _cool_down_reason(streak))
        return None

    def _cancelled_since_opening(
        self, input: ScheduleRecoveryInput
    ) -> ScheduleRecoveryResult | None:
        """The rule before 0.8: a cancel held until the breaker opened again (replays only)."""
        cancelled_at = self.state.operator_cancels.get(input.service_name)
        opened_at = input.breaker_opened_at
        if cancelled_at is not None and (
            opened_at is None or opened_at <= cancelled_at + CANCEL_SETTLING
        ):
            return self._left(
                input,
                "held_back",
                f"cancelled by an operator at {_clock(cancelled_at)}: left alone until its "
                "breaker opens again or someone schedules it",
            )
        return None

    def _left(
        self, input: ScheduleRecoveryInput, outcome: ScheduleOutcome, reason: str
    ) -> ScheduleRecoveryResult:
        """Return the answer for an automatic request left alone, and why."""
        return ScheduleRecoveryResult(
            service_name=input.service_name,
            outcome=outcome,
            state=RecoveryState.IDLE.value,
            reason=clipped(reason, MAX_MESSAGE),  # a cycle's path can run to kilobytes
            no_health_check=self.policy_for(input).health_check is None,
        )

    # ----- operators' holds ------------------------------------------------------------

    def check_pause(self, service_name: str, now: datetime) -> None:
        """Refuse a pause past ``MAX_PAUSED`` services at once (each is carried state).

        Raises:
            RecoveryValidationError: saying how many are paused and how to make room.
        """
        live = [n for n, pause in self.state.paused.items() if pause.until > now]
        if service_name not in self.state.paused and len(live) >= MAX_PAUSED:
            raise RecoveryValidationError(
                f"{len(live)} services are paused, the most the coordinator holds: resume "
                f"some (recoveryctl resume NAME) or pause the whole watch instead "
                f"(recoveryctl watch-breakers disable)",
                code="too_many_paused",
                service=service_name,
            )

    def pause(self, input: PauseServiceInput, now: datetime) -> PauseServiceResult:
        """Hold automation off the service until the pause ends; a new pause replaces it.

        A recovery automation queued and that has not started is taken off the queue (it
        ends cancelled, naming the pause): nothing automatic starts while paused. One that
        runs goes on; an operator cancels it if they mean to.
        """
        self._drop_expired_pauses(now)
        self.check_pause(input.service_name, now)
        queued = self.queued(input.service_name)
        if queued is not None and queued.automatic:
            self.state.queue.remove(queued)
            self.record(self._cancelled(queued, f"paused: {input.reason}", now), run_id=None)
        pause = Pause(
            until=now + timedelta(seconds=input.duration_s),
            reason=input.reason,
        )
        self.state.paused.pop(input.service_name, None)
        self.state.paused[input.service_name] = pause
        return PauseServiceResult(
            service_name=input.service_name, until=pause.until, reason=pause.reason
        )

    def resume(self, service_name: str, now: datetime) -> ResumeServiceResult:
        """Lift whatever an operator's word or a failure put on the service."""
        self._drop_expired_pauses(now)
        lifted: list[str] = []
        if self.state.paused.pop(service_name, None) is not None:
            lifted.append("paused")
        streak = self.state.failure_streaks.pop(service_name, None)
        if streak is not None and streak.until > now:
            lifted.append(f"cool-down after {streak.failures} failed recoveries in a row")
        cancelled_at = self.state.operator_cancels.pop(service_name, None)
        if cancelled_at is not None and cancelled_at + CANCEL_HOLD > now:
            lifted.append("hold after an operator's cancel")
        # The operator's word: the next open breaker is a new one, whatever was listed.
        self.state.recently_ended.pop(service_name, None)
        return ResumeServiceResult(service_name=service_name, resumed=bool(lifted), lifted=lifted)

    def operator_scheduled(self, service_name: str) -> None:
        """An operator scheduled the service: their word replaces earlier holds (not a pause)."""
        self.state.operator_cancels.pop(service_name, None)
        self.state.failure_streaks.pop(service_name, None)

    def _drop_expired_pauses(self, now: datetime) -> None:
        for name in [n for n, pause in self.state.paused.items() if pause.until <= now]:
            del self.state.paused[name]

    def _note_ending(
        self, result: RecoveryResult, policy: RecoveryPolicy | None
    ) -> None:
        """Remember a run's end: for stale hand-overs, and a failure's cool-down."""
        name = result.service_name
        ended = self.state.recently_ended
        ended.pop(name, None)
        ended[name] = result.timestamp
        cutoff = result.timestamp - RECENTLY_ENDED_WINDOW
        for old in [n for n, at in ended.items() if at <= cutoff]:
            del ended[old]
        if result.state is RecoveryState.SUCCEEDED:
            self.state.failure_streaks.pop(name, None)
        elif result.state is RecoveryState.FAILED and result.attempt_number > 0:
            earlier = self.state.failure_streaks.pop(name, None)
            failures = (earlier.failures if earlier is not None else 0) + 1
            self.state.failure_streaks[name] = FailureStreak(
                failures=failures, until=result.timestamp + cool_down(failures), policy=policy
            )
            streaks = self.state.failure_streaks
            for old in list(streaks)[: max(0, len(streaks) - MAX_FAILURE_STREAKS)]:
                del streaks[old]

    def queue_index(self) -> dict[str, RecoveryTask]:
        """Return the queue by service name: for many lookups in one go (a batch)."""
        return {task.service_name: task for task in self.state.queue}

    def schedule(
        self,
        input: ScheduleRecoveryInput,
        now: datetime,
        index: dict[str, RecoveryTask] | None = None,
        *,
        automatic: bool = False,
    ) -> ScheduleRecoveryResult:
        """Queue a recovery, update its queue entry, or report it already running.

        Args:
            input: The request.
            now: The workflow's time.
            index: ``queue_index()``, kept current here, when scheduling a batch: a
                search of 10,000 queued entries per request would take seconds.
            automatic: Asked for by automation: its recovery runs under the evidence rule.
        """
        name = input.service_name
        active = self.live(name)
        if active is not None:
            return ScheduleRecoveryResult(
                service_name=name, outcome="already_running", state=active.task.state.value
            )
        self.state.held_back.pop(name, None)
        policy = self.policy_for(input)
        task = index.get(name) if index is not None else self.queued(name)
        outcome: ScheduleOutcome
        if task is not None:
            task.priority, task.strategy, task.policy = input.priority, input.strategy, policy
            task.automatic = task.automatic and automatic  # an operator's word makes it theirs
            outcome = "updated"
        else:
            self.state.next_sequence += 1
            task = RecoveryTask(
                priority=input.priority,
                service_name=name,
                strategy=input.strategy,
                policy=policy,
                scheduled_at=now,
                sequence=self.state.next_sequence,
                automatic=automatic,
            )
            self.state.queue.append(task)
            if index is not None:
                index[name] = task
            outcome = "queued"
        waiting = self.waiting_for(task)
        return ScheduleRecoveryResult(
            service_name=name,
            outcome=outcome,
            state="scheduled",
            reason=self._waiting_reason(waiting) if waiting else None,
        )

    def policy_for(self, input: ScheduleRecoveryInput) -> RecoveryPolicy:
        """The policy passed in, else the one set for the service, else the default."""
        return input.policy or self.state.policies.get(input.service_name) or self.config.default_policy

    def _spent_budget(
        self, service_name: str, policy: RecoveryPolicy, now: datetime
    ) -> HeldBack | None:
        """Return why the service is held back, if its hourly attempt budget is spent."""
        log = self.state.attempt_logs.get(service_name)
        budget = policy.max_attempts_per_hour  # the budget the request asks for is the one that holds
        if log is None or budget is None:
            return None
        recent = sorted(t for t in log.started if t > now - BUDGET_WINDOW)
        if len(recent) < budget:
            return None
        # Once the oldest (len - budget + 1) attempts leave the window, one more fits.
        until = recent[len(recent) - budget] + BUDGET_WINDOW
        capped = len(log.started) >= 2 * budget and len(recent) == len(log.started)
        counted = f"at least {len(recent)}" if capped else str(len(recent))
        return HeldBack(
            reason=(
                f"storm guard: {counted} attempts in the last hour, budget "
                f"max_attempts_per_hour={budget}; not scheduled again before {_clock(until)}"
            ),
            until=until,
            attempts_last_hour=len(recent),
            max_attempts_per_hour=budget,
        )

    def next_startable(self) -> RecoveryTask | None:
        """Return the task to start next: a MANUAL one at once, else the best if a slot is free.

        A service whose previous run is still closing waits: one run per workflow id.
        Evaluated after every workflow task (the main loop waits on it), so it is one
        pass over the queue, and the dependency check only for tasks that have some.
        """
        if not self.state.orchestrator_running or not self.state.queue:
            return None
        if len(self.state.active) >= MAX_RUNNING:
            return None
        slot_free = self.slots_in_use() < self.config.max_concurrent_recoveries
        unfinished: set[str] | None = None
        best: RecoveryTask | None = None
        for task in self.state.queue:
            manual = task.strategy is RecoveryStrategy.MANUAL
            if not (manual or slot_free):
                continue
            if best is not None and _starts_before(best, task):
                continue
            name = task.service_name
            if name in self.state.active or name in self.closing_elsewhere:
                continue
            if task.policy.depends_on:
                unfinished = self.unfinished_names() if unfinished is None else unfinished
                if self.waiting_for(task, unfinished):
                    continue
            best = task
        return best

    def take_startable(self, limit: int | None = None) -> list[ActiveRecovery]:
        """Take the tasks that may start now off the queue (at most ``limit``), each holding its slot."""
        starting: list[ActiveRecovery] = []
        while limit is None or len(starting) < limit:
            task = self.next_startable()
            if task is None:
                break
            starting.append(self.take(task, outside_slots=False))
        return starting

    def check_can_run_one_more(self) -> None:
        """Refuse to start a recovery outside the queue when the running set is full.

        Raises:
            RecoveryOrchestratorError: saying how many run and why that is the limit.
        """
        if len(self.state.active) >= MAX_RUNNING:
            raise RecoveryOrchestratorError(
                f"{len(self.state.active)} recoveries are running, the most one coordinator "
                f"runs at once (Temporal allows a workflow 2,000 pending children): it stays "
                f"queued and starts when one finishes",
                code="queue_full",
            )

    def take(self, task: RecoveryTask, *, outside_slots: bool) -> ActiveRecovery:
        """Count a queued task as running (before its start completes, so slots add up)."""
        self.state.queue.remove(task)
        manual = task.strategy is RecoveryStrategy.MANUAL
        task.state = RecoveryState.AWAITING_MANUAL if manual else RecoveryState.IN_PROGRESS
        active = ActiveRecovery(
            task=task, outside_slots=outside_slots or manual, awaits_operators=manual
        )
        self.state.active[task.service_name] = active
        return active

    def start_refused(self, service_name: str, message: str, now: datetime) -> None:
        """End a recovery whose start the server refused, where operators look for endings."""
        ended = self.unreported_result(service_name, RecoveryState.FAILED, message, now)
        self.state.active.pop(service_name, None)
        self.record(ended, run_id=None)
        self.reject(message, now)

    def started(self, active: ActiveRecovery, run_id: str) -> None:
        """Note the run id of a started child (a run cancelled before it started stays so)."""
        active.run_id = run_id
        if active.cancel_reason is not None:
            self._note_finished_run(run_id)

    # ----- operators -------------------------------------------------------------------

    def note_operator_cancel(self, service_name: str, now: datetime) -> None:
        """Remember that an operator cancelled the service: automation leaves it alone."""
        cancels = self.state.operator_cancels
        cancels.pop(service_name, None)
        cancels[service_name] = now
        for name in list(cancels)[: max(0, len(cancels) - MAX_OPERATOR_CANCELS)]:
            del cancels[name]

    def cancel(
        self, service_name: str, reason: str, now: datetime
    ) -> tuple[CancelRecoveryResult, ChildRef | None]:
        """Cancel at once: the status stops listing it and the history holds it cancelled.

        Returns:
            The update's result, and the child to tell to stop (None if it never started).
        """
        queued = self.queued(service_name)
        if queued is not None:
            self.state.queue.remove(queued)
            self.record(self._cancelled(queued, reason, now), run_id=None)
            result = CancelRecoveryResult(service_name=service_name, cancelled=True, was="scheduled")
            return result, None
        active = self.live(service_name)
        if active is None:
            return CancelRecoveryResult(service_name=service_name, cancelled=False, was="idle"), None
        was = active.task.state.value
        # It still holds its slot until the child has closed: one run per workflow id.
        active.finished = True
        active.cancel_reason = reason
        self.record(self._cancelled(active.task, reason, now), run_id=active.run_id)
        result = CancelRecoveryResult(service_name=service_name, cancelled=True, was=was)
        return result, ChildRef(service_name, active.run_id)

    def shutdown(self, reason: str, now: datetime) -> tuple[list[str], list[ChildRef]]:
        """Stop: cancel every unfinished recovery; report not running until started again.

        Returns:
            Every cancelled service, and the running children to tell to stop.
        """
        self.state.orchestrator_running = False
        unfinished = self.unfinished_names()
        # The whole queue in one pass (one by one, each cancel would search it again);
        # a dependent ends as "not attempted", as when its dependency is cancelled alone.
        queued, waiting_on, ended = self.state.queue, self._waiting_on(), set[str]()
        self.state.queue = []
        for task in queued:
            if task.service_name in ended:
                continue
            ended.add(task.service_name)
            cancelled = self._cancelled(task, reason, now)
            self._append(cancelled)
            for dependent in _cascade(cancelled, waiting_on, ended):
                self._append(dependent)
        running = [name for name in self.state.active if name in unfinished]
        children: list[ChildRef] = []
        for name in running:
            _, child = self.cancel(name, reason, now)
            if child is not None:
                children.append(child)
        return [task.service_name for task in queued] + running, children

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
        self._trim_history()
        if input.orchestrator_running is not None:
            self.state.orchestrator_running = input.orchestrator_running
        return config

    def set_policy(self, service_name: str, policy: RecoveryPolicy) -> None:
        """Set the policy for the service's next recoveries."""
        self.state.policies[service_name] = policy

    # ----- children --------------------------------------------------------------------

    def apply_report(
        self, report: RecoveryReport, *, watched: bool, trust_unknown_run: bool = False
    ) -> None:
        """Apply a child's report, in order; a late, repeated or foreign one changes nothing.

        Args:
            report: What the child said.
            watched: Whether this coordinator run sees the child's close (it started it).
            trust_unknown_run: Take the run id from the report while the child's start is
                in flight (replays from before 0.8 only). Otherwise such a report is left
                unapplied: anyone can send one naming the service and any run, and a child
                this run started is settled by its close anyway.
        """
        active = self.state.active.get(report.service_name)
        known = (None, report.run_id) if trust_unknown_run else (report.run_id,)
        matches = active is not None and active.run_id in known
        if report.run_id in self.state.finished_runs:
            # Recorded already (cancelled, say). A child started before a continue-as-new
            # is not watched: its final report is how its slot comes free.
            if active is not None and matches and active.finished and report.result is not None:
                self._correct_late_cancel(active, report.result)
                if watched:
                    active.finish_reported = True
                else:
                    del self.state.active[report.service_name]
            return
        if active is None or not matches:
            return  # not a run this coordinator holds: stale, or not one of its children
        if report.sequence <= active.last_report:
            return
        active.run_id = report.run_id
        active.last_report = report.sequence
        status = report.status
        task = active.task
        self._log_attempts(task, status.attempt_count - task.attempt_count, status.last_attempt_at)
        task.state = status.state
        task.attempt_count = status.attempt_count
        task.last_attempt_at = status.last_attempt_at
        task.next_attempt_at = status.next_attempt_at
        if active.approval_for_attempt is not None and status.attempt_count > active.approval_for_attempt:
            active.approval_for_attempt = None  # the approved attempt has begun
        if status.state is RecoveryState.AWAITING_MANUAL:
            active.outside_slots = True  # operators pace it now, not the queue
            active.awaits_operators = True
        if report.result is not None:
            self.record(report.result, run_id=report.run_id, policy=task.policy)
            if watched:
                # Its slot stays taken until the child has closed.
                active.finished = active.finish_reported = True
            else:
                del self.state.active[report.service_name]

    def settle(self, service_name: str, run_id: str, result: RecoveryResult) -> None:
        """Free the run's slot (if it still holds one) and record its result once."""
        active = self.state.active.get(service_name)
        policy = None
        if active is not None and active.run_id == run_id:
            self._correct_late_cancel(active, result)
            policy = active.task.policy
            del self.state.active[service_name]
        self.record(result, run_id=run_id, policy=policy)

    def unreported_result(
        self, service_name: str, state: RecoveryState, error: str, now: datetime
    ) -> RecoveryResult:
        """Describe a recovery that ended without reporting its own result."""
        active = self.state.active.get(service_name)
        task = active.task if active else None
        return RecoveryResult(
            service_name=service_name,
            success=False,
            attempt_number=task.attempt_count if task else 0,
            total_attempts=task.policy.max_retry_attempts if task else 0,
            elapsed_time_ms=(now - task.scheduled_at).total_seconds() * 1000 if task else 0.0,
            state=state,
            error_message=error,
            timestamp=now,
        )

    def unwatched(self, watched: set[str]) -> dict[str, str]:
        """Return run id → service of children whose close this run cannot see.

        Those are the ones started before a continue-as-new that are still running,
        or were cancelled and may not have closed yet.
        """
        return {
            active.run_id: name
            for name, active in self.state.active.items()
            if active.run_id is not None
            and active.run_id not in watched
            and (not active.finished or active.cancel_reason is not None)
        }

    def forget_closing(self) -> list[str]:
        """At a new run: free the slots of children that have sent their final report.

        They were only waiting to close. One cancelled before it reported may still be
        running, so it stays until its final report or a lookup says it has closed.

        Returns:
            The services forgotten: a new run of one may find the old one not yet closed.
        """
        forgotten = [
            n
            for n, a in self.state.active.items()
            if a.finished and (a.finish_reported or a.cancel_reason is None)
        ]
        for name in forgotten:
            del self.state.active[name]
        return forgotten

    def requeue(self, active: ActiveRecovery) -> None:
        """Put back a task whose start found its previous run still closing."""
        self.state.active.pop(active.task.service_name, None)
        task = active.task
        task.state = RecoveryState.SCHEDULED
        self.state.queue.append(task)

    # ----- history ---------------------------------------------------------------------

    def record(
        self, result: RecoveryResult, run_id: str | None, policy: RecoveryPolicy | None = None
    ) -> None:
        """Add a finished recovery to the recent history, once per run.

        One that did not succeed ends the queued recoveries waiting for it too.

        Args:
            result: How it ended.
            run_id: The run that ended (None: it never started).
            policy: The policy it ran under, which a later automatic try must keep.
        """
        if run_id is not None:
            if run_id in self.state.finished_runs:
                return
            self._note_finished_run(run_id)
            self._note_ending(result, policy)
        self._append(result)
        if result.state in (RecoveryState.FAILED, RecoveryState.CANCELLED):
            for ended in self._end_dependents(result):
                self._append(ended)

    def _append(self, result: RecoveryResult) -> None:
        if result.error_message is not None and len(result.error_message) > MAX_MESSAGE:
            result = result.model_copy(
                update={"error_message": clipped(result.error_message, MAX_MESSAGE)}
            )
        self.state.recent_history.append(result)
        self._trim_history()

    def _end_dependents(self, dependency: RecoveryResult) -> list[RecoveryResult]:
        """Take off the queue what waits, directly or not, for one that did not succeed."""
        waiting_on = self._waiting_on()
        if not waiting_on:
            return []
        taken: set[str] = set()
        ended = _cascade(dependency, waiting_on, taken)
        self.state.queue[:] = [t for t in self.state.queue if t.service_name not in taken]
        return ended

    def _waiting_on(self) -> dict[str, list[RecoveryTask]]:
        """Return, for each service, the queued tasks that depend on it directly."""
        waiting_on: dict[str, list[RecoveryTask]] = {}
        for task in self.state.queue:
            for name in task.policy.depends_on:
                waiting_on.setdefault(name, []).append(task)
        return waiting_on

    def _log_attempts(self, task: RecoveryTask, new: int, started: datetime | None) -> None:
        """Note attempts that began, for a service with an hourly budget."""
        budget = task.policy.max_attempts_per_hour
        if new <= 0 or started is None or budget is None:
            return
        self._forget_before(started - BUDGET_WINDOW)
        log = self.state.attempt_logs.setdefault(task.service_name, AttemptLog(budget=budget))
        log.budget = budget
        log.started = [t for t in log.started if t > started - BUDGET_WINDOW]
        log.started.extend([started] * new)
        # Beyond twice the budget the answer ("held back until …") no longer changes; the
        # count shown is then "at least" that many.
        del log.started[: -2 * budget]

    def _forget_before(self, cutoff: datetime) -> None:
        """Drop attempt logs and holds that no longer matter, so the carried state stays small."""
        logs = self.state.attempt_logs
        for name in [n for n, log in logs.items() if max(log.started, default=cutoff) <= cutoff]:
            del logs[name]
        for name in [n for n, held in self.state.held_back.items() if held.until <= cutoff]:
            del self.state.held_back[name]

    def reject(self, message: str, now: datetime) -> None:
        """Keep a refused request where ``get_configuration`` shows it (the last few)."""
        self.state.rejected_signals.append(clipped(f"{now.isoformat()} {message}", MAX_MESSAGE))
        del self.state.rejected_signals[:-MAX_REJECTED_SIGNALS]

    def fit_for_hand_over(self) -> list[str]:
        """Trim what can go until a hand-over fits; return what was given up, if anything.

        The validators keep the state inside its budget, but the storm guard's attempt
        logs grow with reports, not requests (up to twice ``max_attempts_per_hour``
        times a service; a forged report can fill them). This is the last guard, so
        that a continue-as-new is never refused for its size: rejections, then the
        oldest history, then each attempt log beyond its budget (the "held back until"
        answer stays exact), then the attempt logs altogether.
        """
        given_up: list[str] = []
        if self.carried_bytes() <= HAND_OVER_LIMIT:
            return given_up
        self.state.rejected_signals.clear()
        given_up.append("the rejected signals")
        while self.state.recent_history and self.carried_bytes() > HAND_OVER_LIMIT:
            del self.state.recent_history[: max(1, len(self.state.recent_history) // 4)]
            given_up[1:] = ["the oldest recent history"]
        if self.carried_bytes() <= HAND_OVER_LIMIT:
            return given_up
        for log in self.state.attempt_logs.values():
            del log.started[: -log.budget]
        given_up.append("attempt times past each hourly budget")
        if self.carried_bytes() > HAND_OVER_LIMIT:
            self.state.attempt_logs.clear()
            given_up.append("every attempt log (the storm guard starts counting again)")
        return given_up

    def _correct_late_cancel(self, active: ActiveRecovery, result: RecoveryResult) -> None:
        """Let the child's own ending replace a cancel that came too late to stop it.

        A cancel is recorded at once (read-your-writes), but a child already closing
        its breaker finishes anyway: the history must then say what really happened.
        """
        if active.cancel_reason is None or result.state is RecoveryState.CANCELLED:
            return
        history = self.state.recent_history
        for index in range(len(history) - 1, -1, -1):
            entry = history[index]
            if (
                entry.service_name == active.task.service_name
                and entry.state is RecoveryState.CANCELLED
                and entry.error_message == f"cancelled: {active.cancel_reason}"
            ):
                history[index] = result
                return

    def _note_finished_run(self, run_id: str) -> None:
        self.state.finished_runs.append(run_id)
        del self.state.finished_runs[:-MAX_FINISHED_RUNS]

    def _trim_history(self) -> None:
        del self.state.recent_history[: -self.config.recent_history_size]

    def _cancelled(self, task: RecoveryTask, reason: str, now: datetime) -> RecoveryResult:
        return RecoveryResult(
            service_name=task.service_name,
            success=False,
            attempt_number=task.attempt_count,
            total_attempts=task.policy.max_retry_attempts,
            elapsed_time_ms=(now - task.scheduled_at).total_seconds() * 1000,
            state=RecoveryState.CANCELLED,
            error_message=f"cancelled: {reason}",
            timestamp=now,
        )


def _cool_down_reason(streak: FailureStreak) -> str:
    return (
        f"cool-down: {streak.failures} failed recover{'y' if streak.failures == 1 else 'ies'} "
        f"in a row; automation leaves it alone until {_clock(streak.until)}, then tries "
        f"again with the same policy if its breaker is still open (an operator may "
        f"schedule, execute or resume it now)"
    )


def _cancel_hold_reason(cancelled_at: datetime) -> str:
    return (
        f"cancelled by an operator at {_clock(cancelled_at)}: automation holds off until "
        f"{_clock(cancelled_at + CANCEL_HOLD)} or `recoveryctl resume`"
    )


def _clock(when: datetime) -> str:
    """Show a time to an operator: ``12:42:11 UTC`` (the date too if not today's)."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
