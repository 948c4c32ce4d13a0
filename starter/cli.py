"""recoveryctl: the operator's command line for recovery-orchestrator.

Built on click (parsing, help) and rich (tables, the live ``watch``). Human output by
default, ``--json`` for scripts, before or after the command. One exit-code rule for
every command: 0 on success, 2 on bad input or an unknown service, 1 on a refused or
failed operation, 3 when the server cannot be reached, always with one line on stderr.
Every call goes through the same typed client as the Python facade
(``starter.coordinator_client``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, TypeVar

import click
from activities.redaction import redact
from click.exceptions import NoArgsIsHelpError
from pydantic import ValidationError
from rich.console import Group
from rich.live import Live
from rich.text import Text
from temporalio.client import Client
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from starter import render
from starter.cli_breakers import cmd_breakers, cmd_watch_breakers
from starter.cli_context import (
    CliError,
    Context,
    UnknownService,
    Unreachable,
    apply_connection_flags,
    duration_seconds,
    positive_seconds,
)
from starter.cli_listing import LIST_LIMIT, uncoordinated_recoveries
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
    DEFAULT_PAUSE_SECONDS,
    ExecuteRecoveryInput,
    PauseServiceInput,
    PolicyQueryInput,
    ResumeServiceInput,
    ScheduleRecoveryInput,
    SetRecoveryPolicyInput,
)
from workflows.errors import RecoveryOrchestratorError
from workflows.models import (
    CancelInput,
    RecoveryPolicy,
    RecoveryResult,
    RecoveryStatus,
    RecoveryStrategy,
    describe_validation_error,
    validate_service_name,
)
from workflows.payloads import check_unique_keys
from workflows.service_recovery import ServiceRecovery

Command = Callable[[Context], Awaitable[Any]]
T = TypeVar("T")
PROG = "recoveryctl"
ROOT_HELP = """The operator's command line for recovery-orchestrator.

Human output by default; --json (before or after the command) for scripts. Exit codes: 0 ok,
2 bad input or an unknown service, 1 a refused or failed operation, 3 the Temporal server
cannot be reached; each failure is one line on stderr. Connection settings follow Temporal's
envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE, config-file profiles);
--address, --namespace and --profile override them.
"""
POLICY_EXAMPLE = "'{\"max_retry_attempts\": 3}'"


# ----- the commands ---------------------------------------------------------------


async def _overall_status(ctx: Context) -> dict[str, Any]:
    coordinator = await ctx.coordinator()
    return await _answered(ctx, await coordinator.get_recovery_status())


async def _answered(ctx: Context, answer: dict[str, Any] | None) -> dict[str, Any]:
    """Return a coordinator query's answer; None means there is no coordinator: say so."""
    if answer is None:
        await ctx.check_namespace()
        raise CliError(f"no coordinator {ctx.args.coordinator_id!r}: is a worker running?")
    return answer


async def _status_view(ctx: Context) -> render.Status:
    """Return the coordinator's status and the running recoveries it does not know."""
    overall = await _overall_status(ctx)
    try:
        listed, cut = await uncoordinated_recoveries(
            await ctx.client(), ctx.args.task_queue, overall["services"]
        )
    except RPCError as err:
        if err.status is RPCStatusCode.UNAVAILABLE:
            raise
        # The coordinator answered: its status stands even where visibility cannot list.
        return render.Status(overall, None, listing_note=err.message)
    return render.Status(overall, listed, LIST_LIMIT if cut else None)


def _service(ctx: Context) -> str:
    return validate_service_name(ctx.args.service)


def _policy(text: str, what: str) -> RecoveryPolicy:
    """Read a policy given as JSON on the command line; a key given twice is refused."""
    policy = RecoveryPolicy.model_validate_json(text)
    check_unique_keys(text, what)
    return policy


async def cmd_schedule(ctx: Context) -> Any:
    """Queue a recovery (or update its queue entry)."""
    args = ctx.args
    policy = _policy(args.policy, "--policy") if args.policy else None
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
    return await _status_view(ctx)


async def cmd_history(ctx: Context) -> Any:
    """List one recovery's attempts, or the recently finished recoveries."""
    if ctx.args.service is not None:
        return render.Attempts(await _one_recovery(ctx, recovery_attempts))
    return render.RecentHistory((await _overall_status(ctx))["recent_history"])


