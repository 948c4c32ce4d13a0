"""What a worker's converter hands the guard when a payload does not fit a handler.

Temporal lets a client send any number of payloads, of any shape, to a signal, an
update, a query or a workflow. Our handlers take one typed argument each; where what
arrived cannot be that argument, the worker's converter (``workflows.converter``)
passes an ``UndecodedInput`` instead of raising, and the guard (``workflows.guard``)
refuses it with the handler's name: never a failed workflow task, never a signal
dropped unseen.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.errors import RecoveryValidationError


@dataclass(frozen=True)
class UndecodedInput:
    """What arrived instead of a handler's argument, and why it is refused.

    ``count`` is set when the client sent a number of payloads no handler of ours takes
    (two, say): then this one marker stands for all of them. ``got`` names what a
    payload held instead of a JSON object (``str``, ``list``, ``null``), if that was it.
    """

    reason: str
    code: str = RecoveryValidationError.default_code
    names: Mapping[str, object] = field(default_factory=dict)
    count: int | None = None
    got: str | None = None


def hint_members(hint: object) -> tuple[object, ...]:
    """Return what a handler's type hint admits: ``X | None`` gives ``(X, NoneType)``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def check_unique_keys(text: str | bytes, what: str) -> None:
    """Refuse JSON in which an object names a key twice.

    JSON parsers keep the last of duplicated keys without a word, so
    ``{"strategy": "manual", "strategy": "immediate"}`` would silently mean
    IMMEDIATE; two programs reading the same text may even disagree on it. Text
    that is not JSON at all passes: the parser that reads it reports that.

    Args:
        text: The JSON text.
        what: What the text is, for the error message (``--policy``, a handler's name).

    Raises:
        RecoveryValidationError: naming the first duplicated key.
    """

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RecoveryValidationError(
                    f"{what}: duplicate key {key[:100]!r} (each field may be given once)"
                )
            seen.add(key)
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=unique)
    except (json.JSONDecodeError, RecursionError):
        return

