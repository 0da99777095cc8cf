"""The CLI's and the directors' clients against an API that accepts connections and never answers
(its store stopped, the process wedged): each gives up after its own limit with an error that says
so, instead of waiting, unsaid, for aiohttp's five minutes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from fleetmatch.allocation import GameServerAllocationSpec, GameServerSelector
from fleetmatch.allocator_client import AllocatorClient, AllocatorError
from fleetmatch.cli import tickets
from fleetmatch.cli.tickets import TicketApiError, ticket_call


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An HTTP address whose connections complete (in the kernel's backlog) and get no answer."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


async def test_a_ticket_request_gives_up_and_says_it_may_have_landed(
    silent_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tickets, "ANSWER_SECONDS", 0.3)
    with pytest.raises(TicketApiError) as create:
        await ticket_call("POST", f"{silent_url}/v1/tickets", "token", {"queue": "duel"})
    assert f"the ticket API at {silent_url} did not answer within 0.3s" in str(create.value)
    assert "may still take effect" in str(create.value)
    with pytest.raises(TicketApiError) as poll:  # a long poll gets its wait on top
        await ticket_call("GET", f"{silent_url}/v1/tickets/t1?wait=0.2", "token", wait=0.2)
    assert "did not answer within 0.5s;" in str(poll.value) and "may still" not in str(poll.value)


async def test_an_allocation_gives_up_after_its_attempts_and_names_the_timeout(silent_url: str) -> None:
    spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),))
    async with AllocatorClient(silent_url, "token", timeout=0.3, retries=1) as client:
        with pytest.raises(AllocatorError) as failed:
            await client.allocate(spec)
    assert (failed.value.status, failed.value.code) == (0, "Timeout")
    assert f"{silent_url} did not answer within 0.3s" in str(failed.value)
