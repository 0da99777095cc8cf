"""The resource commands run through click's CliRunner (or as processes) against the session's real
Redis, seeded through ``open_backend`` stores as the stack would write them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result

from fleetmatch.backends import Backend, open_backend
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.cli import cli
from fleetmatch.models import (
    FLEET_LABEL,
    CounterStatus,
    FleetSpec,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    PortStatus,
    ProcessTemplate,
)
from fleetmatch.settings import Settings

T = TypeVar("T")


@dataclass
class Cli:
    """``fleetmatch`` with REDIS_URL and a private data dir, and a way to write to its Redis."""

    redis_url: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        return {
            "REDIS_URL": self.redis_url,
            "FLEETMATCH_DATA_DIR": str(self.data_dir),
            "FLEETMATCH_LOG_LEVEL": "WARNING",
        }

    def __call__(self, *args: str, **env: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={**self.env(), **env}, prog_name="fleetmatch")

    def seed(self, body: Callable[[Backend], Awaitable[T]]) -> T:
        async def main() -> T:
            settings = Settings.from_env({"REDIS_URL": self.redis_url})
            async with open_backend(settings, client_name="tests") as backend:
                return await body(backend)

        return asyncio.run(main())


@pytest.fixture
def fm(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Cli]:
    async def flush() -> None:
        client = connect(redis_server.url, name="tests")
        await client.flushall()
        await client.aclose()

    asyncio.run(flush())
    yield Cli(redis_server.url, tmp_path / "data")


def server(name: str, state: GameServerState, *, fleet: str = "arena", port: int = 7001, **labels: str) -> GameServer:
    meta = ObjectMeta(name=name, labels={FLEET_LABEL: fleet, **labels} if fleet else labels)
    gs = GameServer(meta, GameServerSpec(counters={"rooms": CounterStatus(1, 4)}))
    return gs.with_status(state=state, address="10.0.0.7", node_name="node-a", ports=(PortStatus("default", port),))


async def put(backend: Backend, *servers: GameServer) -> None:
    """Create each server and then set its status, as a node agent would."""
    for gs in servers:
        created = await backend.gameservers.create(
            replace(gs, status=replace(gs.status, state=GameServerState.CREATING))
        )
        await backend.gameservers.update(replace(created, status=gs.status))


def fleet_spec(replicas: int) -> FleetSpec:
    process = ProcessTemplate(command=("python3", "-c", "pass"))
    return FleetSpec(replicas=replicas, template=GameServerTemplate(spec=GameServerSpec(process=process)))


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:]]
