"""Cycles in ``depends_on``: one walk, shared by the services file and the coordinator.

A cycle would make recoveries wait on each other forever, so both doors refuse
one. The walk is iterative: a chain of thousands of services must not overflow
Python's stack (inside the coordinator that would fail a workflow task).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence


def dependency_cycles(graph: Mapping[str, Sequence[str]]) -> Iterator[list[str]]:
    """Yield the cycles a depth-first walk meets, each a path back to where it starts.

    Args:
        graph: Each service's dependencies; a dependency that is not a key has none.
    """
    on_path: set[str] = set()
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        path = [root]
        on_path.add(root)
        pending = [iter(graph[root])]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                pending.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
            elif following in on_path:
                yield [*path[path.index(following) :], following]
            elif following not in done:
                path.append(following)
                on_path.add(following)
                pending.append(iter(graph.get(following, ())))
