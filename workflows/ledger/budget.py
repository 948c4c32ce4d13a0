"""The carried state's budget: what a continue-as-new can carry, and ``queue_limit``.

Temporal refuses a payload over 2 MB, and the whole state is the continue-as-new
input: a state that outgrew it could never hand over, and the coordinator would be
stuck. Requests that would grow it past ``CARRIED_STATE_BUDGET`` are refused; the
margin is for what grows without a request (recent history up to its size,
rejections, reports). ``fit_for_hand_over`` is the last guard.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from workflows.carried_state import CoordinatorState
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.errors import RecoveryValidationError
from workflows.ledger.queue import live, policy_for, queued_among, unfinished_count
from workflows.models import RecoveryPolicy

CARRIED_STATE_BUDGET = 1_400_000
# Past this, a continue-as-new input is trimmed of what can go (old history, rejections).
HAND_OVER_LIMIT = 1_900_000
# A queue entry's own fields in the carried state's compact form, besides its name and
# policy (measured: about 50; ``workflows.compact_state``).
TASK_BYTES = 100
# The code of a refusal for want of room in the carried state.
STATE_TOO_LARGE = "state_too_large"


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

    def __init__(self, state: CoordinatorState) -> None:
        self._state = state
        self._carried: RecoveryPolicy | None = None

    def of(self, request: ScheduleRecoveryInput) -> int:
        """Return the bytes queueing ``request`` adds, about."""
        policy = policy_for(self._state, request)
        carried = policy is self._state.config.default_policy or policy == self._carried
        policy_bytes = 0 if carried else json_bytes(policy)
        return TASK_BYTES + len(request.service_name.encode()) + policy_bytes

    def queued(self, request: ScheduleRecoveryInput) -> None:
        """Note that ``request`` was queued: its policy is carried from now on."""
        self._carried = policy_for(self._state, request)

    def new_policy(self, request: ScheduleRecoveryInput, current: RecoveryPolicy) -> int:
        """Return what updating a queued entry to ``request`` adds: a policy it did not have."""
        policy = policy_for(self._state, request)
        unchanged = policy == current or policy is self._state.config.default_policy
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


def carried_bytes(state: CoordinatorState) -> int:
    """Return the size of the state as a continue-as-new would carry it (JSON, bytes)."""
    return json_bytes(state)


def check_count(state: CoordinatorState, held: int, more: int) -> None:
    """Refuse ``more`` recoveries past ``queue_limit`` when ``held`` are unfinished.

    Raises:
        RecoveryValidationError: saying how to make room.
    """
    limit = state.config.queue_limit
    # A request that adds nothing (a queued entry changed, a service already running) fits
    # even when queue_limit was lowered below what is held.
    if more and held + more > limit:
        raise RecoveryValidationError(
            f"the coordinator already holds {held} unfinished recoveries and its "
            f"queue_limit is {limit}: {more} more {'does' if more == 1 else 'do'} not fit; wait for some to "
            f"finish, cancel some, or raise it with configure(queue_limit=...)",
            code="queue_full",
        )


def check_size(state: CoordinatorState, incoming_bytes: int, *, carried: int | None = None) -> None:
    """Refuse a request that would grow the carried state past its budget.

    Args:
        state: The carried state.
        incoming_bytes: About what the request adds.
        carried: The state's size measured earlier in this workflow task, for an
            update's validator (measuring 10,000 services takes tens of ms; what
            this task's earlier handlers added is inside the budget's margin).
            Anything replayed (handlers, signals) passes None: measured now.

    Raises:
        RecoveryValidationError: with the sizes, and how to make room.
    """
    size = carried_bytes(state) if carried is None else carried
    if size + incoming_bytes > CARRIED_STATE_BUDGET:
        raise RecoveryValidationError(
            f"the coordinator's state is {size:,} bytes and this request adds about "
            f"{incoming_bytes:,}: past its {CARRIED_STATE_BUDGET:,}-byte budget (Temporal "
            f"carries at most 2 MB across continue-as-new); let recoveries finish, cancel "
            f"some, or clear policies you no longer need",
            code=STATE_TOO_LARGE,
        )


def check_room(
    state: CoordinatorState,
    requests: Iterable[ScheduleRecoveryInput],
    *,
    carried: int | None = None,
) -> int:
    """Refuse scheduling past ``queue_limit`` or past what a hand-over can carry.

    A request for a service already queued grows the state too when it gives the
    entry a new policy: that is counted as well.

    Args:
        state: The carried state.
        requests: What is to be scheduled.
        carried: ``carried_bytes()`` if the caller knows it already (see ``check_size``).

    Returns:
        About how many bytes the requests add (what ``carried`` must grow by when
        the same workflow task checks another request against it).

    Raises:
        RecoveryValidationError: saying what is full and how to make room.
    """
    requests = list(requests)
    # Every update's validator runs this: one pass over the queue for the names asked
    # about, not an index of the whole queue per request.
    queued = queued_among(state, {r.service_name for r in requests})
    new = {
        r.service_name: r
        for r in requests
        if r.service_name not in queued and live(state, r.service_name) is None
    }
    check_count(state, unfinished_count(state), len(new))
    requeued = {r.service_name: r for r in requests if r.service_name in queued}
    estimate = GrowthEstimate(state)
    added = estimate.total(new.values()) + sum(
        estimate.new_policy(request, queued[name].policy) for name, request in requeued.items()
    )
    check_size(state, added, carried=carried)
    return added


def fit_for_hand_over(state: CoordinatorState, encoded: int | None = None) -> list[str]:
    """Trim what can go until a hand-over fits; return what was given up, if anything.

    ``encoded`` is the hand-over's size as already encoded (the continue-as-new payload),
    if the caller has it: then the state is measured only when it must be trimmed.

    The validators keep the state inside its budget, but the storm guard's attempt
    logs grow with reports, not requests (up to twice ``max_attempts_per_hour``
    times a service; a forged report can fill them). This is the last guard, so
    that a continue-as-new is never refused for its size: rejections, then the
    oldest history, then each attempt log beyond its budget (the "held back until"
    answer stays exact), then the attempt logs altogether.
    """
    given_up: list[str] = []
    if (carried_bytes(state) if encoded is None else encoded) <= HAND_OVER_LIMIT:
        return given_up
    state.rejected_signals.clear()
    given_up.append("the rejected signals")
    while state.recent_history and carried_bytes(state) > HAND_OVER_LIMIT:
        del state.recent_history[: max(1, len(state.recent_history) // 4)]
        given_up[1:] = ["the oldest recent history"]
    if carried_bytes(state) <= HAND_OVER_LIMIT:
        return given_up
    for log in state.attempt_logs.values():
        del log.started[: -log.budget]
    given_up.append("attempt times past each hourly budget")
    if carried_bytes(state) > HAND_OVER_LIMIT:
        state.attempt_logs.clear()
        given_up.append("every attempt log (the storm guard starts counting again)")
    return given_up
