"""Allocating from a fleet that does not exist says so (404 FleetNotFound, the allocation still
UnAllocated as Agones answers), on the real Redis-backed allocator; a fleet that exists but has
nothing free, or no servers at all, is still the usual 429. ``fleetmatch allocate`` tells the two
apart in one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerSelector
from fleetmatch.allocator_client import AllocatorClient, AllocatorError
from fleetmatch.backends.base import Backend
from fleetmatch.models import FLEET_LABEL
from tests.integration.test_allocator_api import TOKEN, Api, api, fleet_request, ready_servers, until_indexed
from tests.integration.test_autoscaler import make_fleet
from tests.integration.test_ticket_cli import fleetmatch

__all__ = ["api"]  # fixture


async def test_a_fleet_that_does_not_exist_is_404_naming_the_selector(api: Api) -> None:
    status, body = await api.post(fleet_request("arnea"))
    assert status == 404, body
    assert body["error"] == {
        "code": "FleetNotFound",
        "message": 'fleet "arnea" does not exist',
        "field": f"spec.selectors[0].matchLabels.{FLEET_LABEL}",
    }
    assert body["status"]["state"] == "UnAllocated"  # the GameServerAllocation answer is Agones'


async def test_an_existing_fleet_with_no_servers_is_429_not_missing(api: Api, backend: Backend) -> None:
    await backend.fleets.create(make_fleet("empty", replicas=0))
    status, body = await api.post(fleet_request("empty"))
    assert status == 429, body
    assert body["error"]["code"] == "UnAllocated" and body["status"]["state"] == "UnAllocated"


async def test_a_full_fleet_is_429_even_without_its_fleet_object(api: Api) -> None:
    """Servers that carry the fleet's label make it exist (a deleted Fleet's servers drain)."""
    await ready_servers(api.store, 1)
    await until_indexed(api, 1)
    assert (await api.post(fleet_request()))[0] == 201
    status, body = await api.post(fleet_request())
    assert status == 429, body


@pytest.mark.parametrize(
    "selectors",
    [
        pytest.param([{"matchLabels": {"mode": "ranked"}}], id="no-fleet-named"),
        pytest.param([{"matchLabels": {FLEET_LABEL: "gone"}}, {"matchLabels": {FLEET_LABEL: "here"}}], id="one-exists"),
    ],
)
async def test_selectors_that_may_match_something_are_429(
    api: Api, backend: Backend, selectors: list[dict[str, Any]]
) -> None:
    await backend.fleets.create(make_fleet("here", replicas=0))
    status, body = await api.post({"spec": {"selectors": selectors}})
    assert status == 429, body


async def test_with_several_missing_fleets_the_first_is_named(api: Api) -> None:
    selectors = [{"matchLabels": {FLEET_LABEL: "a"}}, {"matchLabels": {FLEET_LABEL: "b"}}]
    status, body = await api.post({"spec": {"selectors": selectors}})
    assert status == 404 and body["error"]["field"] == f"spec.selectors[0].matchLabels.{FLEET_LABEL}"


async def test_the_python_client_raises_fleet_not_found(api: Api, backend: Backend) -> None:
    async with AllocatorClient(api.service.url, TOKEN) as client:
        with pytest.raises(AllocatorError) as info:
            await client.allocate(GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("nope"),)))
        assert (info.value.status, info.value.code, info.value.message) == (
            404,
            "FleetNotFound",
            'fleet "nope" does not exist',
        )
        fleet = make_fleet("later", replicas=0)
        await backend.fleets.create(fleet)
        spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet(fleet.name),))
        assert (await client.allocate(spec)).state is AllocationState.UNALLOCATED


async def test_the_cli_tells_a_missing_fleet_from_a_full_one(api: Api, backend: Backend, tmp_path: Path) -> None:
    target = ("--url", api.service.url, "--token", TOKEN)
    code, out, err = await fleetmatch(tmp_path, "allocate", "--fleet", "nope", *target)
    assert (code, out) == (1, "")
    assert err == 'error: fleet "nope" does not exist (see `fleetmatch fleet list`)\n'

    await backend.fleets.create(make_fleet("empty", replicas=0))
    code, out, err = await fleetmatch(tmp_path, "allocate", "--fleet", "empty", *target)
    assert (code, out) == (1, "")
    assert err.startswith('error: no Ready game server in fleet "empty" is free: ') and len(err.splitlines()) == 1
    assert "fleetmatch fleet scale empty <replicas>" in err

    await ready_servers(api.store, 1)
    await until_indexed(api, 1)
    code, out, err = await fleetmatch(tmp_path, "allocate", "--fleet", "arena", *target, "-o", "name")
    assert (code, out) == (0, "gameserver/arena-000\n"), err


async def test_the_cli_allocates_only_in_the_namespace_it_was_given(api: Api, tmp_path: Path) -> None:
    """`fleetmatch -n other allocate` was served from the allocator's own namespace (a server of
    `default`); now the allocator refuses it in one line, and -n naming its own namespace works."""
    target = ("--url", api.service.url, "--token", TOKEN)
    await ready_servers(api.store, 1)
    await until_indexed(api, 1)
    code, out, err = await fleetmatch(tmp_path, "-n", "other", "allocate", "--fleet", "arena", *target)
    assert (code, out) == (1, ""), err
    why = "this allocator serves namespace 'default', not 'other'"
    assert err == f"error: allocator: 422 Invalid (metadata.namespace): {why}\n"
    code, out, err = await fleetmatch(tmp_path, "-n", "default", "allocate", "--fleet", "arena", *target, "-o", "name")
    assert (code, out) == (0, "gameserver/arena-000\n"), err
