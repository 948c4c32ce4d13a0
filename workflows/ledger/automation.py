"""Automation's requests (the circuit watch): schedule what may go, say why for the rest.

An operator's request is queued as asked (``queue.schedule``). Automation's never
overrules an operator or repeats itself: it leaves be a service already queued or
running, paused, recovered since its breaker opened, cooling down after a failure,
held after an operator's cancel, past its hourly attempt budget, or waiting on a
dependency so held; and its batch takes what fits, best priority first, instead of
all or none.
"""

from __future__ import annotations

from datetime import datetime

from workflows.carried_state import CoordinatorState
from workflows.coordinator_models import (
    ScheduleOutcome,
    ScheduleRecoveryInput,
    ScheduleRecoveryResult,
)
from workflows.errors import RecoveryValidationError, clipped
from workflows.ledger import budget, operator_word, queue, storm_guard
from workflows.ledger.history import MAX_MESSAGE
from workflows.models import RecoveryState, RecoveryTask


def schedule_automatically(
    state: CoordinatorState,
    requests: list[ScheduleRecoveryInput],
    now: datetime,
    *,
    respect_operator: bool = True,
) -> list[ScheduleRecoveryResult]:
    """Schedule automation's batch: what fits, best priority first; say why for the rest.

    An operator's batch is all or none (its validator checks the room); automation
    would rather have the most urgent recoveries start than none at all.
    """
    unfinished = queue.unfinished_names(state)
    held, size = len(unfinished), budget.carried_bytes(state)
    blocked = storm_guard.held_dependencies(state, requests, unfinished, now)
    results: dict[int, ScheduleRecoveryResult] = {}
    growth = budget.GrowthEstimate(state)
    index = queue.queue_index(state)  # kept current by schedule(): one search per request
    for position, request in sorted(enumerate(requests), key=lambda item: item[1].priority):
        grows = 0
        name = request.service_name
        if respect_operator and name not in unfinished:
            refusal = cycle_in(state, request)
            if refusal is not None:  # one bad request must not keep the rest from starting
                results[position] = left(state, request, "refused", refusal)
                continue
        if name in blocked and name not in unfinished:
            state.held_back[name] = blocked[name]
            results[position] = ScheduleRecoveryResult(
                service_name=name, outcome="held_back", state=RecoveryState.IDLE.value,
                reason=blocked[name].reason,
            )
            continue
        if name not in unfinished:
            grows = growth.of(request)
            try:
                budget.check_count(state, held, 1)
                if size + grows > budget.CARRIED_STATE_BUDGET:
                    budget.check_size(state, grows)
            except RecoveryValidationError as err:
                results[position] = ScheduleRecoveryResult(
                    service_name=name, outcome="no_room", state=RecoveryState.IDLE.value,
                    reason=str(err),
                )
                continue
        result = schedule_automatic(state, request, now, respect_operator=respect_operator, index=index)
        if result.outcome == "queued":
            growth.queued(request)
            unfinished.add(name)
            held, size = held + 1, size + grows
        results[position] = result
    answers = [results[position] for position in range(len(requests))]
    operator_word.note_cool_downs_answered(state, answers, now)
    return answers


def schedule_automatic(
    state: CoordinatorState,
    input: ScheduleRecoveryInput,
    now: datetime,
    *,
    respect_operator: bool = True,
    index: dict[str, RecoveryTask] | None = None,
) -> ScheduleRecoveryResult:
    """Schedule one request for automation; after a cool-down, with the policy that failed.

    Args:
        state: The carried state.
        input: The request.
        now: The workflow's time.
        respect_operator: False only to replay coordinators from before the patch
            ``automation-respects-operator``, whose automation knew no pause, cool-down
            or stale hand-over.
        index: ``queue_index()``, kept current here, when scheduling a batch.
    """
    name = input.service_name
    found = in_hand(state, input, index)
    if found is not None:
        return found
    if respect_operator:
        refused = operator_word.automation_held_off(state, input, now)
        if refused is not None:
            return left(state, input, *refused)
        streak = state.failure_streaks.get(name)
        if streak is not None and streak.policy is not None:
            # Never a different policy than the one it failed with.
            input = input.model_copy(update={"policy": streak.policy})
    else:
        refused = operator_word.cancelled_since_opening(state, input)
        if refused is not None:
            return left(state, input, *refused)
    held = storm_guard.spent(state, input, now)
    if held is not None:
        state.held_back[name] = held
        return left(state, input, "held_back", held.reason)
    result = queue.schedule(state, input, now, index, automatic=respect_operator)
    if queue.policy_for(state, input).health_check is None:
        result.no_health_check = True
    return result


