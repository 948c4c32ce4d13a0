"""recoveryctl: the operator's command line for recovery-orchestrator.

Human output by default, ``--json`` for scripts. Exit code 0 on success, 2 on bad
input or an unknown service, 1 on a refused or failed operation, 3 when the server
cannot be reached, always with a one-line error. Every call goes through the same
typed client as the Python facade (``starter.coordinator_client``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from starter import render
from starter.cli_breakers import cmd_breakers, cmd_watch_breakers
from starter.cli_context import CliError, Context, Unreachable, UnknownService, positive_seconds
from starter.demo import add_demo_arguments, cmd_demo
from starter.recoveries import (
    approve,
    execute,
    execute_and_wait,
    recovery_attempts,
    recovery_handle,
    recovery_status,
)
from workflows.constants import COORDINATOR_WORKFLOW_ID, TASK_QUEUE
from workflows.coordinator_models import (
    CancelRecoveryInput,
    CancelRecoveryResult,
    ConfigureInput,
    ExecuteRecoveryInput,
    PolicyQueryInput,
    ScheduleRecoveryInput,
    SetRecoveryPolicyInput,
)
from workflows.errors import RecoveryOrchestratorError
from workflows.models import (
    CancelInput,
    RecoveryPolicy,
    RecoveryStrategy,
    describe_validation_error,
    validate_service_name,
)
from workflows.service_recovery import ServiceRecovery

Command = Callable[["Context"], Awaitable[Any]]
T = TypeVar("T")


async def _overall_status(ctx: Context) -> dict[str, Any]:
    coordinator = await ctx.coordinator()
    overall = await coordinator.get_recovery_status()
    if overall is None:
        raise CliError(f"no coordinator {ctx.args.coordinator_id!r}: is a worker running?")
    return overall


def _service(ctx: Context) -> str:
    return validate_service_name(ctx.args.service)


async def cmd_schedule(ctx: Context) -> Any:
    """Queue a recovery (or update its queue entry)."""
    args = ctx.args
    policy = RecoveryPolicy.model_validate_json(args.policy) if args.policy else None
    request = ScheduleRecoveryInput(
        service_name=args.service,
        strategy=args.strategy,
        priority=args.priority,
        policy=policy,
    )
    coordinator = await ctx.coordinator()
    return await coordinator.schedule_recovery(request)


async def cmd_execute(ctx: Context) -> Any:
    """Start a scheduled recovery now (approve one attempt of a MANUAL one); wait for it.

    A recovery that has already finished gives its final result.
    """
    request = ExecuteRecoveryInput(service_name=_service(ctx), operator=ctx.args.operator)
    coordinator = await ctx.coordinator()
    if ctx.args.no_wait:
        return await execute(coordinator, request)
    return await execute_and_wait(coordinator, request)


async def cmd_status(ctx: Context) -> Any:
    """Show the orchestrator's status, or one recovery's."""
    if ctx.args.service is not None:  # given, even empty: a name to check, not "all"
        return await _one_recovery(ctx, recovery_status)
    return render.Status(await _overall_status(ctx))


async def cmd_history(ctx: Context) -> Any:
    """List one recovery's attempts, or the recently finished recoveries."""
    if ctx.args.service is not None:
        return render.Attempts(await _one_recovery(ctx, recovery_attempts))
    return render.RecentHistory((await _overall_status(ctx))["recent_history"])


async def _one_recovery(ctx: Context, read: Callable[[Client, str], Awaitable[T | None]]) -> T:
    """Read one recovery's query; a recovery that never ran is a refusal."""
    service = _service(ctx)
    found = await read(await ctx.client(), service)
    if found is None:
        raise UnknownService(f"no recovery of {service!r} has ever run")
    return found


async def cmd_approve(ctx: Context) -> Any:
    """Approve one attempt of a recovery awaiting an operator.

    Unknown service: exit 2. A recovery in any other state: exit 1, naming that
    state and phase (the approval is not sent, or was ignored).
    """
    service = _service(ctx)
    await approve(await ctx.coordinator(), service, ctx.args.operator, ctx.args.note)
    return {"approved": service, "operator": ctx.args.operator}


