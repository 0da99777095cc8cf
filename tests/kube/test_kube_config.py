"""One resolver of where the Kubernetes API is (``fleetmatch.backends.kube.config``), from the
environment through ``Settings`` to both clients: kubernetes-asyncio's and the sidecar's."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from kubernetes_asyncio import client

from fleetmatch.backends.kube.client import api_client
from fleetmatch.backends.kube.config import resolve, thin_config
from fleetmatch.errors import ConfigError
from fleetmatch.settings import KubeSettings, Settings
from tests.kube.fakekube import FakeKube

POD = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


@pytest.fixture
def account(tmp_path: Path) -> Path:
    """A service-account mount as the kubelet makes it."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("sa-token")
    trustme.CA().cert_pem.write_to_path(str(directory / "ca.crt"))
    return directory


def kube(env: dict[str, str]) -> KubeSettings:
    return Settings.from_env(env).kube


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        pytest.param({}, "kubeconfig", id="nothing-set"),
        pytest.param(POD, "in-cluster", id="in-a-pod-nothing-set"),
        pytest.param(POD | {"KUBECONFIG": "/elsewhere"}, "in-cluster", id="in-a-pod-with-KUBECONFIG"),
        pytest.param(POD | {"FLEETMATCH_KUBE_SERVER": "http://127.0.0.1:8001/"}, "url", id="server-wins"),
        pytest.param(POD | {"FLEETMATCH_KUBECONFIG": "/k"}, "kubeconfig", id="in-a-pod-told-a-kubeconfig"),
        pytest.param(POD | {"FLEETMATCH_KUBE_CONTEXT": "c"}, "kubeconfig", id="in-a-pod-told-a-context"),
        pytest.param(POD | {"FLEETMATCH_KUBE_IN_CLUSTER": "false"}, "kubeconfig", id="in-cluster-off"),
        pytest.param(
            POD | {"FLEETMATCH_KUBE_IN_CLUSTER": "true", "FLEETMATCH_KUBECONFIG": "/k"},
            "in-cluster",
            id="in-cluster-asked",
        ),
    ],
)
def test_one_resolver_decides_the_source(env: dict[str, str], kind: str, account: Path) -> None:
    assert resolve(kube(env), account_dir=account).kind == kind


def test_what_each_source_carries(account: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = resolve(kube({"FLEETMATCH_KUBE_SERVER": "http://127.0.0.1:8001/"}))
    assert url.server == "http://127.0.0.1:8001"
    pod = resolve(kube({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}), account_dir=account)
    assert pod.server == "https://[fd00::1]:443" and pod.token_file == account / "token"
    assert pod.ca_file == account / "ca.crt"
    told = resolve(kube({"FLEETMATCH_KUBECONFIG": "/k", "FLEETMATCH_KUBE_CONTEXT": "c", "KUBECONFIG": "/x"}))
    assert (told.kubeconfig, told.context) == ("/k", "c")
    assert resolve(kube({"KUBECONFIG": "/a:/b"})).kubeconfig == "/a:/b"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve(kube({})).kubeconfig == str(tmp_path / ".kube" / "config")


def test_the_old_url_variable_is_gone() -> None:
    assert resolve(kube({"FLEETMATCH_KUBE_API_URL": "http://127.0.0.1:1"})).kind == "kubeconfig"


def test_configurations_that_cannot_work_say_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Kubernetes Pod"):
        resolve(kube({"FLEETMATCH_KUBE_IN_CLUSTER": "true"}))
    with pytest.raises(ConfigError, match="automountServiceAccountToken"):
        resolve(kube(POD), account_dir=tmp_path)
    with pytest.raises(ConfigError, match="no kubeconfig"):
        thin_config(kube({"KUBECONFIG": str(tmp_path / "missing")}))
    with pytest.raises(ConfigError, match="FLEETMATCH_KUBE_IN_CLUSTER"):
        Settings.from_env({"FLEETMATCH_KUBE_IN_CLUSTER": "yes"})


async def test_both_clients_reach_the_same_server(fake_kube: FakeKube, kubeconfig: Path, account: Path) -> None:
    for env in ({"FLEETMATCH_KUBE_SERVER": fake_kube.url}, {"KUBECONFIG": f"/missing:{kubeconfig}"}):
        settings = kube(env)
        assert thin_config(settings).server == fake_kube.url
        api = await api_client(settings)
        try:
            assert api.configuration.host == fake_kube.url
            assert (await client.CoreV1Api(api).list_namespaced_pod("default")).items == []
        finally:
            await api.close()
    in_pod = await api_client(kube(POD), account_dir=account)
    try:
        assert in_pod.configuration.host == "https://10.96.0.1:443"
        assert in_pod.configuration.ssl_ca_cert == str(account / "ca.crt")
        assert in_pod.configuration.api_key["BearerToken"] == "Bearer sa-token"
    finally:
        await in_pod.close()
    assert thin_config(kube(POD), account_dir=account).token_file == account / "token"
