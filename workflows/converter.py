"""The data converter: pydantic JSON, with bad input turned into a clear failure.

Decoding a workflow, update or activity input that breaks a model's rules raises
a non-retryable ``ApplicationError`` of type ``RecoveryValidationError`` naming
the field. Temporal then fails the workflow (or rejects the update) with that
message instead of retrying a workflow task that can never succeed.
"""

from __future__ import annotations

from typing import Any

import temporalio.api.common.v1
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    BinaryNullPayloadConverter,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)

from workflows.errors import RecoveryValidationError, to_application_error
from workflows.models import describe_validation_error


class _ValidatingJSONConverter(PydanticJSONPlainPayloadConverter):
    def from_payload(
        self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None
    ) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as err:
            raise to_application_error(
                RecoveryValidationError(describe_validation_error(err))
            ) from None
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


class RecoveryPayloadConverter(CompositePayloadConverter):
    """Temporal's default converters with pydantic JSON in place of plain JSON."""

    def __init__(self) -> None:
        replacements: dict[type, EncodingPayloadConverter] = {
            JSONPlainPayloadConverter: _ValidatingJSONConverter(),
            BinaryNullPayloadConverter: _ModelRequiringNullConverter(),
        }
        super().__init__(
            *(
                replacements.get(type(c), c)
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


data_converter = DataConverter(payload_converter_class=RecoveryPayloadConverter)
