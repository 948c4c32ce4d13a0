"""One JSON object per message: decoding what any client may send to a handler.

Temporal lets a client send any number of payloads, of any shape, to a signal, an
update or a workflow. A handler whose Python signature does not fit (no payload,
two payloads) raises ``TypeError`` inside the workflow task, which then fails on
every replay: the workflow is frozen. So every entry point of our workflows takes
``*args`` and decodes here, where a bad input becomes a ``RecoveryValidationError``
that names the message, the field and what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow

from workflows.errors import RecoveryValidationError, to_application_error
from workflows.models import validation_refusal

M = TypeVar("M", bound=BaseModel)

# Runs before this patch never saw an undecodable signal: the SDK dropped it.
RECORD_UNDECODABLE_SIGNALS = "record-undecodable-signals"


@dataclass(frozen=True)
class UndecodedInput:
    """A payload the worker's converter could not decode, and why (``reason``)."""

    reason: str


def dropped_as_before(args: Sequence[Any]) -> bool:
    """Whether a signal handler must drop ``args`` unseen, as runs before 0.7 did.

    The SDK dropped a signal whose payload did not decode, so a recorded history
    never shows it handled; a replay of such a run must drop it again. Newer runs
    record it as rejected. Call only from a signal handler: it may record a patch.
    """
    undecodable = any(isinstance(arg, UndecodedInput) for arg in args)
    return undecodable and not workflow.patched(RECORD_UNDECODABLE_SIGNALS)


def one_input(model: type[M], args: Sequence[Any], what: str, *, optional: bool = False) -> M:
    """Return the one JSON object in ``args`` as ``model``.

    Args:
        model: The input type.
        args: The decoded payloads exactly as the client sent them.
        what: The handler's name, for the error message.
        optional: Whether no payload at all (or a null) means ``model()``.

    Raises:
        RecoveryValidationError: not exactly one payload, not an object, or a bad field.
    """
    if optional and (not args or (len(args) == 1 and args[0] is None)):
        return model()
    undecodable = next((arg for arg in args if isinstance(arg, UndecodedInput)), None)
    if undecodable is not None:
        raise RecoveryValidationError(f"{what}: {undecodable.reason}")
    if len(args) != 1:
        raise RecoveryValidationError(
            f"{what} takes one JSON object ({model.__name__}), got {len(args)} inputs"
        )
    value = args[0]
    if isinstance(value, model):
        return value
    if not isinstance(value, dict):
        shown = "null" if value is None else type(value).__name__
        raise RecoveryValidationError(
            f"{what} takes one JSON object ({model.__name__}), got {shown}"
        )
    try:
        return model.model_validate(value)
    except ValidationError as err:
        raise validation_refusal(err, what) from None
    except RecoveryValidationError as err:
        raise RecoveryValidationError(f"{what}: {err}", code=err.code, **err.names) from None


def decoded(model: type[M], args: Sequence[Any], what: str, *, optional: bool = False) -> M:
    """Decode a handler's payloads (``one_input``), or raise the ``ApplicationError`` refusing them.

    What every update handler and validator calls: a refusal, never a failed task.
    """
    try:
        return one_input(model, args, what, optional=optional)
    except RecoveryValidationError as err:
        raise to_application_error(err) from None


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
