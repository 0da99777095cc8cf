"""Refusals of the Kubernetes API server as fleetmatch errors: ONE mapping for every client.

The HTTP libraries under our clients (kubernetes-asyncio for the controllers, the allocator and the
CLI; plain aiohttp for the in-pod sidecar) may change, so their exceptions stop here. A refused
request (its HTTP code and ``Status`` body) or a request that got no answer becomes::

    FleetmatchError
    ├── ValidationError            400/422: names the first ``details.causes[].field``
    └── StoreError
        ├── NotFoundError          404 about the object the request named
        ├── AlreadyExistsError     409 AlreadyExists (a create)
        ├── ConflictError          409 Conflict: the object's resourceVersion moved on
        ├── ExpiredError           410 Expired or Gone: list again
        └── BackendError
            └── KubeApiError       anything else; ``code`` 0 when there was no answer
                └── ForbiddenError 401/403, naming the RBAC verb, resource and namespace to grant

Callers branch on these types; ``KubeApiError.transient`` tells what is worth retrying (no answer,
408, 429, 5xx). The original exception is chained as the cause. This module imports no HTTP
library: the sidecar's thin client uses it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, TypedDict, cast

from fleetmatch.errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    ExpiredError,
    FleetmatchError,
    NotFoundError,
    StoreError,
    ValidationError,
)

TRANSIENT_CODES = frozenset({0, 408, 429, 500, 502, 503, 504})
"""Codes of failures a retry may cure (0: no HTTP answer)."""


class StatusCause(TypedDict, total=False):
    type: str
    message: str
    field: str


class StatusDetails(TypedDict, total=False):
    name: str
    group: str
    kind: str
    uid: str
    causes: list[StatusCause]
    retryAfterSeconds: int


class Status(TypedDict, total=False):
    """The ``Status`` document the API server answers a refused request with (``metav1.Status``)."""

    kind: str
    apiVersion: str
    metadata: dict[str, Any]
    status: str
    message: str
    reason: str
    details: StatusDetails
    code: int


@dataclass(frozen=True, slots=True)
class ApiTarget:
    """What a request was about, as RBAC and error messages name it."""

    verb: str
    """The RBAC verb: get, list, watch, create, update, patch, delete."""
    resource: str
    """The plural, with ``/status`` for the subresource: ``pods``, ``fleets/status``."""
    group: str = ""
    """The API group (empty: the core group)."""
    namespace: str = ""
    """Empty for cluster-scoped resources (nodes)."""
    kind: str = ""
    """The object kind in ``NotFoundError`` and friends (``GameServer``, ``Pod``)."""
    name: str = ""
    version: str = ""
    """The resourceVersion the request was conditional on (for ``ConflictError``, ``ExpiredError``)."""

    def about(self, name: str = "", *, version: str = "", verb: str | None = None) -> ApiTarget:
        """The same resource, for one request on object ``name``."""
        return replace(self, name=name, version=version, verb=verb or self.verb)

    @property
    def qualified(self) -> str:
        """``gameservers.fleetmatch.dev``, ``pods``: how the API server names the resource."""
        plural, _, sub = self.resource.partition("/")
        return (f"{plural}.{self.group}" if self.group else plural) + (f"/{sub}" if sub else "")

    @property
    def where(self) -> str:
        return f" in namespace {self.namespace!r}" if self.namespace else ""


class KubeApiError(BackendError):
    """The API server refused a request in a way no other error names, or did not answer (``code`` 0)."""

    def __init__(self, message: str, *, code: int, target: ApiTarget, status: Status | None = None) -> None:
        self.code = code
        self.target = target
        self.verb, self.resource, self.namespace = target.verb, target.resource, target.namespace
        self.status: Status = status or {}
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed (no answer, 408, 429, 5xx)."""
        return self.code in TRANSIENT_CODES