def unchanged_answers(
    state: CoordinatorState, requests: list[ScheduleRecoveryInput], now: datetime
) -> list[ScheduleRecoveryResult] | None:
    """Return automation's answers if its batch would change nothing; None if it would.

    Each request must be already queued or running, held by an operator's word or a
    cool-down already answered, stale, held by a storm guard already recorded, or
    refused for a dependency cycle.
    The coordinator's validator then refuses the batch with these answers, and the
    watch, which hands the same open breakers over every few seconds, writes no
    history while they wait.
    """
    answers: list[ScheduleRecoveryResult] = []
    index = queue.queue_index(state)
    for request in requests:
        found = in_hand(state, request, index)
        if found is not None:
            answers.append(found)
            continue
        held = operator_word.automation_held_off(state, request, now)
        if held is not None:
            if operator_word.cool_down_unanswered(state, request, now):
                return None  # its first answer is history: on-call is told of the hold
            answers.append(left(state, request, *held))
            continue
        spent = storm_guard.spent(state, request, now)
        if spent is not None and state.held_back.get(request.service_name) == spent:
            answers.append(left(state, request, "held_back", spent.reason))
            continue
        refusal = cycle_in(state, request)
        if refusal is not None:
            answers.append(left(state, request, "refused", refusal))
            continue
        return None
    return answers


def cycle_in(state: CoordinatorState, request: ScheduleRecoveryInput) -> str | None:
    """Return why a request's ``depends_on`` would close a cycle, or None.

    Only a request with dependencies can close one: the check (a sort of the whole
    queue) is skipped for the others, or a batch of 1,000 over a queue of 5,000 took
    seconds and stalled the coordinator (a potential deadlock, to the SDK).
    """
    if not queue.policy_for(state, request).depends_on:
        return None
    try:
        queue.check_dependencies(state, [request])
    except RecoveryValidationError as err:
        return str(err)
    return None


def in_hand(
    state: CoordinatorState,
    input: ScheduleRecoveryInput,
    index: dict[str, RecoveryTask] | None = None,
) -> ScheduleRecoveryResult | None:
    """Return automation's answer for a service already queued or running, else None."""
    name = input.service_name
    queued = index.get(name) if index is not None else queue.queued(state, name)
    if queued is not None:
        return ScheduleRecoveryResult(
            service_name=name, outcome="already_queued", state=queued.state.value,
            reason="already queued",
        )
    active = queue.live(state, name)
    if active is not None:
        task_state = active.task.state.value
        return ScheduleRecoveryResult(
            service_name=name, outcome="already_running", state=task_state,
            reason=f"already recovering ({task_state})",
        )
    return None


def left(
    state: CoordinatorState, input: ScheduleRecoveryInput, outcome: ScheduleOutcome, reason: str
) -> ScheduleRecoveryResult:
    """Return the answer for an automatic request left alone, and why."""
    return ScheduleRecoveryResult(
        service_name=input.service_name,
        outcome=outcome,
        state=RecoveryState.IDLE.value,
        reason=clipped(reason, MAX_MESSAGE),  # a cycle's path can run to kilobytes
        no_health_check=queue.policy_for(state, input).health_check is None,
    )
