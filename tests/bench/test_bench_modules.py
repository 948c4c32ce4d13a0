"""``make bench`` is never a timed test, but its code must at least load.

mypy parses with ``ast``, which accepts what only the compiler refuses (a walrus in a
comprehension's iterable, for one): a broken bench would otherwise show only when
someone runs ``make bench``.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(
    f"bench.{info.name}" for info in pkgutil.iter_modules(bench.__path__) if info.name != "__main__"
)


@pytest.mark.parametrize("name", [*MODULES, "bench.__main__"])
def test_every_bench_module_compiles_and_imports(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} says what it measures"
