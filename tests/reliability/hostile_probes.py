"""Probes: one hostile input sent through one door, and what the door did with it.

Each function returns a ``Probe``: given a door's ``Harness`` and the cell's own
service name (what ``@svc`` stands for), it sends the input exactly as that door
would carry it and reports an ``Observed``. Texts may hold the harness's @-tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from starter.client.services_file import load_services_file
from tests.helpers.raw_payloads import raw_json
from tests.helpers.recoveries import task_failures
from tests.reliability.hostile_doors import Harness, Observed, Probe
from workflows.errors import RECOVERY_FAILED


@dataclass(frozen=True)
class RawBytes:
    """A payload that is not JSON at all: ``data`` under ``encoding``."""

    data: bytes
    encoding: bytes


PayloadSpec = str | RawBytes  # JSON text as sent (with @-tokens), or bytes that are not JSON


def _payload(harness: Harness, spec: PayloadSpec, svc: str) -> RawValue:
    """Turn a payload spec into a payload the SDK sends exactly as it is."""
    if isinstance(spec, RawBytes):
        return RawValue(Payload(metadata={"encoding": spec.encoding}, data=spec.data))
    return raw_json(harness.fill(spec, svc))


def _application_error(err: BaseException) -> Observed:
    """Describe an update's or a workflow's failure by its ApplicationError."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, ApplicationError):
        return Observed("refused", cause.message, error_type=cause.type)
    return Observed("refused", str(cause or err), error_type=type(cause or err).__name__)


def facade(call: Callable[[Harness, str], Awaitable[object]]) -> Probe:
    """Call the Python facade; an exception is a refusal."""

    async def probe(harness: Harness, svc: str) -> Observed:
        try:
            value = await call(harness, svc)
        except Exception as err:  # what the caller sees: its class and message
            return Observed("refused", str(err), error_type=type(err).__name__)
        if value is False:
            return Observed("no-op", "returned False")
        return Observed("accepted", _shown(value), value=value)

    return probe


def update(name: str, *payloads: PayloadSpec, target: str = "@coordinator") -> Probe:
    """Send a raw update with exactly these payloads."""

    async def probe(harness: Harness, svc: str) -> Observed:
        handle = harness.world.client.get_workflow_handle(harness.fill(target, svc))
        args = [_payload(harness, p, svc) for p in payloads]
        try:
            value = await handle.execute_update(name, args=args, id=str(uuid.uuid4()))
        except WorkflowUpdateFailedError as err:
            return _application_error(err)
        except RPCError as err:
            return Observed("refused", err.message, error_type="RPCError")
        return Observed("accepted", _shown(value), value=value)

    return probe


def signal(name: str, *payloads: PayloadSpec, target: str = "@coordinator") -> Probe:
    """Send a raw signal with exactly these payloads; then see what became of it."""

    async def probe(harness: Harness, svc: str) -> Observed:
        workflow_id = harness.fill(target, svc)
        before, logs = await harness.snapshot(), len(harness.world.logs.lines)
        handle = harness.world.client.get_workflow_handle(workflow_id)
        try:
            mark = await harness.history_length(workflow_id)
            await handle.signal(name, args=[_payload(harness, p, svc) for p in payloads])
        except RPCError as err:
            return Observed("refused", err.message, error_type="RPCError")
        return await harness.signal_fate(workflow_id, name, svc, before, mark, logs)

    return probe


def temporal_start(*inputs: str, workflow_id: str = "recovery-@svc", meta: str = "") -> Probe:
    """``temporal workflow start --type ServiceRecovery`` with these ``--input``s; then wait.

    A start the CLI or the server refuses is a refusal (exit code kept); a recovery
    that fails on its input is a refusal with the workflow's error; one that runs is
    accepted, with its ``RecoveryResult`` (also when it ends ``failed``).
    """

    async def probe(harness: Harness, svc: str) -> Observed:
        wid = harness.fill(workflow_id, svc)
        argv = ["workflow", "start", "--type", "ServiceRecovery", "--task-queue"]
        argv += [harness.world.task_queue, "--workflow-id", wid]
        for text in inputs:
            argv += ["--input", harness.fill(text, svc)]
        if meta:
            argv += ["--input-meta", meta]
        code, out, err = await harness.cli.temporal(*argv)
        if code != 0:
            return Observed("refused", _last_line(err or out), code=code)
        handle = harness.world.client.get_workflow_handle(wid)
        try:
            value = await asyncio.wait_for(handle.result(), timeout=30)
        except WorkflowFailureError as failure:
            cause = failure.cause
            if isinstance(cause, ApplicationError) and cause.type == RECOVERY_FAILED:
                value = cause.details[0] if cause.details else None
            else:
                observed = _application_error(failure)
                return _with_task_check(observed, await task_failures(handle))
        return _with_task_check(
            Observed("accepted", _shown(value), code=0, value=value), await task_failures(handle)
        )

    return probe