async def cmd_cancel(ctx: Context) -> Any:
    """Cancel a queued or running recovery."""
    service = _service(ctx)
    coordinator = await ctx.coordinator()
    try:
        result = await coordinator.cancel_recovery(
            CancelRecoveryInput(service_name=service, reason=ctx.args.reason)
        )
    except RecoveryOrchestratorError:
        result = None
    if result is not None:
        return result
    # Not the coordinator's: a recovery started directly (e.g. with `temporal workflow start`).
    status = await recovery_status(await ctx.client(), service)
    if status is None or status.state.finished:
        raise UnknownService(f"No active recovery task for service '{service}'")
    await recovery_handle(await ctx.client(), service).signal(
        ServiceRecovery.cancel, CancelInput(reason=ctx.args.reason)
    )
    return CancelRecoveryResult(service_name=service, cancelled=True, was=status.state.value)


async def cmd_policy(ctx: Context) -> Any:
    """Get or set a service's policy."""
    service = _service(ctx)
    coordinator = await ctx.coordinator()
    if ctx.args.policy_command == "set":
        policy = RecoveryPolicy.model_validate_json(ctx.args.policy)
        return await coordinator.set_recovery_policy(
            SetRecoveryPolicyInput(service_name=service, policy=policy)
        )
    found = await coordinator.get_recovery_policy(PolicyQueryInput(service_name=service))
    return found if found is not None else RecoveryPolicy()


async def cmd_configure(ctx: Context) -> Any:
    """Change the coordinator's slots or history size, or start it again after a stop."""
    args = ctx.args
    request = ConfigureInput(
        max_concurrent_recoveries=args.max_concurrent,
        recent_history_size=args.history_size,
        orchestrator_running=True if args.start else None,
    )
    coordinator = await ctx.coordinator()
    return await coordinator.configure(request)


async def cmd_watch(ctx: Context) -> Any:
    """Print the status every ``--interval`` seconds (``--count`` times, or until Ctrl-C)."""
    shown = 0
    while ctx.args.count is None or shown < ctx.args.count:
        overall = await _overall_status(ctx)
        print(render.render(render.Status(overall), ctx.args.json), flush=True)
        shown += 1
        if ctx.args.count is None or shown < ctx.args.count:
            await asyncio.sleep(ctx.args.interval)
    return None


async def cmd_dev(ctx: Context) -> Any:
    """Run the embedded Temporal dev server and a worker until Ctrl-C."""
    from starter.dev import run_dev
    from starter.services_file import load_services_from_env

    load_services_from_env()  # a bad services file is bad input: said before anything starts
    if await run_dev(ctx.args.port, ctx.args.ui_port):
        raise CliError("dev mode stopped because the server or the worker exited")
    return None


