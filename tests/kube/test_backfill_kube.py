"""Backfill on the Kubernetes backend (the fake API server; tickets on the real Redis): a director
that follows the GameServers through an informer fills a running match's free slot, and every
request it makes to the API server is one the Helm chart's matchmaker Role grants.

The fake API server does not enforce RBAC: the verbs are checked from its request log instead."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

import pytest
import redis.asyncio as aioredis
from kubernetes_asyncio import client

from fleetmatch.backends.kube.store import KubeStore
from fleetmatch.informer import Informer
from fleetmatch.models import GameServer
from fleetmatch.tasks import cancel_and_wait
from matchmaker.backfill import PLAYER_TEAMS_ANNOTATION, PLAYERS_LIST
from matchmaker.backfiller import Backfiller
from matchmaker.backfills import RedisBackfillStore
from matchmaker.models import TicketState
from matchmaker.tickets import RedisTicketStore
from tests.deploy.test_chart import FULL, find, render
from tests.integration.test_backfill import QUEUE, player, queued, running_match
from tests.kube.fakekube import FakeKube, RecordedRequest

pytestmark = pytest.mark.timeout(30)
GAMESERVERS = "/apis/fleetmatch.dev/v1/namespaces/default/gameservers"


def verb(request: RecordedRequest) -> str:
    """The RBAC verb of a request on ``GAMESERVERS`` (a sub-resource such as /status is its own resource)."""
    rest = request.path.removeprefix(GAMESERVERS).strip("/")
    if "/" in rest:
        return f"{request.method} {request.path}: a sub-resource"
    if request.method == "GET":
        watch = parse_qs(request.query).get("watch", [""])[0].lower() in ("true", "1")
        return "get" if rest else ("watch" if watch else "list")
    return {"PUT": "update", "PATCH": "patch", "POST": "create", "DELETE": "delete"}[request.method]


async def test_a_director_backfills_with_only_the_verbs_the_chart_grants(
    fake_kube: FakeKube, kube_api: client.ApiClient, redis_client: aioredis.Redis
) -> None:
    gameservers: KubeStore[GameServer] = KubeStore(kube_api, GameServer, "default")
    await running_match(gameservers)  # p7 left: team 1 has a free slot
    tickets = RedisTicketStore(redis_client)
    [near] = await queued(tickets, [player("near", 1550)])
    fake_kube.requests.clear()  # from here on: the director's requests only

    informer = Informer(gameservers)
    filler = Backfiller(RedisBackfillStore(tickets), gameservers, QUEUE)
    filler.follow(informer)
    task = asyncio.create_task(informer.run(), name="test.backfill-informer")
    try:
        await informer.synced.wait()
        await filler.scan()
        await filler.fill(await tickets.pool("4v4"))
    finally:
        await cancel_and_wait(task)
    requests = list(fake_kube.requests)

    got = await tickets.get(near)
    assert got.state is TicketState.MATCHED and got.assignment is not None and got.assignment.backfill_id
    gs = await gameservers.get("arena-0")
    assert "near" in gs.status.lists[PLAYERS_LIST].values
    assert json.loads(gs.metadata.annotations[PLAYER_TEAMS_ANNOTATION])["near"] == 1
    used = {verb(r) for r in requests if r.path.startswith(GAMESERVERS)}
    assert {"list", "watch", "get", "update"} <= used  # followed, read and written back
    assert not [r for r in requests if not r.path.startswith(GAMESERVERS)]  # nothing but GameServers
    [rule] = find(render("defaults"), "Role", f"{FULL}-matchmaker")["rules"]
    assert rule["resources"] == ["gameservers"] and used <= set(rule["verbs"])
