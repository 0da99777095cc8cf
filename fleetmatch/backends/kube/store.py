"""The Kubernetes engine of the state store: GameServers, Fleets and FleetAutoscalers as custom resources.

One ``KubeStore`` per kind and namespace, on the real ``kubernetes_asyncio`` client
(``CustomObjectsApi``). Versions are the API server's resourceVersions, opaque and compared for
equality only; an update is one conditional PUT, or two (main object, then ``/status``) on kinds
whose CRD has the status subresource, spec and metadata first; metadata fleetmatch does not model
(finalizers) and spec/status fields it does not know are kept on replace; the watch
is the package's one resumable watch; errors are ``fleetmatch.backends.kube.errors``. Why each of
these is so: docs/architecture.md, "The Kubernetes store".
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, Generic, TypeVar

import aiohttp
from kubernetes_asyncio.client import ApiClient, CustomObjectsApi, V1DeleteOptions, V1Preconditions

from fleetmatch.backends.kube.calls import call, watch_stream
from fleetmatch.backends.kube.errors import ApiTarget, KubeApiError
from fleetmatch.backends.kube.watch import RawEvent, watch_events
from fleetmatch.backends.kube.wire import GROUP, VERSION, Kept, decode, encode
from fleetmatch.codec import to_wire
from fleetmatch.errors import (
    BackendError,
    ConflictError,
    ExpiredError,
    ValidationError,
)
from fleetmatch.store import EventType, R, WatchEvent

log = logging.getLogger(__name__)


WATCH_TIMEOUT = 240
"""Seconds one watch request lasts (``timeoutSeconds``) before the store reopens it. Bounded, so a
half-open connection is noticed; the API server itself ends watches after 30-60 minutes anyway."""
WATCH_READ_SLACK = 30.0
"""A watch stream silent this long beyond its ``timeoutSeconds`` is considered dead and reopened."""
REQUEST_TIMEOUT = 30.0
"""Seconds one ordinary request (get, list page, create, update, delete) may take in total."""
CONNECT_TIMEOUT = 10.0
LIST_PAGE = 500
"""Objects per list request (``limit``); pages are joined under the first page's version."""
SEEN_LIMIT = 50_000
"""Objects whose last read version the store remembers (for status-only updates and unmodelled metadata)."""

T = TypeVar("T")


