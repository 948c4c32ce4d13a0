"""``workflows.dependencies``: cycles by graphlib, waiting, and the cascade of an ending."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from workflows.dependencies import (
    cascade,
    check_no_cycle,
    check_policy_closes_no_cycle,
    cycle_through,
    dependency_cycles,
    find_cycle,
    told_from,
    waiting_for,
    waiting_on,
    waiting_reason,
)
from workflows.errors import RecoveryValidationError
from workflows.models import RecoveryPolicy, RecoveryResult, RecoveryState, RecoveryTask

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def task(name: str, *needs: str) -> RecoveryTask:
    return RecoveryTask(
        priority=1, service_name=name, policy=RecoveryPolicy(depends_on=list(needs)), scheduled_at=NOW
    )


def test_graphlib_names_the_cycle_in_depends_on_order() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    cycle = find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]})
    assert cycle is not None
    assert told_from(cycle, {"a": 0, "b": 1, "c": 2}.__getitem__) == ["a", "b", "c", "a"]


def test_a_chain_of_thousands_is_sorted_without_recursion() -> None:
    chain = {f"s{i}": [f"s{i + 1}"] for i in range(5000)}
    assert find_cycle(chain) is None
    chain["s5000"] = ["s0"]
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 5002


def test_every_cycle_of_a_services_file_is_told_from_its_first_service() -> None:
    graph = {"a": ["shared", "b"], "shared": [], "b": ["shared", "c"], "c": ["a"], "x": ["y"], "y": ["x"]}
    assert list(dependency_cycles(graph)) == [["a", "b", "c", "a"], ["x", "y", "x"]]
    assert list(dependency_cycles({"a": ["b"], "b": ["a", "c"], "c": ["b"]})) == [
        ["a", "b", "a"],
        ["b", "c", "b"],
    ]


def test_a_cycle_through_one_service_is_found_past_cycles_elsewhere() -> None:
    graph = {"db": ["api"], "api": ["db", "cache"], "x": ["y"], "y": ["x"]}
    assert cycle_through(graph, "db") == ["db", "api", "db"]
    assert cycle_through(graph, "cache") is None
    check_policy_closes_no_cycle({"cache": ["x"], "x": ["y"], "y": ["x"]}, "cache")
    with pytest.raises(RecoveryValidationError, match="depends_on cycle: db -> api -> db") as err:
        check_policy_closes_no_cycle(graph, "db")
    assert err.value.code == "dependency_cycle" and err.value.names == {"service": "db"}


def test_a_cycle_is_told_from_the_first_service_asked_about() -> None:
    graph = {"x": ["y"], "y": ["z"], "z": ["x"]}
    with pytest.raises(RecoveryValidationError, match="depends_on cycle: z -> x -> y -> z"):
        check_no_cycle(graph, ["z", "x"])
    with pytest.raises(RecoveryValidationError, match="^y: depends_on names the service itself$"):
        check_no_cycle({"y": ["y"]}, ["y"])
    check_no_cycle({"a": ["b"], "b": []}, ["a"])


def test_waiting_names_each_unfinished_dependency_with_its_state() -> None:
    api = task("api", "db", "cache", "queue")
    assert waiting_for(api, {"db", "queue", "other"}) == ["db", "queue"]
    assert waiting_reason(["db"], lambda name: "in_progress") == (
        "waiting for 'db' (in_progress) to recover first (depends_on)"
    )


def test_what_waits_on_a_failure_ends_with_it_directly_or_not() -> None:
    queue = [task("api", "db"), task("web", "api"), task("other")]
    failed = RecoveryResult(
        service_name="db", success=False, attempt_number=3, total_attempts=3,
        elapsed_time_ms=1.0, state=RecoveryState.FAILED, timestamp=NOW + timedelta(seconds=2),
    )
    taken: set[str] = set()
    ended = cascade(failed, waiting_on(queue), taken)
    assert taken == {"api", "web"}
    assert [(r.service_name, r.error_message, r.elapsed_time_ms) for r in ended] == [
        ("api", "not attempted: dependency 'db' failed", 2000.0),
        ("web", "not attempted: dependency 'api' failed", 2000.0),
    ]
    assert all(r.state is RecoveryState.FAILED and r.attempt_number == 0 for r in ended)
