"""Errors shared by every fleetmatch package.

    FleetmatchError
    ├── ValidationError        bad user input; names the field (HTTP 422, CLI exit 2)
    ├── StoreError             a state backend failed or refused
    │   ├── NotFoundError      no object by that name (HTTP 404)
    │   ├── AlreadyExistsError create of a name that exists
    │   ├── ConflictError      update/delete whose version no longer matches
    │   ├── ExpiredError       watch from a version older than the kept history (re-list)
    │   └── BackendError       the backend itself is unreachable or broken (HTTP 503)
    └── ConfigError            settings or environment cannot work (one line says what to do)

Service packages subclass these for their own cases. An error a client can act on says so in
``http_status`` (and ``http_code``, ``retry_after``); ``fleetmatch.http`` turns that into the HTTP
answer, in one place for every API. The rest escaping a handler are 500s: bugs, logged.
"""

from __future__ import annotations

from typing import ClassVar


class FleetmatchError(Exception):
    """Base of every error fleetmatch raises on purpose."""

    http_status: ClassVar[int | None] = None
    """The HTTP status an API answers with when this error escapes a handler; None: a 500 (a bug)."""
    http_code: ClassVar[str | None] = None
    """The answer's ``error.code``; None: the status's usual one (``NotFound`` for 404...)."""
    public_message: ClassVar[str | None] = None
    """Said instead of the error's own text, which may name internals (hosts, keys); it is logged."""
    retry_after: float | None = None
    """Seconds after which retrying makes sense (HTTP ``Retry-After``), when the error knows."""


class ValidationError(FleetmatchError, ValueError):
    """User input is wrong. ``field`` is a dotted path such as ``spec.template.spec.ports[0].portPolicy``."""

    http_status = 422

    def __init__(self, field: str, message: str, *, line: int | None = None) -> None:
        self.field = field
        self.message = message
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.field or '<document>'}{where}: {self.message}" if self.field else f"{self.message}{where}"

    def under(self, prefix: str) -> ValidationError:
        """The same error with its field path prefixed, as it bubbles out of a nested object."""
        if not prefix:
            return self
        if not self.field:
            field = prefix
        elif self.field.startswith("["):
            field = prefix + self.field
        else:
            field = f"{prefix}.{self.field}"
        return ValidationError(field, self.message, line=self.line)


class ConfigError(FleetmatchError):
    """The environment or settings cannot work; the message says what to install or set."""


class StoreError(FleetmatchError):
    """A state backend failed or refused an operation."""


class NotFoundError(StoreError):
    http_status = 404

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f'{kind} "{name}" not found')


class AlreadyExistsError(StoreError):
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f'{kind} "{name}" already exists')


class ConflictError(StoreError):
    """The object changed since it was read: re-read and retry."""

    def __init__(self, kind: str, name: str, expected: str, actual: str | None) -> None:
        self.kind, self.name, self.expected, self.actual = kind, name, expected, actual
        super().__init__(
            f'{kind} "{name}" was modified (expected version {expected}, found {actual}); re-read and retry'
        )


class ExpiredError(StoreError):
    """A watch asked for history the backend no longer keeps; list again and watch from the new version."""

    def __init__(self, kind: str, version: str) -> None:
        self.kind, self.version = kind, version
        super().__init__(f"{kind}: version {version} is older than the kept history; re-list")


class BackendError(StoreError):
    """The backend is unreachable or answered something unexpected."""

    http_status = 503
    public_message = "the store is unavailable; retry shortly"
    retry_after = 1.0
