"""The queue and the slots: what waits, in which order, and what may start now.

Lower priority numbers first, first-in first-out within a priority (``queue_key``);
a MANUAL task starts at once (operators pace it, it holds no slot); the others as
slots free up, never ahead of a dependency still queued or recovering, and never
while the service's previous run is still closing (one run per workflow id).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from workflows import dependencies
from workflows.carried_state import CoordinatorState
from workflows.coordinator_models import (
    ScheduleOutcome,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryOrchestratorError
from workflows.ledger.lifecycle import ActiveRecovery, Lifecycle
from workflows.models import RecoveryPolicy, RecoveryState, RecoveryStrategy, RecoveryTask

# Temporal allows a workflow 2,000 pending children and 2,000 pending signals: the
# coordinator keeps its running recoveries well inside both (shutdown signals each).
MAX_RUNNING = 1000


def queued(state: CoordinatorState, service_name: str) -> RecoveryTask | None:
    """Return the service's queue entry, if it is queued."""
    return next((t for t in state.queue if t.service_name == service_name), None)


def queued_among(state: CoordinatorState, names: set[str]) -> dict[str, RecoveryTask]:
    """Return the queue entries of ``names`` by service name (one pass, for a few names)."""
    return {task.service_name: task for task in state.queue if task.service_name in names}


def queue_index(state: CoordinatorState) -> dict[str, RecoveryTask]:
    """Return the queue by service name: for many lookups in one go (a batch)."""
    return {task.service_name: task for task in state.queue}


def live(state: CoordinatorState, service_name: str) -> ActiveRecovery | None:
    """Return the service's running recovery, unless its end is already recorded."""
    active = state.active.get(service_name)
    return active if active is not None and active.live else None


def live_ones(state: CoordinatorState) -> list[ActiveRecovery]:
    """Return the running recoveries whose end is not recorded."""
    return [active for active in state.active.values() if active.live]


def unfinished_names(state: CoordinatorState) -> set[str]:
    """Return every service queued or running: one pass, for checks over many services."""
    names = {task.service_name for task in state.queue}
    names.update(name for name, active in state.active.items() if active.live)
    return names


def unfinished_count(state: CoordinatorState) -> int:
    """Return how many recoveries are queued or running (what ``queue_limit`` bounds)."""
    return len(state.queue) + len(live_ones(state))


def slots_in_use(state: CoordinatorState) -> int:
    """Return how many slots running recoveries hold (closing ones included)."""
    return sum(1 for active in state.active.values() if active.holds_slot)


def policy_for(state: CoordinatorState, input: ScheduleRecoveryInput) -> RecoveryPolicy:
    """The policy passed in, else the one set for the service, else the default."""
    return input.policy or state.policies.get(input.service_name) or state.config.default_policy


def state_of(state: CoordinatorState, service_name: str) -> str:
    """Return a dependency's state as a waiting task tells it: running, else scheduled."""
    active = live(state, service_name)
    return active.task.state.value if active is not None else RecoveryState.SCHEDULED.value


def waiting_for(
    state: CoordinatorState, task: RecoveryTask, unfinished: set[str] | None = None
) -> list[str]:
    """Return the task's dependencies still queued or recovering.

    Args:
        state: The carried state.
        task: A queued task.
        unfinished: ``unfinished_names()``, when the caller asks about many tasks.
    """
    if not task.policy.depends_on:
        return []
    return dependencies.waiting_for(task, unfinished_names(state) if unfinished is None else unfinished)


def waiting_reason(state: CoordinatorState, waiting: Iterable[str]) -> str:
    """Say what a task waits for, with each dependency's state."""
    return dependencies.waiting_reason(waiting, lambda name: state_of(state, name))


def schedule(
    state: CoordinatorState,
    input: ScheduleRecoveryInput,
    now: datetime,
    index: dict[str, RecoveryTask] | None = None,
    *,
    automatic: bool = False,
) -> ScheduleRecoveryResult:
    """Queue a recovery, update its queue entry, or report it already running.

    Args:
        state: The carried state.
        input: The request.
        now: The workflow's time.
        index: ``queue_index()``, kept current here, when scheduling a batch: a
            search of 10,000 queued entries per request would take seconds.
        automatic: Asked for by automation: its recovery runs under the evidence rule.
    """
    name = input.service_name
    active = live(state, name)
    if active is not None:
        return ScheduleRecoveryResult(
            service_name=name, outcome="already_running", state=active.task.state.value
        )
    state.held_back.pop(name, None)  # scheduled now: the storm guard's word is spent
    policy = policy_for(state, input)
    task = index.get(name) if index is not None else queued(state, name)
    outcome: ScheduleOutcome
    if task is not None:
        task.priority, task.strategy, task.policy = input.priority, input.strategy, policy
        task.automatic = task.automatic and automatic  # an operator's word makes it theirs
        outcome = "updated"
    else:
        state.next_sequence += 1
        task = RecoveryTask(
            priority=input.priority,
            service_name=name,
            strategy=input.strategy,
            policy=policy,
            scheduled_at=now,
            sequence=state.next_sequence,
            automatic=automatic,
        )
        state.queue.append(task)
        if index is not None:
            index[name] = task
        outcome = "queued"
    waiting = waiting_for(state, task)
    return ScheduleRecoveryResult(
        service_name=name,
        outcome=outcome,
        state="scheduled",
        reason=waiting_reason(state, waiting) if waiting else None,
    )


