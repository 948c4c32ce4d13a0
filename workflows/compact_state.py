"""The coordinator's carried state in a compact form, so 10,000 services fit in 2 MB.

Temporal refuses a payload over 2 MB, and the whole state is the continue-as-new
input. As plain JSON a queue entry takes about 500 bytes, half of it the policy it
resolves to (usually the same default policy, repeated in every entry). Here every
distinct policy is written once, in a table, and each task as a short list:

    [service_name, priority, strategy, policy_index, scheduled_at, sequence,
     attempt_count, last_attempt_at, next_attempt_at, state, automatic]

with the trailing fields left out while they hold their queued defaults (0, null,
null, "scheduled", false): about 80 bytes for a queued entry. The constitutional hash is
not written (the state only ever holds the one hash).

``compact`` rewrites a state's JSON dict (what pydantic's serializer produced) and
``expand`` turns either form back into plain dicts for validation, so a state
carried by an older run, in the plain form, still decodes. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Marks a compact state; its absence means the plain form of earlier runs.
POLICY_TABLE = "policy_table"
_TRAILING_DEFAULTS: tuple[Any, ...] = (0, None, None, "scheduled", False)
_HEAD = ("service_name", "priority", "strategy", "policy", "scheduled_at", "sequence")
_TAIL = ("attempt_count", "last_attempt_at", "next_attempt_at", "state", "automatic")


class _PolicyTable:
    """Assigns each distinct policy (by value) its index in the table.

    Tasks mostly share one policy object (the default, or one table entry after a
    hand-over): it is keyed by value once, then found by the object itself.
    """

    def __init__(self) -> None:
        self.policies: list[dict[str, Any]] = []
        self._by_value: dict[str, int] = {}
        self._by_object: list[tuple[object, int]] = []

    def index_of(self, policy: object, dumped: Mapping[str, Any]) -> int:
        for seen, index in self._by_object[-4:]:
            if seen is policy:
                return index
        key = repr(sorted(dumped.items()))
        found = self._by_value.get(key)
        if found is None:
            found = self._by_value[key] = len(self.policies)
            self.policies.append(dict(dumped))
        self._by_object.append((policy, found))
        return found


def compact(data: dict[str, Any], policies: Sequence[object]) -> dict[str, Any]:
    """Return the state's JSON dict with its policies tabled and its tasks as lists.

    Args:
        data: The state as plain JSON (queue tasks, then active ones, in order).
        policies: The policy objects of those tasks, in the same order.
    """
    table = _PolicyTable()
    objects = iter(policies)
    out = dict(data)
    out["queue"] = [_task_row(task, table, next(objects)) for task in data.get("queue", [])]
    out["active"] = {
        name: {**active, "task": _task_row(active["task"], table, next(objects))}
        for name, active in data.get("active", {}).items()
    }
    out[POLICY_TABLE] = table.policies
    return out


def expand(data: Any) -> Any:
    """Return a compact state's dict in the plain form; any other input unchanged."""
    if not isinstance(data, dict) or POLICY_TABLE not in data or not _well_formed(data):
        return data  # validation refuses what is not a state, naming the field
    policies = data[POLICY_TABLE]
    out = {key: value for key, value in data.items() if key != POLICY_TABLE}
    out["queue"] = [_task_dict(row, policies) for row in data.get("queue", [])]
    out["active"] = {
        name: {**active, "task": _task_dict(active["task"], policies)}
        for name, active in data.get("active", {}).items()
    }
    return out


def _well_formed(data: dict[str, Any]) -> bool:
    """Return True if the compact parts have the shapes ``expand`` walks."""
    queue, active = data.get("queue", []), data.get("active", {})
    return (
        isinstance(data[POLICY_TABLE], list)
        and isinstance(queue, list)
        and isinstance(active, dict)
        and all(isinstance(entry, dict) and "task" in entry for entry in active.values())
    )


def _task_row(task: Mapping[str, Any], table: _PolicyTable, policy: object) -> list[Any]:
    head = [task[field] for field in _HEAD[:3]]
    head += [table.index_of(policy, task["policy"]), task["scheduled_at"], task.get("sequence", 0)]
    tail = [task.get(field, default) for field, default in zip(_TAIL, _TRAILING_DEFAULTS)]
    while tail and tail[-1] == _TRAILING_DEFAULTS[len(tail) - 1]:
        tail.pop()
    return head + tail


def _task_dict(row: Any, policies: Sequence[Any]) -> Any:
    """Return a task's fields from its row (a malformed row is left for validation to refuse)."""
    if not isinstance(row, list) or len(row) < len(_HEAD):
        return row
    task = dict(zip(_HEAD + _TAIL, row))
    index = task["policy"]
    if type(index) is int and 0 <= index < len(policies):
        task["policy"] = policies[index]
    return task
