"""Package the fleetmatch chart for a chart repository: ``make chart`` runs this.

    python deploy/helm/package.py                          # dist/charts/fleetmatch-<version>.tgz + index.yaml
    python deploy/helm/package.py --out DIR --url https://charts.example.com/fleetmatch

What ``helm lint --strict``, ``helm package`` and ``helm repo index`` do, through Helm's own Go SDK
(the ``helm-python-sdk`` wheel of the dev extras), so no ``helm`` binary is needed. The output
directory is a chart repository: serve it over HTTPS (a bucket, GitHub Pages...) and
``helm repo add fleetmatch <url>``. An ``index.yaml`` already there is merged, so older versions
stay listed. The chart's appVersion must be the project's version, the image tag ``make image``
builds: otherwise the chart would default to an image nobody built.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import helm_python as helm

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "fleetmatch"
DEFAULT_OUT = REPO / "dist" / "charts"


class PackageError(Exception):
    """The chart cannot be packaged as it is; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Packaged:
    archive: Path
    index: Path
    version: str
    digest: str


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def check(chart: Path) -> None:
    """Lint errors and warnings, and an appVersion that is not the project's version, stop packaging."""
    report = helm.lint(chart, strict=True)
    problems = [*report["errors"], *(f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2)]
    if problems:
        raise PackageError("helm lint --strict:\n" + "\n".join(problems))
    app_version = str(helm.Chart.load(chart).metadata.get("appVersion", ""))
    if app_version != project_version():
        raise PackageError(
            f"{chart / 'Chart.yaml'}: appVersion {app_version!r} is not the project's version "
            f"{project_version()!r} (pyproject.toml), the image tag `make image` builds"
        )


def package(out: Path, *, chart: Path = CHART, url: str | None = None) -> Packaged:
    """Lint, package ``chart`` into ``out`` and (re)write ``out/index.yaml``."""
    check(chart)
    out.mkdir(parents=True, exist_ok=True)
    archive = Path(helm.package(chart, destination=out))
    index = out / "index.yaml"
    helm.repo_index_generate(out, base_url=url, merge=index if index.exists() else None)
    version = str(helm.Chart.load(chart).metadata["version"])
    return Packaged(archive=archive, index=index, version=version, digest=helm.digest(archive))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the chart repository directory")
    parser.add_argument("--url", help="the URL it will be served from (absolute URLs in index.yaml)")
    args = parser.parse_args(argv)
    if args.url and not re.match(r"^https?://", args.url):
        parser.error(f"--url {args.url!r} is not an http(s):// URL")
    try:
        done = package(args.out, url=args.url)
    except PackageError as exc:
        print(f"make chart: {exc}", file=sys.stderr)
        return 1
    print(f"{done.archive} ({done.digest})\n{done.index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
