"""Match functions by name: the default, and plugins found through a real entry point.

A throw-away distribution (a ``*.dist-info`` directory with ``entry_points.txt``) is put on
``sys.path``: ``importlib.metadata`` finds it exactly as it finds an installed package. Queue rules
keep only the name; ``matchmaker.app.matchers`` resolves it when the directors start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.match_functions import fifo
from fleetmatch.errors import ValidationError
from matchmaker.app import matchers
from matchmaker.functions import GROUP, available, match_function
from matchmaker.matching import find_matches
from matchmaker.models import Player, Ticket
from matchmaker.rules import parse_queues

QUEUE = """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: casual}
spec:
  teams: {count: 2, maxSize: 2}
  matchFunction: NAME
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: demo}}]
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    dist = tmp_path / "fleetmatch_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fleetmatch-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{GROUP}]\n"
        "fifo_test = examples.match_functions:fifo\n"
        "broken_test = fleetmatch_no_such_module:match\n"
        "not_callable_test = examples.match_functions:__doc__\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield


POOL = [
    Ticket(tid, "casual", tid, (Player(f"{tid}-0"),), enqueued_at=1000.0 - wait)
    for tid, wait in (("d", 1), ("a", 4), ("c", 2), ("b", 3), ("e", 0))
]


def test_default_is_the_builtin_matcher() -> None:
    assert match_function("default") is find_matches
    queues = parse_queues(QUEUE.replace("NAME", "default"))
    assert matchers(queues)["casual"](POOL, 1000.0) == find_matches(POOL, queues["casual"], 1000.0)


def test_an_unknown_name_fails_when_the_directors_start_naming_queue_and_field() -> None:
    queues = parse_queues(QUEUE.replace("NAME", "fifo_nowhere"), "queues.yaml")  # a name is data
    with pytest.raises(ValidationError) as info:
        matchers(queues)
    assert info.value.field == "spec.matchFunction"
    assert info.value.message.startswith("queue 'casual': unknown match function 'fifo_nowhere'")
    assert "default" in info.value.message


def test_an_empty_name_fails_at_load_naming_field_and_line() -> None:
    with pytest.raises(ValidationError) as info:
        parse_queues(QUEUE.replace("NAME", '""'), "queues.yaml")
    assert (info.value.field, info.value.line) == ("spec.matchFunction", 6)


@pytest.mark.usefixtures("plugins")
def test_a_plugin_is_found_through_its_entry_point() -> None:
    assert {"default", "fifo_test"} <= set(available())
    assert match_function("fifo_test") is fifo
    (proposal,) = matchers(parse_queues(QUEUE.replace("NAME", "fifo_test")))["casual"](POOL, 1000.0)
    assert proposal.teams == (("a", "b"), ("c", "d"))  # arrival order, first fit
    assert proposal.quality.longest_wait_seconds == 4


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(
    ("name", "message"),
    [("broken_test", "cannot be loaded: ModuleNotFoundError"), ("not_callable_test", "is not callable")],
)
def test_a_broken_plugin_fails_when_the_directors_start(name: str, message: str) -> None:
    queues = parse_queues(QUEUE.replace("NAME", name), "queues.yaml")
    with pytest.raises(ValidationError) as info:
        matchers(queues)
    assert info.value.field == "spec.matchFunction"
    assert message in info.value.message


def test_without_the_distribution_the_plugin_is_unknown() -> None:
    assert "broken_test" not in available()
    with pytest.raises(ValidationError, match="unknown match function"):
        match_function("broken_test")
