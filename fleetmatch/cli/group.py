"""The ``fleetmatch`` group's behaviour: one error style, and global options anywhere on the line.

Every error, ours or click's, is one ``error: ...`` line on stderr with a non-zero exit (click's
usage errors keep their hint, on the same line). Global options (``-n``, ``--redis-url``...) are
accepted after the subcommand too, as kubectl accepts ``kubectl get pods -n ns``: they are lifted
in front of the subcommand before parsing, unless the subcommand has an option of that name itself.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from fleetmatch.errors import FleetmatchError, ValidationError

GLOBAL_OPTIONS = ("--redis-url", "--data-dir", "--namespace", "-n", "--log-level", "--log-format")
"""The group's options that take a value (all of them do)."""


def _own_options(command: click.Command, ctx: click.Context) -> tuple[set[str], set[str]]:
    """(every option string of ``command``, those that take a value)."""
    names: set[str] = set()
    valued: set[str] = set()
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            opts = {*param.opts, *param.secondary_opts}
            names |= opts
            if not param.is_flag and not param.count:
                valued |= set(param.opts)
    return names, valued


def _passes_args_on(command: click.Command) -> bool:
    """A command that hands its arguments to another program (``sidecar``): leave them alone."""
    settings = command.context_settings
    return bool(command.ignore_unknown_options or settings.get("ignore_unknown_options"))


def _split_global(token: str) -> tuple[str, str | None] | None:
    """(option, inline value) if ``token`` is a global option (``--opt``, ``--opt=v``, ``-nVALUE``)."""
    name, eq, value = token.partition("=")
    if name in GLOBAL_OPTIONS and name.startswith("--"):
        return name, value if eq else None
    if token == "-n":
        return "-n", None
    if token.startswith("-n") and not token.startswith("--"):
        return "-n", token[2:].removeprefix("=")
    return None


def lift_global_options(group: click.Group, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """``args`` with the global options found after the subcommand moved in front of it."""
    args = list(args)
    # the group's own options come first; find where the subcommand starts
    start = 0
    group_valued = {o for p in group.get_params(ctx) if isinstance(p, click.Option) and not p.is_flag for o in p.opts}
    while start < len(args) and args[start].startswith("-") and args[start] != "--":
        start += 2 if args[start] in group_valued else 1
    if start >= len(args):
        return args
    command: click.Command | None = group.get_command(ctx, args[start])
    lifted: list[str] = []
    rest: list[str] = []
    owned: set[str] = set()
    valued: set[str] = set()
    i = start + 1
    while i < len(args):
        token = args[i]
        if isinstance(command, click.Group) and not token.startswith("-"):
            command = command.get_command(ctx, token)
            owned = set()
            rest.append(token)
            i += 1
            continue
        if command is None or _passes_args_on(command) or token == "--":
            rest += args[i:]
            break
        if not owned:
            owned, valued = _own_options(command, ctx)
        found = _split_global(token)
        if found is not None and found[0] not in owned and token.partition("=")[0] not in owned:
            option, value = found
            if value is None:
                if i + 1 >= len(args):
                    rest.append(token)  # let the parser say the value is missing
                    break
                value = args[i + 1]
                i += 1
            lifted += [option, value]
        else:
            rest.append(token)
            if token in valued and i + 1 < len(args):
                rest.append(args[i + 1])
                i += 1
        i += 1
    return [*args[:start], *lifted, args[start], *rest]


def _one_line(exc: click.ClickException) -> str:
    message = exc.format_message()
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        return f"error: {message} (see '{exc.ctx.command_path} -h')"
    return f"error: {message}"


class FleetmatchGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, lift_global_options(self, ctx, args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except FleetmatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's ``main``, its errors printed as one ``error:`` line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            if type(exc).show is not click.UsageError.show and isinstance(exc, click.UsageError):
                exc.show()  # a usage "error" that is the help itself (a group run without a command)
            else:
                click.echo(_one_line(exc), err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)
