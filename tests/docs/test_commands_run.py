"""The shell commands of README.md and docs/*.md run as written against one real `fleetmatch up`.

Each command runs in bash from a checkout-like directory, with the venv first on PATH, HOME set so
that ~/.local/share/fleetmatch is the stack's data dir, and ``$TOKEN`` the allocator token the
stack printed (the docs say where it comes from). The documented default addresses (allocator
9180, matchmaker 9190, metrics 9100, a game server at 127.0.0.1 7000) are pointed at this stack's,
since the machine's real defaults may be taken. Files a document shows as named blocks
(```json alloc.json) are written where its commands run. A command must exit 0, or the status its
`# exits N` comment promises. Commands that cannot run here are in ``NOT_RUN`` with the reason; a
command neither runnable nor listed fails the test, so a new one gets a decision.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.docs.markdown import Command, blocks, commands, rel, user_docs
from tests.docs.stack import DocStack, doc_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RUNNABLE = frozenset({"fleetmatch", ".venv/bin/fleetmatch", "python", ".venv/bin/python", "curl"})
COMMAND_TIMEOUT = 60.0  # the longest documented wait is `ticket create --wait 30`

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
        ("docs/kubernetes.md",),
        _CLUSTER,
        "docker build -t registry.example.com/games/fleetmatch:0.1.0 .",
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
    ),
    ("docs/load-testing.md", "fleetmatch loadtest --scenario loadtest/scenarios/smoke.yaml"): (
        "a 55-second run of 100 players, more than this test's budget; tests/e2e/test_loadtest.py runs the tool"
    ),
    (
        "docs/load-testing.md",
        "fleetmatch --data-dir /tmp/other loadtest --scenario smoke --out /tmp/other-report --no-view",
    ): "needs a second stack started with `fleetmatch --data-dir /tmp/other up`, and is the smoke run again",
    ("docs/load-testing.md", "fleetmatch up -f loadtest/scenarios/launch-day-fleet.yaml"): _FOREVER,
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
        _FOREVER,
        "fleetmatch matchmaker",
        "fleetmatch matchmaker --no-directors",
        "fleetmatch matchmaker --no-api",
    ),
    (
        "docs/operating-fleets.md",
        "export REDIS_URL=redis://redis.internal:6379/0 FLEETMATCH_ALLOCATOR_TOKEN_FILE=/etc/fleetmatch/token",
    ): "points the shell at an operator's Redis on another host (redis.internal)",
    **_each(
        ("docs/operating-fleets.md",),
        _FOREVER,
        "fleetmatch controller",
        "fleetmatch allocator",
        "FLEETMATCH_NODE_NAME=node-a FLEETMATCH_NODE_ADDRESS=203.0.113.10 fleetmatch node-agent",
        "FLEETMATCH_NODE_NAME=node-b FLEETMATCH_NODE_ADDRESS=203.0.113.11 fleetmatch node-agent",
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
    return [c for c in doc_commands() if c.doc == rel(doc) and (c.doc, c.text) not in NOT_RUN]


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
    assert undecided == [], (
        "commands this test can neither run (it runs "
        + ", ".join(sorted(RUNNABLE))
        + ") nor finds in NOT_RUN:\n"
        + "\n".join(undecided)
    )


def test_every_listed_command_is_still_in_the_docs() -> None:
    present = {(c.doc, c.text) for c in doc_commands()}
    stale = [f"{doc}: {text}" for doc, text in NOT_RUN if (doc, text) not in present]
    assert stale == [], "NOT_RUN lists commands the docs no longer have:\n" + "\n".join(stale)


# --- the commands run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocStack]:
    with doc_stack(tmp_path_factory.mktemp("docs-stack")) as running:
        running.wait_ready(4)
        yield running


def substitutions(stack: DocStack) -> list[tuple[re.Pattern[str], Callable[[], str]]]:
    """Documented default addresses, and what they are on this stack (looked up when used)."""

    def a_game_server() -> str:
        address, port = stack.ready_servers()[0]
        return f"{address} {port}"

    base = stack.info["metrics_url"].removesuffix("/metrics")
    return [
        (re.compile(r"http://127\.0\.0\.1:9180"), lambda: stack.info["allocator_url"]),
        (re.compile(r"http://127\.0\.0\.1:9190"), lambda: stack.info["matchmaker_url"]),
        (re.compile(r"http://127\.0\.0\.1:9100"), lambda: base),
        (re.compile(r"127\.0\.0\.1 7000\b"), a_game_server),
    ]


def as_run(command: Command, stack: DocStack) -> str:
    text = command.text
    for pattern, value in substitutions(stack):
        if pattern.search(text):
            text = pattern.sub(value(), text)
    if program(text) == "curl":
        text = text.replace("curl ", "curl --fail-with-body ", 1)  # curl exits 0 on an HTTP error otherwise
    return text


def _clip(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def report(command: Command, ran: str, status: int | str, stdout: str, stderr: str) -> str:
    return (
        f"{command.where}: {command.text}\n  ran: {ran}\n  exit {status} (the doc expects {command.expected_status})\n"
        f"  stdout: {_clip(stdout)}\n  stderr: {_clip(stderr)}"
    )


def shell(text: str) -> list[str]:
    return ["bash", "-c", "set -o pipefail\n" + text]


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
    failures: list[str] = []
    background: list[tuple[Command, str, subprocess.Popen[str]]] = []
    for command in to_run(doc):
        ran = as_run(command, stack)
        if command.background:
            proc = subprocess.Popen(
                shell(ran), cwd=stack.workdir, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            background.append((command, ran, proc))
            continue
        try:
            done = subprocess.run(
                shell(ran),
                cwd=stack.workdir,
                env=stack.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            failures.append(
                report(command, ran, f"none: still running after {COMMAND_TIMEOUT}s", str(exc.stdout), str(exc.stderr))
            )
            continue
        if done.returncode != command.expected_status:
            failures.append(report(command, ran, done.returncode, done.stdout, done.stderr))
    for command, ran, proc in background:
        try:
            out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            failures.append(report(command, ran, "none: never finished", out, err))
            continue
        if proc.returncode != command.expected_status:
            failures.append(report(command, ran, proc.returncode, out, err))
    if failures:
        pytest.fail(f"{len(failures)} documented command(s) failed:\n\n" + "\n\n".join(failures), pytrace=False)