def build_parser() -> argparse.ArgumentParser:
    """Return the ``recoveryctl`` argument parser."""
    parser = argparse.ArgumentParser(prog="recoveryctl", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--coordinator-id", default=COORDINATOR_WORKFLOW_ID, help=argparse.SUPPRESS)
    parser.add_argument("--task-queue", default=TASK_QUEUE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout", type=positive_seconds, default=30.0, help="seconds to wait for an answer (default 30)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(run=run)
        _json_flag(sub_parser)
        return sub_parser

    dev = command("dev", cmd_dev, "start the embedded Temporal server and a worker")
    dev.add_argument("--port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)

    demo = command("demo", cmd_demo, "a live demo: four services break and are recovered, in order")
    add_demo_arguments(demo)

    schedule = command("schedule", cmd_schedule, "schedule a service for recovery")
    schedule.add_argument("service")
    schedule.add_argument(
        "--strategy", default="exponential_backoff", choices=[s.value for s in RecoveryStrategy]
    )
    schedule.add_argument("--priority", type=int, default=1, help="lower is more urgent")
    schedule.add_argument("--policy", help='policy JSON, e.g. \'{"max_retry_attempts": 3}\'')

    execute = command("execute", cmd_execute, "start a scheduled recovery now and wait for it")
    execute.add_argument("service")
    execute.add_argument("--operator", default="recoveryctl")
    execute.add_argument("--no-wait", action="store_true", help="return once started")

    for name, run, help_text in (
        ("status", cmd_status, "show the orchestrator's status, or one recovery's"),
        ("history", cmd_history, "list recent recoveries, or one recovery's attempts"),
    ):
        command(name, run, help_text).add_argument("service", nargs="?")

    approve_cmd = command("approve", cmd_approve, "approve one attempt of a MANUAL recovery")
    approve_cmd.add_argument("service")
    approve_cmd.add_argument("--operator", required=True)
    approve_cmd.add_argument("--note", default="")

    cancel = command("cancel", cmd_cancel, "cancel a recovery at once")
    cancel.add_argument("service")
    cancel.add_argument("--reason", default="cancelled by operator")

    policy = command("policy", cmd_policy, "get or set a service's recovery policy")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    policy_get = policy_sub.add_parser("get")
    policy_get.add_argument("service")
    _json_flag(policy_get)
    policy_set = policy_sub.add_parser("set")
    _json_flag(policy_set)
    policy_set.add_argument("service")
    policy_set.add_argument("policy", help='policy JSON, e.g. \'{"max_retry_attempts": 3}\'')

    configure = command("configure", cmd_configure, "change slots or history size; --start after a stop")
    configure.add_argument("--max-concurrent", type=int)
    configure.add_argument("--history-size", type=int)
    configure.add_argument("--start", action="store_true", help="report running again after a stop")

    watch = command("watch", cmd_watch, "print the status every few seconds")
    watch.add_argument("--interval", type=float, default=2.0)
    watch.add_argument("--count", type=int, help="stop after this many refreshes")

    breakers = command("breakers", cmd_breakers, "list every circuit breaker: state, counters, open for")
    breakers.add_argument("--store", help="store URL (default $RECOVERY_CIRCUIT_STORE, else the SQLite file)")

    watch_breakers = command(
        "watch-breakers", cmd_watch_breakers, "enable, disable or show the circuit watch"
    )
    watch_sub = watch_breakers.add_subparsers(dest="watch_command", required=True)
    for action, text in (
        ("enable", "resume the watch"),
        ("disable", "pause the watch (nothing new is scheduled from open breakers)"),
        ("status", "show whether it runs, how often, and with which services file"),
    ):
        action_parser = watch_sub.add_parser(action, help=text, description=text)
        _json_flag(action_parser)
        if action != "status":
            action_parser.add_argument("--note", help="why (shown in the Web UI's schedule page)")
    return parser


def _json_flag(parser: argparse.ArgumentParser) -> None:
    """Accept ``--json`` after the subcommand too; it only ever turns JSON on."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``recoveryctl``."""
    args = build_parser().parse_args(argv)
    code = 0
    try:
        result = asyncio.run(_run_with_timeout(args))
        if result is not None:
            print(render.render(result, args.json))
            sys.stdout.flush()
    except BrokenPipeError:  # `recoveryctl status | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")
    except ValidationError as err:
        code = _fail(2, describe_validation_error(err))
    except (ValueError, UnknownService) as err:  # RecoveryValidationError among them
        code = _fail(2, err)
    except Unreachable as err:
        code = _fail(3, err)
    except RPCError as err:
        code = _fail(3 if err.status is RPCStatusCode.UNAVAILABLE else 1, err)
    except (CliError, RecoveryOrchestratorError, TemporalError, RuntimeError) as err:
        code = _fail(1, err)
    except KeyboardInterrupt:
        code = 130
    _exit(code)


async def _run_with_timeout(args: argparse.Namespace) -> Any:
    if args.timeout is None or args.command in ("dev", "watch"):
        return await args.run(Context(args))
    task = asyncio.ensure_future(args.run(Context(args)))
    done, _ = await asyncio.wait({task}, timeout=args.timeout)
    if task in done:
        return task.result()
    # The SDK turns a cancelled wait into its own error: what matters is that time ran out.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise CliError(
        f"no answer within {args.timeout:g}s (what was sent may still take effect): is a worker "
        f"polling task queue {args.task_queue!r}? To wait longer, raise --timeout"
    )


def _fail(code: int, err: BaseException | str) -> int:
    # One line: a message of several lines (a services file's problems) joins with "; ".
    lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
    message = "; ".join(lines) or type(err).__name__
    print(f"recoveryctl: error: {message}", file=sys.stderr)
    return code


def _exit(code: int) -> None:
    """Exit without interpreter finalization.

    The Temporal client's native runtime can crash while Python tears down its
    threads at exit (seen as SIGSEGV/SIGABRT after the work was done); a CLI has
    nothing left to finalize once its output is flushed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
