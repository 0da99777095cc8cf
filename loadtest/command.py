"""``fleetmatch loadtest``: run a scenario against the local stack, or deliberately at a remote one.

    fleetmatch loadtest --scenario loadtest/scenarios/smoke.yaml          # the running `fleetmatch up`
    fleetmatch loadtest --scenario launch-day.yaml --target https://mm.example.test --token-file t.txt

Without ``--target`` the target is the stack ``fleetmatch up`` runs in the data directory (its
``stack.json``: ticket URL, player-token secret, metrics endpoints), and only if it is on this
machine. A remote target is only ever the one typed on the command line. The exit status is the
verdict (``loadtest.verdict``): 0 on PASS (no ticket lost, the server consistent, failed players
within ``--max-failure-rate``, time to match p95 within ``--max-ttm-p95`` if given), 1 on FAIL.
``--compare`` puts a previous run's headline figures beside this one's, with the change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from fleetmatch.errors import ValidationError
from fleetmatch.running import run
from fleetmatch.settings import Settings
from loadtest.verdict import DEFAULT_MAX_FAILURE_RATE


def _scenario_path(text: str) -> Path:
    """The file as given, else one shipped with fleetmatch (``launch-day.yaml``, ``smoke``)."""
    from loadtest.scenario import SCENARIOS

    path = Path(text).expanduser()
    if path.exists():
        return path
    for name in (text, f"{text}.yaml"):
        shipped = SCENARIOS / name
        if "/" not in text and shipped.is_file():
            return shipped
    scenarios = (p for p in SCENARIOS.glob("*.yaml") if "kind: LoadTest" in p.read_text())  # not the fleet files
    shipped_names = ", ".join(sorted(p.name for p in scenarios))
    raise ValidationError("--scenario", f"no such file: {text} (shipped scenarios: {shipped_names})")


def _read_secret(path: Path, option: str) -> str:
    try:
        value = path.expanduser().read_text().strip()
    except OSError as exc:
        raise ValidationError(option, f"cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ValidationError(option, f"{path} is empty")
    return value


def _target(
    settings: Settings,
    url: str | None,
    token_file: Path | None,
    secret_file: Path | None,
    metrics: Sequence[str],
) -> Any:
    """The ``Target``: typed on the command line, or the local stack's."""
    from fleetmatch.stackfile import StackInfo
    from loadtest.runner import LoadTestError, Target
    from loadtest.scenario import check_target

    api_key = _read_secret(token_file, "--token-file") if token_file else None
    secret = _read_secret(secret_file, "--secret-file") if secret_file else None
    extra = tuple(check_target(m, explicit=True) for m in metrics)
    if url is not None:
        if not api_key and not secret:
            raise ValidationError("--token-file", "a --target needs --token-file (API key) or --secret-file")
        return Target(
            matchmaker_url=check_target(url, explicit=True),
            api_key=api_key,
            player_token_secret=secret,
            player_token_audience=settings.matchmaker.player_token_audience,
            metrics_urls=extra,
        )
    info = StackInfo.read(settings.data_dir)
    if info is None:
        raise LoadTestError(
            f"no running fleetmatch stack in {settings.data_dir}: start one with `fleetmatch up`, "
            "or aim at another with --target"
        )
    stack_secret = settings.matchmaker.token_secret or info.player_token_secret
    return Target(
        matchmaker_url=check_target(info.matchmaker_url, explicit=False),
        player_token_secret=secret or (None if api_key else stack_secret),
        player_token_audience=info.player_token_audience,
        api_key=api_key,
        metrics_urls=(check_target(info.metrics_url, explicit=False), *extra),  # up's one /metrics
        scrape_matchmaker=False,
    )


@click.command("loadtest")
@click.option("--scenario", "-s", "scenario_file", required=True, help="Scenario YAML (or a shipped one: smoke).")
@click.option("--target", "-t", help="Ticket API to load (default: the local `fleetmatch up`). Remote only if given.")
@click.option("--token-file", type=click.Path(path_type=Path), help="File holding an API key for the target.")
@click.option("--secret-file", type=click.Path(path_type=Path), help="File holding the player-token signing secret.")
@click.option("--metrics", multiple=True, help="Another /metrics URL to scrape during the run (repeatable).")
@click.option("--players", type=click.IntRange(min=1), help="Scale the scenario to N players (and its rates).")
@click.option("--out", type=click.Path(path_type=Path), help="Report directory (default loadtest-results/NAME-TIME).")
@click.option("--seed", type=int, help="Random seed: the same seed draws the same players and arrivals.")
@click.option("--view/--no-view", default=True, show_default=True, help="Live terminal view (on a terminal only).")
@click.option(
    "--max-failure-rate",
    type=click.FloatRange(0, 100),
    metavar="PERCENT",
    default=100 * DEFAULT_MAX_FAILURE_RATE,
    show_default=True,
    help="FAIL if more than this percentage of the players who arrived failed.",
)
@click.option(
    "--max-ttm-p95",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="FAIL if time to match p95 is above this (default: not judged).",
)
@click.option(
    "--compare",
    "compare_file",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="A previous run's report.json: show each headline figure beside it, with the change.",
)
@click.pass_context
def loadtest_cmd(
    ctx: click.Context,
    scenario_file: str,
    target: str | None,
    token_file: Path | None,
    secret_file: Path | None,
    metrics: Sequence[str],
    players: int | None,
    out: Path | None,
    seed: int | None,
    view: bool,
    max_failure_rate: float,
    max_ttm_p95: float | None,
    compare_file: Path | None,
) -> None:
    """Simulated players against a matchmaker: report.json, report.html, a summary and a verdict
    (exit status 1 on FAIL)."""
    from loadtest.report import summary_text
    from loadtest.runner import run_loadtest
    from loadtest.scenario import load_scenario
    from loadtest.verdict import Thresholds, load_previous, verdict_of

    previous = load_previous(compare_file) if compare_file is not None else None
    thresholds = Thresholds(max_failure_rate / 100, None if max_ttm_p95 is None else max_ttm_p95 * 1000)
    path = _scenario_path(scenario_file)
    scenario = load_scenario(path)
    if players is not None:
        scenario = scenario.with_players(players)
    aim = _target(ctx.find_object(Settings) or Settings.from_env(), target, token_file, secret_file, metrics)
    out = out or Path("loadtest-results") / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    click.echo(
        f"load test {scenario.name}: {scenario.planned_players()} players against {aim.matchmaker_url}, "
        f"at most {scenario.hard_stop_seconds:g}s; report in {out}/",
        err=True,
    )
    report = run(
        run_loadtest(
            scenario,
            target=aim,
            out_dir=out,
            seed=seed,
            view=view,
            scenario_file=str(path),
            thresholds=thresholds,
            previous=previous,
        )
    )
    click.echo(summary_text(report))
    click.echo(f"report: {out / 'report.html'}  {out / 'report.json'}")
    verdict = verdict_of(report)
    if not verdict.passed:
        click.echo(f"error: load test FAILED: {'; '.join(verdict.reasons)}", err=True)
        raise SystemExit(1)
