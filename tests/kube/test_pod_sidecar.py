"""The in-pod SDK sidecar (``sdk_sidecar.pod``) and its thin Kubernetes store (``fleetmatch.backends.kube.podstore``)
against the fake API server.

The store tests run in this process. The sidecar tests run it as a real separate process configured
as in a Pod (``GAMESERVER_NAME``, ``POD_NAMESPACE``, ``AGONES_SDK_*_PORT``, ``HEALTH_PORT``; the
fake's URL in ``FLEETMATCH_KUBE_SERVER`` instead of the service account), and the test plays the
game through ``sdk_sidecar.client.SDK`` over HTTP and gRPC. At exit the process reports which of the
heavy modules it must never import were loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from fleetmatch.backends.kube.config import KubeConfig, thin_config
from fleetmatch.backends.kube.podstore import KubeGameServerStore, KubeStoreSettings
from fleetmatch.backends.kube.wire import decode
from fleetmatch.backends.redis.embedded import free_port
from fleetmatch.errors import BackendError, ConfigError, ConflictError, ExpiredError, NotFoundError
from fleetmatch.models import GameServer, GameServerState, with_meta
from fleetmatch.settings import KubeSettings
from fleetmatch.store import EventType, modify
from sdk_sidecar.client import SDK
from tests.kube.conftest import load_crds
from tests.kube.fakekube import FakeKube
from tests.waiting import eventually

S = GameServerState
NS = "default"
REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("redis", "kubernetes_asyncio", "yaml", "click")
FAST = KubeStoreSettings(write_spacing=0.0, backoff=0.01, watch_timeout_seconds=5)

# The sidecar's process: main() as a Pod runs it, plus a report of the forbidden modules at exit.
PROGRAM = f"""
import atexit, json, sys
atexit.register(lambda: print("modules " + json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)),
                              file=sys.stderr, flush=True))
