"""`make chart` (deploy/helm/package.py: a chart repository of .tgz + index.yaml) and `make image`
(the Dockerfile holds what the demo and the Kubernetes examples run)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from deploy.helm import package as script
from tests.deploy.schemas import CHART, DEPLOY, REPO


def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def test_make_chart_writes_a_chart_repository(tmp_path: Path) -> None:
    out = tmp_path / "charts"
    assert script.main(["--out", str(out), "--url", "https://charts.example.com/fleetmatch"]) == 0
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    archive = out / f"fleetmatch-{version}.tgz"
    with tarfile.open(archive) as tgz:
        members = set(tgz.getnames())
        packaged_values = tgz.extractfile("fleetmatch/values.yaml")
        assert packaged_values is not None and packaged_values.read() == (CHART / "values.yaml").read_bytes()
    expected = {
        f"fleetmatch/{p.relative_to(CHART).as_posix()}" for p in CHART.rglob("*") if p.is_file() and p.suffix != ".swp"
    }
    assert expected <= members
    assert {
        "fleetmatch/values.schema.json",
        "fleetmatch/templates/ingress.yaml",
        "fleetmatch/crds/fleets.fleetmatch.dev.yaml",
    } <= members

    (entry,) = yaml.safe_load((out / "index.yaml").read_text())["entries"]["fleetmatch"]
    assert entry["version"] == version
    assert entry["appVersion"] == pyproject()["project"]["version"]  # type: ignore[index]
    assert entry["digest"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert entry["urls"] == [f"https://charts.example.com/fleetmatch/fleetmatch-{version}.tgz"]


def test_make_chart_keeps_older_versions_in_the_index(tmp_path: Path) -> None:
    out = tmp_path / "charts"
    chart = tmp_path / "fleetmatch"
    shutil.copytree(CHART, chart)
    script.package(out, chart=chart)
    meta = chart / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", "version: 0.1.1", meta.read_text()))
    script.package(out, chart=chart)
    entries = yaml.safe_load((out / "index.yaml").read_text())["entries"]["fleetmatch"]
    assert sorted(e["version"] for e in entries) == ["0.1.0", "0.1.1"]


def test_make_chart_refuses_an_app_version_that_is_not_the_image_tag(tmp_path: Path) -> None:
    chart = tmp_path / "fleetmatch"
    shutil.copytree(CHART, chart)
    meta = chart / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^appVersion: .*$", 'appVersion: "9.9.9"', meta.read_text()))
    with pytest.raises(script.PackageError, match=r"appVersion '9\.9\.9' is not the project's version"):
        script.package(tmp_path / "charts", chart=chart)
    assert not (tmp_path / "charts").exists()


def test_make_image_without_docker_says_so_and_fails() -> None:
    done = subprocess.run(
        ["make", "-s", "image", "DOCKER=/nonexistent/docker"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "make image: '/nonexistent/docker' is not installed" in done.stderr
    assert "docker build -t fleetmatch:" in done.stderr


def dockerfile_copies() -> set[str]:
    text = (REPO / "Dockerfile").read_text()
    return {m.group(1) for m in re.finditer(r"(?m)^COPY (?!--from)(\S+) ", text)}


def test_image_builds_every_package_the_wheel_ships() -> None:
    """`pip wheel .` in the image only sees what was copied: a package left out would be missing
    from the image although the wheel's metadata names it."""
    finder = pyproject()["tool"]["setuptools"]["packages"]["find"]  # type: ignore[index]
    packages = {pattern.rstrip("*") for pattern in finder["include"]}
    assert packages <= dockerfile_copies()
    assert "COPY pyproject.toml setup.py README.md ./" in (REPO / "Dockerfile").read_text()


def test_image_compiles_the_match_loop() -> None:
    """setup.py's optional C extensions build only where the build stage has a compiler: without one
    the image would silently run the slower Python loops."""
    build_stage = (REPO / "Dockerfile").read_text().split("\nFROM ")[1]
    assert re.search(r"apt-get install [^\n]*\bgcc\b", build_stage)
    setup = (REPO / "setup.py").read_text()
    assert "matchmaker/_matchloop.c" in setup
    assert "matchmaker/_ratingloop.c" in setup


@pytest.mark.parametrize(
    "data",
    [
        "fleetmatch/demo/fleet.yaml",
        "fleetmatch/demo/autoscaler.yaml",
        "fleetmatch/demo/queues.yaml",
        "loadtest/scenarios/smoke.yaml",
        "matchmaker/lua/claim.lua",
        "fleetmatch/backends/redis/lua/write.lua",
    ],
)
def test_image_carries_the_files_the_demo_reads(data: str) -> None:
    """Non-Python files reach the image only as package data of the wheel."""
    assert (REPO / data).is_file()
    patterns = pyproject()["tool"]["setuptools"]["package-data"]["*"]  # type: ignore[index]
    assert any(fnmatch(Path(data).name, p) for p in patterns), f"{data} is not package data: the image lacks it"


def test_kubernetes_examples_run_modules_the_image_has() -> None:
    run = {
        (path.name, module)
        for path in (DEPLOY / "examples" / "kubernetes").glob("*.yaml")
        for module in re.findall(r"\[python, -m, ([\w.]+)\]", path.read_text())
    }
    assert ("fleet.yaml", "examples.udp_game.server") in run
    for name, module in run:
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{name}: {module}"
        assert module.split(".")[0] in dockerfile_copies(), f"{name}: {module} is not copied into the image"
