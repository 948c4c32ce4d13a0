"""One exit-code rule for every ``recoveryctl`` command, each failure one line on stderr.

0 success; 2 bad input or an unknown service; 1 a refused or failed operation; 3 the
Temporal server cannot be reached; 130 interrupted. Never a traceback: an error no rule
names is a bug, and is left to raise.
"""

from __future__ import annotations

import sys

from pydantic import ValidationError
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from activities.redaction import redact
from workflows.errors import RecoveryOrchestratorError
from workflows.models import describe_validation_error

PROG = "recoveryctl"
OK = 0
FAILED = 1
BAD_INPUT = 2
UNREACHABLE = 3
INTERRUPTED = 130


class CliError(Exception):
    """A refused operation: printed as one line, exit code 1."""


class UnknownService(CliError):
    """A service with no recovery to act on: printed as one line, exit code 2."""


class Unreachable(Exception):
    """The Temporal server cannot be reached: printed as one line, exit code 3."""


def exit_code(err: Exception) -> int | None:
    """Return the exit code for what a command raised; None when no rule names it."""
    if isinstance(err, (ValueError, UnknownService)):  # RecoveryValidationError among them
        return BAD_INPUT
    if isinstance(err, Unreachable):
        return UNREACHABLE
    if isinstance(err, RPCError):
        return rpc_exit_code(err)
    if isinstance(err, (CliError, RecoveryOrchestratorError, TemporalError, RuntimeError)):
        return FAILED
    return None


def rpc_exit_code(err: RPCError) -> int:
    """Return 3 for a server out of reach, 2 for a namespace that does not exist, else 1."""
    if err.status is RPCStatusCode.UNAVAILABLE:
        return UNREACHABLE
    if err.status is RPCStatusCode.NOT_FOUND and err.message.lower().startswith("namespace"):
        return BAD_INPUT  # a mistyped --namespace / TEMPORAL_NAMESPACE is bad input
    return FAILED


def fail(code: int, err: BaseException | str) -> int:
    """Print ``err`` as one redacted line on stderr and return ``code``."""
    if isinstance(err, ValidationError):
        err = describe_validation_error(err)
    # One line: a message of several lines (a services file's problems) joins with "; ".
    lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
    message = "; ".join(lines) or type(err).__name__
    print(f"{PROG}: error: {redact(message)}", file=sys.stderr)
    return code
