"""An active recovery's lifecycle: the enum, its transitions, and states carried before it."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.helpers.histories import HISTORIES
from workflows.carried_state import CoordinatorState
from workflows.coordinator_models import CoordinatorInput, ScheduleRecoveryInput
from workflows.ledger import cancels, queue, reports
from workflows.ledger.lifecycle import (
    TRANSITIONS,
    ActiveRecovery,
    Lifecycle,
    LifecycleError,
    legacy_lifecycle,
)
from workflows.models import (
    RecoveryPhase,
    RecoveryReport,
    RecoveryResult,
    RecoveryState,
    RecoveryStatus,
    RecoveryStrategy,
    RecoveryTask,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def task(name: str = "svc", strategy: RecoveryStrategy = RecoveryStrategy.IMMEDIATE) -> RecoveryTask:
    return RecoveryTask(priority=1, service_name=name, strategy=strategy, scheduled_at=NOW)


def report(name: str, sequence: int, state: RecoveryState, *, final: bool = False) -> RecoveryReport:
    status = RecoveryStatus(
        service_name=name, state=state, strategy=RecoveryStrategy.IMMEDIATE, priority=1,
        attempt_count=1, max_attempts=5, scheduled_at=NOW,
        phase=RecoveryPhase.FINISHED if final else RecoveryPhase.BACKOFF,
    )
    result = RecoveryResult(
        service_name=name, success=state is RecoveryState.SUCCEEDED, attempt_number=1,
        total_attempts=5, elapsed_time_ms=1.0, state=state, timestamp=NOW,
    )
    return RecoveryReport(
        service_name=name, run_id=f"run-{name}", sequence=sequence, status=status,
        result=result if final else None,
    )


def test_the_transitions_are_the_drawing() -> None:
    assert TRANSITIONS[Lifecycle.STARTING] == {
        Lifecycle.RUNNING, Lifecycle.AWAITING_OPERATORS, Lifecycle.CANCELLING,
    }
    assert TRANSITIONS[Lifecycle.RUNNING] == {
        Lifecycle.AWAITING_OPERATORS, Lifecycle.CANCELLING, Lifecycle.CLOSING,
    }
    assert TRANSITIONS[Lifecycle.AWAITING_OPERATORS] == {Lifecycle.CANCELLING, Lifecycle.CLOSING}
    assert TRANSITIONS[Lifecycle.CANCELLING] == {Lifecycle.CLOSING}
    assert TRANSITIONS[Lifecycle.CLOSING] == set()
    assert set(TRANSITIONS) == set(Lifecycle)
    assert {state for state in Lifecycle if state.live} == {
        Lifecycle.STARTING, Lifecycle.RUNNING, Lifecycle.AWAITING_OPERATORS,
    }


@pytest.mark.parametrize("start", list(Lifecycle))
def test_every_move_outside_the_table_is_refused(start: Lifecycle) -> None:
    for to in Lifecycle:
        active = ActiveRecovery(task=task(), lifecycle=start)
        if to is start or to in TRANSITIONS[start]:
            active.advance(to)
            assert active.lifecycle is to
        else:
            with pytest.raises(LifecycleError, match=f"{start.value} cannot become {to.value}"):
                active.advance(to)
            assert active.lifecycle is start


def test_a_start_runs_it_or_hands_a_manual_one_to_operators() -> None:
    automatic = ActiveRecovery(task=task())
    manual = ActiveRecovery(task=task(strategy=RecoveryStrategy.MANUAL), holds_slot=False)
    assert automatic.lifecycle is manual.lifecycle is Lifecycle.STARTING
    assert manual.awaits_operators and not automatic.awaits_operators
    assert automatic.holds_slot and not manual.holds_slot
    automatic.started("r1")
    manual.started("r2")
    assert (automatic.lifecycle, automatic.run_id) == (Lifecycle.RUNNING, "r1")
    assert (manual.lifecycle, manual.run_id) == (Lifecycle.AWAITING_OPERATORS, "r2")


def test_escalation_gives_up_the_slot_for_good() -> None:
    active = ActiveRecovery(task=task(), lifecycle=Lifecycle.RUNNING, run_id="r")
    active.operators_take_over()
    assert active.lifecycle is Lifecycle.AWAITING_OPERATORS and not active.holds_slot
    closing = ActiveRecovery(task=task(), lifecycle=Lifecycle.CANCELLING, run_id="r")
    closing.operators_take_over()  # a late report: the slot goes, the lifecycle stays
    assert closing.lifecycle is Lifecycle.CANCELLING and not closing.holds_slot


def stage(active: ActiveRecovery) -> Lifecycle:
    """Its lifecycle now (a call, so that a checker does not keep an earlier answer)."""
    return active.lifecycle


def test_the_ledger_walks_a_recovery_through_its_lifecycle() -> None:
    state = CoordinatorState()
    queue.schedule(state, _request("svc"), NOW)
    (active,) = queue.take_startable(state, set())
    assert stage(active) is Lifecycle.STARTING and active.holds_slot
    reports.started(state, active, "run-svc")
    assert stage(active) is Lifecycle.RUNNING
    reports.apply_report(state, report("svc", 1, RecoveryState.AWAITING_MANUAL), watched=True)
    assert stage(active) is Lifecycle.AWAITING_OPERATORS and queue.slots_in_use(state) == 0
    reports.apply_report(state, report("svc", 2, RecoveryState.SUCCEEDED, final=True), watched=True)
    assert stage(active) is Lifecycle.CLOSING and queue.live(state, "svc") is None
    assert reports.forget_closing(state) == ["svc"] and state.active == {}


def _request(name: str) -> ScheduleRecoveryInput:
    return ScheduleRecoveryInput(service_name=name, strategy=RecoveryStrategy.IMMEDIATE)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"run_id": None, "finished": False}, Lifecycle.STARTING),
        ({"run_id": "r", "finished": False}, Lifecycle.RUNNING),
        ({"run_id": "r", "awaits_operators": True, "outside_slots": True}, Lifecycle.AWAITING_OPERATORS),
        ({"run_id": "r", "finished": True, "cancel_reason": "x"}, Lifecycle.CANCELLING),
        ({"run_id": None, "finished": True, "cancel_reason": "x"}, Lifecycle.CANCELLING),
        ({"run_id": "r", "finished": True, "cancel_reason": "x", "finish_reported": True}, Lifecycle.CLOSING),
        ({"run_id": "r", "finished": True, "finish_reported": True}, Lifecycle.CLOSING),
        # Carried before finish_reported existed: it had reported, and was closing.
        ({"run_id": "r", "finished": True}, Lifecycle.CLOSING),
    ],
)
def test_the_seven_flags_map_to_one_lifecycle(flags: dict[str, Any], expected: Lifecycle) -> None:
    legacy = {key: value for key, value in flags.items() if key not in ("run_id", "cancel_reason")}
    assert legacy_lifecycle(flags, legacy) is expected
    decoded = ActiveRecovery.model_validate({"task": task().model_dump(mode="json"), **flags})
    assert decoded.lifecycle is expected
    assert decoded.holds_slot is not flags.get("outside_slots", False)


def _carried_input(history: str, event: str) -> dict[str, Any]:
    """Return the first coordinator input of ``event`` in a recorded history (plain JSON)."""
    events = json.loads((HISTORIES / history).read_text())["events"]
    for entry in events:
        attributes = entry.get(event)
        if attributes and attributes.get("input"):
            data = json.loads(base64.b64decode(attributes["input"]["payloads"][0]["data"]))
            assert isinstance(data, dict)
            return data
    raise AssertionError(f"no {event} with an input in {history}")


def test_a_state_carried_with_the_seven_flags_decodes_into_lifecycles() -> None:
    # Written by the coordinator before the enum: every flag there, one cancelled run.
    old = _carried_input("coordinator_execute_after_cancel.json", "workflowExecutionStartedEventAttributes")
    (entry,) = old["state"]["active"].values()
    assert entry["finished"] is True and entry["finish_reported"] is False and entry["cancel_reason"]
    state = CoordinatorInput.model_validate(old).state
    assert state is not None
    (active,) = state.active.values()
    assert active.lifecycle is Lifecycle.CANCELLING and active.holds_slot
    assert active.run_id == entry["run_id"] and active.cancel_reason == entry["cancel_reason"]
    assert reports.unwatched(state, set()) == {entry["run_id"]: active.task.service_name}
    assert reports.forget_closing(state) == []  # it may still run: kept until it closes

    # Older still (no finish_reported, no awaits_operators), from a continue-as-new.
    older = _carried_input("coordinator_continued_as_new.json", "workflowExecutionContinuedAsNewEventAttributes")
    state = CoordinatorInput.model_validate(older).state
    assert state is not None
    shapes = {
        name: (bool(entry["finished"]), entry["run_id"] is not None)
        for name, entry in older["state"]["active"].items()
    }
    for name, active in state.active.items():
        finished, _ = shapes[name]
        assert active.lifecycle is (Lifecycle.CLOSING if finished else Lifecycle.RUNNING)
    assert queue.slots_in_use(state) == len(shapes)


def test_what_the_new_code_writes_decodes_again_compact_or_plain() -> None:
    state = CoordinatorState()
    for name in ("a", "b", "c"):
        queue.schedule(state, _request(name), NOW)
    a, b, c = queue.take_startable(state, set())
    reports.started(state, a, "run-a")
    reports.started(state, b, "run-b")
    b.operators_take_over()
    b.approval_for_attempt = 1
    cancels.cancel(state, "c", "maintenance", NOW)
    text = CoordinatorInput(state=state).model_dump_json()
    written = json.loads(text)["state"]
    assert "policy_table" in written
    assert {key for entry in written["active"].values() for key in entry} == {
        "task", "lifecycle", "holds_slot", "run_id", "last_report", "cancel_reason",
        "approval_for_attempt",
    }
    again = CoordinatorInput.model_validate_json(text).state
    assert again is not None
    assert {n: (x.lifecycle, x.holds_slot, x.run_id) for n, x in again.active.items()} == {
        "a": (Lifecycle.RUNNING, True, "run-a"),
        "b": (Lifecycle.AWAITING_OPERATORS, False, "run-b"),
        "c": (Lifecycle.CANCELLING, True, None),
    }
    assert again.active["b"].approval_for_attempt == 1
    assert again.active["c"].cancel_reason == "maintenance"
    plain = CoordinatorState.model_validate(state.model_dump(mode="python"))
    assert plain.active == state.active
