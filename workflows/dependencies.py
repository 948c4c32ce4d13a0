"""``depends_on``: cycles, waiting, and what ends with a dependency that did not recover.

A cycle would make recoveries wait on each other forever, so both the services file
and the coordinator refuse one. ``graphlib.TopologicalSorter`` finds it, and its
``CycleError`` names it (no recursion: a chain of thousands of services must not
overflow Python's stack, which inside the coordinator would fail a workflow task).
Pure functions over graphs and tasks: ``{service: its dependencies}``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter

from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import RecoveryResult, RecoveryState, RecoveryTask

Graph = Mapping[str, Sequence[str]]


def find_cycle(graph: Graph) -> list[str] | None:
    """Return a cycle as ``[a, b, …, a]``, each depending on the next; None if there is none.

    Only services with dependencies can be on one: the others are left out of the sort.
    """
    try:
        TopologicalSorter({name: deps for name, deps in graph.items() if deps}).prepare()
    except CycleError as err:
        # graphlib lists each node before the one that depends on it: turn it round.
        found: list[str] = err.args[1]
        return found[::-1]
    return None


def told_from(cycle: Sequence[str], rank: Callable[[str], int]) -> list[str]:
    """Return a closed cycle ``[a, …, a]`` turned to start at its member of lowest ``rank``."""
    ring = list(cycle[:-1])
    start = min(range(len(ring)), key=lambda index: rank(ring[index]))
    ring = ring[start:] + ring[:start]
    return [*ring, ring[0]]


def dependency_cycles(graph: Graph) -> Iterator[list[str]]:
    """Yield cycles until none is left, each told from its service listed first in ``graph``.

    After each, the dependency that closes it is set aside, so the next sort finds
    another (one sort per cycle: a services file rarely has more than one).
    """
    order = {name: index for index, name in enumerate(graph)}
    remaining = {name: list(deps) for name, deps in graph.items()}
    while (cycle := find_cycle(remaining)) is not None:
        told = told_from(cycle, lambda name: order.get(name, len(order)))
        yield told
        last, first = told[-2], told[0]
        remaining[last] = [name for name in remaining[last] if name != first]


def cycle_through(graph: Graph, service: str) -> list[str] | None:
    """Return the shortest cycle through ``service`` as ``[service, …, service]``, or None.

    For a graph that may hold cycles of its own elsewhere (policies set one by one
    under queued ones): a search from the service's dependencies back to it.
    """
    came_from: dict[str, str] = {}
    frontier = deque([service])
    while frontier:
        node = frontier.popleft()
        for dependency in graph.get(node, ()):
            if dependency == service:
                path = [node]
                while path[-1] != service:
                    path.append(came_from[path[-1]])
                return [*reversed(path), service]
            if dependency not in came_from:
                came_from[dependency] = node
                frontier.append(dependency)
    return None


def depends_on_itself(service_name: str) -> RecoveryValidationError:
    """Return the refusal of a policy whose ``depends_on`` names its own service."""
    return RecoveryValidationError(
        f"{service_name}: depends_on names the service itself",
        code="dependency_cycle",
        service=service_name,
    )


def cycle_refusal(cycle: Sequence[str], asked: Sequence[str]) -> RecoveryValidationError:
    """Return the refusal of a ``depends_on`` cycle, told from the first service asked about."""
    rank = {name: index for index, name in reversed(list(enumerate(asked)))}
    told = told_from(cycle, lambda name: rank.get(name, len(rank)))
    return RecoveryValidationError(
        f"depends_on cycle: {' -> '.join(told)}",
        code="dependency_cycle",
        service=told[0],
    )


def check_no_cycle(graph: Graph, asked: Sequence[str]) -> None:
    """Refuse ``graph`` if a request names itself, or it holds a cycle.

    Args:
        graph: The queued and running recoveries' dependencies, with each request's
            own in place of theirs.
        asked: The services requested, in order: a cycle is told from the first.

    Raises:
        RecoveryValidationError: naming the service, or the cycle's path.
    """
    for name in asked:
        if name in graph.get(name, ()):
            raise depends_on_itself(name)
    # What was queued before had no cycle: any cycle now runs through a request.
    cycle = find_cycle(graph)
    if cycle is not None:
        raise cycle_refusal(cycle, asked)


def check_policy_closes_no_cycle(graph: Graph, service_name: str) -> None:
    """Refuse a service's policy that names the service or closes a cycle through it.

    Raises:
        RecoveryValidationError: naming the service, or the cycle's path.
    """
    if service_name in graph.get(service_name, ()):
        raise depends_on_itself(service_name)
    cycle = cycle_through(graph, service_name)
    if cycle is not None:
        raise cycle_refusal(cycle, [service_name])


def waiting_for(task: RecoveryTask, unfinished: set[str]) -> list[str]:
    """Return the task's dependencies still queued or recovering (``unfinished``)."""
    return [name for name in task.policy.depends_on if name in unfinished]


def waiting_reason(waiting: Iterable[str], state_of: Callable[[str], str]) -> str:
    """Say what a task waits for: each dependency with its state."""
    described = ", ".join(f"'{name}' ({state_of(name)})" for name in waiting)
    return f"waiting for {described} to recover first (depends_on)"


def dependency_pending(task: RecoveryTask, waiting: list[str], reason: str) -> RecoveryOrchestratorError:
    """Return the refusal to start ``task`` ahead of dependencies that have not recovered."""
    return RecoveryOrchestratorError(
        f"'{task.service_name}' is not started ahead of its dependencies: it is "
        f"{reason}; execute, approve or cancel "
        f"{', '.join(repr(name) for name in waiting)} first",
        code="dependency_pending",
        service=task.service_name,
    )


def waiting_on(queue: Iterable[RecoveryTask]) -> dict[str, list[RecoveryTask]]:
    """Return, for each service, the queued tasks that depend on it directly."""
    waiting: dict[str, list[RecoveryTask]] = {}
    for task in queue:
        for name in task.policy.depends_on:
            waiting.setdefault(name, []).append(task)
    return waiting


def cascade(
    dependency: RecoveryResult, waiting: Mapping[str, list[RecoveryTask]], taken: set[str]
) -> list[RecoveryResult]:
    """End what waits, directly or not, on a recovery that did not succeed.

    Each ends as its dependency did (failed, or cancelled), saying why; ``taken``
    gains their names. A walk with no recursion, for chains of thousands.
    """
    ended: list[RecoveryResult] = []
    frontier = [dependency]
    while frontier:
        cause = frontier.pop()
        verb = "failed" if cause.state is RecoveryState.FAILED else "was cancelled"
        for task in waiting.get(cause.service_name, []):
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
