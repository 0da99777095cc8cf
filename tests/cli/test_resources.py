"""``gs``, ``fleet``, ``autoscaler`` and ``node`` as an operator uses them: list/get/describe, every
``-o``, ``-l`` and ``--state`` filters, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import socket

import pytest
import yaml

from allocator.fleetops import scale_fleet
from fleetmatch.backends import Backend
from fleetmatch.cli import options
from fleetmatch.errors import ValidationError
from fleetmatch.events import Severity
from fleetmatch.models import (
    AutoscalerPolicy,
    BufferPolicy,
    Fleet,
    FleetAutoscaler,
    FleetAutoscalerSpec,
    FleetAutoscalerStatus,
    FleetStatus,
    GameServerState,
    ObjectMeta,
)
from tests.cli.conftest import Cli, fleet_spec, put, rows, server

READY, ALLOCATED = GameServerState.READY, GameServerState.ALLOCATED


def three_servers(fm: Cli) -> None:
    async def body(backend: Backend) -> None:
        await put(
            backend,
            server("arena-a", READY, port=7001, tier="gold"),
            server("arena-b", ALLOCATED, port=7002, tier="silver"),
            server("lobby-c", READY, fleet="lobby", port=7003),
        )

    fm.seed(body)


def test_gs_list_keeps_its_columns_and_filters_by_fleet_selector_and_state(fm: Cli) -> None:
    three_servers(fm)
    listed = fm("gs", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0].split() == ["NAME", "STATE", "ADDRESS", "NODE", "FLEET", "AGE"]
    assert [r[:5] for r in rows(listed.output)] == [
        ["arena-a", "Ready", "10.0.0.7:7001", "node-a", "arena"],
        ["arena-b", "Allocated", "10.0.0.7:7002", "node-a", "arena"],
        ["lobby-c", "Ready", "10.0.0.7:7003", "node-a", "lobby"],
    ]
    names = {
        ("--fleet", "arena"): ["arena-a", "arena-b"],
        ("-l", "tier=gold"): ["arena-a"],
        ("-l", "tier!=gold"): ["arena-b", "lobby-c"],
        ("-l", "tier"): ["arena-a", "arena-b"],
        ("-l", "!tier,agones.dev/fleet==lobby"): ["lobby-c"],
        ("--state", "ready"): ["arena-a", "lobby-c"],
        ("--state", "Ready,ALLOCATED"): ["arena-a", "arena-b", "lobby-c"],
    }
    for args, expected in names.items():
        result = fm("gs", "list", *args, "-o", "name")
        assert result.exit_code == 0, (args, result.output)
        assert result.output.split() == [f"gameserver/{n}" for n in expected], args
    both = fm("gs", "list", "--state", "Ready", "--state", "Allocated", "--fleet", "arena", "-l", "tier=silver")
    assert [r[0] for r in rows(both.output)] == ["arena-b"]


def test_gs_list_outputs_wide_json_and_yaml(fm: Cli) -> None:
    three_servers(fm)
    wide = fm("gs", "list", "-o", "wide", "--fleet", "arena")
    header = wide.output.splitlines()[0].split()
    assert header[:6] == ["NAME", "STATE", "ADDRESS", "NODE", "FLEET", "AGE"]
    assert header[6:] == ["PORTS", "LABELS", "UID"]
    first = rows(wide.output)[0]
    assert first[6] == "default:7001" and first[7] == "agones.dev/fleet=arena,tier=gold" and len(first[8]) == 36

    as_json = json.loads(fm("gs", "list", "-o", "json").output)
    assert as_json["apiVersion"] == "v1" and as_json["kind"] == "List"
    assert [i["metadata"]["name"] for i in as_json["items"]] == ["arena-a", "arena-b", "lobby-c"]
    assert as_json["items"][1]["status"]["state"] == "Allocated" and as_json["items"][1]["kind"] == "GameServer"
    as_yaml = yaml.safe_load(fm("gs", "list", "-o", "yaml", "--state", "allocated").output)
    assert as_yaml["kind"] == "List" and [i["metadata"]["name"] for i in as_yaml["items"]] == ["arena-b"]


def test_gs_get_prints_one_server_and_its_whole_document(fm: Cli) -> None:
    three_servers(fm)
    got = fm("gs", "get", "arena-b")
    assert got.exit_code == 0 and [r[:2] for r in rows(got.output)] == [["arena-b", "Allocated"]]
    doc = yaml.safe_load(fm("gs", "get", "arena-b", "-o", "yaml").output)
    assert doc["kind"] == "GameServer" and doc["metadata"]["labels"]["tier"] == "silver"
    assert json.loads(fm("gs", "get", "lobby-c", "-o", "json").output)["status"]["ports"][0]["port"] == 7003


def test_a_missing_name_is_one_line_not_a_traceback(fm: Cli) -> None:
    for args, kind in (
        (("gs", "get", "nope"), "gameserver"),
        (("gs", "describe", "nope"), "gameserver"),
        (("fleet", "get", "nope"), "fleet"),
        (("fleet", "describe", "nope"), "fleet"),
        (("autoscaler", "get", "nope"), "fleetautoscaler"),
        (("autoscaler", "describe", "nope"), "fleetautoscaler"),
        (("node", "describe", "nope"), "node"),
    ):
        result = fm(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == f'error: {kind} "nope" not found\n', args
        assert result.stdout == ""


def test_gs_describe_shows_spec_status_counters_and_the_events_with_counts(fm: Cli) -> None:
    three_servers(fm)

    async def body(backend: Backend) -> None:
        assert backend.events is not None
        for _ in range(3):
            await backend.events.record(
                "GameServer", "arena-a", "Unhealthy", "no health ping for 15s", type=Severity.WARNING
            )
        await backend.events.record("GameServer", "arena-a", "Allocated", "allocated to match m-1")
        await backend.events.record("GameServer", "arena-b", "Shutdown", "someone else's event")

    fm.seed(body)
    described = fm("gs", "describe", "arena-a")
    assert described.exit_code == 0, described.output
    out = described.output
    for line in ("Name:", "Namespace:", "Labels:", "Spec:", "Status:", "Events:"):
        assert any(row.lstrip().startswith(line) for row in out.splitlines()), line
    assert "agones.dev/fleet=arena,tier=gold" in out and "State:" in out and "Ready" in out
    assert "rooms:" in out and "1/4" in out and "node-a" in out and "default 7001" in out
    events = out.split("Events:")[1].splitlines()[1:]
    assert events[0].split()[:3] == ["TYPE", "REASON", "AGE"]
    unhealthy = next(line for line in events if "Unhealthy" in line)
    assert unhealthy.split()[0] == "Warning" and "(x3 over" in unhealthy and "no health ping for 15s" in unhealthy
    assert any("Allocated" in line and "allocated to match m-1" in line for line in events)
    assert "someone else's event" not in out


def test_describe_of_a_deleted_server_still_shows_why_it_went(fm: Cli) -> None:
    async def body(backend: Backend) -> None:
        assert backend.events is not None
        await backend.events.record("GameServer", "gone-1", "Unhealthy", "exited with code 3", type=Severity.WARNING)

    fm.seed(body)
    result = fm("gs", "describe", "gone-1")
    assert result.exit_code == 0 and 'gameserver "gone-1" not found' in result.output
    assert "exited with code 3" in result.output


def fleet_and_autoscaler(fm: Cli, *, limited: bool) -> None:
    async def body(backend: Backend) -> None:
        fleet = await backend.fleets.create(Fleet(ObjectMeta(name="arena", labels={"team": "red"}), fleet_spec(4)))
        status = FleetStatus(replicas=4, ready_replicas=3, allocated_replicas=1, updated_replicas=2)
        await backend.fleets.update(type(fleet)(fleet.metadata, fleet.spec, status))
        await backend.fleets.create(Fleet(ObjectMeta(name="lobby"), fleet_spec(1)))
        spec = FleetAutoscalerSpec("arena", AutoscalerPolicy(buffer=BufferPolicy(buffer_size=2, max_replicas=4)))
        fas = await backend.autoscalers.create(FleetAutoscaler(ObjectMeta(name="arena-buffer"), spec))
        fas_status = FleetAutoscalerStatus(
            current_replicas=4, desired_replicas=4, able_to_scale=True, scaling_limited=limited
        )
        await backend.autoscalers.update(FleetAutoscaler(fas.metadata, fas.spec, fas_status))
        assert backend.events is not None
        await backend.events.record(
            "Fleet", "arena", "CrashLoopBackOff", "3 servers failed before Ready", type=Severity.WARNING
        )

    fm.seed(body)


def test_fleet_get_list_and_describe(fm: Cli) -> None:
    fleet_and_autoscaler(fm, limited=True)
    listed = fm("fleet", "list", "-l", "team=red")
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0].split()[:3] == ["NAME", "SCHEDULING", "DESIRED"]
    assert [r[:5] for r in rows(listed.output)] == [["arena", "Packed", "4", "4", "3"]]
    assert fm("fleet", "get", "lobby", "-o", "name").output == "fleet/lobby\n"
    assert json.loads(fm("fleet", "get", "arena", "-o", "json").output)["spec"]["replicas"] == 4
    assert json.loads(fm("fleet", "list", "-o", "json").output)["kind"] == "List"

    out = fm("fleet", "describe", "arena").output
    assert "2 updated, 3 ready of 4 desired (in progress)" in out
    autoscaler = out.split("Autoscaler:")[1]
    assert "arena-buffer" in autoscaler and "Buffer (buffer 2, min 0, max 4)" in autoscaler
    assert "Scaling Limited:" in autoscaler and "true" in autoscaler and "limited:" in autoscaler
    assert "CrashLoopBackOff" in out.split("Events:")[1] and "3 servers failed before Ready" in out
    lobby = fm("fleet", "describe", "lobby").output
    assert re.search(r"^Autoscaler: +<none>", lobby, re.M) and "Events:  <none>" in lobby


def test_fleet_scale_answers_bad_counts_and_names_in_one_line(fm: Cli) -> None:
    """A count past int64 was a msgpack traceback; "-1" was read as an unknown option; a missing
    fleet said "Fleet" where ``get`` says "fleet"."""
    fleet_and_autoscaler(fm, limited=False)
    huge = fm("fleet", "scale", "lobby", str(2**63))
    assert huge.exit_code == 2 and "Traceback" not in huge.output, huge.output
    assert f"{2**63} is not in the range 0<=x<={2**63 - 1}" in huge.stderr
    negative = fm("fleet", "scale", "lobby", "-1")
    assert negative.exit_code == 2 and "-1 is not in the range" in negative.stderr, negative.output
    missing = fm("fleet", "scale", "nope", "3")
    assert (missing.exit_code, missing.stderr) == (1, 'error: fleet "nope" not found\n')
    deleted = fm("autoscaler", "delete", "nope")
    assert (deleted.exit_code, deleted.stderr) == (1, 'error: fleetautoscaler "nope" not found\n')
    scaled = fm("fleet", "scale", "lobby", "3")
    assert (scaled.exit_code, scaled.output) == (0, "fleet/lobby scaled to 3\n")

    async def past_int64(backend: Backend) -> None:  # the same bound for callers past the CLI
        with pytest.raises(ValidationError, match="must be within int64") as caught:
            await scale_fleet(backend.fleets, "lobby", 2**63)
        assert caught.value.field == "spec.replicas"

    fm.seed(past_int64)


def test_gs_list_of_a_fleet_that_does_not_exist_says_so(fm: Cli) -> None:
    """An empty list for a typo'd --fleet looked like an empty fleet; `allocate --fleet` says the
    fleet does not exist, and so does this now (on stderr; the exit stays 0, as kubectl's)."""
    fleet_and_autoscaler(fm, limited=False)
    typo = fm("gs", "list", "--fleet", "arenaa")
    assert typo.exit_code == 0 and rows(typo.stdout) == [], typo.output
    assert typo.stderr == 'note: fleet "arenaa" does not exist (see `fleetmatch fleet list`)\n'
    empty = fm("gs", "list", "--fleet", "lobby")  # exists, no servers yet: nothing to note
    assert (empty.exit_code, empty.stderr, rows(empty.stdout)) == (0, "", [])


def test_autoscaler_get_and_list(fm: Cli) -> None:
    fleet_and_autoscaler(fm, limited=False)
    got = fm("autoscaler", "get")
    assert got.exit_code == 0 and rows(got.output)[0][:8] == ["arena-buffer", "arena", "2", "0", "4", "4", "4", "true"]
    one = yaml.safe_load(fm("autoscaler", "get", "arena-buffer", "-o", "yaml").output)
    assert one["kind"] == "FleetAutoscaler" and one["spec"]["fleetName"] == "arena"
    assert fm("autoscaler", "list", "-l", "nope").output.splitlines()[1:] == []
    described = fm("autoscaler", "describe", "arena-buffer").output
    assert re.search(r"^Fleet: +arena$", described, re.M) and re.search(r"^Desired Replicas: +4$", described, re.M)
    assert "scaling as the buffer asks" in described and "Events:  <none>" in described


def test_node_list_and_describe(fm: Cli) -> None:
    three_servers(fm)

    async def body(backend: Backend) -> None:
        assert backend.nodes is not None
        await backend.nodes.heartbeat("node-a", boot="b1", address="10.0.0.7", capacity=8)

    fm.seed(body)
    listed = fm("node", "list", "-o", "wide")
    assert rows(listed.output)[0][:2] == ["node-a", "Ready"] and rows(listed.output)[0][-1] == "b1"
    assert json.loads(fm("node", "list", "-o", "json").output)["items"][0]["gameServers"] == {
        "Ready": 2,
        "Allocated": 1,
    }
    described = fm("node", "describe", "node-a").output
    assert "Capacity:" in described and "3/8 game servers" in described and "arena-b" in described


def test_bad_selectors_and_states_are_one_line_naming_the_option(fm: Cli) -> None:
    for args, needle in (
        (("gs", "list", "-l", "a b=c"), "-l"),
        (("gs", "list", "-l", "tier in (a,b)"), "not supported"),
        (("fleet", "list", "-l", "x=,"), "-l"),
        (("gs", "list", "--state", "Redy"), "Ready, Reserved, Allocated"),
    ):
        result = fm(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, lines)
        assert "fleetmatch" in lines[0] and "-h" in lines[0]  # click's hint, kept on the line


def test_global_options_work_after_the_subcommand(fm: Cli) -> None:
    async def body(backend: Backend) -> None:
        await backend.fleets.create(Fleet(ObjectMeta(name="blue-fleet"), fleet_spec(1)))

    fm.seed(body)  # in namespace "default"
    elsewhere = fm("fleet", "list", "-n", "games", "-o", "name")
    assert elsewhere.exit_code == 0 and elsewhere.output == "", elsewhere.output
    for args in (
        ("fleet", "list", "-n", "default", "-o", "name"),
        ("fleet", "list", "--namespace=default", "-o", "name"),
        ("-n", "games", "fleet", "list", "-ndefault", "-o", "name"),
        ("fleet", "list", "-o", "name", "--redis-url", fm.redis_url, "--log-level", "ERROR"),
        ("fleet", "--data-dir", "/nonexistent", "list", "-o", "name"),
    ):
        result = fm(*args)
        assert result.exit_code == 0 and result.output == "fleet/blue-fleet\n", (args, result.output, result.stderr)
    broken = fm("fleet", "list", "--redis-url=redis://127.0.0.1:1")
    assert broken.exit_code == 1 and "redis://127.0.0.1:1" in broken.stderr


def test_dash_h_is_help_everywhere(fm: Cli) -> None:
    for args in (("-h",), ("gs", "-h"), ("gs", "list", "-h"), ("fleet", "describe", "-h"), ("status", "-h")):
        result = fm(*args)
        assert result.exit_code == 0 and "Usage:" in result.output, args
    bare = fm("gs")  # a group without its command: the group's help, not an "error: Usage: ..." line
    assert bare.stderr.startswith("Usage: fleetmatch gs") and "describe" in bare.stderr


def test_redis_url_errors_are_one_line_naming_the_setting(fm: Cli) -> None:
    bad = fm("gs", "list", REDIS_URL="notaurl")
    assert bad.exit_code != 0 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.output
    assert bad.stderr.startswith("error: ") and "REDIS_URL" in bad.stderr and "notaurl" in bad.stderr
    refused = fm("gs", "list", REDIS_URL="redis://127.0.0.1:1")
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1
    assert "REDIS_URL/--redis-url" in refused.stderr and "fleetmatch up" in refused.stderr


def test_a_silent_redis_is_one_line_not_a_hang(fm: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped (SIGSTOP) or wedged Redis still accepts connections, in the kernel, and never
    answers: the command says so after ``ANSWER_SECONDS`` instead of waiting for ever."""
    monkeypatch.setattr(options, "ANSWER_SECONDS", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog; nothing ever reads or answers
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}"
        for args in (("gs", "list"), ("fleet", "list")):
            result = fm(*args, REDIS_URL=url)
            assert result.exit_code == 1 and result.stderr.count("\n") == 1, (args, result.output)
            assert url in result.stderr and "no answer within 0.5s" in result.stderr


def test_a_component_with_a_bad_redis_url_is_one_line_too(fm: Cli) -> None:
    result = fm("controller", REDIS_URL="localhost:6379")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "REDIS_URL/--redis-url='localhost:6379' is not a Redis URL" in result.stderr


def test_an_unreachable_stack_redis_names_stack_json(fm: Cli) -> None:
    fm.data_dir.mkdir(parents=True)
    doc = {
        "redis_url": "redis://127.0.0.1:1", "metrics_url": "", "allocator_url": "", "allocator_token": "",
        "matchmaker_url": "", "player_token_secret": "", "namespace": "default", "node": "n", "data_dir": "",
        "pid": os.getpid(),
    }  # fmt: skip
    (fm.data_dir / "stack.json").write_text(json.dumps(doc))
    result = fm("gs", "list", REDIS_URL="")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert f"(from {fm.data_dir / 'stack.json'})" in result.stderr and "`fleetmatch up`" in result.stderr
