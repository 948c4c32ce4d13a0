"""recoveryctl: the operator's command line for recovery-orchestrator.

Human output by default, ``--json`` for scripts. Exit code 0 on success, 2 on bad
input, 1 on a refused or failed operation, always with a one-line error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from starter.connection import connect
from workflows.constants import recovery_workflow_id
from workflows.errors import RecoveryOrchestratorError, RecoveryValidationError
from workflows.models import ApproveInput, CancelInput, validate_service_name

Command = Callable[[argparse.Namespace], Awaitable[Any]]


class CliError(Exception):
    """A refused operation: printed as one line, exit code 1."""


async def _recovery_handle(service: str) -> WorkflowHandle[Any, Any]:
    """Validate the name first (bad input never waits on a connection), then connect."""
    workflow_id = recovery_workflow_id(validate_service_name(service))
    client = await connect()
    return client.get_workflow_handle(workflow_id)


async def _query(handle: WorkflowHandle[Any, Any], name: str) -> Any:
    try:
        return await handle.query(name)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise CliError(f"no recovery found for workflow id {handle.id!r}") from None
        raise


async def cmd_status(args: argparse.Namespace) -> Any:
    """Return one recovery's ``status`` query."""
    return await _query(await _recovery_handle(args.service), "status")


async def cmd_history(args: argparse.Namespace) -> Any:
    """Return one recovery's ``history`` query."""
    return await _query(await _recovery_handle(args.service), "history")


async def cmd_approve(args: argparse.Namespace) -> Any:
    """Signal ``approve`` to a recovery that waits for an operator."""
    handle = await _recovery_handle(args.service)
    status = await _query(handle, "status")
    if status["state"] != "awaiting_manual":
        raise CliError(f"recovery of {args.service!r} is {status['state']}, not awaiting_manual")
    await handle.signal("approve", ApproveInput(operator=args.operator, note=args.note))
    return {"approved": args.service, "operator": args.operator}


async def cmd_cancel(args: argparse.Namespace) -> Any:
    """Signal ``cancel`` to a running recovery."""
    handle = await _recovery_handle(args.service)
    status = await _query(handle, "status")
    if status["state"] in {"succeeded", "failed", "cancelled"}:
        raise CliError(f"recovery of {args.service!r} already ended {status['state']}")
    await handle.signal("cancel", CancelInput(reason=args.reason))
    return {"cancelled": args.service, "reason": args.reason}


async def cmd_dev(args: argparse.Namespace) -> Any:
    """Run the embedded Temporal dev server and a worker until Ctrl-C."""
    from starter.dev import run_dev

    code = await run_dev(args.port, args.ui_port)
    if code:
        raise CliError("dev mode stopped because the server or the worker exited")
    return None


def build_parser() -> argparse.ArgumentParser:
    """Return the ``recoveryctl`` argument parser."""
    parser = argparse.ArgumentParser(prog="recoveryctl", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start the embedded Temporal server and a worker")
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.set_defaults(run=cmd_dev)

    for name, run, help_text in (
        ("status", cmd_status, "show one recovery's status"),
        ("history", cmd_history, "list one recovery's attempts"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("service")
        command.set_defaults(run=run)

    approve = sub.add_parser("approve", help="approve one attempt of a MANUAL recovery")
    approve.add_argument("service")
    approve.add_argument("--operator", required=True)
    approve.add_argument("--note", default="")
    approve.set_defaults(run=cmd_approve)

    cancel = sub.add_parser("cancel", help="cancel a recovery at once")
    cancel.add_argument("service")
    cancel.add_argument("--reason", default="cancelled by operator")
    cancel.set_defaults(run=cmd_cancel)
    return parser


def render(value: Any, as_json: bool) -> str:
    """Return ``value`` as JSON, or as indented ``key: value`` lines for people."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if as_json:
        return json.dumps(value, indent=2, default=str)
    return "\n".join(_human_lines(value, 0))


def _human_lines(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(value, dict):
        lines: list[str] = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_human_lines(item, depth + 1))
            else:
                lines.append(f"{pad}{key}: {'-' if item is None else item}")
        return lines
    if isinstance(value, list):
        lines = []
        for index, item in enumerate(value, 1):
            lines.append(f"{pad}[{index}]")
            lines.extend(_human_lines(item, depth + 1))
        return lines
    return [f"{pad}{value}"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``recoveryctl``."""
    args = build_parser().parse_args(argv)
    try:
        result = asyncio.run(args.run(args))
    except (RecoveryValidationError, ValueError) as err:
        print(f"recoveryctl: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except (CliError, RecoveryOrchestratorError) as err:
        print(f"recoveryctl: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except RuntimeError as err:  # the SDK's connection failure
        print(f"recoveryctl: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if result is not None:
        print(render(result, args.json))
