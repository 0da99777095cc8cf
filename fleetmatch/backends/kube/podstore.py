"""A thin Kubernetes client for ONE GameServer: the store of the in-pod SDK sidecar.

The controllers use kubernetes-asyncio (``fleetmatch.backends.kube.store``); the sidecar runs once per
game-server Pod and has a memory goal, and importing ``kubernetes_asyncio.client`` alone costs about
38 MB. ``KubeGameServerStore`` speaks the few API calls the sidecar needs over plain aiohttp and
implements what ``SdkSession``, ``CoalescingWriter`` and ``Informer`` use of
``fleetmatch.store.Store[GameServer]``:

- ``get``: ``GET .../gameservers/NAME``; 404 -> ``NotFoundError``.
- ``list``/``watch``: restricted by ``fieldSelector=metadata.name=NAME`` (list + watch of one
  object, as Agones' sidecar informer does), on the one resumable watch of
  ``fleetmatch.backends.kube.watch`` (streams of ``timeoutSeconds`` resumed from the last event or
  bookmark, 410 -> ``ExpiredError`` so the informer re-lists, transient failures retried).
- ``update``: the CRD has a status subresource, so one ``update`` may take two requests, in this
  order: (1) labels/annotations changed -> a JSON merge patch of the main object carrying
  ``metadata.resourceVersion`` (the precondition: 409 -> ``ConflictError``); (2) status changed ->
  ``PUT .../gameservers/NAME/status`` with the object at the version (1) returned. Metadata goes
  first because the state is what controllers and allocators act on: a label the game set before
  ``Ready``/``Allocate`` is on the object when the state changes. If (2) then conflicts, the caller
  (``fleetmatch.store.modify``) re-reads and re-applies its change: the labels are already there,
  so only the status is written. A change of nothing writes nothing. Spec changes are refused
  (``ValidationError``): the sidecar never makes them. Against a CRD without the status subresource
  (``/status`` answers 404 for an object that exists) one conditional ``PUT`` of the whole object
  writes both, atomically.
- ``create``/``delete``: ``NotImplementedError`` (the sidecar never creates or deletes).

Writes are spaced by at least ``KubeStoreSettings.write_spacing`` (Agones' sidecar: 500 ms between
API requests); 5xx, 429 and connection errors are retried with back-off, then ``KubeApiError``;
errors are those of ``fleetmatch.backends.kube.errors``, and a 403 also logs which RBAC verb on
which resource the Pod's service account lacks.

Wire format: ``fleetmatch.backends.kube.wire``, as for every Kubernetes client: spec and status
fields fleetmatch does not model (``spec.template``: the Pod template) are ignored when read and
kept as they are when written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from fleetmatch.backends.kube.config import KubeConfig
from fleetmatch.backends.kube.errors import ApiTarget, ForbiddenError, KubeApiError, api_error, unreachable
from fleetmatch.backends.kube.watch import decode_lines, watch_events
from fleetmatch.backends.kube.wire import GROUP, VERSION, decode, encode_status
from fleetmatch.errors import (
    BackendError,
    ConflictError,
    ValidationError,
)
from fleetmatch.models import GameServer
from fleetmatch.store import EventType, WatchEvent

log = logging.getLogger(__name__)


Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class KubeStoreSettings:
    """How the sidecar's store talks to the API server."""

    write_spacing: float = 0.5
    """Least seconds between two writes (one ``update``, its one or two requests), like Agones'
    ``--request-rate-limit`` (env ``REQUESTS_RATE_LIMIT``, default 500 ms). The coalescing writer
    merges whatever SDK calls arrive meanwhile."""
    watch_timeout_seconds: int = 300
    """``timeoutSeconds`` of one watch request; the store then watches again from where it was."""
    request_timeout: float = 30.0
    """Total seconds of one non-watch request."""
    retries: int = 4
    """Extra attempts of a request after a 5xx, 429 or a connection error (then ``BackendError``)."""
    backoff: float = 0.2
    max_backoff: float = 5.0
    """Back-off between attempts: ``backoff * 2**attempt`` up to this (or the server's Retry-After)."""


