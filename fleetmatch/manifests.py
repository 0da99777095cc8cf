"""Reading resource files (YAML, one or more documents) into validated models.

A file may hold Fleets and FleetAutoscalers (dispatched on ``kind``), as an Agones example file
holds a Fleet and its FleetAutoscaler. Every error names the file, the field and the line. A
relative ``process.workingDir`` is resolved against the file's directory when the file is read,
the way docker-compose resolves paths: the node agent that later runs the process may have any
working directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

from fleetmatch.errors import ValidationError
from fleetmatch.models import Fleet, FleetAutoscaler, decode
from fleetmatch.yamlsrc import SourceDocument, load_documents

Resource = Fleet | FleetAutoscaler
"""What a resource file may declare."""
RESOURCE_KINDS: tuple[type[Resource], ...] = (Fleet, FleetAutoscaler)

T = TypeVar("T", bound=Resource)


def parse_resources(text: str, *, source: str = "<input>", base_dir: Path | None = None) -> list[Resource]:
    """Every Fleet and FleetAutoscaler in ``text``, in file order; each document must name its ``kind``."""
    return _parse(text, source, base_dir, RESOURCE_KINDS)


def parse_fleets(text: str, *, source: str = "<input>", base_dir: Path | None = None) -> list[Fleet]:
    """Every document must be a Fleet (``kind`` may be left out)."""
    return _parse(text, source, base_dir, (Fleet,))


def parse_autoscalers(text: str, *, source: str = "<input>") -> list[FleetAutoscaler]:
    """Every document must be a FleetAutoscaler (``kind`` may be left out)."""
    return _parse(text, source, None, (FleetAutoscaler,))


def load_resources(path: Path) -> list[Resource]:
    return parse_resources(_read(path), source=str(path), base_dir=path.resolve().parent)


def load_fleets(path: Path) -> list[Fleet]:
    return parse_fleets(_read(path), source=str(path), base_dir=path.resolve().parent)


def load_autoscalers(path: Path) -> list[FleetAutoscaler]:
    return parse_autoscalers(_read(path), source=str(path))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ValidationError("", f"cannot read {path}: {exc.strerror}") from None


def _kind_of(doc: SourceDocument, kinds: Sequence[type[T]]) -> type[T]:
    if len(kinds) == 1:
        return kinds[0]  # ``decode`` checks a ``kind`` that is present and says what it must be
    names = " or ".join(k.KIND for k in kinds)
    kind: Any = doc.data.get("kind") if isinstance(doc.data, Mapping) else None
    if kind is None:
        raise ValidationError("kind", f"is required: {names}")
    for cls in kinds:
        if kind == cls.KIND:
            return cls
    raise ValidationError("kind", f"must be {names}, got {kind!r}")


def _parse(text: str, source: str, base_dir: Path | None, kinds: Sequence[type[T]]) -> list[T]:
    out: list[T] = []
    for doc in load_documents(text, source):
        try:
            obj = decode(_kind_of(doc, kinds), doc.data)
            if not obj.metadata.name:
                raise ValidationError("metadata.name", "is required")
        except ValidationError as exc:
            located = doc.locate(exc)
            raise ValidationError(located.field, f"{source}: {located.message}", line=located.line) from None
        if isinstance(obj, Fleet) and base_dir is not None:
            obj = cast(T, _resolve_workdir(obj, base_dir))
        out.append(obj)
    if not out:
        raise ValidationError("", f"{source}: no {' or '.join(k.KIND for k in kinds)} document found")
    return out


def _resolve_workdir(fleet: Fleet, base_dir: Path) -> Fleet:
    spec = fleet.spec.template.spec
    if spec.process is None or Path(spec.process.working_dir or ".").is_absolute():
        return fleet
    workdir = str((base_dir / (spec.process.working_dir or ".")).resolve())
    template = replace(fleet.spec.template, spec=replace(spec, process=replace(spec.process, working_dir=workdir)))
    return replace(fleet, spec=replace(fleet.spec, template=template))