async def _one_recovery(ctx: Context, read: Callable[[Client, str], Awaitable[T | None]]) -> T:
    """Read one recovery's query; a recovery that never ran is unknown."""
    service = _service(ctx)
    found = await read(await ctx.client(), service)
    if found is None:
        await ctx.check_namespace()
        raise UnknownService(f"no recovery of {service!r} has ever run")
    return found


async def cmd_approve(ctx: Context) -> Any:
    """Approve one attempt of a recovery awaiting an operator.

    Unknown service: exit 2. A recovery in any other state: exit 1, naming that
    state and phase (the approval is not sent, or another came first).
    """
    service = _service(ctx)
    admitted = await approve(await ctx.coordinator(), service, ctx.args.operator, ctx.args.note)
    return {"approved": service, "operator": admitted.operator, "attempt": admitted.attempt}


async def cmd_cancel(ctx: Context) -> Any:
    """Cancel a queued or running recovery."""
    service = _service(ctx)
    coordinator = await ctx.coordinator()
    try:
        result = await coordinator.cancel_recovery(
            CancelRecoveryInput(service_name=service, reason=ctx.args.reason)
        )
    except RecoveryOrchestratorError as err:
        if err.code != "unknown_service":
            raise
        result = None
    if result is not None:
        return result
    # Not the coordinator's: a recovery started directly (e.g. with `temporal workflow start`).
    status = await recovery_status(await ctx.client(), service)
    if status is None:
        raise UnknownService(f"No active recovery task for service '{service}'")
    if status.state.finished:
        # As approve says it: the operator learns how it ended, and that nothing was sent.
        raise CliError(
            f"Recovery of '{service}' has already ended {await _ending(ctx, service, status)}: "
            "nothing to cancel"
        )
    await recovery_handle(await ctx.client(), service).signal(
        ServiceRecovery.cancel, CancelInput(reason=ctx.args.reason)
    )
    return CancelRecoveryResult(service_name=service, cancelled=True, was=status.state.value)


async def _ending(ctx: Context, service: str, status: RecoveryStatus) -> str:
    """Return how a finished recovery ended, as ``history`` shows it."""
    ended = status.state.value
    try:
        attempts = await recovery_attempts(await ctx.client(), service) or []
    except RPCError:
        return ended
    if attempts and ended == "succeeded":
        last = attempts[-1]
        passed = last.health_check is not None and last.health_check.passed
        ended = render.outcome({"state": ended, "health_check_passed": passed})
    if status.last_error and status.state.value != "succeeded":
        ended += f" ({status.last_error})"
    return ended


async def cmd_pause(ctx: Context) -> Any:
    """Hold automation off a service for a while (an operator still may act)."""
    if not ctx.args.reason.strip():
        raise ValueError("--reason: give a reason, or leave the option out")
    request = PauseServiceInput(
        service_name=_service(ctx),
        duration_s=ctx.args.duration,
        reason=ctx.args.reason,
    )
    coordinator = await ctx.coordinator()
    return await coordinator.pause_service(request)


async def cmd_resume(ctx: Context) -> Any:
    """Lift a service's pause, failure cool-down or cancel hold."""
    coordinator = await ctx.coordinator()
    return await coordinator.resume_service(ResumeServiceInput(service_name=_service(ctx)))


async def cmd_policy_get(ctx: Context) -> Any:
    """Return a service's policy (the default policy when it has none)."""
    service = _service(ctx)
    coordinator = await ctx.coordinator()
    found = await coordinator.get_recovery_policy(PolicyQueryInput(service_name=service))
    return found if found is not None else RecoveryPolicy()


async def cmd_policy_set(ctx: Context) -> Any:
    """Set a service's policy."""
    service = _service(ctx)
    policy = _policy(ctx.args.policy, "POLICY")
    coordinator = await ctx.coordinator()
    return await coordinator.set_recovery_policy(
        SetRecoveryPolicyInput(service_name=service, policy=policy)
    )


async def cmd_configure(ctx: Context) -> Any:
    """Change the coordinator's slots or history size, or start it again after a stop.

    With no option, only show the settings, the slots in use and the requests the
    coordinator refused lately (``rejected_signals``): a read, not an update.
    """
    args = ctx.args
    if args.max_concurrent is None and args.history_size is None and not args.start:
        coordinator = await ctx.coordinator()
        return await _answered(ctx, await coordinator.get_configuration())
    request = ConfigureInput(
        max_concurrent_recoveries=args.max_concurrent,
        recent_history_size=args.history_size,
        orchestrator_running=True if args.start else None,
    )
    coordinator = await ctx.coordinator()
    return await coordinator.configure(request)


