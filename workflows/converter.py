"""The data converters: pydantic JSON, with bad input turned into a clear failure.

Decoding a workflow, update or activity input that breaks a model's rules raises
a non-retryable ``ApplicationError`` of type ``RecoveryValidationError`` naming
the field. Temporal then fails the workflow (or rejects the update) with that
message instead of retrying a workflow task that can never succeed.

Both send our own errors' failures without a Python stack trace (``OutcomeFailureConverter``).

Workers use ``worker_data_converter``: the same, except that what does not fit a
handler's argument (a payload that does not decode into its ``DoorInput`` model, or a
number of payloads no handler takes) arrives as an ``UndecodedInput``. The SDK drops a
signal whose payload fails to decode, with nothing but a worker log line, and fails
the workflow task of an input it cannot pass to ``__init__``; handed the marker, the
guard (``workflows.guard``) refuses it where operators look.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import temporalio.api.common.v1
import temporalio.api.failure.v1
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.converter import (
    BinaryNullPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadConverter,
)

from workflows.errors import (
    OUTCOME_ERROR_TYPES,
    RecoveryValidationError,
    clipped,
    to_application_error,
)
from workflows.models import DoorInput, decoding_carried_state, validation_refusal
from workflows.payloads import UndecodedInput, check_unique_keys, hint_members

# How much of a decoding error a message quotes: the SDK's text repeats what it could not
# read (an encoding name of any length), and a refusal must not echo a megabyte back.
MAX_DECODE_ERROR = 300


class _ValidatingJSONConverter(PydanticJSONPlainPayloadConverter):
    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        try:
            doors = _door_models(type_hint)
            if doors or type_hint is None:
                # JSON parsers keep the last of a key given twice: a door refuses it instead,
                # so that {"strategy": "manual", "strategy": "immediate"} is an error, not
                # IMMEDIATE. Results of our own workflows and activities are not doors.
                check_unique_keys(payload.data, "input")
            carried = any(model.carries_state for model in doors)
            with decoding_carried_state() if carried else nullcontext():
                return super().from_payload(payload, type_hint)
        except ValidationError as err:
            # Our own validators' codes (a reserved name, say) win over ``bad_field``.
            raise to_application_error(validation_refusal(err)) from None
        except RecoveryValidationError as err:
            raise to_application_error(err) from None


class _ModelRequiringNullConverter(BinaryNullPayloadConverter):
    """A null where one of our models is expected is bad input, not an empty object."""

    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        if isinstance(type_hint, type) and issubclass(type_hint, BaseModel):
            raise to_application_error(
                RecoveryValidationError(f"input: {type_hint.__name__} is required, got null")
            )
        return super().from_payload(payload, type_hint)


# One of each for the whole process, as the SDK's own defaults are: a worker builds a
# payload converter for every workflow run it caches, and each JSON converter would
# carry its own serializer and type-adapter cache (about 5 KB a run, rebuilt per run).
_REPLACEMENTS: dict[type, EncodingPayloadConverter] = {
    JSONPlainPayloadConverter: _ValidatingJSONConverter(),
    BinaryNullPayloadConverter: _ModelRequiringNullConverter(),
}


class RecoveryPayloadConverter(CompositePayloadConverter):
    """Temporal's default converters with pydantic JSON in place of plain JSON.

    Whatever a payload holds (an unknown encoding, protobuf without its type, bytes
    that are no JSON), decoding it fails with a ``RecoveryValidationError``: a
    workflow's input then fails the workflow instead of its task on every retry.
    """

    def __init__(self) -> None:
        super().__init__(
            *(
                _REPLACEMENTS.get(type(c), c)
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


    def from_payloads(
        self,
        payloads: Sequence[temporalio.api.common.v1.Payload],
        type_hints: list[type] | None = None,
    ) -> list[Any]:
        try:
            return super().from_payloads(payloads, type_hints)
        except FailureError:
            raise
        except Exception as err:
            raise to_application_error(
                RecoveryValidationError(
                    f"input could not be decoded: {clipped(str(err), MAX_DECODE_ERROR)}"
                )
            ) from None


class WorkerPayloadConverter(RecoveryPayloadConverter):
    """In workers: what does not fit a handler's argument becomes an ``UndecodedInput``.

    A payload expected as a ``DoorInput`` model (or of no expected type) that does not
    decode is marked with the reason; payloads whose number fits no handler (the SDK
    then passes no types) become one marker for them all, so that ``__init__`` and the
    handlers are always called with what their signature takes. Results (of
    activities, of children) are not doors: their decoding still raises.
    """

    def from_payloads(
        self,
        payloads: Sequence[temporalio.api.common.v1.Payload],
        type_hints: list[type] | None = None,
    ) -> list[Any]:
        if type_hints is None and len(payloads) > 1:
            return [
                UndecodedInput(
                    f"got {len(payloads)} inputs, expected one JSON object", count=len(payloads)
                )
            ]
        hints: Sequence[type | None] = type_hints or [None] * len(payloads)
        return [self._decoded_or_marked(p, hint) for p, hint in zip(payloads, hints)]

    def _decoded_or_marked(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None
    ) -> Any:
        as_typed = None if type_hint is None else [type_hint]
        try:
            return super().from_payloads([payload], as_typed)[0]
        except ApplicationError as err:
            if type_hint is not None and not _door_models(type_hint):
                raise  # a result, not a door: its decoding fails as it always did
            detail = err.details[0] if err.details and isinstance(err.details[0], dict) else {}
            names = {key: value for key, value in detail.items() if key != "code"}
            return UndecodedInput(
                clipped(err.message, 2 * MAX_DECODE_ERROR),
                code=str(detail.get("code", RecoveryValidationError.default_code)),
                names=names,
                got=self._not_an_object(payload),
            )

    def _not_an_object(self, payload: temporalio.api.common.v1.Payload) -> str | None:
        """Name what the payload holds when it is JSON but not an object (``str``, ``null``)."""
        try:
            value = super().from_payloads([payload])[0]
        except ApplicationError:
            return None
        if isinstance(value, dict):
            return None
        return "null" if value is None else type(value).__name__


def _door_models(type_hint: object) -> list[type[DoorInput]]:
    """Return the ``DoorInput`` models a type hint names (``X``, ``X | None``)."""
    return [m for m in hint_members(type_hint) if isinstance(m, type) and issubclass(m, DoorInput)]


class OutcomeFailureConverter(DefaultFailureConverter):
    """Temporal's failure converter, without a Python stack trace on our own errors.

    A failed recovery (``RecoveryFailed``) or a refused input (``RecoveryValidationError``,
    ``RecoveryConstitutionalError``, ``RecoveryOrchestratorError``) is an outcome, told by
    its message and details: the Web UI shows it without the SDK's internals under it
    (SPEC §4). Any other failure keeps its stack trace, where one helps find a bug.
    """

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: temporalio.api.failure.v1.Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        current: temporalio.api.failure.v1.Failure | None = failure
        while current is not None:
            if (
                current.HasField("application_failure_info")
                and current.application_failure_info.type in OUTCOME_ERROR_TYPES
            ):
                current.stack_trace = ""
            current = current.cause if current.HasField("cause") else None


data_converter = DataConverter(
    payload_converter_class=RecoveryPayloadConverter,
    failure_converter_class=OutcomeFailureConverter,
)
worker_data_converter = DataConverter(
    payload_converter_class=WorkerPayloadConverter,
    failure_converter_class=OutcomeFailureConverter,
)