class KubeStore(Generic[R]):
    """``fleetmatch.store.Store`` on the Kubernetes API (one kind, one namespace).

    ``api`` is owned by the caller (close it after the store's last use).
    """

    def __init__(
        self,
        api: ApiClient,
        kind: type[R],
        namespace: str = "default",
        *,
        status_subresource: bool | None = None,
        watch_timeout: int = WATCH_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        list_page: int = LIST_PAGE,
        retry_max_seconds: float = 2.0,
        seen_limit: int = SEEN_LIMIT,
        propagation: str = "",
    ) -> None:
        self._api = CustomObjectsApi(api)
        self._kind = kind
        self._namespace = namespace
        self._plural = kind.PLURAL
        self._status_subresource = status_subresource
        self._watch_timeout = watch_timeout
        self._request_timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=connect_timeout)
        self._watch_request_timeout = (connect_timeout, watch_timeout + WATCH_READ_SLACK)
        self._list_page = list_page
        self._retry_max = retry_max_seconds
        self._seen: dict[str, tuple[R, Kept | None]] = {}
        """name -> (the object as last read from the server, what it holds beyond our model)."""
        self._seen_limit = seen_limit
        self._propagation = propagation
        """``propagationPolicy`` of our deletes (empty: the API server's default, Background)."""

    @property
    def kind(self) -> type[R]:
        return self._kind

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def resource(self) -> str:
        """``gameservers.fleetmatch.dev``: how the API server and RBAC name our resource."""
        return f"{self._plural}.{GROUP}"

    # -- codec -------------------------------------------------------------------------------

    def _body(self, obj: R, version: str, kept: Kept | None) -> dict[str, Any]:
        """The resource document for ``obj``; ``kept``: what the server holds beyond our model, to keep."""
        return encode(obj, self._namespace, version=version, kept=kept)

    def _decode(self, doc: Any) -> R:
        """A server document as our model (validated: kubectl users write these too), remembered.

        Members the model does not know (``spec.template``, a pod template, or a newer version's
        fields) are left out of the model and kept aside, to be written back on the next PUT.
        """
        if not isinstance(doc, Mapping) or not isinstance(doc.get("metadata"), Mapping):
            raise BackendError(f"{self.resource}: the API server returned no object: {doc!r}"[:300])
        obj, kept = decode(self._kind, doc)
        self._remember(obj, kept)
        return obj

    def _remember(self, obj: R, kept: Kept | None) -> None:
        seen = self._seen
        name = obj.metadata.name
        seen.pop(name, None)
        seen[name] = (obj, kept)
        if len(seen) > self._seen_limit:
            del seen[next(iter(seen))]  # least recently read first: a dict keeps insertion order

    def _known(self, obj: R) -> tuple[R, Kept | None] | None:
        """What we read of ``obj``'s name at ``obj``'s version, if we did (a version names one state)."""
        seen = self._seen.get(obj.metadata.name)
        if seen is not None and seen[0].metadata.resource_version == obj.metadata.resource_version:
            return seen
        return None

    def _same_status(self, a: R, b: R) -> bool:
        return to_wire(a.status) == to_wire(b.status)  # wire form: timestamps compared as stored (ms)

    # -- errors ------------------------------------------------------------------------------

    def _target(self, verb: str, name: str = "", *, version: str = "") -> ApiTarget:
        """What a request is about (``verb`` is its RBAC verb; "update status" writes ``/status``)."""
        sub = "/status" if verb == "update status" else ""
        return ApiTarget(
            "update" if sub else verb, self._plural + sub, GROUP, self._namespace, self._kind.KIND, name, version
        )

    async def _call(self, request: Awaitable[T], verb: str, name: str = "", *, version: str = "") -> T:
        return await call(request, self._target(verb, name, version=version))

    # -- reads -------------------------------------------------------------------------------

    async def get(self, name: str) -> R:
        doc = await self._call(
            self._api.get_namespaced_custom_object(
                GROUP, VERSION, self._namespace, self._plural, name, _request_timeout=self._request_timeout
            ),
            "get",
            name,
        )
        return self._decode(doc)

    async def list(self) -> tuple[list[R], str]:
        for attempt in range(3):
            try:
                return await self._list()
            except ExpiredError:  # a continue token outlived the server's compaction: list again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _list(self) -> tuple[builtins.list[R], str]:
        items: builtins.list[R] = []
        version = ""
        token = ""
        while True:
            extra: dict[str, Any] = {"_continue": token} if token else {}
            doc = await self._call(
                self._api.list_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self._namespace,
                    self._plural,
                    limit=self._list_page,
                    _request_timeout=self._request_timeout,
                    **extra,
                ),
                "list",
            )
            meta = doc.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            for item in doc.get("items") or ():
                try:
                    items.append(self._decode(item))
                except ValidationError as exc:
                    name = (item.get("metadata") or {}).get("name")
                    log.warning("%s %s is not a valid %s; skipped: %s", self.resource, name, self._kind.KIND, exc)
            token = str(meta.get("continue") or "")
            if not token:
                break
        if not version:
            raise BackendError(f"{self.resource}: the list carried no resourceVersion")
        items.sort(key=lambda o: o.metadata.name)
        return items, version

    async def watch(self, since: str) -> AsyncIterator[WatchEvent[R]]:
        """Changes after ``since``, through ``fleetmatch.backends.kube.watch`` (resumed across streams)."""
        target = self._target("watch")
        stream = watch_stream(
            self._api.list_namespaced_custom_object,
            target,
            timeout_seconds=self._watch_timeout,
            request_timeout=self._watch_request_timeout,
            group=GROUP,
            version=VERSION,
            namespace=self._namespace,
            plural=self._plural,
        )
        async for raw in watch_events(stream, since, target=target, max_backoff=self._retry_max):
            event = self._event(raw)
            if event is not None:
                yield event

    def _event(self, raw: RawEvent) -> WatchEvent[R] | None:
        """The event of one change; None (logged) when its object is not a valid one of our kind."""
        type_ = EventType(raw.type)
        try:
            obj = self._decode(raw.object)
        except ValidationError as exc:
            log.warning("watch of %s: %s at %s is not a valid %s; skipped: %s", self.resource, raw.type, raw.version,
                        self._kind.KIND, exc)  # fmt: skip
            return None
        if type_ is EventType.DELETED:
            self._seen.pop(obj.metadata.name, None)
        return WatchEvent(type_, obj)

    # -- writes ------------------------------------------------------------------------------

    async def create(self, obj: R) -> R:
        meta = obj.metadata
        if meta.resource_version:
            raise ValidationError("metadata.resourceVersion", "must not be set on objects to be created")
        if not meta.name and not meta.generate_name:
            raise ValidationError("metadata.name", "name or generateName is required")
        doc = await self._call(
            self._api.create_namespaced_custom_object(
                GROUP, VERSION, self._namespace, self._plural, self._body(obj, "", None),
                _request_timeout=self._request_timeout,
            ),
            "create",
            meta.name,
        )  # fmt: skip
        created = self._decode(doc)
        if self._status_subresource is False or self._same_status(created, obj):
            return created
        try:
            return await self._write_status(obj, created)
        except ConflictError:
            log.info("%s %s changed before its initial status was written; keeping the newer state",
                     self._kind.KIND, created.metadata.name)  # fmt: skip
            return created

    async def update(self, obj: R) -> R:
        meta = obj.metadata
        if not meta.resource_version:
            raise ConflictError(self._kind.KIND, meta.name, "", None)  # Kubernetes refuses unconditional updates
        known = self._known(obj)
        if (
            self._status_subresource
            and known is not None
            and _main_part(known[0]) == _main_part(obj)
            and not self._same_status(known[0], obj)
        ):
            return await self._write_status(obj, known[0])  # only the status changed: one request
        stored = await self._put_main(obj, known[1] if known is not None else None)
        if self._status_subresource is False or self._same_status(stored, obj):
            return stored  # everything written (or the status never differed)
        return await self._write_status(obj, stored)  # the main endpoint ignored the status

    async def _put_main(self, obj: R, kept: Kept | None) -> R:
        name, version = obj.metadata.name, obj.metadata.resource_version
        doc = await self._call(
            self._api.replace_namespaced_custom_object(
                GROUP, VERSION, self._namespace, self._plural, name, self._body(obj, version, kept),
                _request_timeout=self._request_timeout,
            ),
            "update",
            name,
            version=version,
        )  # fmt: skip
        return self._decode(doc)

    async def _write_status(self, wanted: R, stored: R) -> R:
        """PUT ``wanted``'s status on ``stored`` through ``/status``, conditional on ``stored``'s version.

        Reached when the main endpoint did not store the status. A 404 that is not about the object
        means the CRD has no status subresource after all (the server then defaulted or pruned the
        status we sent): the store remembers that and returns what the server stored.
        """
        name, version = stored.metadata.name, stored.metadata.resource_version
        known = self._known(stored)
        body = self._body(wanted, version, known[1] if known is not None else None)
        try:
            doc = await self._call(
                self._api.replace_namespaced_custom_object_status(
                    GROUP, VERSION, self._namespace, self._plural, name, body, _request_timeout=self._request_timeout
                ),
                "update status",
                name,
                version=version,
            )
        except KubeApiError as exc:
            if exc.code != 404:
                raise
            log.warning("%s has no /status subresource; status is written with the object", self.resource)
            self._status_subresource = False
            return stored
        self._status_subresource = True
        return self._decode(doc)

    async def delete(self, name: str, *, version: str | None = None) -> None:
        options = V1DeleteOptions(preconditions=V1Preconditions(resource_version=version)) if version else None
        extra: dict[str, Any] = {"body": options} if options is not None else {}
        if self._propagation:
            extra["propagation_policy"] = self._propagation
        await self._call(
            self._api.delete_namespaced_custom_object(
                GROUP, VERSION, self._namespace, self._plural, name, _request_timeout=self._request_timeout, **extra
            ),
            "delete",
            name,
            version=version or "",
        )
        self._seen.pop(name, None)


def _main_part(obj: Any) -> tuple[Any, ...]:
    """What the main endpoint writes: spec, labels, annotations (and generateName)."""
    meta = obj.metadata
    return obj.spec, meta.labels, meta.annotations, meta.generate_name
