"""FleetAutoscaler files: bad values are errors naming the field and its line; files mixing
Fleets and FleetAutoscalers are read in order; the example autoscaler fits the demo fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocator.autoscale import buffer_replicas
from fleetmatch.demo import DEMO_FLEET, demo_file
from fleetmatch.errors import ValidationError
from fleetmatch.manifests import (
    load_autoscalers,
    load_fleets,
    load_resources,
    parse_autoscalers,
    parse_fleets,
    parse_resources,
)
from fleetmatch.models import BufferPolicy, Fleet, FleetAutoscaler

GOOD = """\
apiVersion: fleetmatch.dev/v1
kind: FleetAutoscaler
metadata:
  name: arena-autoscaler
spec:
  fleetName: arena
  policy:
    type: Buffer
    buffer:
      bufferSize: 2
      minReplicas: 1
      maxReplicas: 10
  sync:
    type: FixedInterval
    fixedInterval:
      seconds: 1
  scaleDownCooloffSeconds: 30
"""
BUFFER = "spec.policy.buffer"


def test_good_file_decodes() -> None:
    (fas,) = parse_autoscalers(GOOD)
    assert fas.name == "arena-autoscaler" and fas.spec.fleet_name == "arena"
    assert fas.spec.policy.buffer == BufferPolicy(buffer_size=2, min_replicas=1, max_replicas=10)
    assert fas.spec.sync.fixed_interval.seconds == 1.0 and fas.spec.scale_down_cooloff_seconds == 30.0
    assert not fas.status.able_to_scale


def test_defaults_interval_one_second_and_no_cooloff() -> None:
    minimal = GOOD.split("  sync:")[0]
    (fas,) = parse_autoscalers(minimal)
    assert fas.spec.sync.fixed_interval.seconds == 1.0 and fas.spec.scale_down_cooloff_seconds == 0.0


@pytest.mark.parametrize(
    ("old", "new", "field", "line", "message"),
    [
        pytest.param("bufferSize: 2", "bufferSize: -2", f"{BUFFER}.bufferSize", 10, "must be positive", id="negative"),
        pytest.param("bufferSize: 2", "bufferSize: 0", f"{BUFFER}.bufferSize", 10, "must be positive", id="zero"),
        pytest.param("bufferSize: 2", "bufferSize: '0%'", f"{BUFFER}.bufferSize", 10, "1%..99%", id="pct-zero"),
        pytest.param("bufferSize: 2", "bufferSize: 100%", f"{BUFFER}.bufferSize", 10, "1%..99%", id="pct-100"),
        pytest.param("bufferSize: 2", "bufferSize: 150%", f"{BUFFER}.bufferSize", 10, "1%..99%", id="pct-150"),
        pytest.param("bufferSize: 2", "bufferSize: '-5%'", f"{BUFFER}.bufferSize", 10, "1%..99%", id="pct-negative"),
        pytest.param("bufferSize: 2", "bufferSize: '2'", f"{BUFFER}.bufferSize", 10, "percentage", id="no-percent"),
        pytest.param("bufferSize: 2", "bufferSize: true", f"{BUFFER}.bufferSize", 10, "integer or a str", id="bool"),
        pytest.param(
            "minReplicas: 1", "minReplicas: 11", f"{BUFFER}.minReplicas", 11, "exceed maxReplicas", id="min>max"
        ),
        pytest.param("minReplicas: 1", "minReplicas: -1", f"{BUFFER}.minReplicas", 11, "negative", id="min-negative"),
        pytest.param("maxReplicas: 10", "maxReplicas: 0", f"{BUFFER}.maxReplicas", 12, "at least 1", id="max-zero"),
        pytest.param(
            "bufferSize: 2", "bufferSize: 12", f"{BUFFER}.maxReplicas", 12, "at least bufferSize", id="buf>max"
        ),
        pytest.param(
            "bufferSize: 2\n      minReplicas: 1",
            "bufferSize: 20%\n      minReplicas: 0",
            f"{BUFFER}.minReplicas",
            11,
            "at least 1 with a percentage",
            id="pct-needs-min",
        ),
        pytest.param("bufferSize: 2", "bufferSise: 2", f"{BUFFER}.bufferSise", 10, "unknown field", id="unknown-field"),
        pytest.param("type: Buffer", "type: Webhook", "spec.policy.type", 8, "must be one of Buffer", id="policy-type"),
        pytest.param("seconds: 1", "seconds: 0", "spec.sync.fixedInterval.seconds", 16, "(0, 3600]", id="interval"),
        pytest.param(
            "scaleDownCooloffSeconds: 30",
            "scaleDownCooloffSeconds: -1",
            "spec.scaleDownCooloffSeconds",
            17,
            "negative",
            id="cooloff",
        ),
        pytest.param("fleetName: arena", "fleetName: Arena_1", "spec.fleetName", 6, "Arena_1", id="fleet-name"),
        pytest.param("  fleetName: arena\n", "", "spec.fleetName", 5, "required", id="no-fleet-name"),
        pytest.param("  name: arena-autoscaler", "  labels: {}", "metadata.name", 3, "required", id="no-name"),
    ],
)
def test_bad_values_name_field_and_line(old: str, new: str, field: str, line: int, message: str) -> None:
    assert old in GOOD
    with pytest.raises(ValidationError) as info:
        parse_autoscalers(GOOD.replace(old, new), source="fas.yaml")
    err = info.value
    assert (err.field, err.line) == (field, line)
    assert message in err.message
    assert "fas.yaml" in str(err) and f"line {line}" in str(err)


def test_buffer_without_its_section_is_an_error() -> None:
    text = GOOD.split("    buffer:")[0] + "  scaleDownCooloffSeconds: 5\n"
    with pytest.raises(ValidationError) as info:
        parse_autoscalers(text)
    assert info.value.field == "spec.policy.buffer" and "required with type Buffer" in info.value.message
    assert info.value.line == 7  # the closest field that exists: spec.policy


FLEET = """\
apiVersion: fleetmatch.dev/v1
kind: Fleet
metadata:
  name: arena