def starts_before(task: RecoveryTask, other: RecoveryTask) -> bool:
    """Return True if ``task`` goes first: MANUAL ones (they hold no slot), then queue order."""
    manual, other_manual = (t.strategy is RecoveryStrategy.MANUAL for t in (task, other))
    if manual != other_manual:
        return manual
    return task.queue_key < other.queue_key


def next_startable(state: CoordinatorState, closing_elsewhere: set[str]) -> RecoveryTask | None:
    """Return the task to start next: a MANUAL one at once, else the best if a slot is free.

    A service whose previous run is still closing waits: one run per workflow id.
    Evaluated after every workflow task (the main loop waits on it), so it is one
    pass over the queue, and the dependency check only for tasks that have some.
    """
    if not state.orchestrator_running or not state.queue:
        return None
    if len(state.active) >= MAX_RUNNING:
        return None
    slot_free = slots_in_use(state) < state.config.max_concurrent_recoveries
    manual = RecoveryStrategy.MANUAL
    # With every slot taken only MANUAL tasks may start (they hold none): one quick pass
    # picks them out, and the checks below run for those alone.
    candidates = state.queue if slot_free else [t for t in state.queue if t.strategy is manual]
    unfinished: set[str] | None = None
    best: RecoveryTask | None = None
    for task in candidates:
        if best is not None and starts_before(best, task):
            continue
        name = task.service_name
        if name in state.active or name in closing_elsewhere:
            continue
        if task.policy.depends_on:
            unfinished = unfinished_names(state) if unfinished is None else unfinished
            if waiting_for(state, task, unfinished):
                continue
        best = task
    return best


def take(state: CoordinatorState, task: RecoveryTask, *, outside_slots: bool) -> ActiveRecovery:
    """Count a queued task as running (before its start completes, so slots add up)."""
    state.queue.remove(task)
    manual = task.strategy is RecoveryStrategy.MANUAL
    task.state = RecoveryState.AWAITING_MANUAL if manual else RecoveryState.IN_PROGRESS
    active = ActiveRecovery(
        task=task, lifecycle=Lifecycle.STARTING, holds_slot=not (outside_slots or manual)
    )
    state.active[task.service_name] = active
    return active


def take_startable(
    state: CoordinatorState, closing_elsewhere: set[str], limit: int | None = None
) -> list[ActiveRecovery]:
    """Take the tasks that may start now off the queue (at most ``limit``), each holding its slot."""
    starting: list[ActiveRecovery] = []
    while limit is None or len(starting) < limit:
        task = next_startable(state, closing_elsewhere)
        if task is None:
            break
        starting.append(take(state, task, outside_slots=False))
    return starting


def check_can_run_one_more(state: CoordinatorState) -> None:
    """Refuse to start a recovery outside the queue when the running set is full.

    Raises:
        RecoveryOrchestratorError: saying how many run and why that is the limit.
    """
    if len(state.active) >= MAX_RUNNING:
        raise RecoveryOrchestratorError(
            f"{len(state.active)} recoveries are running, the most one coordinator "
            f"runs at once (Temporal allows a workflow 2,000 pending children): it stays "
            f"queued and starts when one finishes",
            code="queue_full",
        )


def requeue(state: CoordinatorState, active: ActiveRecovery) -> None:
    """Put back a task whose start found its previous run still closing."""
    state.active.pop(active.task.service_name, None)
    task = active.task
    task.state = RecoveryState.SCHEDULED
    state.queue.append(task)


def dependency_graph(state: CoordinatorState) -> dict[str, list[str]]:
    """Return the queued and running recoveries' dependencies (running ones over queued)."""
    graph = {t.service_name: t.policy.depends_on for t in state.queue}
    for active in live_ones(state):
        graph[active.task.service_name] = active.task.policy.depends_on
    return graph


def check_dependencies(state: CoordinatorState, requests: Iterable[ScheduleRecoveryInput]) -> None:
    """Refuse a request whose ``depends_on`` would make recoveries wait on each other forever.

    The graph is the queued and running recoveries' dependencies, with the
    request's own in place of theirs.

    Raises:
        RecoveryValidationError: naming the service, or the cycle's path.
    """
    requests = list(requests)
    if not any(policy_for(state, request).depends_on for request in requests):
        # A cycle (or a service naming itself) runs through a request that depends on
        # something: spare the walk over every queued recovery for one that depends on none.
        return
    graph = dependency_graph(state)
    for request in requests:
        graph[request.service_name] = policy_for(state, request).depends_on
    dependencies.check_no_cycle(graph, [request.service_name for request in requests])


def check_policy_dependencies(state: CoordinatorState, service_name: str, policy: RecoveryPolicy) -> None:
    """Refuse a service policy whose ``depends_on`` names the service or closes a cycle.

    The graph is every policy set, with the queued and running recoveries' own
    policies over them, and this one in place of the service's.

    Raises:
        RecoveryValidationError: naming the service, or the cycle's path.
    """
    graph = {name: p.depends_on for name, p in state.policies.items()}
    graph.update(dependency_graph(state))
    graph[service_name] = policy.depends_on
    dependencies.check_policy_closes_no_cycle(graph, service_name)


def check_dependencies_recovered(state: CoordinatorState, task: RecoveryTask) -> None:
    """Refuse to start a queued task ahead of a dependency that has not recovered.

    Raises:
        RecoveryOrchestratorError: naming the dependencies, their states, and what
            the operator can do instead.
    """
    waiting = waiting_for(state, task)
    if waiting:
        raise dependencies.dependency_pending(task, waiting, waiting_reason(state, waiting))
