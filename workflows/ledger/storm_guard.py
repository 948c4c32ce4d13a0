"""The storm guard: a budget of attempts per rolling hour, per service.

Only for services whose policy sets ``max_attempts_per_hour``, and only the last
hour is kept, so the attempt logs stay small in the carried state. An automatic
request for a service past its budget is held back, saying until when; so is one
that waits for a dependency held back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.carried_state import AttemptLog, CoordinatorState, HeldBack
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.ledger.clock import clock
from workflows.ledger.queue import policy_for
from workflows.models import RecoveryPolicy, RecoveryTask

# The window: a budget of attempts per rolling hour.
BUDGET_WINDOW = timedelta(hours=1)


def log_attempts(state: CoordinatorState, task: RecoveryTask, new: int, started: datetime | None) -> None:
    """Note ``new`` attempts that began at ``started``, for a service with an hourly budget."""
    budget = task.policy.max_attempts_per_hour
    if new <= 0 or started is None or budget is None:
        return
    forget_before(state, started - BUDGET_WINDOW)
    log = state.attempt_logs.setdefault(task.service_name, AttemptLog(budget=budget))
    log.budget = budget
    log.started = [t for t in log.started if t > started - BUDGET_WINDOW]
    log.started.extend([started] * new)
    # Beyond twice the budget the answer ("held back until …") no longer changes; the
    # count shown is then "at least" that many.
    del log.started[: -2 * budget]


def forget_before(state: CoordinatorState, cutoff: datetime) -> None:
    """Drop attempt logs and holds that no longer matter, so the carried state stays small."""
    logs = state.attempt_logs
    for name in [n for n, log in logs.items() if max(log.started, default=cutoff) <= cutoff]:
        del logs[name]
    for name in [n for n, held in state.held_back.items() if held.until <= cutoff]:
        del state.held_back[name]


def spent_budget(log: AttemptLog | None, policy: RecoveryPolicy, now: datetime) -> HeldBack | None:
    """Return why a service is held back, if its hourly attempt budget is spent.

    Args:
        log: The service's attempt log, if it has one.
        policy: The policy the request asks for: its budget is the one that holds.
        now: The workflow's time.
    """
    budget = policy.max_attempts_per_hour
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
            f"max_attempts_per_hour={budget}; not scheduled again before {clock(until)}"
        ),
        until=until,
        attempts_last_hour=len(recent),
        max_attempts_per_hour=budget,
    )


def spent(state: CoordinatorState, request: ScheduleRecoveryInput, now: datetime) -> HeldBack | None:
    """Return why the request's service is held back by the storm guard, or None."""
    log = state.attempt_logs.get(request.service_name)
    return spent_budget(log, policy_for(state, request), now)


def held_dependencies(
    state: CoordinatorState,
    requests: list[ScheduleRecoveryInput],
    unfinished: set[str],
    now: datetime,
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
            held = spent(state, request, now)
            if held is not None:
                holds[request.service_name] = held
    if not holds:
        return {}
    depends = {r.service_name: policy_for(state, r).depends_on for r in requests}
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
                        f"{clock(hold.until)}: {hold.reason}"
                    }
                )
                changed = True
    return blocked