async def cmd_watch(ctx: Context) -> Any:
    """Show the status every ``--interval`` seconds (``--count`` times, or until Ctrl-C).

    On a terminal the table is redrawn in place; in a pipe (or with ``--json``) each
    refresh is printed after the last, so a script reads whole documents.
    """
    args = ctx.args
    out = render.console()
    shown = 0
    with ExitStack() as stack:
        live = None
        if out.is_terminal and not args.json:
            live = stack.enter_context(Live(console=out, auto_refresh=False))
        while args.count is None or shown < args.count:
            view = await _status_view(ctx)
            if live is None:
                render.show(view, args.json, out)
            else:
                at = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
                footer = Text(f"\n{at} · every {args.interval:g} s · Ctrl-C to stop", style="dim")
                live.update(Group(render.renderable(view), footer), refresh=True)
            shown += 1
            if args.count is None or shown < args.count:
                await asyncio.sleep(args.interval)
    return None


async def cmd_dev(ctx: Context) -> Any:
    """Run the embedded Temporal dev server and a worker until Ctrl-C."""
    from activities.health_checks import TargetAllowList
    from starter.dev import run_dev
    from starter.services_file import load_services_from_env
    from starter.worker_tuning import WorkerTuning

    # The worker's settings are bad input: said before anything starts, not after the banner.
    load_services_from_env()
    WorkerTuning.from_env()
    TargetAllowList.from_env()
    if await run_dev(ctx.args.port, ctx.args.ui_port, ctx.args.metrics_port):
        raise CliError("dev mode stopped because the server or the worker exited")
    return None


# ----- the command line -----------------------------------------------------------


@dataclass
class Settings:
    """What the top level parsed, shared by every subcommand (click's context object)."""

    json: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Invocation:
    """A parsed command, run after parsing: ``bounded`` says whether ``--timeout`` applies."""

    run: Command
    args: SimpleNamespace
    bounded: bool = True


def _note_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # Each level's --json only ever turns JSON on: `--json status` and `status --json` agree.
    if value:
        ctx.ensure_object(Settings).json = True


def _json_option() -> click.Option:
    return click.Option(
        ["--json"],
        is_flag=True,
        expose_value=False,
        callback=_note_json,
        help="print JSON for scripts (also accepted before the command)",
    )


def _examples(lines: Sequence[str]) -> str:
    # "\b" keeps click from rewrapping the examples into one paragraph.
    return "Examples:\n\n\b\n" + "\n".join(f"  $ {line}" for line in lines)


def _command(
    name: str,
    run: Command,
    summary: str,
    examples: Sequence[str],
    params: Sequence[click.Parameter] = (),
    *,
    details: str = "",
    fixed: dict[str, Any] | None = None,
    bounded: bool = True,
) -> click.Command:
    """Return a subcommand that parses into an ``Invocation`` of ``run``."""

    def callback(**values: Any) -> Invocation:
        settings = click.get_current_context().ensure_object(Settings)
        args = SimpleNamespace(**settings.options, **values, **(fixed or {}), json=settings.json)
        return Invocation(run, args, bounded)

    return click.Command(
        name,
        callback=callback,
        params=[*params, _json_option()],
        help=f"{summary}.\n\n{details}" if details else f"{summary}.",
        short_help=summary,
        epilog=_examples(examples),
    )


def _group(
    name: str, summary: str, examples: Sequence[str], commands: Sequence[click.Command]
) -> click.Group:
    return click.Group(
        name,
        commands=list(commands),
        params=[_json_option()],
        help=f"{summary}.",
        short_help=summary,
        epilog=_examples(examples),
    )


def _service_arg(required: bool = True) -> click.Argument:
    return click.Argument(["service"], required=required)


def _root(**options: Any) -> None:
    click.get_current_context().ensure_object(Settings).options = options


