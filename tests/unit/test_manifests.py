"""Fleet files: errors name file, field and line; relative working dirs resolve against the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetmatch.errors import ValidationError
from fleetmatch.manifests import load_fleets, parse_fleets

GOOD = """\
apiVersion: fleetmatch.dev/v1
kind: Fleet
metadata:
  name: arena
spec:
  replicas: 3
  template:
    spec:
      process:
        command: [python, -m, game]
        workingDir: game
"""


def test_loads_and_resolves_working_dir(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(GOOD)
    (fleet,) = load_fleets(path)
    assert fleet.name == "arena" and fleet.spec.replicas == 3
    assert fleet.spec.template.spec.process is not None
    assert fleet.spec.template.spec.process.working_dir == str(tmp_path / "game")


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        pytest.param(GOOD.replace("  replicas: 3", "  replicaz: 3"), "spec.replicaz", 6, id="unknown-field"),
        pytest.param(GOOD.replace("replicas: 3", "replicas: three"), "spec.replicas", 6, id="wrong-type"),
        pytest.param(
            GOOD.replace("command: [python, -m, game]", "comand: [x]"), "spec.template.spec.process.comand", 10
        ),
        pytest.param(GOOD.replace("  name: arena", "  labels: {a: b}"), "metadata.name", 3, id="no-name"),
        pytest.param(GOOD + "  replicas: 4\n", "spec.replicas", 12, id="duplicate-key"),
    ],
)
def test_errors_name_field_and_line(text: str, field: str, line: int) -> None:
    with pytest.raises(ValidationError) as info:
        parse_fleets(text, source="fleet.yaml")
    assert (info.value.field, info.value.line) == (field, line)
    assert "fleet.yaml" in str(info.value) and f"line {line}" in str(info.value)


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(ValidationError) as info:
        parse_fleets("kind: Fleet\nspec: [unclosed\n", source="f.yaml")
    assert info.value.line is not None and "invalid YAML" in info.value.message


def test_multiple_documents_and_empty_files() -> None:
    two = parse_fleets(GOOD + "---\n" + GOOD.replace("arena", "duel"))
    assert [f.name for f in two] == ["arena", "duel"]
    with pytest.raises(ValidationError, match="no Fleet document"):
        parse_fleets("# nothing\n")
