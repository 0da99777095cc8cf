"""Write the chart's ``values.schema.json``: what ``helm install/upgrade/template/lint`` check values against.

    python deploy/helm/schema.py           # rewrite deploy/helm/fleetmatch/values.schema.json
    python deploy/helm/schema.py --check   # exit 1 if the committed file differs from what this writes

A typo (``alocator:``, ``servce:``) or a wrong enum (``service.type: Loadbalancer``) then fails the
command with a message naming the key, instead of being ignored: every object of fleetmatch's own
settings closes with ``additionalProperties: false``. Maps the operator fills (annotations, labels,
node selectors) and Kubernetes objects passed through as they are (resources, affinity, security
contexts, HPA behavior) stay open: the API server checks those. Cross-field rules (a nodePort needs
type NodePort or LoadBalancer, minReplicas <= maxReplicas, TLS needs a Secret) are the templates'
``fail`` messages. Each component's Pod settings are written once here and repeated in the schema,
because ``additionalProperties`` cannot see properties brought in by ``$ref``/``allOf`` (draft 7);
that is why this is a script, like ``deploy/crds/generate.py``.

``tests/deploy/test_values_schema.py`` keeps this in step with ``values.yaml`` (the defaults validate,
every default key is in the schema) and renders bad values through the Helm SDK.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

SCHEMA_FILE = Path(__file__).resolve().parent / "fleetmatch" / "values.schema.json"


# -- building blocks ----------------------------------------------------------------------------


def closed(properties: Schema, *, required: list[str] | None = None) -> Schema:
    """An object of ours: unknown keys are typos."""
    out: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        out["required"] = required
    return out


def string(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def integer(**extra: Any) -> Schema:
    return {"type": "integer", **extra}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


BOOLEAN: Schema = {"type": "boolean"}
STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
OPEN_OBJECT: Schema = {"type": "object"}
"""A Kubernetes object passed through as it is (resources, affinity, security contexts...)."""
OBJECT_LIST: Schema = {"type": "array", "items": {"type": "object"}}
STRING_LIST: Schema = {"type": "array", "items": {"type": "string"}}
PORT = integer(minimum=1, maximum=65535)
NODE_PORT = {"type": ["integer", "null"], "minimum": 1, "maximum": 65535}
REPLICAS = integer(minimum=0)
QUANTITY: Schema = {"type": ["string", "number"]}
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


SERVICE = closed(
    {
        "type": enum(*SERVICE_TYPES),
        "port": PORT,
        "annotations": STRING_MAP,
        "nodePort": NODE_PORT,
        "externalTrafficPolicy": enum("", "Cluster", "Local"),
        "loadBalancerIP": string(),
        "loadBalancerSourceRanges": STRING_LIST,
        "loadBalancerClass": string(),
    }
)


PDB = closed({"enabled": BOOLEAN, "maxUnavailable": {"type": ["integer", "string"]}})

AUTOSCALING = closed(
    {
        "enabled": BOOLEAN,
        "minReplicas": integer(minimum=1),
        "maxReplicas": integer(minimum=1),
        "targetCPUUtilizationPercentage": {"type": ["integer", "null"], "minimum": 1},
        "customMetric": closed({"name": string(), "averageValue": QUANTITY}),
        "behavior": OPEN_OBJECT,
    }
)

SERVICE_ACCOUNT = closed({"annotations": STRING_MAP})


def pod(**extra: Schema) -> Schema:
    """The settings every component's Pods take, plus the component's own."""
    return closed(
        {
            "resources": OPEN_OBJECT,
            "podAnnotations": STRING_MAP,
            "podLabels": STRING_MAP,
            "priorityClassName": string(),
            "topologySpreadConstraints": OBJECT_LIST,
            "nodeSelector": STRING_MAP,
            "tolerations": OBJECT_LIST,
            "affinity": OPEN_OBJECT,
            **extra,
        }
    )


# -- the values ---------------------------------------------------------------------------------

IMAGE = closed(
    {
        "repository": string(minLength=1),
        "tag": string(),
        "pullPolicy": enum("Always", "IfNotPresent", "Never"),
    }
)

GAMESERVERS = closed(
    {
        "namespace": string(),
        "portRange": string(pattern=r"^[0-9]+-[0-9]+$"),
        "sidecar": closed(
            {
                "image": string(),
                "httpPort": PORT,
                "grpcPort": PORT,
                "cpuRequest": QUANTITY,
                "memoryRequest": QUANTITY,
                "cpuLimit": QUANTITY,
                "memoryLimit": QUANTITY,
                "native": BOOLEAN,
            }
        ),
        "serviceAccount": SERVICE_ACCOUNT,
        "processImage": string(),
    }
)

REDIS = closed(
    {
        "external": closed({"url": string(), "existingSecret": string(), "existingSecretKey": string(minLength=1)}),
        "ticketsUrl": string(),
        "image": IMAGE,
        "persistence": closed({"enabled": BOOLEAN, "size": QUANTITY, "storageClass": string()}),
        "resources": OPEN_OBJECT,
        "nodeSelector": STRING_MAP,
        "tolerations": OBJECT_LIST,
        "affinity": OPEN_OBJECT,
        "podAnnotations": STRING_MAP,
        "podLabels": STRING_MAP,
        "priorityClassName": string(),
        "topologySpreadConstraints": OBJECT_LIST,
    }
)

SECRETS = closed(
    {
        "existingSecret": string(),
        "allocatorToken": string(),
        "playerTokenSecret": string(),
        "apiKeys": string(),
        "redisPassword": string(),
    }
)

METRICS = closed(
    {
        "port": PORT,
        "podAnnotations": BOOLEAN,
        "serviceMonitor": closed({"enabled": BOOLEAN, "interval": string(), "labels": STRING_MAP}),
    }
)

CONTROLLER = pod(
    replicas=REPLICAS,
    leaseSeconds=integer(minimum=1),
    pdb=PDB,
    serviceAccount=SERVICE_ACCOUNT,
)

ALLOCATOR = pod(
    replicas=REPLICAS,
    port=PORT,
    allocationLeaseSeconds=integer(minimum=0),
    headerTimeoutSeconds={"type": "number", "exclusiveMinimum": 0},
    bodyTimeoutSeconds={"type": "number", "exclusiveMinimum": 0},
    service=SERVICE,
    tls=closed(
        {
            "enabled": BOOLEAN,
            "secretName": string(),
            "caKey": string(),
            "clientCA": closed({"enabled": BOOLEAN, "secretName": string(), "key": string(minLength=1)}),
        }
    ),
    pdb=PDB,
    autoscaling=AUTOSCALING,
    serviceAccount=SERVICE_ACCOUNT,
)

MATCHMAKER_TLS = closed(
    {
        "enabled": BOOLEAN,
        "secretName": string(),
        "certManager": closed(
            {
                "enabled": BOOLEAN,
                "issuerRef": closed(
                    {"name": string(), "kind": enum("Issuer", "ClusterIssuer"), "group": string(minLength=1)}
                ),
                "dnsNames": STRING_LIST,
                "duration": string(),
                "renewBefore": string(),
            }
        ),
    }
)

MATCHMAKER = closed(
    {
        "queues": string(),
        "existingQueuesConfigMap": string(),
        "frontend": pod(
            replicas=REPLICAS,
            port=PORT,
            service=SERVICE,
            tls=MATCHMAKER_TLS,
            pdb=PDB,
            autoscaling=AUTOSCALING,
        ),
        "backfill": closed({"enabled": BOOLEAN}),
        "director": pod(enabled=BOOLEAN, replicas=REPLICAS, pdb=PDB),
        "serviceAccount": SERVICE_ACCOUNT,
    }
)

INGRESS_COMPONENTS = ("matchmaker", "allocator", "dashboard")

INGRESS = closed(
    {
        "enabled": BOOLEAN,
        "className": string(),
        "annotations": STRING_MAP,
        "hosts": {
            "type": "array",
            "items": closed(
                {
                    "host": string(),
                    "paths": {
                        "type": "array",
                        "items": closed(
                            {
                                "path": string(pattern="^/"),
                                "pathType": enum("Prefix", "Exact", "ImplementationSpecific"),
                                "component": enum(*INGRESS_COMPONENTS),
                            },
                            required=["component"],
                        ),
                    },
                },
                required=["paths"],
            ),
        },
        "tls": {
            "type": "array",
            "items": closed({"secretName": string(minLength=1), "hosts": STRING_LIST}, required=["secretName"]),
        },
    }
)

DASHBOARD: Schema = {"type": "object"}
"""The dashboard's values belong to its own template (dashboard.yaml); until its branch closes this
object, the Ingress only relies on ``dashboard.service.port`` (and ``dashboard.enabled``)."""

VALUES = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Values of the fleetmatch chart (generated by deploy/helm/schema.py; documented in values.yaml)",
    **closed(
        {
            "image": IMAGE,
            "imagePullSecrets": OBJECT_LIST,
            "nameOverride": string(),
            "fullnameOverride": string(),
            "logFormat": enum("json", "text"),
            "logLevel": enum("DEBUG", "INFO", "WARNING", "ERROR"),
            "extraEnv": OBJECT_LIST,
            "gameservers": GAMESERVERS,
            "redis": REDIS,
            "secrets": SECRETS,
            "metrics": METRICS,
            "probes": closed({"enabled": BOOLEAN}),
            "podSecurityContext": OPEN_OBJECT,
            "securityContext": OPEN_OBJECT,
            "controller": CONTROLLER,
            "allocator": ALLOCATOR,
            "matchmaker": MATCHMAKER,
            "ingress": INGRESS,
            "dashboard": DASHBOARD,
            # Helm passes the parent chart's `global` to every chart: allowed, unused.
            "global": OPEN_OBJECT,
        }
    ),
}


def render() -> str:
    return json.dumps(VALUES, indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SCHEMA_FILE.read_text() != text:
            print(f"{SCHEMA_FILE} is stale: run python deploy/helm/schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
