"""What the CLI's commands share: the group that turns domain errors into one line, options, tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from fleetmatch.errors import FleetmatchError, ValidationError
from fleetmatch.settings import Settings
from fleetmatch.stackfile import stack_or_env_redis_url


class FleetmatchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except FleetmatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


output_option = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")


def age(created: float | None, now: float) -> str:
    if created is None:
        return "-"
    seconds = max(0, int(now - created))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def key_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        out[key] = value
    return out


filename_option = click.option(
    "--filename", "-f", "path", required=True, type=click.Path(path_type=Path), help="YAML file."
)


def backend_settings(settings: Settings) -> Settings:
    """``settings`` with the running stack's Redis filled in when the Redis backend has none set."""
    if settings.redis.url or settings.backend != "redis":
        return settings
    return replace(settings, redis=replace(settings.redis, url=stack_or_env_redis_url(settings)))
