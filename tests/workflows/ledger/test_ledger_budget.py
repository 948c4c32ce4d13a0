"""``workflows.ledger.budget``: what a hand-over carries, and what does not fit."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from workflows.carried_state import AttemptLog, CoordinatorConfig, CoordinatorState
from workflows.coordinator_models import ScheduleRecoveryInput
from workflows.errors import RecoveryValidationError
from workflows.ledger import budget, queue
from workflows.models import RecoveryPolicy, RecoveryResult, RecoveryState

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def request(name: str, **fields: object) -> ScheduleRecoveryInput:
    return ScheduleRecoveryInput(service_name=name, **fields)


def test_sizes_are_bytes_on_the_wire_not_characters() -> None:
    reason = RecoveryResult(
        service_name="s", success=False, attempt_number=0, total_attempts=1,
        elapsed_time_ms=0.0, state=RecoveryState.FAILED, error_message="é", timestamp=NOW,
    )
    assert budget.json_bytes(reason) == len(reason.model_dump_json()) + 1


def test_a_batch_counts_its_shared_policy_once() -> None:
    book = CoordinatorState()
    own = RecoveryPolicy(max_retry_attempts=3)
    estimate = budget.GrowthEstimate(book)
    plain = estimate.of(request("a"))
    assert plain == budget.TASK_BYTES + 1
    first = estimate.total([request("b", policy=own)])
    assert first == budget.TASK_BYTES + 1 + budget.json_bytes(own)
    assert estimate.of(request("c", policy=own)) == plain  # the batch carries it already
    assert estimate.new_policy(request("d", policy=own), RecoveryPolicy()) == 0


def test_queue_limit_refuses_what_does_not_fit_and_counts_only_new_services() -> None:
    book = CoordinatorState(config=CoordinatorConfig(queue_limit=2))
    queue.schedule(book, request("a"), NOW)
    assert budget.check_room(book, [request("a"), request("b")]) > 0
    with pytest.raises(RecoveryValidationError, match="queue_limit is 2: 2 more do not fit") as err:
        budget.check_room(book, [request("b"), request("c")])
    assert err.value.code == "queue_full"


def test_a_request_that_adds_nothing_fits_under_a_lowered_queue_limit() -> None:
    book = CoordinatorState()
    for name in ("a", "b", "c"):
        queue.schedule(book, request(name), NOW)
    book.config.queue_limit = 1  # lowered below what is held
    budget.check_room(book, [request("a", priority=0)])  # re-prioritised: nothing added
    with pytest.raises(RecoveryValidationError, match="queue_limit is 1: 1 more does not fit"):
        budget.check_room(book, [request("d")])


def test_the_size_budget_refuses_with_the_sizes() -> None:
    book = CoordinatorState()
    with pytest.raises(RecoveryValidationError, match="past its 1,400,000-byte budget") as err:
        budget.check_size(book, 10, carried=budget.CARRIED_STATE_BUDGET)
    assert err.value.code == "state_too_large"
    budget.check_size(book, 10)


def test_a_hand_over_too_large_gives_up_history_then_attempt_logs() -> None:
    book = CoordinatorState(config=CoordinatorConfig(recent_history_size=200))
    assert budget.fit_for_hand_over(book) == []
    book.rejected_signals = ["x"]
    message = "e" * 12_000
    book.recent_history = [
        RecoveryResult(
            service_name=f"s{n}", success=False, attempt_number=1, total_attempts=1,
            elapsed_time_ms=1.0, state=RecoveryState.FAILED, error_message=message, timestamp=NOW,
        )
        for n in range(200)
    ]
    book.attempt_logs = {"s": AttemptLog(budget=1, started=[NOW])}
    # A size the caller has already encoded decides whether to trim at all.
    assert budget.fit_for_hand_over(book, encoded=budget.HAND_OVER_LIMIT) == []
    assert book.rejected_signals == ["x"] and len(book.recent_history) == 200
    assert budget.fit_for_hand_over(book) == ["the rejected signals", "the oldest recent history"]
    assert budget.carried_bytes(book) <= budget.HAND_OVER_LIMIT < 200 * len(message)
    assert book.rejected_signals == [] and book.attempt_logs and book.recent_history