def _with_task_check(observed: Observed, failures: list[str]) -> Observed:
    """Add a problem if the workflow ever failed a workflow task (``task_failures``)."""
    if failures:
        return replace(observed, problems=(*observed.problems, f"a workflow task failed: {failures[0]}"))
    return observed


def temporal(*argv: str, signal: tuple[str, str] | None = None) -> Probe:
    """Run the ``temporal`` CLI; for a signal, ``signal`` (workflow id, name) says where to look."""

    async def probe(harness: Harness, svc: str) -> Observed:
        before, logs, mark = await harness.snapshot(), len(harness.world.logs.lines), 0
        if signal is not None:
            with contextlib.suppress(RPCError):  # a closed or missing target: the CLI says so
                mark = await harness.history_length(harness.fill(signal[0], svc))
        code, out, err = await harness.cli.temporal(*(harness.fill(a, svc) for a in argv))
        if code != 0:
            return Observed("refused", _last_line(err or out), code=code)
        if signal is not None:
            target, name = harness.fill(signal[0], svc), signal[1]
            fate = await harness.signal_fate(target, name, svc, before, mark, logs)
            return Observed(fate.outcome, fate.message, code=code)
        return Observed("accepted", _last_line(out), code=code)

    return probe


def ctl(*argv: str) -> Probe:
    """Run ``recoveryctl`` (the console script) against this door's coordinator.

    SPEC §7: a failure is exactly one line on stderr, never a traceback.
    """

    async def probe(harness: Harness, svc: str) -> Observed:
        code, out, err = await harness.cli.ctl(
            *(harness.fill(a, svc) for a in argv), env={"TEMPORAL_NAMESPACE": "default"}
        )
        if code == 0:
            return Observed("accepted", _last_line(out), code=code)
        lines = err.strip().splitlines()
        one_line = len(lines) == 1 and lines[0].startswith("recoveryctl: error:")
        problems = () if one_line else (f"stderr is not one error line: {err[:300]!r}",)
        return Observed("refused", err.strip(), code=code, problems=problems)

    return probe


def services_file(content: str | bytes) -> Probe:
    """Load a services file of this content (text with @-tokens, or exact bytes).

    One that loads has its services scheduled with their settings: the path the
    circuit watch takes with a loaded file.
    """

    async def probe(harness: Harness, svc: str) -> Observed:
        path = harness.world.tmp / f"{svc[:40]}-{uuid.uuid4().hex[:6]}.toml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(harness.fill(content, svc), encoding="utf-8")
        try:
            watch = load_services_file(path)
        except ValueError as err:  # the message names the file: here, recovery.toml
            return Observed("refused", _as_file(err, path), error_type=type(err).__name__)
        except Exception as err:  # anything else escapes the worker's start-up handling
            return Observed(
                "refused",
                _as_file(err, path),
                error_type=type(err).__name__,
                problems=(f"{type(err).__name__} is not a ServicesFileError",),
            )
        for name, settings in watch.services.items():
            await harness.facade.schedule_recovery(
                name, settings.strategy, settings.priority, settings.policy
            )
        return Observed("accepted", f"loaded {sorted(watch.services)}", value=watch)

    return probe


def _as_file(err: BaseException, path: Path) -> str:
    """Return the error's message with the test's temporary file shown as ``recovery.toml``."""
    return str(err).replace(str(path), "recovery.toml")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _shown(value: object) -> str:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        return json.dumps(value, default=str)[:300]
    except (TypeError, ValueError):
        return repr(value)[:300]


def during_shutdown(inner: Probe) -> Probe:
    """Send ``inner``'s input while the coordinator is being shut down."""

    async def probe(harness: Harness, svc: str) -> Observed:
        stopping = asyncio.ensure_future(harness.ensure_stopped())
        await asyncio.sleep(0)  # the shutdown goes out first; the input races its handling
        try:
            return await inner(harness, svc)
        finally:
            await stopping

    return probe


def worker_start(text: str) -> Probe:
    """Start a real ``recovery-worker`` process on this services file.

    A bad file must stop it before it connects: exit 2, ``cannot start: <problem>``.
    """

    async def probe(harness: Harness, svc: str) -> Observed:
        path = harness.world.tmp / f"{svc}-worker.toml"
        path.write_text(harness.fill(text, svc), encoding="utf-8")
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": harness.world.address,
            "TEMPORAL_NAMESPACE": "default",
            "RECOVERY_SERVICES_FILE": str(path),
        }
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "recovery-worker"),
            "--task-queue",
            f"{harness.world.task_queue}-unused",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(process.communicate(), timeout=20)
        except TimeoutError:
            process.kill()
            await process.wait()
            return Observed("accepted", "the worker started on this file")
        text_err = err.decode().replace(str(path), "recovery.toml")
        problems = ("a traceback on stderr",) if "Traceback" in text_err else ()
        return Observed(
            "refused", _last_line(text_err), code=process.returncode, problems=problems
        )

    return probe