def build_cli() -> click.Group:
    """Return the ``recoveryctl`` command line."""
    policy_help = f"policy JSON, e.g. {POLICY_EXAMPLE}"
    demo = _command(
        "demo",
        cmd_demo,
        "A live demo: four services break and are recovered, in order",
        ["recoveryctl demo", "recoveryctl demo --exit-when-recovered --timeout 120 --json"],
        details="With no server at a local address it starts the embedded one and a worker.",
        bounded=False,  # it runs until recovered or stopped: no single answer to wait for
    )
    add_demo_arguments(demo)
    commands = [
        _command(
            "dev",
            cmd_dev,
            "Start the embedded Temporal server and a worker",
            [
                "recoveryctl dev",
                "recoveryctl dev --port 7244 --ui-port 8244 --metrics-port 9475",
            ],
            [
                click.Option(
                    ["--port"],
                    type=click.IntRange(1, 65535),
                    metavar="PORT",
                    default=7233,
                    show_default=True,
                ),
                click.Option(
                    ["--ui-port"],
                    type=click.IntRange(1, 65535),
                    metavar="PORT",
                    default=8233,
                    show_default=True,
                ),
                click.Option(
                    ["--metrics-port"],
                    type=click.IntRange(1, 65535),
                    metavar="PORT",
                    help="the worker's Prometheus port [default: $RECOVERY_METRICS_BIND, else 9464]",
                ),
            ],
            details="State lives under .recovery/; stopping and starting again resumes every recovery.",
            bounded=False,
        ),
        demo,
        _command(
            "schedule",
            cmd_schedule,
            "Schedule a service for recovery",
            [
                "recoveryctl schedule api --strategy manual --priority 2",
                f"recoveryctl schedule db --policy {POLICY_EXAMPLE}",
            ],
            [
                _service_arg(),
                click.Option(
                    ["--strategy"],
                    type=click.Choice([s.value for s in RecoveryStrategy]),
                    default=RecoveryStrategy.EXPONENTIAL_BACKOFF.value,
                    show_default=True,
                ),
                click.Option(
                    ["--priority"],
                    type=int,
                    default=1,
                    show_default=True,
                    help="lower is more urgent",
                ),
                click.Option(["--policy"], help=policy_help),
            ],
        ),
        _command(
            "execute",
            cmd_execute,
            "Start a scheduled recovery now and wait for its result",
            ["recoveryctl execute api", "recoveryctl execute api --no-wait --json"],
            [
                _service_arg(),
                click.Option(["--operator"], default="recoveryctl", show_default=True),
                click.Option(["--no-wait"], is_flag=True, help="return once started"),
            ],
            details="A recovery that has already finished gives its final result.",
        ),
        _command(
            "status",
            cmd_status,
            "Show the orchestrator's status, or one recovery's",
            ["recoveryctl status", "recoveryctl status api --json"],
            [_service_arg(required=False)],
            details=(
                "The overall status also lists running recoveries the coordinator does not "
                "know (started straight with the temporal CLI), marked as not coordinated."
            ),
        ),
        _command(
            "history",
            cmd_history,
            "List recent recoveries, or one recovery's attempts",
            ["recoveryctl history", "recoveryctl history api --json"],
            [_service_arg(required=False)],
        ),
        _command(
            "approve",
            cmd_approve,
            "Approve one attempt of a recovery awaiting an operator",
            ['recoveryctl approve api --operator alice --note "db is back"'],
            [
                _service_arg(),
                click.Option(["--operator"], required=True, help="who approves"),
                click.Option(["--note"], default="", help="why (kept in the attempt's record)"),
            ],
            details="A recovery in any other state is refused (exit 1), naming the state it is in.",
        ),
        _command(
            "cancel",
            cmd_cancel,
            "Cancel a queued or running recovery at once",
            ["recoveryctl cancel api --reason maintenance"],
            [
                _service_arg(),
                click.Option(["--reason"], default="cancelled by operator", show_default=True),
            ],
        ),
        _command(
            "pause",
            cmd_pause,
            "Hold automatic recovery off a service for a while",
            [
                'recoveryctl pause api --for 2h --reason "db migration"',
                "recoveryctl pause api --json",
            ],
            [
                _service_arg(),
                click.Option(
                    ["--for", "duration"],
                    type=duration_seconds,
                    metavar="DURATION",
                    default=f"{DEFAULT_PAUSE_SECONDS // 3600}h",
                    show_default=True,
                    help="how long: 90s, 30m, 2h, 1d or combinations (1h30m); at most 30d",
                ),
                click.Option(
                    ["--reason"],
                    default="paused by operator",
                    show_default=True,
                    help="why (shown in `recoveryctl status`)",
                ),
            ],
            details=(
                "While paused, nothing automatic (the circuit watch or any other trigger) "
                "schedules the service; an operator still can. Every pause ends by itself; "
                "pausing again replaces it; `recoveryctl resume` lifts it sooner."
            ),
        ),
        _command(
            "resume",
            cmd_resume,
            "Let automation schedule a service again",
            ["recoveryctl resume api", "recoveryctl resume api --json"],
            [_service_arg()],
            details=(
                "Lifts a pause, the cool-down after a failed recovery, or the hold an "
                "operator's cancel left, and says which; nothing to lift is no error."
            ),
        ),
        _group(
            "policy",
            "Get or set a service's recovery policy",
            ["recoveryctl policy get api", f"recoveryctl policy set api {POLICY_EXAMPLE}"],
            [
                _command(
                    "get",
                    cmd_policy_get,
                    "Show a service's policy (the default one if unset)",
                    ["recoveryctl policy get api --json"],
                    [_service_arg()],
                ),
                _command(
                    "set",
                    cmd_policy_set,
                    "Set a service's policy",
                    [f"recoveryctl policy set api {POLICY_EXAMPLE}"],
                    [_service_arg(), click.Argument(["policy"])],
                    details=f"POLICY is {policy_help}.",
                ),
            ],
        ),
        _command(
            "configure",
            cmd_configure,
            "Show settings and refused requests; change slots or history size; --start after a stop",
            [
                "recoveryctl configure",
                "recoveryctl configure --max-concurrent 3",
                "recoveryctl configure --start",
            ],
            [
                click.Option(["--max-concurrent"], type=int, help="recoveries running at once"),
                click.Option(["--history-size"], type=int, help="finished recoveries kept"),
                click.Option(["--start"], is_flag=True, help="report running again after a stop"),
            ],
        ),
        _command(
            "watch",
            cmd_watch,
            "Show the status live, refreshed every few seconds",
            ["recoveryctl watch", "recoveryctl watch --interval 5 --count 3 --json"],
            [
                click.Option(
                    ["--interval"],
                    type=positive_seconds,
                    metavar="SECONDS",
                    default=2.0,
                    show_default=True,
                    help="seconds between refreshes",
                ),
                click.Option(
                    ["--count"], type=click.IntRange(min=1), help="stop after this many refreshes"
                ),
            ],
            details="Redrawn in place on a terminal; printed one after the other in a pipe.",
            bounded=False,
        ),
        _command(
            "breakers",
            cmd_breakers,
            "List every circuit breaker: state, counters, open for",
            [
                "recoveryctl breakers",
                "recoveryctl breakers --store redis://localhost:6379/0 --json",
            ],
            [
                click.Option(
                    ["--store"],
                    help="store URL (default $RECOVERY_CIRCUIT_STORE, else the SQLite file)",
                )
            ],
        ),
        _group(
            "watch-breakers",
            "Enable, disable or show the circuit watch",
            [
                'recoveryctl watch-breakers disable --note "db failover"',
                "recoveryctl watch-breakers status",
            ],
            [
                _command(
                    action,
                    cmd_watch_breakers,
                    text,
                    [
                        f"recoveryctl watch-breakers {action}"
                        + (' --note "db failover"' if action == "disable" else "")
                    ],
                    []
                    if action == "status"
                    else [
                        click.Option(["--note"], help="why (shown by watch-breakers status and the Web UI)")
                    ],
                    fixed={"watch_command": action},
                )
                for action, text in (
                    ("enable", "Resume the watch"),
                    ("disable", "Pause the watch (nothing new is scheduled from open breakers)"),
                    ("status", "Show whether it runs, how often, and with which services file"),
                )
            ],
        ),
    ]
    return click.Group(
        PROG,
        commands=commands,
        callback=_root,
        params=[
            _json_option(),
            click.Option(
                ["--address"],
                metavar="HOST:PORT",
                help="Temporal server (default $TEMPORAL_ADDRESS, else the profile, else localhost:7233)",
            ),
            click.Option(
                ["--namespace"],
                help="Temporal namespace (default $TEMPORAL_NAMESPACE, else the profile, else default)",
            ),
            click.Option(
                ["--profile"],
                help="profile of the Temporal client config file (default $TEMPORAL_PROFILE, else default)",
            ),
            click.Option(
                ["--timeout"],
                type=positive_seconds,
                metavar="SECONDS",
                default=30.0,
                show_default=True,
                help="seconds to wait for an answer",
            ),
            click.Option(["--coordinator-id"], default=COORDINATOR_WORKFLOW_ID, hidden=True),
            click.Option(["--task-queue"], default=TASK_QUEUE, hidden=True),
        ],
        help=ROOT_HELP,
        epilog=_examples(
            [
                "recoveryctl status",
                "recoveryctl --json status",
                "recoveryctl --address temporal.internal:7233 watch",
            ]
        ),
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )


