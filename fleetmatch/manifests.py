"""Reading resource files (YAML, one or more documents) into validated models.

Every error names the file, the field and the line. A relative ``process.workingDir`` is resolved
against the file's directory when the file is read, the way docker-compose resolves paths: the
node agent that later runs the process may have any working directory.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fleetmatch.errors import ValidationError
from fleetmatch.models import Fleet, decode
from fleetmatch.yamlsrc import load_documents


def parse_fleets(text: str, *, source: str = "<input>", base_dir: Path | None = None) -> list[Fleet]:
    fleets = []
    for doc in load_documents(text, source):
        try:
            fleet = decode(Fleet, doc.data)
            if not fleet.metadata.name:
                raise ValidationError("metadata.name", "is required")
        except ValidationError as exc:
            located = doc.locate(exc)
            raise ValidationError(located.field, f"{source}: {located.message}", line=located.line) from None
        fleets.append(_resolve_workdir(fleet, base_dir) if base_dir else fleet)
    if not fleets:
        raise ValidationError("", f"{source}: no Fleet document found")
    return fleets


def load_fleets(path: Path) -> list[Fleet]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValidationError("", f"cannot read {path}: {exc.strerror}") from None
    return parse_fleets(text, source=str(path), base_dir=path.resolve().parent)


def _resolve_workdir(fleet: Fleet, base_dir: Path) -> Fleet:
    spec = fleet.spec.template.spec
    if spec.process is None or Path(spec.process.working_dir or ".").is_absolute():
        return fleet
    workdir = str((base_dir / (spec.process.working_dir or ".")).resolve())
    template = replace(fleet.spec.template, spec=replace(spec, process=replace(spec.process, working_dir=workdir)))
    return replace(fleet, spec=replace(fleet.spec, template=template))
