"""Reading resource files (YAML, one or more documents) into validated models.

A file may hold Fleets and FleetAutoscalers (dispatched on ``kind``), as an Agones example file
holds a Fleet and its FleetAutoscaler. Decoding is ``fleetmatch.documents``, the decoder every
resource reader shares: every error names the file, the field and the line. A
relative ``process.workingDir`` is resolved against the file's directory when the file is read,
the way docker-compose resolves paths: the node agent that later runs the process may have any
working directory.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fleetmatch.documents import Kind, parse_documents, read_text
from fleetmatch.errors import ValidationError
from fleetmatch.models import ACCEPTED_API_VERSIONS, Fleet, FleetAutoscaler

Resource = Fleet | FleetAutoscaler
"""What a resource file may declare."""
FLEET = Kind(Fleet, ACCEPTED_API_VERSIONS)
AUTOSCALER = Kind(FleetAutoscaler, ACCEPTED_API_VERSIONS)
RESOURCE_KINDS: tuple[Kind[Resource], ...] = (FLEET, AUTOSCALER)


def parse_resources(text: str, *, source: str = "<input>", base_dir: Path | None = None) -> list[Resource]:
    """Every Fleet and FleetAutoscaler in ``text``, in file order; each document must name its ``kind``."""
    return [_resolved(r, base_dir) for r in parse_documents(text, source, RESOURCE_KINDS, _named)]


def parse_fleets(text: str, *, source: str = "<input>", base_dir: Path | None = None) -> list[Fleet]:
    """Every document must be a Fleet (``kind`` may be left out)."""
    return [_resolve_workdir(f, base_dir) for f in parse_documents(text, source, (FLEET,), _named)]


def parse_autoscalers(text: str, *, source: str = "<input>") -> list[FleetAutoscaler]:
    """Every document must be a FleetAutoscaler (``kind`` may be left out)."""
    return parse_documents(text, source, (AUTOSCALER,), _named)


def load_resources(path: Path) -> list[Resource]:
    return parse_resources(read_text(path), source=str(path), base_dir=path.resolve().parent)


def load_fleets(path: Path) -> list[Fleet]:
    return parse_fleets(read_text(path), source=str(path), base_dir=path.resolve().parent)


def load_autoscalers(path: Path) -> list[FleetAutoscaler]:
    return parse_autoscalers(read_text(path), source=str(path))


def _named(obj: Resource) -> None:
    if not obj.metadata.name:
        raise ValidationError("metadata.name", "is required")


def _resolved(obj: Resource, base_dir: Path | None) -> Resource:
    return _resolve_workdir(obj, base_dir) if isinstance(obj, Fleet) else obj


def _resolve_workdir(fleet: Fleet, base_dir: Path | None) -> Fleet:
    spec = fleet.spec.template.spec
    if base_dir is None or spec.process is None or Path(spec.process.working_dir or ".").is_absolute():
        return fleet
    workdir = str((base_dir / (spec.process.working_dir or ".")).resolve())
    template = replace(fleet.spec.template, spec=replace(spec, process=replace(spec.process, working_dir=workdir)))
    return replace(fleet, spec=replace(fleet.spec, template=template))
