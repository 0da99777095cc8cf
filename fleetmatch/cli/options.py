"""What the CLI's commands share: their settings, common options, the backend they talk to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetmatch.backends import Backend, open_backend
from fleetmatch.cli.selectors import Requirement, SelectorError, parse
from fleetmatch.errors import BackendError, ConfigError, NotFoundError
from fleetmatch.models import GameServerState
from fleetmatch.running import run
from fleetmatch.settings import Settings
from fleetmatch.stackfile import STACK_FILE, stack_or_env_redis_url

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
ANSWER_SECONDS = 5.0
"""How long a command waits for the store's first answer. A stopped or wedged Redis still accepts
connections (the kernel does), and the client has no socket timeout: without this, a command
would wait for it silently, for ever."""


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


output_option = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")


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


def redis_origin(settings: Settings) -> str:
    """Where the CLI's Redis URL comes from, for error messages (call before ``backend_settings``)."""
    if settings.redis.url:
        return "REDIS_URL/--redis-url"
    return str(settings.data_dir / STACK_FILE)


def check_redis_url(url: str, origin: str, schemes: tuple[str, ...] = REDIS_SCHEMES) -> None:
    """One line naming the setting, where redis-py would raise a ValueError with a traceback."""
    if not url.startswith(schemes):
        raise ConfigError(f"{origin}={url!r} is not a Redis URL (expected {', '.join(schemes)}...)")


def with_backend(settings: Settings, body: Callable[[Backend], Awaitable[T]], *, service: bool = False) -> T:
    """Run ``body`` against the configured backend (the running stack's Redis by default); an
    unreachable or silent Redis is one line naming the URL and where it came from."""
    origin = redis_origin(settings)
    resolved = backend_settings(settings)
    url = resolved.redis.url or ""
    if resolved.backend == "redis":
        check_redis_url(url, origin)

    async def main() -> T:
        async with open_backend(resolved, client_name="fleetmatch-cli") as backend:
            try:
                async with asyncio.timeout(ANSWER_SECONDS):
                    await backend.ping()
            except TimeoutError:
                raise BackendError(f"no answer within {ANSWER_SECONDS:g}s (stopped, or too busy to answer)") from None
            return await body(backend)

    try:
        return run(main(), service=service)
    except NotFoundError as exc:  # one wording for every command: 'fleet "x" not found'
        raise NotFoundError(exc.kind.lower(), exc.name) from None
    except BackendError as exc:
        if resolved.backend != "redis":
            raise
        why = str(exc).rstrip(".")
        raise BackendError(
            f"cannot use the Redis at {url} (from {origin}): {why}; is the stack running? start it with "
            "`fleetmatch up`, or point REDIS_URL/--redis-url at a running Redis"
        ) from None


def _selector(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[Requirement, ...]:
    try:
        return parse(value or "")
    except SelectorError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


selector_option = click.option(
    "--selector",
    "-l",
    "selector",
    callback=_selector,
    help="Only objects whose labels match: k=v, k==v, k!=v, k (has k), !k (lacks k); commas AND them.",
)


def _states(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> frozenset[GameServerState]:
    by_name = {s.value.lower(): s for s in GameServerState}
    states = set()
    for name in (n.strip() for v in values for n in v.split(",")):
        if name.lower() not in by_name:
            valid = ", ".join(s.value for s in GameServerState)
            raise click.BadParameter(f"unknown state {name!r}; valid states: {valid}", ctx, param)
        states.add(by_name[name.lower()])
    return frozenset(states)


state_option = click.option(
    "--state",
    "states",
    multiple=True,
    callback=_states,
    help="Only servers in this state (Ready, Allocated...; case-insensitive; repeatable or comma-separated).",
)


def watch_options(command: F) -> F:
    """``--watch/-w`` and ``--watch-only``, as kubectl's."""
    command = click.option("--watch-only", is_flag=True, help="Print only the changes from now on, until Ctrl-C.")(
        command
    )
    return click.option("--watch", "-w", is_flag=True, help="After the list, print a row per change until Ctrl-C.")(
        command
    )
