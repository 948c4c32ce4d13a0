"""How a ``recoveryctl`` command is declared: click's own decorators, and ``command``.

A command is an ``async def body(ctx, **values)`` under click's ``@click.option`` /
``@click.argument`` decorators, made a command by ``@command(...)``::

    @command("resume", "Let automation schedule a service again", ["recoveryctl resume api"])
    @service_argument()
    async def resume(ctx: Context, service: str) -> ResumeServiceResult: ...

Parsing a command returns an ``Invocation`` instead of running it: ``starter.cli.entry``
then runs it under ``--timeout`` and one exit-code rule, so a parse error and a failed
operation are told apart. Every command and group takes ``--json``, also before the
command.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from starter.cli.context import Context, Options

Body = Callable[..., Awaitable[Any]]


@dataclass
class Invocation:
    """A parsed command, run after parsing: ``bounded`` says whether ``--timeout`` applies."""

    run: Callable[[Context], Awaitable[Any]]
    options: Options
    bounded: bool = True


def _note_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # Each level's --json only ever turns JSON on: `--json status` and `status --json` agree.
    if value:
        ctx.ensure_object(Options).json = True


def json_flag() -> click.Option:
    """Return the ``--json`` flag every level takes."""
    return click.Option(
        ["--json"],
        is_flag=True,
        expose_value=False,
        callback=_note_json,
        help="print JSON for scripts (also accepted before the command)",
    )


def examples(lines: Sequence[str]) -> str:
    """Return a help epilog listing example command lines."""
    # "\b" keeps click from rewrapping the examples into one paragraph.
    return "Examples:\n\n\b\n" + "\n".join(f"  $ {line}" for line in lines)


def command(
    name: str,
    summary: str,
    example_lines: Sequence[str],
    *,
    details: str = "",
    bounded: bool = True,
) -> Callable[[Body], click.Command]:
    """Make ``async def body(ctx, **values)`` the subcommand ``name``.

    Args:
        name: The command's name.
        summary: One line, shown in the parent's list and atop the help.
        example_lines: Command lines shown under "Examples:".
        details: More help, after the summary.
        bounded: Whether ``--timeout`` bounds it (not for a command that runs until stopped).
    """

    def decorate(body: Body) -> click.Command:
        def parsed(**values: Any) -> Invocation:
            options = click.get_current_context().ensure_object(Options)
            return Invocation(functools.partial(body, **values), options, bounded)

        # click's decorators left the body's parameters there, the last-applied first.
        declared = reversed(getattr(body, "__click_params__", []))
        return click.command(
            name,
            params=[*declared, json_flag()],
            help=f"{summary}.\n\n{details}" if details else f"{summary}.",
            short_help=summary,
            epilog=examples(example_lines),
        )(parsed)

    return decorate


def group(
    name: str, summary: str, example_lines: Sequence[str], commands: Sequence[click.Command]
) -> click.Group:
    """Return the command group ``name`` holding ``commands``."""
    return click.Group(
        name,
        commands=list(commands),
        params=[json_flag()],
        help=f"{summary}.",
        short_help=summary,
        epilog=examples(example_lines),
    )


def service_argument(required: bool = True) -> Callable[[Body], Body]:
    """Return the ``SERVICE`` argument decorator."""
    return click.argument("service", required=required)
