"""The group's argument handling: global options lifted from after the subcommand, and only those."""

from __future__ import annotations

import click
import pytest

from fleetmatch.cli import cli
from fleetmatch.cli.group import lift_global_options


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["gs", "list"], ["gs", "list"]),
        (["gs", "list", "-n", "ns"], ["-n", "ns", "gs", "list"]),
        (["gs", "list", "-nns"], ["-n", "ns", "gs", "list"]),
        (["gs", "list", "--namespace=ns", "-o", "wide"], ["--namespace", "ns", "gs", "list", "-o", "wide"]),
        (["-n", "a", "gs", "-n", "b", "list"], ["-n", "a", "-n", "b", "gs", "list"]),
        (
            ["gs", "list", "--redis-url", "redis://x:1", "--data-dir", "/d", "--log-level", "DEBUG"],
            ["--redis-url", "redis://x:1", "--data-dir", "/d", "--log-level", "DEBUG", "gs", "list"],
        ),
        (["--log-format", "json", "gs", "list", "-n", "x"], ["--log-format", "json", "-n", "x", "gs", "list"]),
        # a value of the command's own option is not taken for a global option
        (["gs", "list", "--fleet", "-n"], ["gs", "list", "--fleet", "-n"]),
        (["gs", "list", "-l", "--namespace"], ["gs", "list", "-l", "--namespace"]),
        # after --, and for commands that pass their arguments on, nothing is touched
        (["gs", "get", "--", "-n"], ["gs", "get", "--", "-n"]),
        (["sidecar", "-n", "x"], ["sidecar", "-n", "x"]),
        (["gs", "list", "-n"], ["gs", "list", "-n"]),  # the parser says the value is missing
        (["nosuchcommand", "-n", "x"], ["nosuchcommand", "-n", "x"]),
    ],
)
def test_lift_global_options(args: list[str], expected: list[str]) -> None:
    with click.Context(cli, **cli.context_settings) as ctx:  # as make_context would: click caches the help option
        assert lift_global_options(cli, ctx, args) == expected


def test_a_command_that_has_its_own_n_keeps_it() -> None:
    @click.group()
    def root() -> None: ...

    @root.command()
    @click.option("-n", "count")
    def repeat(count: str) -> None: ...

    @root.command()
    def other() -> None: ...

    with click.Context(root) as ctx:
        assert lift_global_options(root, ctx, ["repeat", "-n", "3"]) == ["repeat", "-n", "3"]
        assert lift_global_options(root, ctx, ["other", "-n", "3"]) == ["-n", "3", "other"]
