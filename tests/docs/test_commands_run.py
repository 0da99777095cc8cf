"""The shell commands of README.md and docs/*.md run as written against one real `fleetmatch up`.

Each command runs in bash from a checkout-like directory, with the venv first on PATH and HOME set
so that ~/.local/share/fleetmatch is the stack's data dir (tests/docs/runner.py says what is
adapted: addresses, placeholders, curl's exit status). Files a document shows as named blocks
(```json alloc.json) are written where its commands run. A command must exit 0, or the status its
`# exits N` comment promises. Commands that cannot run here are in ``NOT_RUN`` with the reason; a
command neither runnable nor listed fails the test, so a new one gets a decision.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.markdown import Command, blocks, commands, rel, user_docs
from tests.docs.runner import DocRun
from tests.docs.stack import DocStack, doc_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RUNNABLE = frozenset({"fleetmatch", ".venv/bin/fleetmatch", "python", ".venv/bin/python", "curl"})

_CLUSTER = "needs Docker, a registry or a Kubernetes cluster (tests/kube runs these paths on a fake API server)"
_FOREVER = "runs until stopped: a long-lived service (tests/e2e and tests/faults start these)"


def _each(docs: tuple[str, ...], reason: str, *texts: str) -> dict[tuple[str, str], str]:
    return {(doc, text): reason for doc in docs for text in texts}


NOT_RUN: dict[tuple[str, str], str] = {
    **_each(
        ("README.md", "docs/getting-started.md", "docs/load-testing.md", "docs/matchmaking.md"),
        "starts the stack this test already runs (`fleetmatch up`, blocks until Ctrl-C)",
        "make up",
    ),
    ("README.md", "make test"): "runs the whole test suite, this test included",
    **_each(
        ("docs/load-testing.md",),
        "needs the Redis a finished load test left, or the records saved from it (a 2000-player run takes "
        "minutes); tests/unit/test_replay_waits.py replays and saves tickets the same way",
        "python -m loadtest.replay_waits --redis unix:///path/to/redis.sock --queues fleetmatch/demo/queues.yaml",
        "python -m loadtest.replay_waits --redis unix:///path/to/redis.sock --queues fleetmatch/demo/queues.yaml "
        "--save run.json",
        "python -m loadtest.replay_waits --records run.json --queues fleetmatch/demo/queues.yaml",
    ),
    **_each(
        ("docs/load-testing.md",),
        "simulates a 2000-player day thousands of times (minutes of CPU); tests/unit/test_wait_ceiling.py runs the "
        "same simulation, and its forecasts, on small days",
        "python -m loadtest.wait_ceiling --players 2000 --seed 15",
        "python -m loadtest.wait_ceiling --players 2000 --seed 15 --samples 200 --futures 60 --forecasts 5",
    ),
    **_each(
        ("docs/kubernetes.md",),
        _CLUSTER,
        "make image IMAGE=registry.example.com/games/fleetmatch:0.1.0",
        "docker push registry.example.com/games/fleetmatch:0.1.0",
        "kubectl create namespace fleetmatch",
        "helm install fm deploy/helm/fleetmatch -n fleetmatch --set image.repository=registry.example.com/games/"
        "fleetmatch --set image.tag=0.1.0",
        "kubectl apply -n fleetmatch -f deploy/examples/kubernetes/fleet.yaml",
        "kubectl get flt -n fleetmatch",
        "kubectl get gs -n fleetmatch",
        "export FLEETMATCH_BACKEND=kubernetes FLEETMATCH_NAMESPACE=fleetmatch",
        "fleetmatch apply -f deploy/examples/kubernetes/fleet.yaml",
        "fleetmatch fleet list",
        "fleetmatch fleet scale demo 10",
        "fleetmatch gs list --fleet demo",
        "TOKEN=$(kubectl get secret -n fleetmatch fm-fleetmatch-secrets -o jsonpath='{.data.allocator-token}' "
        "| base64 -d)",
        "kubectl port-forward -n fleetmatch svc/fm-fleetmatch-allocator 9180",
        'curl -s -H "Authorization: Bearer $TOKEN" -H \'Content-Type: application/json\' -d \'{"spec": '
        '{"selectors": [{"matchLabels": {"agones.dev/fleet": "demo"}}]}}\' http://127.0.0.1:9180/v1/allocations',
        "kubectl scale flt demo -n fleetmatch --replicas=10",
        "kubectl apply -n fleetmatch -f deploy/examples/kubernetes/autoscaler.yaml",
        "kubectl get fas -n fleetmatch",
        "kubectl delete flt,fas,gs --all -n fleetmatch",
        "helm uninstall fm -n fleetmatch",
        "kubectl delete -f deploy/crds/",
        "kubectl delete pvc -n fleetmatch -l app.kubernetes.io/instance=fm",
        "helm repo add fleetmatch https://charts.example.com/fleetmatch",
        "helm install fm fleetmatch/fleetmatch -n fleetmatch -f my-values.yaml",
        "kubectl port-forward -n fleetmatch svc/fm-fleetmatch-matchmaker 9190",
        "KEY=$(kubectl get secret -n fleetmatch fm-fleetmatch-secrets -o jsonpath='{.data.api-keys}' | base64 -d "
        "| cut -d= -f2)",
        'curl -s -H "Authorization: Bearer $KEY" -H \'Content-Type: application/json\' -d \'{"queue": "duel", '
        '"players": [{"id": "p1", "attributes": {"skill": 1500}}]}\' http://127.0.0.1:9190/v1/tickets',
        "helm upgrade fm deploy/helm/fleetmatch -n fleetmatch --reuse-values -f loadbalancer.yaml",
        "kubectl get svc -n fleetmatch fm-fleetmatch-matchmaker",
        "helm upgrade fm deploy/helm/fleetmatch -n fleetmatch --reuse-values -f ingress.yaml",
        "kubectl get ingress -n fleetmatch fm-fleetmatch",
    ),
    ("docs/kubernetes.md", "make chart CHART_URL=https://charts.example.com/fleetmatch"): (
        "writes dist/charts into the checkout; tests/deploy/test_packaging.py packages the chart into a tmp dir"
    ),
    ("docs/load-testing.md", "fleetmatch loadtest --scenario loadtest/scenarios/smoke.yaml"): (
        "a 55-second run of 100 players, more than this test's budget; tests/e2e/test_loadtest.py runs the tool"
    ),
    (
        "docs/load-testing.md",
        "fleetmatch --data-dir /tmp/other loadtest --scenario smoke --out /tmp/other-report --no-view",
    ): "needs a second stack started with `fleetmatch --data-dir /tmp/other up`, and is the smoke run again",
    ("docs/load-testing.md", "fleetmatch loadtest --scenario smoke --no-view --max-failure-rate 3 --max-ttm-p95 15"): (
        "the smoke run again (55 s), as a CI job would run it; tests/integration/test_loadtest_cli.py runs the verdict"
    ),
    (
        "docs/load-testing.md",
        "chromium --headless --no-sandbox --window-size=1280,2400 --screenshot=docs/images/loadtest-report.png "
        "file://$PWD/loadtest-results/<run>/report.html",
    ): "redraws the docs' screenshot from a finished run's report (a maintainer's step, not a user's)",
    ("docs/load-testing.md", "fleetmatch up -f loadtest/scenarios/launch-day-fleet.yaml"): _FOREVER,
    (
        "docs/load-testing.md",
        "fleetmatch up -f loadtest/scenarios/features-fleet.yaml --queues loadtest/scenarios/features-queues.yaml",
    ): _FOREVER,
    ("docs/load-testing.md", "fleetmatch loadtest --scenario ready-check"): (
        "needs the feature fleet and queues, not this test's demo stack; "
        "tests/integration/test_loadtest_features.py runs every feature scenario against them"
    ),
    ("docs/dashboard.md", "kubectl port-forward -n fleetmatch svc/fm-fleetmatch-dashboard 9170"): _CLUSTER,
    ("docs/dashboard.md", ".venv/bin/python -m tests.dashboard.screenshot"): (
        "redraws the docs' screenshot from a second stack and a browser (a maintainer's step, not a user's); "
        "tests/dashboard/test_browser.py checks the page"
    ),
    ("docs/load-testing.md", "fleetmatch loadtest --scenario launch-day --players 2000"): (
        "a four-minute run against the 60-server launch-day fleet"
    ),
    (
        "docs/load-testing.md",
        "fleetmatch loadtest --scenario launch-day.yaml --target https://mm.staging.example.test --token-file "
        "~/loadtest-api-key.txt --metrics https://allocator.staging.example.test/metrics",
    ): "aims at a remote staging deployment (example.test does not exist)",
    **_each(
        ("docs/matchmaking.md",),
        "configures or runs a matchmaker on its own against an operator's Redis and allocator (placeholders `...`)",
        "export REDIS_URL=... FLEETMATCH_PLAYER_TOKEN_SECRET_FILE=... FLEETMATCH_QUEUES=queues.yaml",
        "export FLEETMATCH_ALLOCATOR_URL=http://allocator:9180 FLEETMATCH_ALLOCATOR_TOKEN_FILE=...",
    ),
    **_each(
        ("docs/matchmaking.md",),
        "needs the match id and server of a running match and an API key; tests/integration/test_backfill_api.py "
        "runs the API, and `python -m examples.udp_game.backfill` (run here) the whole path",
        'curl -s -H "Authorization: Bearer $KEY" -H \'Content-Type: application/json\' -d \'{"queue": "4v4", '
        '"matchId": "<match-id>", "gameServer": "<gameserver>", "openSlots": {"1": 1}}\' '
        "http://127.0.0.1:9190/v1/backfills",
        'curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:9190/v1/backfills/<backfill-id>',
        'curl -s -X DELETE -H "Authorization: Bearer $KEY" http://127.0.0.1:9190/v1/backfills/<backfill-id>',
    ),
    ("docs/matchmaking.md", "fleetmatch ticket accept <ticket-id> --player p1"): (
        "needs a match proposed to the ticket, and the demo queues ask for no acceptance "
        "(tests/integration/test_ticket_cli.py runs accept and decline)"
    ),
    **_each(
        ("docs/matchmaking.md",),
        _FOREVER,
        "fleetmatch matchmaker",
        "fleetmatch matchmaker --no-directors",
        "fleetmatch matchmaker --no-api",
    ),
    **_each(
        ("docs/matchmaking.md",),
        "needs a queue with a rating rule and a match played in it (the demo queues have none); "
        "tests/integration/test_match_ratings.py runs this path, API and CLI",
        'curl -s -H "Authorization: Bearer $KEY" -H \'Content-Type: application/json\' -d \'{"teams": [{"rank": 2}, '
        '{"rank": 1}]}\' http://127.0.0.1:9190/v1/matches/<match-id>/result',
        "curl -s -H \"Authorization: Bearer $KEY\" 'http://127.0.0.1:9190/v1/ratings/alice?queue=ranked'",
        "fleetmatch match result <match-id> --rank 2 --rank 1",
        "fleetmatch rating get alice --queue ranked",
    ),
    (
        "docs/operating-fleets.md",
        "export REDIS_URL=redis://redis.internal:6379/0 FLEETMATCH_ALLOCATOR_TOKEN_FILE=/etc/fleetmatch/token",
    ): "points the shell at an operator's Redis on another host (redis.internal)",
    ("docs/benchmarks.md", ".venv/bin/python -m loadtest.bench_allocate"): (
        "a one-minute benchmark that needs the machine to itself; `make bench` runs it, tests never time anything"
    ),
    **_each(
        ("docs/allocation.md",),
        _FOREVER + "; tests/integration/test_allocator_grpc.py and tests/e2e/test_allocator_workers.py run these",
        "fleetmatch allocator --grpc-port 9181",
        "fleetmatch allocator --workers 2 --grpc-port 9181",
    ),
    **_each(
        ("docs/operating-fleets.md",),
        _FOREVER,
        "fleetmatch controller",
        "fleetmatch allocator",
        "FLEETMATCH_NODE_NAME=node-a FLEETMATCH_NODE_ADDRESS=203.0.113.10 fleetmatch node-agent",
        "FLEETMATCH_NODE_NAME=node-b FLEETMATCH_NODE_ADDRESS=203.0.113.11 fleetmatch node-agent",
    ),
    **_each(
        ("docs/getting-started.md", "docs/metrics.md"),
        "starts a second stack with Prometheus beside it; tests/e2e/test_observability.py runs it",
        "fleetmatch up --observability",
    ),
    **_each(
        ("docs/operating-fleets.md",),
        "watches until Ctrl-C; tests/cli/test_watch.py runs the watches",
        "fleetmatch gs list -w",
        "fleetmatch fleet list -w --watch-only -o json",
    ),
    **_each(
        ("docs/operating-fleets.md",),
        "installs into the user's shell configuration; tests/cli/test_status_completion.py checks the scripts",
        "fleetmatch completion bash > ~/.local/share/bash-completion/completions/fleetmatch",
        'fleetmatch completion zsh > "${fpath[1]}/_fleetmatch"',
        "fleetmatch completion fish > ~/.config/fish/completions/fleetmatch.fish",
    ),
    (
        "docs/writing-a-game-server.md",
        "REDIS_URL=redis://127.0.0.1:6379/0 python -m sdk_sidecar --gameserver arena-x7k2p --http-port 9358 "
        "--grpc-port 9357",
    ): _FOREVER + "; tests/compat/test_standalone_sidecar.py runs it",
}


def program(text: str) -> str | None:
    """The program a command line starts (after any ``NAME=value`` prefixes); None if there is none."""
    try:
        words = shlex.split(text)
    except ValueError:
        return None
    for word in words:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):
            return word
    return None


def doc_commands() -> list[Command]:
    return [command for doc in user_docs() for block in blocks(doc) for command in commands(block)]


def to_run(doc: Path) -> list[Command]:
    """The document's commands this test runs (one of another program fails the test below instead)."""
    return [
        c
        for c in doc_commands()
        if c.doc == rel(doc) and (c.doc, c.text) not in NOT_RUN and program(c.text) in RUNNABLE
    ]


