"""``recoveryctl``'s entry point: parse, run under ``--timeout``, print, exit.

Every call goes through the same typed client as the Python facade
(``starter.client.coordinator_client``); every failure is one line on stderr with the
exit code ``starter.cli.exit_codes`` gives it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings

import click
from click.exceptions import NoArgsIsHelpError

from starter.cli import render
from starter.cli.app import cli
from starter.cli.context import apply_connection_flags
from starter.cli.exit_codes import BAD_INPUT, FAILED, INTERRUPTED, OK, PROG, exit_code, fail
from starter.cli.options import Invocation
from starter.cli.timeout import run_bounded
from workflows.models import RecoveryResult

# Python warnings that libraries print while a command runs, which are not for operators
# (one line on stderr per failure): (message start, category, issuing module).
QUIET_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    # `--address http://host:7233`: the SDK still connects, and says it will stop doing so.
    ("Target host as URL with scheme", UserWarning, r"temporalio\.service"),
)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``recoveryctl``."""
    _exit(run(argv))


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
        return fail(BAD_INPUT, _usage_message(err))
    except click.ClickException as err:
        return fail(err.exit_code, err.format_message())
    except click.Abort:
        return INTERRUPTED
    if not isinstance(parsed, Invocation):  # --help: already printed
        return parsed if isinstance(parsed, int) else OK
    options = parsed.options
    try:
        apply_connection_flags(options.address, options.namespace, options.profile)
        result = asyncio.run(run_bounded(parsed))
        if result is not None:
            render.show(result, options.json, render.console())
        if isinstance(result, RecoveryResult) and not result.success:
            return FAILED  # the recovery waited for (`execute`) did not succeed: said above
    except BrokenPipeError:  # `recoveryctl status | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as err:
        code = exit_code(err)
        if code is None:
            raise
        return fail(code, err)
    return OK


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


def _exit(code: int) -> None:
    """Exit without interpreter finalization.

    The Temporal client's native runtime can crash while Python tears down its
    threads at exit (seen as SIGSEGV/SIGABRT after the work was done); a CLI has
    nothing left to finalize once its output is flushed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
