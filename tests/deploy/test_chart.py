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
NO_SCHEMA = {"monitoring.coreos.com/v1": {"ServiceMonitor"}, "cert-manager.io/v1": {"Certificate"}}
"""Custom resources of other projects that kubernetes-validate has no schema for: checked by hand below."""

ZONE_SPREAD = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
OWN_SELECTOR_SPREAD = {
    "maxSkew": 2,
    "topologyKey": "kubernetes.io/hostname",
    "whenUnsatisfiable": "DoNotSchedule",
    "labelSelector": {"matchLabels": {"team": "online"}},
}
PLACEMENT: dict[str, Any] = {
    "priorityClassName": "fleetmatch-critical",
    "topologySpreadConstraints": [ZONE_SPREAD],
    "podLabels": {"team": "online"},
    "podAnnotations": {"example.com/owner": "online"},
}
"""Pod settings every component (Deployment or StatefulSet) takes."""

COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external-redis": {"redis": {"external": {"url": "rediss://:pw@redis.example:6380/0"}}},
    "existing-secrets": {
        "redis": {"external": {"existingSecret": "my-redis", "existingSecretKey": "uri"}},
        "secrets": {"existingSecret": "my-secrets"},
        "gameservers": {"namespace": "gameservers"},
    },
    "no-backfill": {"matchmaker": {"backfill": {"enabled": False}}},
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
    # The ticket API for players: a LoadBalancer with its cloud settings and TLS from a Secret, the
    # allocator on a NodePort, and an Ingress in front of both.
    "exposed": {
        "matchmaker": {
            "frontend": {
                "service": {
                    "type": "LoadBalancer",
                    "nodePort": 31190,
                    "externalTrafficPolicy": "Local",
                    "loadBalancerIP": "203.0.113.10",
                    "loadBalancerSourceRanges": ["198.51.100.0/24"],
                    "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                },
                "tls": {"enabled": True, "secretName": "play-tls"},
            }
        },
        "allocator": {"service": {"type": "NodePort", "nodePort": 31180, "externalTrafficPolicy": "Cluster"}},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "hosts": [
                {"host": "play.example.com", "paths": [{"path": "/", "pathType": "Prefix", "component": "matchmaker"}]},
                {"host": "alloc.example.com", "paths": [{"path": "/v1/allocations", "component": "allocator"}]},
                {"host": "ops.example.com", "paths": [{"path": "/dashboard", "component": "dashboard"}]},
            ],
            "tls": [{"secretName": "play-example-com-tls", "hosts": ["play.example.com", "alloc.example.com"]}],
        },
    },
    # Scheduling, autoscaling and identity settings on every component; TLS from cert-manager.
    "production": {
        "dashboard": PLACEMENT,
        "controller": {**PLACEMENT, "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "c@p.iam"}}},
        "allocator": {
            **PLACEMENT,
            "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "a@p.iam"}},
            "autoscaling": {
                "enabled": True,
                "minReplicas": 3,
                "maxReplicas": 12,
                "customMetric": {"name": "fleetmatch_allocations_per_second", "averageValue": "50"},
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
        },
        "matchmaker": {
            "serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "m@p.iam"}},
            "frontend": {
                **PLACEMENT,
                "topologySpreadConstraints": [OWN_SELECTOR_SPREAD],
                "autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 60},
                "tls": {
                    "enabled": True,
                    "certManager": {
                        "enabled": True,
                        "issuerRef": {"name": "letsencrypt"},
                        "dnsNames": ["play.example.com"],
                        "duration": "2160h",
                    },
                },
            },
            "director": PLACEMENT,
        },
        "redis": PLACEMENT,
        "gameservers": {"serviceAccount": {"annotations": {"iam.gke.io/gcp-service-account": "sdk@p.iam"}}},
        "metrics": {"serviceMonitor": {"enabled": True}},
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
    assert container(docs, "matchmaker-director")["args"] == ["matchmaker", "--no-api", "--backfill"]
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
    assert grants(docs, f"{FULL}-matchmaker") == {("gameservers", v) for v in BACKFILL_VERBS}
    assert grants(docs, f"{FULL}-allocator") == {("gameservers", v) for v in ("get", "list", "watch", "update")} | {
        ("leases", v)
        for v in ("get", "create", "update")  # slot leases: replicas split the servers
    }
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
        ("fleets/finalizers", "update"),  # GameServers' owner references block their Fleet's deletion
        ("gameservers/finalizers", "update"),  # and Pods' their GameServer's
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


# --- backfill ----------------------------------------------------------------------------------------

BACKFILL_VERBS = ("get", "list", "watch", "update")
"""What the directors' backfill does to GameServers on the Kubernetes backend (KubeStore): follow them
(list, watch), read one (get) and write it back conditionally (update: a PUT, no /status subresource)."""


def director_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_spec(docs, "Deployment", "matchmaker-director")


@pytest.mark.parametrize(("combination", "namespace"), [("defaults", NAMESPACE), ("existing-secrets", "gameservers")])
def test_backfill_grants_the_directors_gameservers_only(combination: str, namespace: str) -> None:
    """On by default (as on Redis and in `fleetmatch up`): a Role in the game servers' namespace with
    exactly backfill's verbs on gameservers, the token in the director Pods only, and --backfill."""
    docs = render(combination)
    role = find(docs, "Role", f"{FULL}-matchmaker")
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == [
        {"apiGroups": ["fleetmatch.dev"], "resources": ["gameservers"], "verbs": list(BACKFILL_VERBS)}
    ]
    binding = find(docs, "RoleBinding", f"{FULL}-matchmaker")
    assert binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{FULL}-matchmaker", "namespace": NAMESPACE}]
    assert grants(docs, f"{FULL}-matchmaker") == {("gameservers", v) for v in BACKFILL_VERBS}
    assert director_pod(docs)["automountServiceAccountToken"] is True
    assert pod_spec(docs, "Deployment", "matchmaker-frontend")["automountServiceAccountToken"] is False
    assert container(docs, "matchmaker-director")["args"] == ["matchmaker", "--no-api", "--backfill"]
    director = env(container(docs, "matchmaker-director"))  # the Kubernetes backend, in the Pod's account
    assert director["FLEETMATCH_BACKEND"] == "kubernetes" and director["FLEETMATCH_KUBE_IN_CLUSTER"] == "true"
    assert director["FLEETMATCH_NAMESPACE"] == namespace


@pytest.mark.parametrize("combination", ["no-backfill", "mtls-no-directors"])
def test_no_backfill_grants_the_matchmaker_nothing(combination: str) -> None:
    """Backfill off, or no directors (backfill left on): no Role, no binding, no token in any Pod."""
    docs = render(combination)
    assert rules(docs, f"{FULL}-matchmaker") == []
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Role", f"{FULL}-matchmaker") not in names and ("RoleBinding", f"{FULL}-matchmaker") not in names
    assert pod_spec(docs, "Deployment", "matchmaker-frontend")["automountServiceAccountToken"] is False
    if combination == "no-backfill":
        assert director_pod(docs)["automountServiceAccountToken"] is False
        assert container(docs, "matchmaker-director")["args"] == ["matchmaker", "--no-api", "--no-backfill"]
    else:
        assert ("Deployment", f"{FULL}-matchmaker-director") not in names


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


# --- exposing the ticket API ------------------------------------------------------------------------


def pod_spec(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, kind, f"{FULL}-{name}")["spec"]["template"]["spec"]
    return spec


def test_services_default_to_cluster_ip_without_external_fields() -> None:
    for name in ("matchmaker", "allocator"):
        spec = find(render("defaults"), "Service", f"{FULL}-{name}")["spec"]
        assert spec["type"] == "ClusterIP"
        assert not {"externalTrafficPolicy", "loadBalancerIP", "loadBalancerSourceRanges"} & set(spec)
        assert "nodePort" not in spec["ports"][0]


def test_services_carry_their_exposure_settings() -> None:
    docs = render("exposed")
    ticket_api = find(docs, "Service", f"{FULL}-matchmaker")
    assert ticket_api["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    spec = ticket_api["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["loadBalancerIP"] == "203.0.113.10"
    assert spec["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    (port,) = spec["ports"]
    assert port == {"name": "https", "port": 9190, "targetPort": "http", "protocol": "TCP", "nodePort": 31190}
    allocator = find(docs, "Service", f"{FULL}-allocator")["spec"]
    assert (allocator["type"], allocator["externalTrafficPolicy"]) == ("NodePort", "Cluster")
    assert allocator["ports"][0]["nodePort"] == 31180
    assert "loadBalancerSourceRanges" not in allocator


def test_ingress_routes_each_path_to_its_components_service() -> None:
    docs = render("exposed")
    ingress = find(docs, "Ingress", FULL)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [
        {"secretName": "play-example-com-tls", "hosts": ["play.example.com", "alloc.example.com"]}
    ]
    routes = {
        (rule["host"], path["path"], path["pathType"]): path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routes == {
        ("play.example.com", "/", "Prefix"): {"name": f"{FULL}-matchmaker", "port": {"number": 9190}},
        ("alloc.example.com", "/v1/allocations", "Prefix"): {"name": f"{FULL}-allocator", "port": {"number": 9180}},
        ("ops.example.com", "/dashboard", "Prefix"): {"name": f"{FULL}-dashboard", "port": {"number": 9170}},
    }
    for backend in routes.values():  # every backend is a rendered Service's port
        service = find(docs, "Service", backend["name"])
        assert backend["port"]["number"] in [p["port"] for p in service["spec"]["ports"]]


def test_no_ingress_unless_enabled() -> None:
    assert not [d for d in render("defaults") if d["kind"] == "Ingress"]


def test_ticket_api_tls_from_a_secret() -> None:
    docs = render("exposed")
    c = container(docs, "matchmaker-frontend")
    e = env(c)
    assert e["FLEETMATCH_TLS_CERT_FILE"] == "/etc/fleetmatch/tls/tls.crt"
    assert e["FLEETMATCH_TLS_KEY_FILE"] == "/etc/fleetmatch/tls/tls.key"
    assert {"name": "tls", "mountPath": "/etc/fleetmatch/tls", "readOnly": True} in c["volumeMounts"]
    volumes = pod_spec(docs, "Deployment", "matchmaker-frontend")["volumes"]
    assert {"name": "tls", "secret": {"secretName": "play-tls"}} in volumes
    assert c["livenessProbe"]["httpGet"]["scheme"] == c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    annotations = find(docs, "Deployment", f"{FULL}-matchmaker-frontend")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scheme"] == "https"
    # The directors and the allocator keep plain HTTP (allocator.tls is its own setting).
    assert "FLEETMATCH_TLS_CERT_FILE" not in env(container(docs, "matchmaker-director"))
    assert container(docs, "matchmaker-director")["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_ticket_api_is_plain_http_by_default() -> None:
    docs = render("defaults")
    c = container(docs, "matchmaker-frontend")
    assert not {"FLEETMATCH_TLS_CERT_FILE", "FLEETMATCH_TLS_KEY_FILE"} & set(env(c))
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert find(docs, "Service", f"{FULL}-matchmaker")["spec"]["ports"][0]["name"] == "http"


def test_ticket_api_certificate_from_cert_manager() -> None:
    docs = render("production")
    cert = find(docs, "Certificate", f"{FULL}-matchmaker")
    assert cert["spec"]["issuerRef"] == {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert cert["spec"]["duration"] == "2160h"
    assert cert["spec"]["dnsNames"] == [
        "play.example.com",
        f"{FULL}-matchmaker",
        f"{FULL}-matchmaker.{NAMESPACE}.svc",
        f"{FULL}-matchmaker.{NAMESPACE}.svc.cluster.local",
    ]
    volumes = pod_spec(docs, "Deployment", "matchmaker-frontend")["volumes"]
    assert {"name": "tls", "secret": {"secretName": cert["spec"]["secretName"]}} in volumes
    monitor = find(docs, "ServiceMonitor", FULL)
    assert "https" in [e["port"] for e in monitor["spec"]["endpoints"]]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"matchmaker": {"frontend": {"service": {"nodePort": 31190}}}},
            r"matchmaker\.frontend\.service\.nodePort needs .*NodePort or LoadBalancer \(it is ClusterIP\)",
            id="node-port-on-cluster-ip",
        ),
        pytest.param(
            {"allocator": {"service": {"externalTrafficPolicy": "Local"}}},
            r"allocator\.service\.externalTrafficPolicy needs",
            id="traffic-policy-on-cluster-ip",
        ),
        pytest.param(
            {"matchmaker": {"frontend": {"service": {"type": "NodePort", "loadBalancerSourceRanges": ["10.0.0.0/8"]}}}},
            r"loadBalancerSourceRanges .*need matchmaker\.frontend\.service\.type LoadBalancer \(it is NodePort\)",
            id="source-ranges-on-node-port",
        ),
        pytest.param({"ingress": {"enabled": True}}, r"ingress\.hosts", id="ingress-without-hosts"),
        pytest.param(
            {"matchmaker": {"frontend": {"tls": {"enabled": True}}}},
            r"matchmaker\.frontend\.tls\.secretName",
            id="tls-without-secret",
        ),
        pytest.param(
            {"matchmaker": {"frontend": {"tls": {"enabled": True, "certManager": {"enabled": True}}}}},
            r"certManager\.issuerRef\.name",
            id="cert-manager-without-issuer",
        ),
        pytest.param(
            {"allocator": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
            r"allocator\.autoscaling\.minReplicas \(5\) is above maxReplicas \(2\)",
            id="hpa-min-above-max",
        ),
        pytest.param(
            {"matchmaker": {"frontend": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}}},
            r"matchmaker\.frontend\.autoscaling\.enabled needs targetCPUUtilizationPercentage or customMetric",
            id="hpa-without-metric",
        ),
        pytest.param(
            {"allocator": {"autoscaling": {"enabled": True, "customMetric": {"name": "rps"}}}},
            r"customMetric\.name needs customMetric\.averageValue",
            id="custom-metric-without-target",
        ),
    ],
)
def test_inconsistent_values_are_refused_by_name(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        chart().render(values, name=RELEASE, namespace=NAMESPACE)


# --- autoscaling, scheduling and identity -----------------------------------------------------------


def test_hpas_own_the_replicas_of_the_apis() -> None:
    docs = render("production")
    hpas = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {f"{FULL}-allocator", f"{FULL}-matchmaker-frontend"}
    for name, spec in hpas.items():
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in find(docs, "Deployment", name)["spec"], name
    allocator = hpas[f"{FULL}-allocator"]
    assert (allocator["minReplicas"], allocator["maxReplicas"]) == (3, 12)
    assert allocator["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "fleetmatch_allocations_per_second"},
                "target": {"type": "AverageValue", "averageValue": "50"},
            },
        },
    ]
    assert allocator["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 300}}
    frontend = hpas[f"{FULL}-matchmaker-frontend"]
    assert [m["resource"]["target"]["averageUtilization"] for m in frontend["metrics"]] == [60]
    # Components without an HPA keep their replicas.
    assert find(docs, "Deployment", f"{FULL}-controller")["spec"]["replicas"] == 1
    assert find(docs, "Deployment", f"{FULL}-matchmaker-director")["spec"]["replicas"] == 1


def test_no_hpa_by_default() -> None:
    docs = render("defaults")
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert find(docs, "Deployment", f"{FULL}-allocator")["spec"]["replicas"] == 2


def test_pod_settings_reach_every_workload() -> None:
    docs = render("production")
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 6
    for workload in workloads:
        name = workload["metadata"]["name"]
        template = workload["spec"]["template"]
        pod = template["spec"]
        labels = template["metadata"]["labels"]
        assert pod["priorityClassName"] == "fleetmatch-critical", name
        assert labels["team"] == "online", name
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert "team" not in workload["spec"]["selector"]["matchLabels"], name  # selectors are immutable
        assert template["metadata"]["annotations"]["example.com/owner"] == "online", name
        (spread,) = pod["topologySpreadConstraints"]
        if name == f"{FULL}-matchmaker-frontend":
            assert spread == OWN_SELECTOR_SPREAD  # a labelSelector given is kept
        else:  # one left out spreads the component's own Pods
            assert spread == {**ZONE_SPREAD, "labelSelector": workload["spec"]["selector"]}, name


def test_service_accounts_carry_their_annotations() -> None:
    docs = render("production")
    for account, expected in [("controller", "c"), ("allocator", "a"), ("matchmaker", "m"), ("sdk", "sdk")]:
        annotations = find(docs, "ServiceAccount", f"{FULL}-{account}")["metadata"]["annotations"]
        assert annotations == {"iam.gke.io/gcp-service-account": f"{expected}@p.iam"}
    assert all("annotations" not in d["metadata"] for d in render("defaults") if d["kind"] == "ServiceAccount")


def test_notes_say_how_players_reach_the_ticket_api() -> None:
    def notes(combination: str) -> str:
        rendered = chart().render(COMBINATIONS[combination], name=RELEASE, namespace=NAMESPACE)
        return rendered["fleetmatch/templates/NOTES.txt"]

    assert f"kubectl port-forward -n {NAMESPACE} svc/{FULL}-matchmaker 9190" in notes("defaults")
    exposed = notes("exposed")
    assert "through the Ingress: https://play.example.com/" in exposed
    assert "alloc.example.com" not in exposed  # the allocator's path is not the ticket API


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