spec:
  replicas: 2
  template:
    spec:
      process:
        command: [python, -m, game]
        workingDir: game
"""


def test_mixed_file_keeps_order_and_resolves_fleet_paths(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(GOOD + "---\n" + FLEET)
    fas, fleet = load_resources(path)
    assert isinstance(fas, FleetAutoscaler) and isinstance(fleet, Fleet)
    assert fleet.spec.template.spec.process is not None
    assert fleet.spec.template.spec.process.working_dir == str(tmp_path / "game")


@pytest.mark.parametrize(
    ("text", "field", "line", "message"),
    [
        pytest.param(GOOD.replace("kind: FleetAutoscaler\n", ""), "kind", 1, "is required", id="no-kind"),
        pytest.param(GOOD.replace("kind: FleetAutoscaler", "kind: Flet"), "kind", 2, "got 'Flet'", id="unknown-kind"),
        pytest.param(
            FLEET + "---\n" + GOOD.replace("maxReplicas: 10", "maxReplicas: 1"),
            BUFFER + ".maxReplicas",
            24,
            "at least bufferSize",
            id="second-document",
        ),
    ],
)
def test_mixed_file_errors(text: str, field: str, line: int, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_resources(text, source="all.yaml")
    assert (info.value.field, info.value.line) == (field, line)
    assert message in info.value.message and "all.yaml" in str(info.value)


def test_single_kind_readers_refuse_the_other_kind() -> None:
    with pytest.raises(ValidationError) as info:
        parse_fleets(GOOD)
    assert info.value.field == "kind" and "must be Fleet" in info.value.message
    with pytest.raises(ValidationError) as info:
        parse_autoscalers(FLEET)
    assert info.value.field == "kind" and "must be FleetAutoscaler" in info.value.message
    with pytest.raises(ValidationError, match="no Fleet or FleetAutoscaler document"):
        parse_resources("# empty\n")
    with pytest.raises(ValidationError, match="no FleetAutoscaler document"):
        parse_autoscalers("")


def test_example_autoscaler_fits_the_demo_fleet() -> None:
    (fas,) = load_autoscalers(demo_file("autoscaler.yaml"))
    (demo,) = load_fleets(DEMO_FLEET)
    assert fas.spec.fleet_name == demo.name
    buffer = fas.spec.policy.buffer
    assert buffer is not None and (buffer.min_replicas, buffer.max_replicas) == (2, 20)
    # With nothing allocated it asks for what the demo fleet already has: `fleetmatch up` with the
    # autoscaler starts the same four servers as without it.
    assert buffer_replicas(buffer, 0) == (demo.spec.replicas, False)