def _map_patch(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str | None]:
    """The JSON merge patch turning map ``old`` into ``new`` (null removes a key)."""
    patch: dict[str, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


# -- the store -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Seen:
    raw: Json
    obj: GameServer


class KubeGameServerStore:
    """One GameServer custom resource through the Kubernetes API (see the module documentation).

    Use as an async context manager, or call ``close()``: it owns an aiohttp session.
    """

    _SEEN = 8
    """Raw objects remembered by resourceVersion: ``update`` diffs against the version it was given."""

    def __init__(
        self,
        config: KubeConfig,
        namespace: str,
        name: str,
        *,
        settings: KubeStoreSettings | None = None,
    ) -> None:
        self._config = config
        self._namespace = namespace
        self._name = name
        self._settings = settings or KubeStoreSettings()
        base = f"{config.server}/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{GameServer.PLURAL}"
        self._collection = base
        self._field_selector = f"metadata.name={name}"
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = config.token
        self._token_read = float("-inf")
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._write_lock = asyncio.Lock()
        self._next_write = float("-inf")
        self._denied: set[tuple[str, str]] = set()
        self._status_subresource: bool | None = None
        """Whether the CRD serves ``/status`` (None: not known yet; learnt from the first status write)."""
        self._extra = {"gameserver": name}
        self.requests = 0
        """API requests sent (for tests and benchmarks)."""

    # -- Store protocol ---------------------------------------------------------------------------

    @property
    def kind(self) -> type[GameServer]:
        return GameServer

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def name(self) -> str:
        """The one GameServer this store watches."""
        return self._name

    async def get(self, name: str) -> GameServer:
        raw = await self._json("GET", self._object_url(name), verb="get", name=name)
        return self._remember(raw)

    async def list(self) -> tuple[list[GameServer], str]:
        doc = await self._json("GET", self._collection, params={"fieldSelector": self._field_selector}, verb="list")
        items = [self._remember(raw) for raw in doc.get("items") or ()]
        return items, str((doc.get("metadata") or {}).get("resourceVersion", ""))

    async def watch(self, since: str) -> AsyncIterator[WatchEvent[GameServer]]:
        """Changes of the one GameServer after ``since`` (``fleetmatch.backends.kube.watch``)."""
        settings = self._settings
        events = watch_events(
            self._open_watch, since, target=self._target("watch"), backoff=settings.backoff,
            max_backoff=settings.max_backoff,
        )  # fmt: skip
        async for raw in events:
            yield WatchEvent(EventType(raw.type), self._remember(raw.object))

    async def update(self, obj: GameServer) -> GameServer:
        """Write ``obj``'s labels, annotations and status if its resourceVersion is current (see the
        module documentation for the order); ``ConflictError`` otherwise."""
        name, version = obj.name, obj.metadata.resource_version
        base = await self._base(name, version)
        if obj.spec != base.obj.spec:
            raise ValidationError("spec", "the SDK sidecar's store writes labels, annotations and status only")
        meta, stored = obj.metadata, base.obj.metadata
        patch: Json = {}
        if meta.labels != stored.labels:
            patch["labels"] = _map_patch(stored.labels, meta.labels)
        if meta.annotations != stored.annotations:
            patch["annotations"] = _map_patch(stored.annotations, meta.annotations)
        status_changed = obj.status != base.obj.status
        if not patch and not status_changed:
            return base.obj
        async with self._write_lock:
            await self._space_writes()
            if self._status_subresource is False:
                return await self._put_object(base, obj)
            current = base
            if patch:
                patch["resourceVersion"] = version
                raw = await self._json(
                    "PATCH",
                    self._object_url(name),
                    body={"metadata": patch},
                    content_type="application/merge-patch+json",
                    verb="patch",
                    name=name,
                    version=version,
                )
                current = _Seen(raw, self._remember(raw))
            if status_changed:
                body = {**current.raw, "status": encode_status(obj.status, current.raw.get("status"))}
                try:
                    raw = await self._json(
                        "PUT",
                        self._object_url(name) + "/status",
                        body=body,
                        verb="update",
                        resource=f"{GameServer.PLURAL}/status",
                        name=name,
                        version=current.obj.metadata.resource_version,
                    )
                except KubeApiError as exc:
                    if exc.code != 404 or self._status_subresource:
                        raise  # a 404 not about our object: the CRD has no status subresource
                    log.info("the GameServer CRD has no status subresource: writing status with the object")
                    self._status_subresource = False
                    return await self._put_object(current, obj)
                self._status_subresource = True
                current = _Seen(raw, self._remember(raw))
        return current.obj

    async def _put_object(self, base: _Seen, obj: GameServer) -> GameServer:
        """A CRD without the status subresource: labels, annotations and status in one PUT of the
        object as stored (unmodelled fields kept)."""
        meta = {
            **base.raw.get("metadata", {}),
            "labels": dict(obj.metadata.labels),
            "annotations": dict(obj.metadata.annotations),
            "resourceVersion": base.obj.metadata.resource_version,
        }
        body = {**base.raw, "metadata": meta, "status": encode_status(obj.status, base.raw.get("status"))}
        raw = await self._json(
            "PUT", self._object_url(obj.name), body=body, verb="update", name=obj.name, version=meta["resourceVersion"]
        )
        return self._remember(raw)

    async def create(self, obj: GameServer) -> GameServer:
        raise NotImplementedError("the SDK sidecar's Kubernetes store cannot create GameServers (controllers do)")

    async def delete(self, name: str, *, version: str | None = None) -> None:
        raise NotImplementedError("the SDK sidecar's Kubernetes store cannot delete GameServers (controllers do)")

    # -- lifecycle --------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> KubeGameServerStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals --------------------------------------------------------------------------------

    def _object_url(self, name: str) -> str:
        return f"{self._collection}/{quote(name)}"

    def _remember(self, raw: Json) -> GameServer:
        try:
            obj, _ = decode(GameServer, raw)
        except ValidationError as exc:
            raise BackendError(f"the API server returned a GameServer fleetmatch cannot read: {exc}") from exc
        version = obj.metadata.resource_version
        self._seen[version] = _Seen(raw, obj)
        self._seen.move_to_end(version)
        while len(self._seen) > self._SEEN:
            self._seen.popitem(last=False)
        return obj

    async def _base(self, name: str, version: str) -> _Seen:
        """The stored object at ``version`` (remembered, else read: a newer one is a conflict)."""
        seen = self._seen.get(version)
        if seen is not None and seen.obj.name == name:
            return seen
        current = await self.get(name)
        if current.metadata.resource_version != version:
            raise ConflictError(GameServer.KIND, name, version, current.metadata.resource_version)
        return self._seen[version]

    async def _space_writes(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._next_write - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_write = loop.time() + self._settings.write_spacing

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context: ssl.SSLContext | bool = True
            if self._config.insecure:
                ssl_context = False
            elif self._config.ca_file is not None:
                ssl_context = ssl.create_default_context(cafile=str(self._config.ca_file))
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_context, limit=4),
                read_bufsize=2**21,  # one watch line holds a whole object
                headers={"Accept": "application/json", "User-Agent": "fleetmatch-sdk-sidecar"},
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        """The Authorization header; a token file is re-read every ``token_refresh_seconds``."""
        config = self._config
        now = time.monotonic()
        if config.token_file is not None and now - self._token_read >= config.token_refresh_seconds:
            try:
                self._token = config.token_file.read_text().strip() or self._token
            except OSError as exc:
                log.warning("cannot read the service-account token %s: %s", config.token_file, exc)
            self._token_read = now
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _target(self, verb: str, resource: str = GameServer.PLURAL, name: str = "", version: str = "") -> ApiTarget:
        return ApiTarget(verb, resource, GROUP, self._namespace, GameServer.KIND, name, version)

    async def _json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Json | None = None,
        content_type: str = "application/json",
        verb: str,
        resource: str = GameServer.PLURAL,
        name: str = "",
        version: str = "",
    ) -> Json:
        """One request with retries; the decoded JSON body of a 2xx, else our error."""
        settings = self._settings
        target = self._target(verb, resource, name, version)
        data = json.dumps(body).encode() if body is not None else None
        attempt = 0
        while True:
            headers = self._headers()
            if data is not None:
                headers["Content-Type"] = content_type
            retry_after: float | None = None
            try:
                self.requests += 1
                async with self._client().request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=settings.request_timeout),
                ) as resp:
                    if resp.status < 300:
                        doc = await resp.json(content_type=None)
                        if not isinstance(doc, dict):
                            raise BackendError(f"{method} {url}: expected a JSON object, got {type(doc).__name__}")
                        return doc
                    error = api_error(resp.status, await resp.text(), target, http_reason=resp.reason or "")
                    if not isinstance(error, KubeApiError) or not error.transient:
                        self._refused(error)
                        raise error
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    problem = error
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = unreachable(exc, target)
            if attempt >= settings.retries:
                raise KubeApiError(
                    f"{problem} (after {attempt + 1} attempts)", code=problem.code, target=target, status=problem.status
                ) from problem
            delay = retry_after if retry_after is not None else settings.backoff * 2**attempt
            log.info("%s %s: %s; retrying in %.2fs", verb, resource, problem, delay, extra=self._extra)
            await asyncio.sleep(min(delay, settings.max_backoff))
            attempt += 1

    def _refused(self, error: Exception) -> None:
        """Side effects of a refusal: a 401 re-reads the token file before the next request, a 403 logs
        (once per verb and resource) what the Pod's service account needs."""
        if not isinstance(error, ForbiddenError):
            return
        if error.code == 401:
            self._token_read = float("-inf")  # a rotated token: read the file again
            return
        if (error.verb, error.resource) not in self._denied:
            self._denied.add((error.verb, error.resource))
            log.error(
                "%s; the sidecar needs get, list, watch and patch on %s and update on %s/status",
                error,
                GameServer.PLURAL,
                GameServer.PLURAL,
                extra=self._extra,
            )

    async def _open_watch(self, version: str) -> AsyncIterator[Any]:
        """One watch request from ``version``, its lines decoded (``open_stream`` of the watch)."""
        settings = self._settings
        target = self._target("watch", version=version)
        params = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "fieldSelector": self._field_selector,
            "timeoutSeconds": str(settings.watch_timeout_seconds),
        }
        timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.request_timeout, sock_read=settings.watch_timeout_seconds + 30
        )
        try:
            self.requests += 1
            async with self._client().get(
                self._collection, params=params, headers=self._headers(), timeout=timeout
            ) as resp:
                if resp.status != 200:
                    error = api_error(resp.status, await resp.text(), target, http_reason=resp.reason or "")
                    self._refused(error)
                    raise error
                async for line in decode_lines(resp.content):
                    yield line
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unreachable(exc, target) from exc


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