from sdk_sidecar.pod import main
main()
"""


def gameserver_doc(name: str, *, health: dict[str, Any] | None = None) -> dict[str, Any]:
    """A GameServer as a user creates it on Kubernetes: with a Pod template fleetmatch does not model."""
    return {
        "apiVersion": "fleetmatch.dev/v1",
        "kind": "GameServer",
        "metadata": {"name": name, "labels": {"game": "demo"}},
        "spec": {
            "ports": [{"name": "default", "containerPort": 7654}],
            "health": health or {"periodSeconds": 5, "failureThreshold": 3, "initialDelaySeconds": 5},
            "counters": {"rooms": {"count": 0, "capacity": 4}},
            "template": {"spec": {"containers": [{"name": "game", "image": "demo:1"}]}},
        },
    }


def create_scheduled(fake: FakeKube, name: str, **kwargs: Any) -> dict[str, Any]:
    """Create the GameServer, then play the controller: Scheduled, with an address and a port."""
    fake.create_object("gameservers", gameserver_doc(name, **kwargs), namespace=NS)
    status = {"state": "Scheduled", "address": "10.0.0.7", "ports": [{"name": "default", "port": 7001}]}
    return fake.update_object("gameservers", NS, name, lambda obj: obj.update(status=status))


def stored(fake: FakeKube, name: str) -> dict[str, Any]:
    obj = fake.get_object("gameservers", NS, name)
    assert obj is not None
    return obj


def state_of(fake: FakeKube, name: str) -> str | None:
    obj = fake.get_object("gameservers", NS, name)
    return None if obj is None else (obj.get("status") or {}).get("state")


def set_state(fake: FakeKube, name: str, state: str) -> None:
    fake.update_object("gameservers", NS, name, lambda obj: obj["status"].update(state=state))


def serve_status_subresource(fake: FakeKube, enabled: bool) -> None:
    """Re-register the GameServer CRD with or without ``subresources: {status: {}}``."""
    (crd,) = [c for c in load_crds() if c["spec"]["names"]["plural"] == "gameservers"]
    for version in crd["spec"]["versions"]:
        subresources = version.setdefault("subresources", {})
        if enabled:
            subresources["status"] = {}
        else:
            subresources.pop("status", None)
    fake.register_crd(crd)


@pytest.fixture(params=[True, False], ids=["status-subresource", "no-status-subresource"])
async def store(fake_kube: FakeKube, request: pytest.FixtureRequest) -> AsyncIterator[KubeGameServerStore]:
    serve_status_subresource(fake_kube, request.param)
    create_scheduled(fake_kube, "gs-1")
    async with KubeGameServerStore(KubeConfig.from_url(fake_kube.url), NS, "gs-1", settings=FAST) as kube_store:
        yield kube_store


# -- the store, in this process ----------------------------------------------------------------------


async def test_store_reads_the_custom_resource_and_ignores_what_it_does_not_model(
    fake_kube: FakeKube, store: KubeGameServerStore
) -> None:
    gs = await store.get("gs-1")
    raw = stored(fake_kube, "gs-1")
    assert gs.name == "gs-1" and gs.metadata.namespace == NS
    assert gs.metadata.resource_version == raw["metadata"]["resourceVersion"]
    assert gs.metadata.uid == raw["metadata"]["uid"] and gs.metadata.generation == raw["metadata"]["generation"]
    assert gs.metadata.creation_timestamp is not None and gs.metadata.labels == {"game": "demo"}
    assert gs.state is S.SCHEDULED and gs.status.address == "10.0.0.7"
    assert gs.spec.counters["rooms"].capacity == 4
    items, version = await store.list()
    assert [o.name for o in items] == ["gs-1"] and version == fake_kube.resource_version
    with pytest.raises(NotFoundError):
        await store.get("nope")
    listed = [r for r in fake_kube.requests if r.method == "GET" and r.path.endswith("/gameservers")]
    assert "fieldSelector=metadata.name%3Dgs-1" in listed[-1].query


async def test_update_patches_metadata_then_puts_status_and_keeps_the_pod_template(
    fake_kube: FakeKube, store: KubeGameServerStore
) -> None:
    gs = await store.get("gs-1")
    changed = with_meta(gs.with_status(state=S.REQUEST_READY), labels={"agones.dev/sdk-mode": "ctf"})
    before = len(fake_kube.requests)
    written = await store.update(changed)
    writes = [(r.method, r.path.rsplit("/", 1)[-1], r.content_type) for r in fake_kube.requests[before:]]
    if fake_kube.resource("gameservers").status_subresource:
        assert writes == [("PATCH", "gs-1", "application/merge-patch+json"), ("PUT", "status", "application/json")]
    else:  # the fallback: learnt from a 404 on /status, then one PUT of the whole object
        assert writes[-1] == ("PUT", "gs-1", "application/json")
    raw = stored(fake_kube, "gs-1")
    assert raw["metadata"]["labels"] == {"agones.dev/sdk-mode": "ctf"}  # "game" removed: update replaces
    assert raw["status"]["state"] == "RequestReady" and raw["status"]["address"] == "10.0.0.7"
    assert raw["spec"]["template"]["spec"]["containers"][0]["image"] == "demo:1"
    if fake_kube.resource("gameservers").status_subresource:
        assert raw["metadata"]["generation"] == gs.metadata.generation  # metadata and status writes only
    assert written.metadata.resource_version == raw["metadata"]["resourceVersion"]
    assert written.state is S.REQUEST_READY

    before = len(fake_kube.requests)
    assert await store.update(written) == written  # nothing changed: nothing sent
    only_status = await store.update(written.with_status(state=S.READY))
    assert [r.method for r in fake_kube.requests[before:]] == ["PUT"]
    assert only_status.state is S.READY


async def test_a_stale_version_is_a_conflict_and_modify_retries_it(
    fake_kube: FakeKube, store: KubeGameServerStore
) -> None:
    gs = await store.get("gs-1")
    set_state(fake_kube, "gs-1", "Ready")  # someone else writes
    with pytest.raises(ConflictError):
        await store.update(gs.with_status(state=S.ALLOCATED))
    fake_kube.inject_conflicts(2)
    written = await modify(store, "gs-1", lambda cur: cur.with_status(state=S.ALLOCATED))
    assert written is not None and state_of(fake_kube, "gs-1") == "Allocated"


async def test_server_errors_are_retried_and_forbidden_names_the_rbac_rule(
    fake_kube: FakeKube, store: KubeGameServerStore, caplog: pytest.LogCaptureFixture
) -> None:
    fake_kube.fail_next(503, 2)
    assert (await store.get("gs-1")).name == "gs-1"
    gs = await store.get("gs-1")
    fake_kube.fail_next(403, method="PUT")
    with (
        caplog.at_level(logging.ERROR, logger="fleetmatch.backends.kube.podstore"),
        pytest.raises(BackendError, match="forbidden"),
    ):
        await store.update(gs.with_status(state=S.REQUEST_READY))
    assert "RBAC" in caplog.text and "verb 'update' on resource 'gameservers/status'" in caplog.text
    fake_kube.fail_next(503, FAST.retries + 1)
    with pytest.raises(BackendError, match="503"):
        await store.get("gs-1")


async def test_watch_follows_changes_through_bookmarks_reconnects_and_expiry(
    fake_kube: FakeKube, store: KubeGameServerStore
) -> None:
    _, version = await store.list()
    events: asyncio.Queue[tuple[EventType, GameServer]] = asyncio.Queue()

    async def follow() -> None:
        async for event in store.watch(version):
            events.put_nowait((event.type, event.object))

    task = asyncio.create_task(follow())
    try:
        set_state(fake_kube, "gs-1", "Ready")
        kind, obj = await asyncio.wait_for(events.get(), 10)
        assert kind is EventType.MODIFIED and obj.state is S.READY
        fake_kube.create_object("gameservers", gameserver_doc("other"), namespace=NS)  # not ours: filtered out
        fake_kube.drop_watches()  # a dropped stream is resumed from the last version seen
        set_state(fake_kube, "gs-1", "Allocated")
        kind, obj = await asyncio.wait_for(events.get(), 10)
        assert obj.state is S.ALLOCATED and events.empty()
        fake_kube.create_object("gameservers", gameserver_doc("third"), namespace=NS)
        fake_kube.compact()
        fake_kube.drop_watches()
        with pytest.raises(ExpiredError):
            await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ExpiredError):
            await task


def test_decoding_drops_unmodelled_fields_and_nulls() -> None:
    doc = gameserver_doc("gs-2")
    doc["metadata"] |= {"resourceVersion": "7", "managedFields": [{}], "finalizers": ["x"], "ownerReferences": []}
    doc["status"] = {"state": "Ready", "reservedUntil": None, "players": None, "conditions": []}
    gs, kept = decode(GameServer, doc)
    assert kept is not None and kept.metadata == {"finalizers": ["x"]} and kept.status == doc["status"]
    assert gs.state is S.READY and gs.status.reserved_until is None and gs.metadata.resource_version == "7"


async def test_config_from_a_kubeconfig_and_from_a_pods_service_account(
    fake_kube: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    create_scheduled(fake_kube, "gs-k")
    config = thin_config(KubeSettings(kubeconfig=str(kubeconfig)))
    assert config.server == fake_kube.url and config.token is None
    async with KubeGameServerStore(config, NS, "gs-k", settings=FAST) as kube_store:
        assert (await kube_store.get("gs-k")).state is S.SCHEDULED

    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("first\n")
    in_pod = KubeSettings(service_host="10.96.0.1", service_port="443")  # what the kubelet sets, nothing else
    pod = thin_config(in_pod, account_dir=account)
    assert pod.server == "https://10.96.0.1:443" and pod.ca_file is None and pod.token_file == account / "token"
    rotating = KubeGameServerStore(dataclasses.replace(pod, token_refresh_seconds=0.0), NS, "gs-k")
    assert rotating._headers() == {"Authorization": "Bearer first"}
    (account / "token").write_text("rotated")  # the kubelet rotates bound tokens
    assert rotating._headers() == {"Authorization": "Bearer rotated"}
    with pytest.raises(ConfigError, match="not a Kubernetes Pod"):
        thin_config(KubeSettings(in_cluster=True), account_dir=account)


# -- the sidecar, as a separate process ------------------------------------------------------------


@dataclass
class Sidecar:
    proc: Process
    http_port: int
    grpc_port: int
    health_port: int
    lines: list[str] = field(default_factory=list)
    listening: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def modules(self) -> list[str] | None:
        """The forbidden modules it had loaded, once it exited (None before)."""
        found = [line for line in self.lines if line.startswith("modules ")]
        return json.loads(found[-1].split(" ", 1)[1]) if found else None

    def rss_mb(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    async def health(self, path: str) -> int:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.health_port}{path}") as resp:
            return resp.status

    def sdk(self, transport: str = "http") -> SDK:
        if transport == "grpc":
            return SDK(port=self.http_port, grpc_port=self.grpc_port, transport="grpc")
        return SDK(port=self.http_port, transport="http")

    async def exited(self, within: float = 15.0) -> int:
        async with asyncio.timeout(within):
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def sidecar(fake: FakeKube, name: str, lines: list[str] | None = None, /, **env: str) -> AsyncIterator[Sidecar]:
    """The in-pod sidecar of ``name``, once it listens; on the way out it must have exited 0. If the
    test did not end it, it ends as a deleted GameServer's Pod does: Shutdown, then SIGTERM (killed
    after 20 s). ``lines``: where its log lines go (to read them before it listens)."""
    ports = {"AGONES_SDK_HTTP_PORT": free_port(), "AGONES_SDK_GRPC_PORT": free_port(), "HEALTH_PORT": free_port()}
    base = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "KUBECONFIG", "REDIS_URL")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROGRAM,
        cwd=REPO,
        env=base
        | {k: str(v) for k, v in ports.items()}
        | {
            "GAMESERVER_NAME": name,
            "POD_NAMESPACE": NS,
            "FLEETMATCH_KUBE_SERVER": fake.url,
            "REQUESTS_RATE_LIMIT": "20ms",
            "FLEETMATCH_SDK_WRITE_INTERVAL": "0.02",
            "FLEETMATCH_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        | env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    side = Sidecar(proc, ports["AGONES_SDK_HTTP_PORT"], ports["AGONES_SDK_GRPC_PORT"], ports["HEALTH_PORT"])
    if lines is not None:
        side.lines = lines

    async def read() -> None:
        assert proc.stderr is not None
        while line := (await proc.stderr.readline()).decode():
            side.lines.append(line.rstrip())
            if line.startswith("sdk sidecar "):
                side.listening.set()

    reader = asyncio.create_task(read())
    try:
        await eventually(lambda: side.listening.is_set() or proc.returncode is not None, 30, what=lambda: "listening")
        assert side.listening.is_set(), "\n".join(side.lines)
        yield side
    finally:
        if proc.returncode is None:
            if fake.get_object("gameservers", NS, name) is not None:
                set_state(fake, name, "Shutdown")
            proc.send_signal(signal.SIGTERM)
            try:
                await side.exited(20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await reader
        assert proc.returncode == 0, "\n".join(side.lines)


async def test_the_game_drives_its_gameserver_through_the_sidecar_over_http_and_grpc(fake_kube: FakeKube) -> None:
    create_scheduled(fake_kube, "gs-a")
    async with sidecar(fake_kube, "gs-a") as side, side.sdk() as sdk, side.sdk("grpc") as rpc:
        await sdk.connect()
        await rpc.connect()
        await sdk.set_label("mode", "ctf")
        await rpc.set_annotation("map", "dust")
        await sdk.ready()
        await eventually(lambda: state_of(fake_kube, "gs-a") == "RequestReady")
        meta = stored(fake_kube, "gs-a")["metadata"]
        assert meta["labels"] == {"game": "demo", "agones.dev/sdk-mode": "ctf"}
        assert meta["annotations"]["agones.dev/sdk-map"] == "dust"
        assert stored(fake_kube, "gs-a")["spec"]["template"]["spec"]["containers"][0]["name"] == "game"

        set_state(fake_kube, "gs-a", "Ready")  # the controller's part: the game sees it through the watch
        await eventually(lambda: _state_via(rpc, "Ready"))
        await rpc.update_counter("rooms", count_diff=1)
        await rpc.allocate()
        await eventually(lambda: state_of(fake_kube, "gs-a") == "Allocated")
        assert "agones.dev/last-allocated" in stored(fake_kube, "gs-a")["metadata"]["annotations"]
        await eventually(lambda: stored(fake_kube, "gs-a")["status"]["counters"]["rooms"]["count"] == 1)
        rss = side.rss_mb()
        print(f"in-pod sidecar RSS {rss:.1f} MB")  # reported with -s; the goal is 60 MB
    assert side.modules == [], side.modules


async def _state_via(sdk: SDK, state: str) -> bool:
    return (await sdk.get_gameserver()).state == state


async def test_sigterm_while_allocated_keeps_serving_until_shutdown(fake_kube: FakeKube) -> None:
    create_scheduled(fake_kube, "gs-b")
    async with sidecar(fake_kube, "gs-b") as side, side.sdk() as sdk:
        await sdk.connect()
        await sdk.allocate()
        await eventually(lambda: state_of(fake_kube, "gs-b") == "Allocated")
        side.proc.send_signal(signal.SIGTERM)
        await eventually(lambda: any("until it is Shutdown" in line for line in side.lines))
        await sdk.set_label("phase", "finishing")  # still served
        await eventually(lambda: "agones.dev/sdk-phase" in stored(fake_kube, "gs-b")["metadata"]["labels"])
        assert side.proc.returncode is None
        assert await side.health("/healthz") == 200
        set_state(fake_kube, "gs-b", "Shutdown")  # as the game's own Shutdown() would
        assert await side.exited() == 0
    assert side.modules == []


async def test_sigterm_exits_at_once_when_the_game_made_no_state_call(fake_kube: FakeKube) -> None:
    create_scheduled(fake_kube, "gs-c")
    async with sidecar(fake_kube, "gs-c") as side, side.sdk() as sdk:
        await sdk.connect()
        await sdk.set_label("warming", "up")  # not a state call
        side.proc.send_signal(signal.SIGTERM)
        assert await side.exited() == 0
    assert "agones.dev/sdk-warming" in stored(fake_kube, "gs-c")["metadata"]["labels"]  # flushed on the way out


async def test_sigterm_after_the_games_own_shutdown_exits(fake_kube: FakeKube) -> None:
    create_scheduled(fake_kube, "gs-d")
    async with sidecar(fake_kube, "gs-d") as side, side.sdk("grpc") as sdk:
        await sdk.connect()
        await sdk.ready()
        await sdk.shutdown()
        side.proc.send_signal(signal.SIGTERM)
        assert await side.exited() == 0
    assert state_of(fake_kube, "gs-d") == "Shutdown"


@pytest.mark.parametrize(
    "env",
    [{"FLEETMATCH_SIDECAR_TERMINATION_TIMEOUT": "1s"}, {"GRACEFUL_TERMINATION": "false"}],
    ids=["bounded-wait", "graceful-termination-off"],
)
async def test_sigterm_while_allocated_exits_after_the_bound_or_at_once_without_graceful_termination(
    fake_kube: FakeKube, env: dict[str, str]
) -> None:
    create_scheduled(fake_kube, "gs-h")
    async with sidecar(fake_kube, "gs-h", **env) as side, side.sdk() as sdk:
        await sdk.connect()
        await sdk.allocate()
        await eventually(lambda: state_of(fake_kube, "gs-h") == "Allocated")
        side.proc.send_signal(signal.SIGTERM)
        assert await side.exited() == 0
    assert state_of(fake_kube, "gs-h") == "Allocated"
    waited = any("not Shutdown after 1s" in line for line in side.lines)
    assert waited == ("FLEETMATCH_SIDECAR_TERMINATION_TIMEOUT" in env), side.lines


async def test_health_pings_keep_gshealthz_ok_and_missing_them_makes_the_server_unhealthy(
    fake_kube: FakeKube,
) -> None:
    create_scheduled(fake_kube, "gs-e", health={"periodSeconds": 1, "failureThreshold": 2, "initialDelaySeconds": 0})
    async with sidecar(fake_kube, "gs-e") as side, side.sdk() as sdk:
        await sdk.connect()
        await sdk.ready()
        for _ in range(12):  # 3 s of pings, more often than periodSeconds
            await sdk.health()
            assert await side.health("/gshealthz") == 200
            await asyncio.sleep(0.25)
        assert state_of(fake_kube, "gs-e") == "RequestReady"
        await eventually(lambda: _status(side, "/gshealthz", 500))  # pings stopped
        assert await side.health("/healthz") == 200  # the sidecar itself is fine
        await eventually(lambda: state_of(fake_kube, "gs-e") == "Unhealthy")


async def _status(side: Sidecar, path: str, expected: int) -> bool:
    return await side.health(path) == expected


async def test_the_sidecar_survives_dropped_and_expired_watches(fake_kube: FakeKube) -> None:
    create_scheduled(fake_kube, "gs-f")
    async with sidecar(fake_kube, "gs-f") as side, side.sdk() as sdk:
        await sdk.connect()
        await eventually(lambda: fake_kube.watch_count == 1)
        fake_kube.drop_watches()
        set_state(fake_kube, "gs-f", "Ready")
        await eventually(lambda: _state_via(sdk, "Ready"))

        await eventually(lambda: fake_kube.watch_count == 1)
        lists = _lists(fake_kube)
        fake_kube.create_object("gameservers", gameserver_doc("elsewhere"), namespace=NS)  # moves the version on
        fake_kube.compact()
        fake_kube.drop_watches()  # the resumed watch is too old: 410, and the informer lists again
        await eventually(lambda: _lists(fake_kube) > lists, what=lambda: "a re-list")
        set_state(fake_kube, "gs-f", "Allocated")
        await eventually(lambda: _state_via(sdk, "Allocated"))
        await sdk.ready()  # writes still work after the re-list
        await eventually(lambda: state_of(fake_kube, "gs-f") == "RequestReady")


def _lists(fake: FakeKube) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/gameservers") and "watch" not in r.query)


async def test_the_sidecar_waits_for_its_gameserver_to_exist(fake_kube: FakeKube) -> None:
    """Started before its GameServer exists, the sidecar says it waits, and serves once it is created
    (created only after that line: created at the first watch, it could be seen before the first look)."""
    lines: list[str] = []

    async def create_once_waiting() -> None:
        await eventually(lambda: any("waiting for GameServer default/gs-g" in line for line in lines))
        create_scheduled(fake_kube, "gs-g")

    task = asyncio.create_task(create_once_waiting())
    async with sidecar(fake_kube, "gs-g", lines) as side, side.sdk() as sdk:
        await task
        assert (await sdk.get_gameserver()).name == "gs-g"
