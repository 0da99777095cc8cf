"""The Helm chart, rendered offline (helm-python-sdk: Helm's Go SDK, no helm binary, no cluster)
with several value combinations; every object validates strictly against Kubernetes' schemas."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.schemas import CHART

RELEASE, NAMESPACE = "fm", "games"
FULL = "fm-fleetmatch"
NO_SCHEMA = {"monitoring.coreos.com/v1": {"ServiceMonitor"}}
"""Custom resources of other projects that kubernetes-validate has no schema for: checked by hand below."""

COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external-redis": {"redis": {"external": {"url": "rediss://:pw@redis.example:6380/0"}}},
    "existing-secrets": {
        "redis": {"external": {"existingSecret": "my-redis", "existingSecretKey": "uri"}},
        "secrets": {"existingSecret": "my-secrets"},
        "gameservers": {"namespace": "gameservers"},
    },
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}},
    "tls": {
        "allocator": {"tls": {"enabled": True, "secretName": "allocator-tls"}},
        "metrics": {"serviceMonitor": {"enabled": True}},
    },
    "mtls-no-directors": {
        "allocator": {
            "tls": {"enabled": True, "secretName": "allocator-tls", "clientCA": {"enabled": True, "secretName": "ca"}}
        },
        "matchmaker": {"director": {"enabled": False}},
        "redis": {"persistence": {"enabled": False}},
        "probes": {"enabled": False},
    },
}


@cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


@cache
def _render(combination: str) -> tuple[dict[str, Any], ...]:
    manifests = chart().render(COMBINATIONS[combination], name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return tuple(docs)


def render(combination: str) -> list[dict[str, Any]]:
    return list(_render(combination))


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} among {[(d['kind'], d['metadata']['name']) for d in docs]}")


def container(docs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    c: dict[str, Any] = find(docs, "Deployment", f"{FULL}-{deployment}")["spec"]["template"]["spec"]["containers"][0]
    return c


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_rendered_object_validates_strictly(combination: str) -> None:
    version = kubernetes_validate.latest_version()
    for doc in render(combination):
        if doc["kind"] in NO_SCHEMA.get(doc["apiVersion"], set()):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")


def test_chart_lints_clean() -> None:
    report = helm.lint(CHART, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_install() -> None:
    docs = render("defaults")
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert ("StatefulSet", f"{FULL}-redis") in kinds
    assert ("Secret", f"{FULL}-secrets") in kinds
    assert not [k for k in kinds if k[0] == "ServiceMonitor"]
    assert container(docs, "controller")["args"] == ["controller"]
    assert container(docs, "allocator")["args"] == ["allocator"]
    assert container(docs, "matchmaker-frontend")["args"] == ["matchmaker", "--no-directors"]
    assert container(docs, "matchmaker-director")["args"] == ["matchmaker", "--no-api"]
    director = env(container(docs, "matchmaker-director"))
    assert director["FLEETMATCH_ALLOCATOR_URL"] == f"http://{FULL}-allocator.{NAMESPACE}.svc:9180"
    assert director["REDIS_URL"] == f"redis://:$(REDIS_PASSWORD)@{FULL}-redis:6379/0"
    secret = find(docs, "Secret", f"{FULL}-secrets")
    assert set(secret["data"]) == {"allocator-token", "player-token-secret", "redis-password"}


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_workloads_are_hardened_and_sized(combination: str) -> None:
    docs = render(combination)
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"requests", "limits"} <= set(c["resources"]), doc["metadata"]["name"]
            probes = {"livenessProbe", "readinessProbe"} & set(c)
            expected = doc["kind"] == "StatefulSet" or combination != "mtls-no-directors"
            assert probes == ({"livenessProbe", "readinessProbe"} if expected else set()), doc["metadata"]["name"]
            named_ports = {p["name"] for p in c.get("ports", [])}
            for probe in probes:
                action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
                assert action["port"] in named_ports


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_services_and_pdbs_select_pods(combination: str) -> None:
    docs = render(combination)
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]

    def pods_of(selector: dict[str, str]) -> list[dict[str, Any]]:
        return [w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]

    for doc in docs:
        if doc["kind"] == "Service":
            (workload,) = pods_of(doc["spec"]["selector"])
            ports = {p["name"] for c in workload["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
            for port in doc["spec"]["ports"]:
                assert port["targetPort"] in ports, doc["metadata"]["name"]
        if doc["kind"] == "PodDisruptionBudget":
            assert len(pods_of(doc["spec"]["selector"]["matchLabels"])) == 1, doc["metadata"]["name"]
    deployments = {d["metadata"]["name"] for d in workloads if d["kind"] == "Deployment"}
    pdbs = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == deployments


def rules(docs: list[dict[str, Any]], subject: str) -> list[dict[str, Any]]:
    """Every RBAC rule granted to ServiceAccount ``subject``."""
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out = []
    for b in docs:
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(s["name"] == subject for s in b["subjects"]):
            out += roles[(b["roleRef"]["kind"], b["roleRef"]["name"])]["rules"]
    return out


def grants(docs: list[dict[str, Any]], subject: str) -> set[tuple[str, str]]:
    return {(res, verb) for r in rules(docs, subject) for res in r["resources"] for verb in r["verbs"]}


def test_rbac_is_least_privilege() -> None:
    docs = render("existing-secrets")  # game servers in their own namespace
    assert rules(docs, f"{FULL}-matchmaker") == []
    assert grants(docs, f"{FULL}-allocator") == {("gameservers", v) for v in ("get", "list", "watch", "update")}
    assert grants(docs, f"{FULL}-sdk") == {("gameservers", v) for v in ("get", "list", "watch", "patch", "update")}
    controller = grants(docs, f"{FULL}-controller")
    for needed in [
        ("gameservers", "create"),
        ("fleets/status", "update"),
        ("fleetautoscalers/status", "patch"),
        ("pods", "create"),
        ("pods", "delete"),
        ("events", "create"),
        ("nodes", "list"),
        ("leases", "update"),
    ]:
        assert needed in controller
    assert ("nodes", "update") not in controller and ("secrets", "get") not in controller
    assert {(r, v) for r, v in controller if r == "leases"} == {("leases", v) for v in ("get", "create", "update")}
    for doc in docs:
        if doc["kind"] in ("Role", "RoleBinding"):  # the leader Lease lives beside the objects it guards
            assert doc["metadata"]["namespace"] == "gameservers", doc["metadata"]["name"]
        if doc["kind"] == "ClusterRole":
            assert {res for r in doc["rules"] for res in r["resources"]} == {"nodes"}
    sdk_account = find(docs, "ServiceAccount", f"{FULL}-sdk")
    assert sdk_account["metadata"]["namespace"] == "gameservers"
    assert find(docs, "ServiceAccount", f"{FULL}-matchmaker")["automountServiceAccountToken"] is False


def test_external_redis_replaces_the_in_chart_one() -> None:
    docs = render("external-redis")
    assert not [d for d in docs if d["kind"] == "StatefulSet"]
    url_secret = find(docs, "Secret", f"{FULL}-redis-url")
    assert set(url_secret["data"]) == {"url"}
    assert "redis-password" not in find(docs, "Secret", f"{FULL}-secrets")["data"]
    for name in ("controller", "allocator", "matchmaker-frontend", "matchmaker-director"):
        assert env(container(docs, name))["REDIS_URL"] == {"secretKeyRef": {"name": f"{FULL}-redis-url", "key": "url"}}


def test_existing_secrets_are_used_and_none_created() -> None:
    docs = render("existing-secrets")
    assert not [d for d in docs if d["kind"] == "Secret"]
    allocator = env(container(docs, "allocator"))
    assert allocator["FLEETMATCH_ALLOCATOR_TOKEN"] == {"secretKeyRef": {"name": "my-secrets", "key": "allocator-token"}}
    assert allocator["REDIS_URL"] == {"secretKeyRef": {"name": "my-redis", "key": "uri"}}
    assert allocator["FLEETMATCH_NAMESPACE"] == "gameservers"


def test_allocator_tls() -> None:
    docs = render("tls")
    c = container(docs, "allocator")
    e = env(c)
    assert e["FLEETMATCH_ALLOCATOR_TLS_CERT"] == "/etc/fleetmatch/tls/tls.crt"
    assert "FLEETMATCH_ALLOCATOR_TLS_CLIENT_CA" not in e
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = find(docs, "Deployment", f"{FULL}-allocator")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "allocator-tls"}} in volumes
    director = env(container(docs, "matchmaker-director"))
    assert director["FLEETMATCH_ALLOCATOR_URL"].startswith("https://")
    assert director["SSL_CERT_FILE"] == "/etc/fleetmatch/allocator-ca/ca.crt"
    assert find(docs, "Service", f"{FULL}-allocator")["spec"]["ports"][0]["name"] == "https"
    monitor = find(docs, "ServiceMonitor", FULL)
    assert {"port": "https", "path": "/metrics", "scheme": "https"}.items() <= monitor["spec"]["endpoints"][2].items()


def test_mutual_tls() -> None:
    docs = render("mtls-no-directors")
    e = env(container(docs, "allocator"))
    assert e["FLEETMATCH_ALLOCATOR_TLS_CLIENT_CA"] == "/etc/fleetmatch/client-ca/ca.crt"
    assert not [d for d in docs if d["metadata"]["name"].endswith("director")]


def test_mutual_tls_with_directors_is_refused() -> None:
    values = {
        "allocator": {"tls": {"enabled": True, "secretName": "t", "clientCA": {"enabled": True, "secretName": "c"}}}
    }
    with pytest.raises(helm.HelmError, match="directors cannot present client certificates"):
        chart().render(values, name=RELEASE, namespace=NAMESPACE)


def test_tls_without_a_secret_is_refused() -> None:
    with pytest.raises(helm.HelmError, match=r"allocator\.tls\.secretName"):
        chart().render({"allocator": {"tls": {"enabled": True}}}, name=RELEASE, namespace=NAMESPACE)


def test_service_monitor() -> None:
    docs = render("service-monitor")
    monitor = find(docs, "ServiceMonitor", FULL)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics", "http"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # Every Service the monitor selects has a port one of its endpoints scrapes.
    selected = [
        d
        for d in docs
        if d["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items() <= d["metadata"]["labels"].items()
    ]
    scraped = {p["name"] for d in selected for p in d["spec"]["ports"]} & {"metrics", "http"}
    assert scraped == {"metrics", "http"}


def test_pods_carry_scrape_annotations() -> None:
    docs = render("defaults")
    for name, port in [("controller", "9100"), ("allocator", "9180"), ("matchmaker-frontend", "9190")]:
        annotations = find(docs, "Deployment", f"{FULL}-{name}")["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == port


def test_notes_render() -> None:
    notes = chart().render({}, name=RELEASE, namespace=NAMESPACE)["fleetmatch/templates/NOTES.txt"]
    assert f"svc/{FULL}-allocator" in notes and "kubectl get fleets,gs" in notes


def test_every_value_is_documented() -> None:
    """Each key of values.yaml has a comment line above it, except the inside of Kubernetes objects
    (resources, security contexts) and the queue rules' text."""
    exempt_parents = {"resources", "podSecurityContext", "securityContext"}
    stack: list[tuple[int, str]] = []
    block_indent: int | None = None
    previous = ""
    undocumented = []
    for line in (CHART / "values.yaml").read_text().splitlines():
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue
            block_indent = None
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if match:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1] if stack else ""
            key = match.group(2)
            if parent not in exempt_parents and not previous.strip().startswith("#"):
                undocumented.append(".".join([*(k for _, k in stack), key]))
            stack.append((indent, key))
            if line.rstrip().endswith("|"):
                block_indent = indent
        if line.strip():
            previous = line
    assert undocumented == []


