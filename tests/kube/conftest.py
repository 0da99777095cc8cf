"""Fixtures for code that talks to Kubernetes: a fresh fake API server per test and a real client on it.

Stable interface for other test modules:

- ``fake_kube``: a started ``FakeKube`` (function scope) serving fleetmatch's CRDs from
  ``deploy/crds/*.yaml`` when that directory exists, plus the built-in pods, nodes and namespaces.
- ``kube_api``: a ``kubernetes_asyncio.client.ApiClient`` configured with ``Configuration(host=fake_kube.url)``.
- ``kubeconfig``: the path of a kubeconfig file pointing at ``fake_kube`` (user ``nobody``, no auth),
  for code that calls ``config.load_kube_config(config_file=...)``.

Tests outside ``tests/kube/`` can use them by importing them into their own conftest:
``from tests.kube.conftest import fake_kube, kube_api, kubeconfig  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.kube.fakekube import FakeKube

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def load_crds(directory: Path = CRD_DIR) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in ``directory/*.yaml`` (none if it does not exist)."""
    if not directory.is_dir():
        return []
    crds: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        docs: Iterable[Any] = yaml.safe_load_all(path.read_text())
        crds += [d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    return crds


@pytest.fixture
async def fake_kube() -> AsyncIterator[FakeKube]:
    fake = FakeKube()
    for crd in load_crds():
        fake.register_crd(crd)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def kube_api(fake_kube: FakeKube) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(configuration=client.Configuration(host=fake_kube.url)) as api:
        yield api


@pytest.fixture
def kubeconfig(fake_kube: FakeKube, tmp_path: Path) -> Path:
    return fake_kube.write_kubeconfig(tmp_path / "kubeconfig")