cli = build_cli()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``recoveryctl``."""
    _exit(run(argv))


# Python warnings that libraries print while a command runs, which are not for operators
# (one line on stderr per failure): (message start, category, issuing module).
QUIET_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # `--address http://host:7233`: the SDK still connects, and says it will stop doing so.
    ("Target host as URL with scheme", UserWarning, r"temporalio\.service"),
)


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return its exit code.

    The warnings in ``QUIET_WARNINGS`` are silenced for the command only: the caller's
    warning filters are as they were once it returns.
    """
    with warnings.catch_warnings():
        for message, category, module in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        parsed = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as err:
        return _fail(2, _usage_message(err))
    except click.ClickException as err:
        return _fail(err.exit_code, err.format_message())
    except click.Abort:
        return 130
    if not isinstance(parsed, Invocation):  # --help: already printed
        return parsed if isinstance(parsed, int) else 0
    options = parsed.args
    try:
        apply_connection_flags(options.address, options.namespace, options.profile)
        result = asyncio.run(_run_with_timeout(parsed))
        if result is not None:
            render.show(result, options.json, render.console())
        if isinstance(result, RecoveryResult) and not result.success:
            return 1  # the recovery waited for (`execute`) did not succeed: said above
    except BrokenPipeError:  # `recoveryctl status | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")
    except ValidationError as err:
        return _fail(2, describe_validation_error(err))
    except (ValueError, UnknownService) as err:  # RecoveryValidationError among them
        return _fail(2, err)
    except Unreachable as err:
        return _fail(3, err)
    except RPCError as err:
        return _fail(_rpc_exit_code(err), err)
    except (CliError, RecoveryOrchestratorError, TemporalError, RuntimeError) as err:
        return _fail(1, err)
    except KeyboardInterrupt:
        return 130
    return 0


