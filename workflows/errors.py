"""The original implementation's errors, and how they cross Temporal.

Inside Temporal an error travels as a non-retryable ``ApplicationError`` whose
``type`` is the class name; ``from_temporal`` turns it back into the class.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError


class RecoveryOrchestratorError(Exception):
    """Base class of every recovery orchestrator error.

    ``code`` says what kind of refusal it is and ``names`` what it concerns (``field``,
    ``service``, ``state``): they travel as the ``ApplicationError``'s first detail, so
    clients branch on the code, never on the message (SPEC §3).
    """

    default_code = "refused"

    def __init__(self, message: str = "", *, code: str | None = None, **names: object) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.names = {key: value for key, value in names.items() if value is not None}


class RecoveryConstitutionalError(RecoveryOrchestratorError):
    """The constitutional hash did not match."""

    default_code = "constitutional_hash"


class RecoveryValidationError(RecoveryOrchestratorError, ValueError):
    """Bad input: a policy constraint, a service name, an unknown service."""

    default_code = "bad_field"


# The type of the non-retryable ApplicationError a failed recovery ends its workflow with;
# its details carry the RecoveryResult (SPEC §4). Not one of our classes: a recovery that
# failed is an outcome, not an error of the caller's.
RECOVERY_FAILED = "RecoveryFailed"

_BY_NAME: dict[str, type[RecoveryOrchestratorError]] = {
    cls.__name__: cls
    for cls in (RecoveryOrchestratorError, RecoveryConstitutionalError, RecoveryValidationError)
}

# The ApplicationError types that tell an outcome, not a bug: their failures travel
# without a Python stack trace (``workflows.converter.OutcomeFailureConverter``).
OUTCOME_ERROR_TYPES = frozenset({RECOVERY_FAILED, *_BY_NAME})


def clipped(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` characters, the cut marked with an ellipsis.

    For what quotes input back (an error, a log line, a rejection kept in state): a
    hostile megabyte must not be repeated into every message that mentions it.
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_application_error(err: RecoveryOrchestratorError) -> ApplicationError:
    """Return the non-retryable ``ApplicationError`` that carries ``err`` through Temporal.

    Its first detail is ``{"code": …, <names>}``: what clients branch on.
    """
    return ApplicationError(
        str(err), {"code": err.code, **err.names}, type=type(err).__name__, non_retryable=True
    )


def from_temporal(err: BaseException) -> RecoveryOrchestratorError | None:
    """Find one of our errors in a Temporal exception's cause chain, or return None.

    The error comes back as its class, with the message and, where the refusal carried
    one, its ``code`` and names.
    """
    current: BaseException | None = err
    while current is not None:
        if isinstance(current, ApplicationError) and current.type in _BY_NAME:
            detail = current.details[0] if current.details else None
            names = dict(detail) if isinstance(detail, dict) else {}
            code = names.pop("code", None)
            return _BY_NAME[current.type](
                current.message, code=code if isinstance(code, str) else None, **names
            )
        current = current.__cause__ or getattr(current, "cause", None)
    return None
