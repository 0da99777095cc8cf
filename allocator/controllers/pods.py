"""The GameServer controller for Kubernetes: one Pod per GameServer, and the GameServer's status from it.

It plays the part the node agent plays on plain hosts. GameServers come through the ``Store``
protocol (an informer on ``KubeStore``); Pods through a list+watch of the core API selected by the
``fleetmatch.dev/gameserver`` label; Nodes (optional) for their external addresses. Each pass is
level-triggered over the whole cache:

- Creating: add the ``fleetmatch.dev/pod-cleanup`` finalizer, take host ports, create the Pod
  (``allocator.podspec.pod_for``; 409 AlreadyExists is fine), then Starting with the ports. A
  template that cannot make a Pod (or that the API server rejects as invalid) → Error, with the
  reason in ``fleetmatch.dev/error``; the fleet controller replaces it.
- Otherwise the status follows the Pod (``allocator.podstatus.observe``): Scheduled once bound,
  RequestReady → Ready once Running, Unhealthy when the Pod fails, is evicted or disappears.
- Shutdown → delete the GameServer. Being deleted → delete the Pod, and once it is gone remove the
  finalizer so the GameServer goes too. Pods without a GameServer are deleted.

Host ports come from ``allocator.ports.PortPool``, rebuilt from the Pods' ``hostPort``s on
every pass, so a restarted controller never hands out a port a running Pod holds.

Caches lag writes, so the controller keeps expectations (as Kubernetes controllers do): a Pod it
created is trusted to exist until the watch shows it, and a GameServer it wrote is skipped until the
informer delivers that write; a stale cache never creates a second Pod or undoes a state.

Failures never make it spin: each GameServer whose API call failed (409, 429, 5xx, 403, a
connection error) waits an exponential back-off before it is looked at again; 403 logs which RBAC
permission is missing. Every failure is counted in ``fleetmatch_podcontroller_api_errors_total``.
It runs under the process's one leadership (``fleetmatch controller``), on the backend's shared
GameServer informer and its ``ApiClient``, in a ``fleetmatch.reconcile.ReconcileLoop`` that also
passes when a back-off ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from kubernetes_asyncio import client as k8s

from allocator import metrics
from allocator.podspec import FINALIZER, GAMESERVER_LABEL, pod_for
from allocator.podstatus import ERROR_ANNOTATION, errored, node_address, observe, pod_host_ports, pod_owner_uid
from allocator.ports import PortPool, PortsExhaustedError
from fleetmatch.backends.kube.calls import call, watch_stream
from fleetmatch.backends.kube.client import KubeBackend
from fleetmatch.backends.kube.errors import ApiTarget, ForbiddenError, KubeApiError, status_code
from fleetmatch.backends.kube.watch import watch_events
from fleetmatch.backends.kube.wire import GROUP, VERSION
from fleetmatch.errors import (
    AlreadyExistsError,
    ConflictError,
    ExpiredError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from fleetmatch.events import Severity, record_quietly
from fleetmatch.models import TERMINAL_STATES, GameServer, GameServerState
from fleetmatch.reconcile import ReconcileLoop
from fleetmatch.settings import PodSettings
from fleetmatch.store import EventType, WatchEvent, modify
from fleetmatch.tasks import Backoff, cancel_and_wait, raise_if_cancelling, supervised

log = logging.getLogger(__name__)

PLURAL = GameServer.PLURAL
MERGE_PATCH = "application/merge-patch+json"
EXPECTATION_SECONDS = 30.0
"""How long a created Pod not yet seen by the watch is trusted to exist."""
STALE_SECONDS = 5.0
"""How long a GameServer we wrote is skipped while the informer has not delivered our write (a re-list
after an expired watch may jump past that version: then this bounds the wait)."""


class _LookAgainLater(Exception):
    """Nothing failed, but this name should wait its back-off before the next look."""


class ObjectWatcher:
    """A list+watch cache of one core resource (raw dicts by name): this controller's Pods, or Nodes.

    Lists (in pages of ``list_page``), then watches from the list's version
    (``fleetmatch.backends.kube.watch``: bounded streams reopened from the last event or bookmark,
    transient failures retried with back-off); 410 Expired (of the watch or of a page) re-lists.
    Other refusals pause with back-off, then re-list (403 names the RBAC permission needed).
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        list_call: Callable[..., Awaitable[Any]],
        *,
        target: ApiTarget,
        on_change: Callable[[str | None], None],
        watch_seconds: int = 300,
        backoff: Backoff | None = None,
        list_page: int = 500,
        **selector: Any,
    ) -> None:
        self.api = api
        self.target = target
        self.resource = target.qualified
        self.cache: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self._list_call = list_call
        self._list_page = list_page
        self._selector = selector
        self._on_change = on_change
        self.listed_at = -math.inf
        """``time.monotonic()`` when the last (re)list was requested: the cache shows every object that
        existed then, so whatever was created before and is not in it is gone."""
        self._backoff = backoff or Backoff(base=0.5, cap=15.0)
        self._watch_target = target.about(verb="watch")
        self._stream = watch_stream(
            list_call, self._watch_target, timeout_seconds=watch_seconds, request_timeout=(10.0, watch_seconds + 30.0),
            **selector,
        )  # fmt: skip

    async def _list(self) -> str:
        """List in pages of ``list_page`` (every page at the first page's version); a continue token
        that outlived the API server's compaction raises ``ExpiredError``: ``run`` lists again."""
        started = time.monotonic()
        fresh: dict[str, dict[str, Any]] = {}
        version, token = "", ""
        while True:
            paging: dict[str, Any] = {"_continue": token} if token else {}
            listing = await call(
                self._list_call(**self._selector, limit=self._list_page, **paging), self.target.about(verb="list")
            )
            for item in listing.items:
                raw = self.api.sanitize_for_serialization(item)
                fresh[raw["metadata"]["name"]] = raw
            version = version or str(listing.metadata.resource_version or "")
            token = str(listing.metadata._continue or "")
            if not token:
                break
        self.listed_at = started
        if fresh != self.cache:
            self.cache = fresh
        self._on_change(None)
        return version

    async def run(self) -> None:
        self.synced.clear()  # a new run (a new leadership term) trusts a fresh list only
        while True:
            try:
                version = await self._list()
                self.synced.set()
                async for event in watch_events(
                    self._stream, version, target=self._watch_target, backoff=self._backoff.base,
                    max_backoff=self._backoff.cap, on_retry=self._count,
                ):  # fmt: skip
                    self._backoff.ok(self.resource)
                    name = event.object.get("metadata", {}).get("name", "")
                    if event.type == "DELETED":
                        self.cache.pop(name, None)
                    else:
                        self.cache[name] = event.object
                    self._on_change(name)
            except ExpiredError:
                log.info("%s watch expired; re-listing", self.resource)
            except (StoreError, ValidationError) as exc:
                raise_if_cancelling()
                self._count(exc)
                await self._pause(str(exc), isinstance(exc, ForbiddenError))

    def _count(self, exc: StoreError | ValidationError) -> None:
        verb = exc.verb if isinstance(exc, KubeApiError) else "watch"
        metrics.PODCONTROLLER_API_ERRORS.labels(verb=verb, resource=self.resource, code=str(status_code(exc))).inc()

    async def _pause(self, why: str, forbidden: bool) -> None:
        delay = self._backoff.fail(self.resource, time.monotonic())
        if forbidden:
            log.error(
                "%s watch forbidden: grant the controller's service account RBAC `list` and `watch` on `%s` %s (%s); "
                "retrying in %.1fs",
                self.resource,
                self.resource,
                self.target.where.strip() or "(cluster-wide)",
                why,
                delay,
            )
        else:
            log.warning("%s watch failed (%s); retrying in %.1fs", self.resource, why, delay)
        await asyncio.sleep(delay)