# --- the docs hold to the conventions (no stack needed) ------------------------------------------


def test_every_code_block_names_its_language() -> None:
    untagged = [f"{block.doc}:{block.line}" for doc in user_docs() for block in blocks(doc) if not block.lang]
    assert untagged == [], f"fence these with a language (```sh, ```text, ...) so no command hides: {untagged}"


def test_every_command_is_runnable_or_listed_with_a_reason() -> None:
    undecided = [
        f"{c.where}: {c.text}"
        for c in doc_commands()
        if (c.doc, c.text) not in NOT_RUN and program(c.text) not in RUNNABLE
    ]
    if undecided:
        runs = ", ".join(sorted(RUNNABLE))
        pytest.fail(f"commands neither run (programs: {runs}) nor in NOT_RUN:\n" + "\n".join(undecided), pytrace=False)


def test_every_listed_command_is_still_in_the_docs() -> None:
    present = {(c.doc, c.text) for c in doc_commands()}
    stale = [f"{doc}: {text}" for doc, text in NOT_RUN if (doc, text) not in present]
    if stale:
        pytest.fail("NOT_RUN lists commands the docs no longer have:\n" + "\n".join(stale), pytrace=False)


# --- the commands run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocStack]:
    with doc_stack(tmp_path_factory.mktemp("docs-stack")) as running:
        running.wait_ready(4)
        yield running


def write_named_blocks(doc: Path, where: Path) -> None:
    for block in blocks(doc):
        if block.name:
            (where / block.name).write_text(block.text)


def reset_demo(stack: DocStack) -> None:
    """Every document starts from the demo fleet and its autoscaler, four servers Ready."""
    for args in (
        ("fleet", "apply", "-f", "fleetmatch/demo/fleet.yaml"),
        ("autoscaler", "apply", "-f", "fleetmatch/demo/autoscaler.yaml"),
    ):
        done = stack.cli(*args)
        assert done.returncode == 0, done.stderr
    stack.wait_ready(4)


@pytest.mark.parametrize("doc", [d for d in user_docs() if to_run(d)], ids=rel)
def test_documented_commands_run_as_written(doc: Path, stack: DocStack) -> None:
    reset_demo(stack)
    write_named_blocks(doc, stack.workdir)
    run = DocRun(stack)
    try:
        for command in to_run(doc):
            run.run(command)
        run.finish()
    finally:
        run.close()
    if run.failures:
        failed = "\n\n".join(run.failures)
        pytest.fail(
            f"{len(run.failures)} documented command(s) failed:\n\n{failed}\n\nthe stack's log:\n{stack.log_tail()}",
            pytrace=False,
        )