def test_dashboard_component() -> None:
    docs = render("existing-secrets")  # game servers in their own namespace
    c = container(docs, "dashboard")
    assert c["args"] == ["dashboard"]
    e = env(c)
    assert e["FLEETMATCH_DASHBOARD_PORT"] == "9170" and e["FLEETMATCH_DASHBOARD_HOST"] == "0.0.0.0"
    # its queues come from the ticket API's Service, its allocation counters from the allocator's
    frontend = find(docs, "Service", f"{FULL}-matchmaker")["spec"]["ports"][0]["port"]
    assert e["FLEETMATCH_DASHBOARD_MATCHMAKER_URL"] == f"http://{FULL}-matchmaker.{NAMESPACE}.svc:{frontend}"
    assert e["FLEETMATCH_DASHBOARD_METRICS_URL"] == f"http://{FULL}-allocator.{NAMESPACE}.svc:9180/metrics"
    assert e["FLEETMATCH_ALLOCATOR_TOKEN"] == {"secretKeyRef": {"name": "my-secrets", "key": "allocator-token"}}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # read-only, in the game servers' namespace
    assert grants(docs, f"{FULL}-dashboard") == {
        *((res, verb) for res in ("gameservers", "fleets", "fleetautoscalers") for verb in ("get", "list", "watch")),
        ("events", "list"),
    }
    assert find(docs, "Role", f"{FULL}-dashboard")["metadata"]["namespace"] == "gameservers"
    assert find(docs, "Service", f"{FULL}-dashboard")["spec"]["ports"][0]["port"] == 9170


def test_dashboard_can_be_turned_off_and_leaves_no_trace() -> None:
    manifests = chart().render({"dashboard": {"enabled": False}}, name=RELEASE, namespace=NAMESPACE)
    docs = [
        d for path, text in manifests.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d
    ]
    assert not [d for d in docs if "dashboard" in d["metadata"]["name"]]


def test_dashboard_reads_no_https_allocator_it_cannot_verify() -> None:
    assert "FLEETMATCH_DASHBOARD_METRICS_URL" not in env(container(render("tls"), "dashboard"))