class PodController:
    """The GameServer -> Pod controller of one namespace, on a Kubernetes backend (see the module
    documentation). ``run()`` reconciles until cancelled: the process's leadership starts and stops it."""

    def __init__(
        self,
        backend: KubeBackend,
        settings: PodSettings | None = None,
        *,
        resync_seconds: float = 5.0,
        parallelism: int = 16,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.gameservers = backend.gameservers
        self.events = backend.events
        self.namespace = backend.namespace
        self.settings = settings or PodSettings()
        self.api = backend.api
        self.core = k8s.CoreV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)
        self._pod = ApiTarget("get", "pods", namespace=self.namespace, kind="Pod")
        self._gameserver = ApiTarget("get", PLURAL, GROUP, self.namespace, GameServer.KIND)
        self.gs_informer = backend.informer(GameServer)
        self.pods = ObjectWatcher(
            self.api,
            self.core.list_namespaced_pod,
            target=ApiTarget("list", "pods", namespace=self.namespace, kind="Pod"),
            on_change=self._on_pod,
            list_page=backend.list_page,
            namespace=self.namespace,
            label_selector=GAMESERVER_LABEL,
        )
        self.nodes: ObjectWatcher | None = None
        if self.settings.node_addresses:
            self.nodes = ObjectWatcher(
                self.api,
                self.core.list_node,
                target=ApiTarget("list", "nodes", kind="Node"),
                on_change=lambda _: self.poke(),
                list_page=backend.list_page,
            )
        self.ports = PortPool(self.settings.port_min, self.settings.port_max, per_port=self.settings.pods_per_port)
        self.backoff = backoff or Backoff()
        self.loop = ReconcileLoop(self.reconcile, resync=resync_seconds, next_due=self._next_due)
        self._limit = asyncio.Semaphore(parallelism)
        self._clock = clock
        self._wall = wall_clock
        self._created: dict[str, float] = {}
        """Pods we created that the watch has not shown yet -> when (``time.monotonic``). A watch event
        for the name, or a re-list requested after the creation, settles it; so does time."""
        self._finalized: set[str] = set()  # GameServers known to carry our finalizer
        self._orphan_warned: dict[str, bool] = {}
        self._stale: dict[str, tuple[str | None, float]] = {}
        """GameServers we wrote -> (the version we wrote, None for a delete; trust deadline). Skipped until
        the informer delivers that version (any later event for a delete): the cache lags our writes."""

    def poke(self) -> None:
        self.loop.poke()

    def _next_due(self) -> float | None:
        """Seconds until the first back-off ends (the loop passes then, not only at the resync)."""
        due = self.backoff.next_due()
        return None if due is None else due - self._clock()

    def _on_pod(self, name: str | None) -> None:
        if name is not None:
            self._created.pop(name, None)  # seen (even if already deleted again: then it is gone)
        self.loop.poke()

    def _on_gameserver(self, event: WatchEvent[GameServer]) -> None:
        gs = event.object
        mark = self._stale.get(gs.name)
        if mark is not None and (
            event.type is EventType.DELETED or mark[0] is None or mark[0] == gs.metadata.resource_version
        ):
            del self._stale[gs.name]
        self.loop.poke()

    # -- loop ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch Pods (and Nodes) and reconcile until cancelled. Expectations start empty: a new run
        (a new leadership term) trusts nothing an earlier one remembered."""
        self._created.clear()
        self._stale.clear()
        self._finalized.clear()
        remove = self.gs_informer.add_handler(self._on_gameserver)
        tasks = [supervised("podcontroller.pods", self.pods.run)]
        if self.nodes is not None:
            tasks.append(supervised("podcontroller.nodes", self.nodes.run))
        try:
            await self.gs_informer.synced.wait()
            await self.pods.synced.wait()
            if self.nodes is not None:
                try:
                    async with asyncio.timeout(self.settings.node_sync_seconds):
                        await self.nodes.synced.wait()
                except TimeoutError:
                    log.warning("nodes not listed within %.0fs: addresses come from pods' hostIP until they are",
                                self.settings.node_sync_seconds)  # fmt: skip
            await self.loop.run()
        finally:
            remove()
            await cancel_and_wait(*tasks)
            metrics.PODCONTROLLER_HOST_PORTS_FREE.set(0)  # the new leader reports them

    async def reconcile(self) -> None:
        """One pass over every GameServer and Pod."""
        now = self._clock()
        cache, pods = self.gs_informer.cache, self.pods.cache
        listed = self.pods.listed_at
        self._created = {
            n: t
            for n, t in self._created.items()
            if n in cache and n not in pods and t >= listed and t + EXPECTATION_SECONDS > time.monotonic()
        }
        self._finalized &= set(cache)
        self._orphan_warned = {n: w for n, w in self._orphan_warned.items() if n in pods}
        self._stale = {n: (v, t) for n, (v, t) in self._stale.items() if n in cache and t > now}
        self._sync_ports(pods)
        self.backoff.forget(lambda name: name in cache or name in pods)
        work = [
            self._guarded(gs.name, functools.partial(self._reconcile_one, gs, pods.get(gs.name)))
            for gs in cache.values()
            if not self.backoff.waiting(gs.name, now) and gs.name not in self._stale
        ]
        for name, pod in list(pods.items()):
            owner = cache.get(name)
            if (owner is None or pod_owner_uid(pod) != owner.metadata.uid) and not self.backoff.waiting(name, now):
                work.append(self._guarded(name, functools.partial(self._delete_orphan, name, pod)))
        await asyncio.gather(*work)

    def _sync_ports(self, pods: Mapping[str, Mapping[str, Any]]) -> None:
        for name, pod in pods.items():
            self.ports.hold(name, pod_host_ports(pod))
        for owner in [o for o in self.ports.owners if o not in pods and o not in self._created]:
            self.ports.release(owner)
        metrics.PODCONTROLLER_HOST_PORTS_FREE.set(self.ports.free_count)

    async def _guarded(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one GameServer's (or orphan Pod's) work; a failure puts that name in back-off."""
        try:
            async with self._limit:
                await work()
        except KubeApiError as exc:
            self._retry_later(name, exc, self._clock())
        except PortsExhaustedError as exc:
            metrics.PODCONTROLLER_API_ERRORS.labels(verb="allocate", resource="hostPorts", code="0").inc()
            delay = self.backoff.fail(name, self._clock())
            log.warning("gameserver %s: %s; retrying in %.1fs", name, exc, delay, extra={"gameserver": name})
        except _LookAgainLater:
            self.backoff.fail(name, self._clock())
        except ConflictError:
            self.backoff.fail(name, self._clock())  # someone else wrote it: look again shortly
        except NotFoundError:
            self.backoff.ok(name)
        except (StoreError, ValidationError) as exc:
            delay = self.backoff.fail(name, self._clock())
            log.warning("gameserver %s: %s; retrying in %.1fs", name, exc, delay, extra={"gameserver": name})
        except Exception:
            raise_if_cancelling()
            delay = self.backoff.fail(name, self._clock())
            log.exception("gameserver %s: reconcile failed; retrying in %.1fs", name, delay, extra={"gameserver": name})
        else:
            self.backoff.ok(name)

    def _retry_later(self, name: str, exc: KubeApiError, now: float) -> None:
        delay = self.backoff.fail(name, now)
        extra = {"gameserver": name}
        if isinstance(exc, ForbiddenError):
            log.error(
                "gameserver %s: forbidden: grant the controller's service account RBAC `%s` on `%s` in namespace %s "
                "(%s); retrying in %.1fs",
                name,
                exc.verb,
                exc.target.qualified,
                self.namespace,
                exc,
                delay,
                extra=extra,
            )
        else:
            log.warning("gameserver %s: %s; retrying in %.1fs", name, exc, delay, extra=extra)

    async def _call(self, target: ApiTarget, request: Awaitable[Any], *, ok: tuple[type[Exception], ...] = ()) -> Any:
        """Await an API call; an error of a type in ``ok`` returns None, any other is counted and raised."""
        try:
            return await call(request, target)
        except ok:
            return None
        except (StoreError, ValidationError) as exc:
            metrics.PODCONTROLLER_API_ERRORS.labels(
                verb=target.verb, resource=target.qualified, code=str(status_code(exc))
            ).inc()
            raise

    # -- one GameServer --------------------------------------------------------------------------

    async def _reconcile_one(self, gs: GameServer, pod: Mapping[str, Any] | None) -> None:
        if pod is not None and pod_owner_uid(pod) != gs.metadata.uid:
            return  # a stale Pod of an earlier GameServer of that name: deleted as an orphan first
        if gs.metadata.deletion_timestamp is not None:
            await self._finish_deletion(gs, pod)
            return
        if gs.state is GameServerState.SHUTDOWN:
            with contextlib.suppress(NotFoundError):
                await self.gameservers.delete(gs.name)
            self._wrote(gs.name, None)
            metrics.PODCONTROLLER_ACTIONS.labels(action="shutdown-deleted").inc()
            log.info("%s: Shutdown; deleted", gs.name, extra={"gameserver": gs.name})
            return
        if gs.state in TERMINAL_STATES:
            return
        if pod is None:
            if gs.name in self._created:
                return  # created (or found existing): wait until the watch shows it
            if gs.state in (GameServerState.CREATING, GameServerState.PORT_ALLOCATION):
                await self._create_pod(gs)
                return
        address = self._node_address(pod)
        if observe(gs, pod, node_address=address) is None:
            return
        updated = await modify(self.gameservers, gs.name, lambda current: observe(current, pod, node_address=address))
        if updated is not None:
            self._wrote(gs.name, updated)
        if updated is not None and updated.state is GameServerState.UNHEALTHY:
            metrics.PODCONTROLLER_ACTIONS.labels(action="unhealthy").inc()
            why = updated.metadata.annotations.get(ERROR_ANNOTATION, "")
            log.warning("%s -> Unhealthy: %s", gs.name, why, extra={"gameserver": gs.name})
            await record_quietly(
                self.events, GameServer.KIND, gs.name, "Unhealthy", why, type=Severity.WARNING, uid=gs.metadata.uid
            )

    def _wrote(self, name: str, written: GameServer | None) -> None:
        """We wrote ``written`` (None: deleted ``name``): skip it until the informer catches up."""
        version = written.metadata.resource_version if written is not None else None
        self._stale[name] = (version, self._clock() + STALE_SECONDS)

    def _node_address(self, pod: Mapping[str, Any] | None) -> str:
        node_name = (pod or {}).get("spec", {}).get("nodeName")
        if not node_name or self.nodes is None:
            return ""
        node = self.nodes.cache.get(node_name)
        return node_address(node) if node is not None else ""

    async def _create_pod(self, gs: GameServer) -> None:
        if gs.name not in self._finalized and not await self._add_finalizer(gs.name):
            return
        ports = self.ports.assign(gs)
        try:
            manifest = pod_for(gs, self.settings, ports=ports)
        except ValidationError as exc:
            self.ports.release(gs.name)
            await self._error(gs, f"invalid pod template: {exc}")
            return
        try:
            created = await self._call(
                self._pod.about(gs.name, verb="create"),
                self.core.create_namespaced_pod(self.namespace, cast(Any, manifest)),
                ok=(AlreadyExistsError,),
            )
        except ValidationError as exc:
            self.ports.release(gs.name)
            await self._error(gs, f"pod rejected by the API server: {exc}")
            return
        except StoreError:
            self.ports.release(gs.name)
            raise
        self._created[gs.name] = time.monotonic()
        if created is None:  # 409: it exists already (a race); its ports count once seen, not these
            self.ports.release(gs.name)
            return
        metrics.PODCONTROLLER_ACTIONS.labels(action="pod-created").inc()
        log.info(
            "%s: created pod (host ports %s)",
            gs.name,
            ",".join(str(p.port) for p in ports) or "-",
            extra={"gameserver": gs.name},
        )

        def starting(current: GameServer) -> GameServer | None:
            if current.state not in (GameServerState.CREATING, GameServerState.PORT_ALLOCATION):
                return None
            if current.metadata.deletion_timestamp is not None:
                return None
            return current.with_status(state=GameServerState.STARTING, ports=ports)

        updated = await modify(self.gameservers, gs.name, starting)
        if updated is not None:
            self._wrote(gs.name, updated)

    async def _add_finalizer(self, name: str) -> bool:
        """Put our finalizer on the GameServer; False if it is gone or being deleted."""
        raw = await self._call(
            self._gameserver.about(name),
            self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
            ok=(NotFoundError,),
        )
        if not isinstance(raw, dict) or raw.get("metadata", {}).get("deletionTimestamp"):
            return False
        meta = raw["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            await self._patch_finalizers(name, [*finalizers, FINALIZER], meta["resourceVersion"])
        self._finalized.add(name)
        return True

    async def _remove_finalizer(self, name: str) -> None:
        raw = await self._call(
            self._gameserver.about(name),
            self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
            ok=(NotFoundError,),
        )
        if not isinstance(raw, dict):
            return
        meta = raw["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        rest = [f for f in finalizers if f != FINALIZER]
        await self._patch_finalizers(name, rest or None, meta["resourceVersion"], ok=(NotFoundError,))
        self._finalized.discard(name)

    async def _patch_finalizers(
        self, name: str, finalizers: list[str] | None, version: str, *, ok: tuple[type[Exception], ...] = ()
    ) -> None:
        """Set the GameServer's finalizers (None: none), only if it is still at ``version``."""
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": version}}
        await self._call(
            self._gameserver.about(name, verb="patch", version=version),
            self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                patch,
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            ),
            ok=ok,
        )

    async def _finish_deletion(self, gs: GameServer, pod: Mapping[str, Any] | None) -> None:
        """The GameServer is being deleted: its Pod goes first, then our finalizer."""
        if pod is not None:
            if not pod.get("metadata", {}).get("deletionTimestamp"):
                await self._delete_pod(gs.name)
            return  # the Pod's DELETED event brings us back
        if gs.name in self._created:
            return  # a Pod we created may still show up: wait for it (or its expectation to lapse)
        await self._remove_finalizer(gs.name)
        self.ports.release(gs.name)

    async def _delete_pod(self, name: str) -> None:
        await self._call(
            self._pod.about(name, verb="delete"),
            self.core.delete_namespaced_pod(name, self.namespace),
            ok=(NotFoundError,),
        )
        metrics.PODCONTROLLER_ACTIONS.labels(action="pod-deleted").inc()
        log.info("%s: deleted pod", name, extra={"gameserver": name})

    async def _delete_orphan(self, name: str, pod: Mapping[str, Any]) -> None:
        """Delete a Pod whose GameServer is gone (or is a newer one of the same name), after asking the
        API server: a GameServer the store could not decode is missing from the cache, not gone."""
        if pod.get("metadata", {}).get("deletionTimestamp"):
            return
        raw = await self._call(
            self._gameserver.about(name),
            self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
            ok=(NotFoundError,),
        )
        if isinstance(raw, dict) and raw.get("metadata", {}).get("uid") == pod_owner_uid(pod):
            if not self._orphan_warned.get(name):
                self._orphan_warned[name] = True
                log.warning("%s: exists but is not in the cache (not a valid GameServer?); its pod is kept", name,
                            extra={"gameserver": name})  # fmt: skip
            raise _LookAgainLater
        await self._delete_pod(name)

    async def _error(self, gs: GameServer, why: str) -> None:
        name, now = gs.name, self._wall()
        try:
            updated = await modify(self.gameservers, name, lambda current: errored(current, why, now))
        except NotFoundError:
            return
        if updated is not None:
            self._wrote(name, updated)
            metrics.PODCONTROLLER_ACTIONS.labels(action="error").inc()
            log.error("%s -> Error: %s", name, why, extra={"gameserver": name})
            await record_quietly(
                self.events, GameServer.KIND, name, "Error", why, type=Severity.WARNING, uid=gs.metadata.uid
            )


__all__ = ["Backoff", "ObjectWatcher", "PodController"]
