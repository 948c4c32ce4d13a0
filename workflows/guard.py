"""The one place where "a workflow task never fails" is enforced for what clients send.

Any client with access to the namespace may send a signal, an update, a query or a
workflow input with no payload, two, one that does not decode, or one whose handler
then raises. Each of our handlers takes one typed argument; this interceptor, which
every worker and every replayer installs (``worker.py``), makes sure that is all a
handler ever sees, and that whatever still goes wrong inside one is an answer:

- a **signal** that does not fit is recorded as refused by the workflow
  (``SignalRefusals.refuse_signal``: ``rejected_signals`` / ``ignored_signals``) and
  dropped; so is one whose handler raises;
- an **update** that does not fit is rejected by its validator (nothing is written to
  history) with ``RecoveryValidationError``, and one whose constitutional hash is wrong
  with ``RecoveryConstitutionalError`` (a signal is refused for it too): this is where
  every request's hash is checked, at the point its model names (SPEC §3); a validator or handler that raises
  anything but an ``ApplicationError`` answers with a ``RecoveryOrchestratorError``
  (code ``internal``) instead of failing the task;
- a **query** that does not fit fails that query, with the same error;
- a **workflow input** that does not fit fails the run with ``RecoveryValidationError``
  (``__init__`` has already been handed a marker by then, and must take it calmly).

"Fits" means exactly the handler's parameters, each of its type. What did not decode
arrives as an ``UndecodedInput`` from the worker's converter (``workflows.converter``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from workflows.constants import LOG_PREFIX
from workflows.errors import (
    RecoveryConstitutionalError,
    RecoveryOrchestratorError,
    RecoveryValidationError,
    clipped,
    to_application_error,
)
from workflows.models import DoorInput, check_constitutional_hashes
from workflows.payloads import UndecodedInput, hint_members

# How much of an unexpected exception's text a refusal quotes.
MAX_FAULT_TEXT = 300
# The code of a refusal that is our bug, not the caller's input.
INTERNAL = "internal"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


# The default of a workflow input the guard still requires. The SDK calls ``__init__``
# with what came before any interceptor sees it; with no payload at all it would fail
# the task on a parameter with no default. ``input: X = REQUIRED`` keeps the type X for
# callers, lets that call through, and the guard refuses it ("got 0 inputs").
REQUIRED: Any = _Required()


@runtime_checkable
class SignalRefusals(Protocol):
    """A workflow that keeps the signals it refused where operators look."""

    def refuse_signal(self, signal: str, reason: str) -> None:
        """Record that the signal named ``signal`` was refused, and why."""


@dataclass(frozen=True)
class _Parameter:
    cls: type
    nullable: bool


@dataclass(frozen=True)
class _Signature:
    parameters: tuple[_Parameter, ...]
    required: int

    def expected(self) -> str:
        names = [p.cls.__name__ for p in self.parameters]
        if not names:
            return "no input"
        shown = f"one JSON object ({names[0]})" if len(names) == 1 else ", ".join(names)
        return shown if self.required == len(names) else f"{shown} or nothing"


@functools.cache
def _handlers(cls: type) -> dict[tuple[str, str | None], Callable[..., Any]]:
    """Each handler's plain function, by kind and name, from the class's definition.

    ``workflow.get_update_handler`` and its siblings return a closure over the instance
    whose signature says nothing; the definition the SDK built keeps the functions.
    """
    definition = workflow._Definition.must_from_class(cls)
    found: dict[tuple[str, str | None], Callable[..., Any]] = {}
    for name, signal in definition.signals.items():
        found[("signal", name)] = signal.fn
    for name, update in definition.updates.items():
        found[("update", name)] = update.fn
    for name, query in definition.queries.items():
        found[("query", name)] = query.fn
    return found


def _handler(kind: str, name: str) -> Callable[..., Any] | None:
    cls: type = type(workflow.instance())
    return _handlers(cls).get((kind, name))


@functools.cache
def _signature(function: Callable[..., Any]) -> _Signature:
    hints = typing.get_type_hints(function)
    positional = [
        parameter
        for index, parameter in enumerate(inspect.signature(function).parameters.values())
        if not (index == 0 and parameter.name == "self")
        and parameter.kind
        in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    parameters = []
    for parameter in positional:
        hint = hints.get(parameter.name, object)
        members = hint_members(hint)
        classes = [m for m in members if isinstance(m, type) and m is not type(None)]
        parameters.append(
            _Parameter(
                cls=classes[0] if len(classes) == 1 else object,
                nullable=type(None) in members,
            )
        )
    required = sum(
        1 for p in positional if p.default is inspect.Parameter.empty or p.default is REQUIRED
    )
    return _Signature(tuple(parameters), required)


def misfit(args: Sequence[Any], handler: Callable[..., Any], what: str) -> RecoveryValidationError | None:
    """Return why ``args`` cannot be ``handler``'s arguments, or None when they can.

    ``REQUIRED`` (a default standing for no payload) counts as no argument.
    """
    args = [arg for arg in args if arg is not REQUIRED]
    signature = _signature(handler)
    for arg in args:
        if isinstance(arg, UndecodedInput):
            if arg.count is not None or arg.got is not None:
                got = f"{arg.count} inputs" if arg.count is not None else arg.got
                return RecoveryValidationError(f"{what} takes {signature.expected()}, got {got}")
            return RecoveryValidationError(f"{what}: {arg.reason}", code=arg.code, **arg.names)
    if not signature.required <= len(args) <= len(signature.parameters):
        return RecoveryValidationError(f"{what} takes {signature.expected()}, got {len(args)} inputs")
    for arg, parameter in zip(args, signature.parameters):
        if arg is None and parameter.nullable:
            continue
        if not isinstance(arg, parameter.cls):
            shown = "null" if arg is None else type(arg).__name__
            return RecoveryValidationError(f"{what} takes {signature.expected()}, got {shown}")
    return None


def _hash_refusal(args: Sequence[Any]) -> RecoveryConstitutionalError | None:
    """Return the refusal of a request whose constitutional hash is wrong, or None."""
    for arg in args:
        if isinstance(arg, DoorInput):
            try:
                check_constitutional_hashes(arg)
            except RecoveryConstitutionalError as err:
                return err
    return None


def _fault(err: Exception, what: str) -> ApplicationError:
    """The answer for an exception no door foresaw: logged whole, told briefly."""
    workflow.logger.error("%s %s raised %s", LOG_PREFIX, what, type(err).__name__, exc_info=True)
    return to_application_error(
        RecoveryOrchestratorError(
            f"{what} failed: {type(err).__name__}: {clipped(str(err), MAX_FAULT_TEXT)}",
            code=INTERNAL,
        )
    )


def _refuse_signal(signal: str, reason: str) -> None:
    instance = workflow.instance()
    if isinstance(instance, SignalRefusals):
        instance.refuse_signal(signal, reason)
    else:
        workflow.logger.warning("%s signal %s refused: %s", LOG_PREFIX, signal, reason)


class _GuardedInbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        what = f"{workflow.info().workflow_type} input"
        refusal = misfit(input.args, input.run_fn, what)
        if refusal is not None:
            raise to_application_error(refusal)
        return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        handler = _handler("signal", input.signal)
        if handler is None:  # no handler of that name: the SDK keeps it for one
            await super().handle_signal(input)
            return
        refusal = misfit(input.args, handler, f"{input.signal} signal") or _hash_refusal(input.args)
        if refusal is not None:
            _refuse_signal(input.signal, str(refusal))
            return
        try:
            await super().handle_signal(input)
        except FailureError as err:  # the handler's own refusal
            _refuse_signal(input.signal, clipped(err.message, MAX_FAULT_TEXT))
        except Exception as err:  # noqa: BLE001 (recorded, never a failed task)
            workflow.logger.error(
                "%s %s signal raised %s", LOG_PREFIX, input.signal, type(err).__name__,
                exc_info=True,
            )
            _refuse_signal(
                input.signal, f"{type(err).__name__}: {clipped(str(err), MAX_FAULT_TEXT)}"
            )

    async def handle_query(self, input: HandleQueryInput) -> Any:
        handler = _handler("query", input.query)
        if handler is not None:
            refusal = misfit(input.args, handler, f"{input.query} query")
            if refusal is not None:
                raise to_application_error(refusal)
        return await super().handle_query(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        self._check_update(input)
        refusal = _hash_refusal(input.args)
        if refusal is not None:
            raise to_application_error(refusal)
        try:
            super().handle_update_validator(input)
        except (FailureError, workflow.ReadOnlyContextError):
            raise
        except Exception as err:  # noqa: BLE001 (a refusal, never a failed task)
            raise _fault(err, f"{input.update} validator") from None

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        self._check_update(input)  # an update with no validator is checked here
        try:
            return await super().handle_update_handler(input)
        except FailureError:
            raise
        except Exception as err:  # noqa: BLE001 (an answer, never a failed task)
            raise _fault(err, input.update) from None

    @staticmethod
    def _check_update(input: HandleUpdateInput) -> None:
        handler = _handler("update", input.update)
        if handler is not None:
            refusal = misfit(input.args, handler, input.update)
            if refusal is not None:
                raise to_application_error(refusal)


UpdateMethod = TypeVar("UpdateMethod", bound=workflow.UpdateMethodMultiParam[Any, Any])


def validated(update: UpdateMethod) -> UpdateMethod:
    """Give an update with no rules of its own a validator, for the guard to run in.

    The SDK calls the interceptor's validator hook only for an update that has a
    validator; there a refusal is written nowhere, while a refusal from the handler
    itself comes after the update was accepted into history.
    """

    def nothing_beyond_the_guard(*args: object) -> None:
        """What fits is the guard's to say (``_GuardedInbound.handle_update_validator``)."""

    # The SDK wants a validator's parameters to be the update's.
    handler = _update_function(update)
    nothing_beyond_the_guard.__signature__ = inspect.signature(handler)  # type: ignore[attr-defined]
    update.validator(nothing_beyond_the_guard)
    return update


def _update_function(update: workflow.UpdateMethodMultiParam[Any, Any]) -> Callable[..., Any]:
    function: Callable[..., Any] = update._defn.fn
    return function


class MessageGuard(Interceptor):
    """The worker interceptor that guards every handler of our workflows (module doc)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _GuardedInbound