def _rpc_exit_code(err: RPCError) -> int:
    """Return 3 for a server out of reach, 2 for a namespace that does not exist, else 1."""
    if err.status is RPCStatusCode.UNAVAILABLE:
        return 3
    if err.status is RPCStatusCode.NOT_FOUND and err.message.lower().startswith("namespace"):
        return 2  # a mistyped --namespace / TEMPORAL_NAMESPACE is bad input
    return 1


def _usage_message(err: click.UsageError) -> str:
    """Return click's complaint as one line, pointing at the command's ``--help``."""
    where = err.ctx.command_path if err.ctx is not None else PROG
    if isinstance(err, NoArgsIsHelpError):
        message = "a command is needed"
    elif (
        isinstance(err, click.BadParameter)
        and not isinstance(err, click.MissingParameter)
        and err.param
    ):
        name = (
            "/".join(err.param.opts)
            if isinstance(err.param, click.Option)
            else err.param.human_readable_name
        )
        message = f"{name}: {err.message}"
    else:
        message = err.format_message()
    return f"{message} (see `{where} --help`)"


async def _run_with_timeout(invocation: Invocation) -> Any:
    args = invocation.args
    if not invocation.bounded:
        return await invocation.run(Context(args))
    task = asyncio.ensure_future(invocation.run(Context(args)))
    done, _ = await asyncio.wait({task}, timeout=args.timeout)
    if task in done:
        return task.result()
    # The SDK turns a cancelled wait into its own error: what matters is that time ran out.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise CliError(
        f"no answer within {args.timeout:g}s: is a worker polling task queue "
        f"{args.task_queue!r}? A change this command sent may still take effect; to wait "
        f"longer, raise --timeout"
    )


def _fail(code: int, err: BaseException | str) -> int:
    # One line: a message of several lines (a services file's problems) joins with "; ".
    lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
    message = "; ".join(lines) or type(err).__name__
    print(f"{PROG}: error: {redact(message)}", file=sys.stderr)
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