class ForbiddenError(KubeApiError):
    """The API server refused our credentials (401) or RBAC denied the request (403).

    A ``BackendError``, so that loops log it and keep retrying with back-off: an operator can fix the
    Role while fleetmatch runs. ``verb``, ``resource`` and ``namespace`` say what to grant.
    """


def parse_status(body: str | bytes | None) -> Status:
    """The ``Status`` document of an error response ({} when the body is not one)."""
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return cast(Status, doc) if isinstance(doc, dict) else {}


def api_error(
    code: int, body: str | bytes | Status | None, target: ApiTarget, *, http_reason: str = ""
) -> StoreError | ValidationError:
    """Our error for a request the API server answered with ``code`` and ``body`` (its ``Status``)."""
    status = body if isinstance(body, dict) else parse_status(body)
    code = code or int(status.get("code") or 0)
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or http_reason or "")
    details = status.get("details")
    details = details if isinstance(details, dict) else {}
    name, kind = target.name, target.kind or target.resource
    if code == 404:
        if name and (not status or details.get("name") == name or f'"{name}"' in message):
            return NotFoundError(kind, name)
        hint = "are the CRDs of deploy/crds/ installed, and " if target.group.endswith("fleetmatch.dev") else ""
        return KubeApiError(
            f"{target.qualified}{target.where}: {message or 'not found'} ({hint}does the namespace exist?)",
            code=code,
            target=target,
            status=status,
        )
    if code == 409:
        if reason == "AlreadyExists" or (not reason and target.verb == "create"):
            return AlreadyExistsError(kind, name or str(details.get("name", "")))
        return ConflictError(kind, name, target.version, None)
    if code == 410:
        return ExpiredError(kind, target.version)
    if code in (400, 422):
        causes = [c for c in details.get("causes") or () if isinstance(c, dict)]
        field = str(causes[0].get("field", "")) if causes else ""
        text = "; ".join(str(c.get("message", "")) for c in causes) or message or reason or "invalid"
        return ValidationError(field, text)
    if code in (401, 403):
        return ForbiddenError(_forbidden(code, target, message), code=code, target=target, status=status)
    return KubeApiError(
        f"kubernetes API: {target.verb} {target.qualified}{target.where} failed with HTTP {code} {reason}: {message}",
        code=code,
        target=target,
        status=status,
    )


def _forbidden(code: int, target: ApiTarget, message: str) -> str:
    if code == 401:
        what = "unauthorized: the API server rejected the credentials (401): check the kubeconfig or the token"
    else:
        group = repr(target.group) if target.group else "'' (core)"
        what = (
            f"forbidden: RBAC does not allow it: grant verb {target.verb!r} on resource {target.resource!r} in API "
            f"group {group}{target.where or ' (cluster-wide)'} to the user or service account fleetmatch runs as"
        )
    return f"cannot {target.verb} {target.qualified}: {what}. API server: {message}"


def unreachable(exc: BaseException, target: ApiTarget) -> KubeApiError:
    """The error for a request that got no answer (connection refused or lost, timeout)."""
    return KubeApiError(
        f"kubernetes API unreachable ({target.verb} {target.qualified}): {type(exc).__name__}: {exc}",
        code=0,
        target=target,
    )


def status_code(error: FleetmatchError) -> int:
    """The HTTP code behind one of this module's errors (0: no answer, or not an API refusal)."""
    if isinstance(error, KubeApiError):
        return error.code
    codes: list[tuple[type[FleetmatchError], int]] = [
        (NotFoundError, 404),
        (AlreadyExistsError, 409),
        (ConflictError, 409),
        (ExpiredError, 410),
        (ValidationError, 422),
    ]
    return next((code for cls, code in codes if isinstance(error, cls)), 0)


__all__ = [
    "ApiTarget",
    "ForbiddenError",
    "KubeApiError",
    "Status",
    "StatusCause",
    "StatusDetails",
    "api_error",
    "parse_status",
    "status_code",
    "unreachable",
]
