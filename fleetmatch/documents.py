"""Resource documents to models: the one decoder for every kind fleetmatch reads.

Fleets and FleetAutoscalers (resource files), Queues (queue rules), LoadTests (scenarios) and
GameServerAllocations (request bodies) share one shape: ``apiVersion`` and ``kind``, then the
model's fields, decoded strictly by ``fleetmatch.codec`` (an unknown or mistyped field is an error
naming its path, such as ``spec.template.spec.ports[0].portPolicy``). Each kind is a ``Kind``: its
model, the apiVersions it accepts and, where the wire form has shorthands, how to expand them.

A reader passes the kinds it accepts, its registry: with one, ``kind`` may be left out; with
several, ``kind`` picks the model and is required. Read from YAML (``parse_documents``), every
error also names the source and the line of its field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from fleetmatch.codec import from_wire
from fleetmatch.errors import ValidationError
from fleetmatch.models import API_VERSION
from fleetmatch.yamlsrc import SourceDocument, load_documents


class HasKind(Protocol):
    KIND: ClassVar[str]


M = TypeVar("M", bound=HasKind, covariant=True)
T = TypeVar("T", bound=HasKind)


@dataclass(frozen=True, slots=True)
class Kind(Generic[M]):
    """One kind of document: what it decodes to and what its envelope may say."""

    model: type[M]
    api_versions: frozenset[str] = frozenset({API_VERSION})
    """Accepted ``apiVersion`` values (errors name ``fleetmatch.dev/v1``, the one we write)."""
    ignored: frozenset[str] = frozenset()
    """Top-level fields accepted and dropped (an allocation request's ``metadata``)."""
    expand: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Shorthands of the wire form expanded before decoding (a LoadTest's ``4v4: 2``)."""

    @property
    def name(self) -> str:
        return self.model.KIND

    def body(self, doc: Any) -> dict[str, Any]:
        """``doc`` without its envelope, once the envelope is checked: a mapping, an accepted
        ``apiVersion`` (if given) and this ``kind`` (if given)."""
        if not isinstance(doc, Mapping):
            raise ValidationError("", f"a {self.name} document must be a mapping, got {type(doc).__name__}")
        body = dict(doc)
        api_version = body.pop("apiVersion", API_VERSION)
        kind = body.pop("kind", self.name)
        for name, value in (("apiVersion", api_version), ("kind", kind)):
            if not isinstance(value, str):
                raise ValidationError(name, f"expected a string, got {type(value).__name__}")
        if api_version not in self.api_versions:
            raise ValidationError("apiVersion", f"must be {API_VERSION}, got {api_version!r}")
        if kind != self.name:
            raise ValidationError("kind", f"must be {self.name}, got {kind!r}")
        for name in self.ignored:
            body.pop(name, None)
        return body

    def decode(self, doc: Any) -> M:
        body = self.body(doc)
        return from_wire(self.model, body if self.expand is None else self.expand(body))


def kind_of(doc: Any, kinds: Sequence[Kind[T]]) -> Kind[T]:
    """The kind ``doc`` declares among ``kinds``. With one kind, ``kind`` may be left out (and a
    wrong one is named by ``Kind.body``); with several, it is required."""
    if len(kinds) == 1:
        return kinds[0]
    names = " or ".join(k.name for k in kinds)
    kind: Any = doc.get("kind") if isinstance(doc, Mapping) else None
    if kind is None:
        raise ValidationError("kind", f"is required: {names}")
    for candidate in kinds:
        if kind == candidate.name:
            return candidate
    raise ValidationError("kind", f"must be {names}, got {kind!r}")


def decode(doc: Any, kinds: Sequence[Kind[T]]) -> T:
    """One wire document (parsed JSON or YAML) of one of ``kinds``; errors name the field."""
    return kind_of(doc, kinds).decode(doc)


@contextlib.contextmanager
def located(doc: SourceDocument) -> Iterator[None]:
    """A ``ValidationError`` raised in the block names ``doc``'s source and its field's line."""
    try:
        yield
    except ValidationError as exc:
        where = doc.locate(exc)
        raise ValidationError(where.field, f"{doc.source}: {where.message}", line=where.line) from None


def decode_document(doc: SourceDocument, kinds: Sequence[Kind[T]], check: Callable[[T], None] | None = None) -> T:
    """One YAML document; ``check`` (a reader's own rule, such as unique names) runs on the result,
    and its errors are located too."""
    with located(doc):
        obj = decode(doc.data, kinds)
        if check is not None:
            check(obj)
    return obj


def parse_documents(
    text: str, source: str, kinds: Sequence[Kind[T]], check: Callable[[T], None] | None = None
) -> list[T]:
    """Every document in ``text``, in order, at least one; errors name the source, field and line."""
    out = [decode_document(doc, kinds, check) for doc in load_documents(text, source)]
    if not out:
        raise ValidationError("", f"{source}: no {' or '.join(k.name for k in kinds)} document found")
    return out


def read_text(path: Path) -> str:
    """A resource file's text; a file that cannot be read is a ``ValidationError`` saying why."""
    try:
        return path.read_text()
    except OSError as exc:
        raise ValidationError("", f"cannot read {path}: {exc.strerror}") from None
