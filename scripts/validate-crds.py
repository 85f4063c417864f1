#!/usr/bin/env python3
"""Validate the kinds in deploy/k8s and deploy/observability that kubernetes-validate has no schema for.

kubernetes-validate knows the built-in Kubernetes API only: for KEDA's ScaledObject and
TriggerAuthentication (CRDs), the Prometheus Operator's PodMonitor and PrometheusRule (CRDs) and
kustomize's Kustomization it prints "Couldn't find schema" and passes. This script checks exactly
those kinds against small strict JSON schemas written from KEDA 2.x's and the Prometheus Operator's
CRDs and documentation (unknown fields are errors, as with --strict), then checks the references
between the files: the ScaledObject scales the Deployment, its authenticationRef names the
TriggerAuthentication, the TriggerAuthentication and the Deployment read keys the Secret has, the
trigger watches the ConfigMap's QUEUE, the PodMonitor selects the Deployment's pods on a port they
name, and the Kustomizations list files that exist. Documents without a kind (a Prometheus rules
file) are skipped.

Usage: validate-crds.py FILE...   (runs with the PyYAML and jsonschema that kubernetes-validate
brings). Exit 0 when everything is valid, 1 otherwise; one line per problem.
"""

import os
import re
import sys

import jsonschema
import yaml

# Kinds this script validates: (apiVersion, kind) -> schema name.
HANDLED = {
    ("keda.sh/v1alpha1", "ScaledObject"): "ScaledObject",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "TriggerAuthentication",
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"): "Kustomization",
    ("monitoring.coreos.com/v1", "PodMonitor"): "PodMonitor",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "PrometheusRule",
}

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def strict(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


INT32 = {"type": "integer", "minimum": 0, "maximum": 2147483647}
STRING = {"type": "string", "minLength": 1}
NUMBER_STRING = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = strict({
    "name": {"type": "string", "pattern": DNS_LABEL, "maxLength": 253},
    "namespace": {"type": "string", "pattern": DNS_LABEL},
    "labels": LABELS,
    "annotations": LABELS,
}, required=["name"])

HPA_RULES = strict({
    "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
    "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
    "tolerance": {"type": ["string", "number"]},
    "policies": {"type": "array", "minItems": 1, "items": strict({
        "type": {"enum": ["Pods", "Percent"]},
        "value": {"type": "integer", "minimum": 1},
        "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
    }, required=["type", "value", "periodSeconds"])},
})

# Metadata keys of KEDA's rabbitmq scaler (https://keda.sh/docs/latest/scalers/rabbitmq-queue/).
# The host (with credentials) must come from a TriggerAuthentication, never inline.
RABBITMQ_METADATA = strict({
    "protocol": {"enum": ["auto", "amqp", "http"]},
    "queueName": STRING,
    "mode": {"enum": ["QueueLength", "MessageRate", "DeliverGetRate", "PublishedToDeliveredRatio",
                      "ExpectedQueueConsumptionTime"]},
    "value": NUMBER_STRING,
    "activationValue": NUMBER_STRING,
    "vhostName": STRING,
    "hostFromEnv": STRING,
    "usernameFromEnv": STRING,
    "passwordFromEnv": STRING,
    "unsafeSsl": {"enum": ["true", "false"]},
    "timeout": NUMBER_STRING,
    "useRegex": {"enum": ["true", "false"]},
    "excludeUnacknowledged": {"enum": ["true", "false"]},
    "pageSize": NUMBER_STRING,
    "operation": {"enum": ["sum", "max", "avg"]},
}, required=["queueName", "mode", "value"])

TRIGGER = {
    **strict({
        "type": STRING,
        "name": STRING,
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "authenticationRef": strict({
            "name": STRING,
            "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
        }, required=["name"]),
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
    }, required=["type", "metadata"]),
    "if": {"properties": {"type": {"const": "rabbitmq"}}},
    "then": {"properties": {"metadata": RABBITMQ_METADATA}, "required": ["authenticationRef"]},
}

# TriggerAuthentication's secretTargetRef / configMapTargetRef: scaler parameter <- object key.
TARGET_REFS = {"type": "array", "minItems": 1, "items": strict({
    "parameter": STRING, "name": STRING, "key": STRING,
}, required=["parameter", "name", "key"])}

# Prometheus Operator (monitoring.coreos.com/v1, from its CRDs and API reference): a Prometheus
# duration, a label selector, and the fields of a PodMonitor endpoint and of a rule group.
DURATION = {"type": "string",
            "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
LABEL_SELECTOR = strict({
    "matchLabels": LABELS,
    "matchExpressions": {"type": "array", "items": strict({
        "key": STRING, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
        "values": {"type": "array", "items": {"type": "string"}},
    }, required=["key", "operator"])},
})
RELABELINGS = {"type": "array", "items": strict({
    "sourceLabels": {"type": "array", "items": STRING}, "separator": {"type": "string"},
    "targetLabel": STRING, "regex": {"type": "string"}, "modulus": {"type": "integer", "minimum": 1},
    "replacement": {"type": "string"},
    "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap",
                        "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase",
                        "uppercase", "Uppercase", "keepequal", "KeepEqual", "dropequal", "DropEqual"]},
})}
POD_METRICS_ENDPOINT = strict({
    "port": STRING,
    "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
    "path": {"type": "string", "pattern": "^/"},
    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
    "params": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    "interval": DURATION,
    "scrapeTimeout": DURATION,
    "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"},
    "trackTimestampsStaleness": {"type": "boolean"},
    "filterRunning": {"type": "boolean"},
    "followRedirects": {"type": "boolean"},
    "enableHttp2": {"type": "boolean"},
    "proxyUrl": STRING,
    "relabelings": RELABELINGS,
    "metricRelabelings": RELABELINGS,
    "tlsConfig": {"type": "object"},
    "basicAuth": {"type": "object"},
    "authorization": {"type": "object"},
    "oauth2": {"type": "object"},
    "bearerTokenSecret": {"type": "object"},
})
RULE = {
    **strict({
        "record": {"type": "string", "pattern": r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "alert": {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"},
        "expr": {"type": ["string", "integer"], "minLength": 1},
        "for": DURATION,
        "keep_firing_for": DURATION,
        "labels": LABELS,
        "annotations": LABELS,
    }, required=["expr"]),
    # A recording rule has no for/annotations; an alert has a name.
    "oneOf": [
        {"required": ["record"], "not": {"anyOf": [{"required": ["alert"]}, {"required": ["for"]},
                                                   {"required": ["annotations"]}]}},
        {"required": ["alert"], "not": {"required": ["record"]}},
    ],
}

SCHEMAS = {
    "PodMonitor": strict({
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": METADATA,
        "spec": strict({
            "jobLabel": STRING,
            "podTargetLabels": {"type": "array", "items": STRING},
            "selector": LABEL_SELECTOR,
            "selectorMechanism": {"enum": ["RelabelConfig", "RoleSelector"]},
            "namespaceSelector": strict({"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": STRING}}),
            "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": POD_METRICS_ENDPOINT},
            "sampleLimit": INT32, "targetLimit": INT32, "labelLimit": INT32,
            "labelNameLengthLimit": INT32, "labelValueLengthLimit": INT32, "keepDroppedTargets": INT32,
            "attachMetadata": strict({"node": {"type": "boolean"}}),
            "scrapeClass": STRING,
            "scrapeProtocols": {"type": "array", "items": STRING},
        }, required=["selector", "podMetricsEndpoints"]),
    }, required=["apiVersion", "kind", "metadata", "spec"]),
    "PrometheusRule": strict({
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": METADATA,
        "spec": strict({
            "groups": {"type": "array", "minItems": 1, "items": strict({
                "name": STRING,
                "interval": DURATION,
                "query_offset": DURATION,
                "limit": INT32,
                "labels": LABELS,
                "partial_response_strategy": {"type": "string"},
                "rules": {"type": "array", "minItems": 1, "items": RULE},
            }, required=["name", "rules"])},
        }, required=["groups"]),
    }, required=["apiVersion", "kind", "metadata", "spec"]),

    "ScaledObject": strict({
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": METADATA,
        "spec": strict({
            "scaleTargetRef": strict({
                "apiVersion": STRING, "kind": STRING, "name": STRING, "envSourceContainerName": STRING,
            }, required=["name"]),
            "pollingInterval": INT32,
            "cooldownPeriod": INT32,
            "initialCooldownPeriod": INT32,
            "idleReplicaCount": INT32,
            "minReplicaCount": INT32,
            "maxReplicaCount": {"type": "integer", "minimum": 1, "maximum": 2147483647},
            "fallback": strict({
                "failureThreshold": INT32, "replicas": INT32,
                "behavior": {"enum": ["static", "currentReplicas", "currentReplicasIfHigher",
                                      "currentReplicasIfLower"]},
            }, required=["failureThreshold", "replicas"]),
            "advanced": strict({
                "restoreToOriginalReplicaCount": {"type": "boolean"},
                "horizontalPodAutoscalerConfig": strict({
                    "name": STRING,
                    "behavior": strict({"scaleUp": HPA_RULES, "scaleDown": HPA_RULES}),
                }),
                "scalingModifiers": {"type": "object"},
            }),
            "triggers": {"type": "array", "minItems": 1, "items": TRIGGER},
        }, required=["scaleTargetRef", "triggers"]),
    }, required=["apiVersion", "kind", "metadata", "spec"]),
    "TriggerAuthentication": strict({
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": METADATA,
        "spec": {**strict({
            "secretTargetRef": TARGET_REFS,
            "configMapTargetRef": TARGET_REFS,
            "env": {"type": "array", "minItems": 1, "items": strict({
                "parameter": STRING, "name": STRING, "containerName": STRING,
            }, required=["parameter", "name"])},
            "podIdentity": {"type": "object"},
            "hashiCorpVault": {"type": "object"},
            "azureKeyVault": {"type": "object"},
            "awsSecretManager": {"type": "object"},
            "gcpSecretManager": {"type": "object"},
            "boundServiceAccountToken": {"type": "array"},
        }), "minProperties": 1},
    }, required=["apiVersion", "kind", "metadata", "spec"]),
    "Kustomization": strict({
        "apiVersion": {"const": "kustomize.config.k8s.io/v1beta1"},
        "kind": {"const": "Kustomization"},
        "metadata": {"type": "object"},
        "namespace": {"type": "string", "pattern": DNS_LABEL},
        "namePrefix": {"type": "string"},
        "nameSuffix": {"type": "string"},
        "resources": {"type": "array", "minItems": 1, "items": STRING},
        "components": {"type": "array", "items": STRING},
        "labels": {"type": "array", "items": {"type": "object"}},
        "commonLabels": LABELS,
        "commonAnnotations": LABELS,
        "images": {"type": "array", "items": strict({
            "name": STRING, "newName": STRING, "newTag": STRING, "digest": STRING,
        }, required=["name"])},
        "configMapGenerator": {"type": "array", "items": {"type": "object"}},
        "secretGenerator": {"type": "array", "items": {"type": "object"}},
        "patches": {"type": "array", "items": {"type": "object"}},
        "replicas": {"type": "array", "items": {"type": "object"}},
    }, required=["apiVersion", "kind", "resources"]),
}


def load(paths):
    documents = []
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if isinstance(doc, dict) and "kind" in doc:
                    documents.append((path, doc))
    return documents


def main(paths):
    problems = []
    documents = load(paths)
    by_kind = {}
    for path, doc in documents:
        by_kind.setdefault(doc.get("kind"), []).append((path, doc))

    checked = 0
    for path, doc in documents:
        schema = HANDLED.get((doc.get("apiVersion"), doc.get("kind")))
        if schema is None:
            continue  # kubernetes-validate's job
        checked += 1
        validator = jsonschema.Draft202012Validator(SCHEMAS[schema])
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path) or "(top)"
            problems.append(f"{path}: {doc['kind']}: {where}: {error.message}")

    def names(kind):
        return {d.get("metadata", {}).get("name"): d for _, d in by_kind.get(kind, [])}

    secrets = {name: set((d.get("stringData") or {}).keys()) | set((d.get("data") or {}).keys())
               for name, d in names("Secret").items()}
    configmaps = {name: d.get("data") or {} for name, d in names("ConfigMap").items()}
    deployments = names("Deployment")
    auths = names("TriggerAuthentication")

    def need_secret_key(where, name, key):
        if name not in secrets:
            problems.append(f"{where}: Secret {name} is not among the manifests")
        elif key not in secrets[name]:
            problems.append(f"{where}: Secret {name} has no key {key}")

    for path, auth in by_kind.get("TriggerAuthentication", []):
        for ref in (auth.get("spec") or {}).get("secretTargetRef") or []:
            need_secret_key(f"{path}: TriggerAuthentication", ref.get("name"), ref.get("key"))

    queues = {data["QUEUE"] for data in configmaps.values() if "QUEUE" in data}
    for path, so in by_kind.get("ScaledObject", []):
        spec = so.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        if target.get("kind", "Deployment") == "Deployment" and target.get("name") not in deployments:
            problems.append(f"{path}: ScaledObject scales Deployment {target.get('name')}, which is not among the manifests")
        for trigger in spec.get("triggers") or []:
            ref = (trigger.get("authenticationRef") or {}).get("name")
            if ref is not None and ref not in auths:
                problems.append(f"{path}: trigger authenticationRef {ref} is not among the manifests")
            queue = (trigger.get("metadata") or {}).get("queueName")
            if trigger.get("type") == "rabbitmq" and queues and queue not in queues:
                problems.append(f"{path}: trigger watches queue {queue}, the ConfigMap's QUEUE is {sorted(queues)}")

    for path, deployment in by_kind.get("Deployment", []):
        pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            where = f"{path}: container {container.get('name')}"
            for source in container.get("envFrom") or []:
                ref = (source.get("configMapRef") or {}).get("name")
                if ref is not None and ref not in configmaps:
                    problems.append(f"{where}: ConfigMap {ref} is not among the manifests")
            for env in container.get("env") or []:
                if "value" in env and re.search(r"_URL$", env.get("name", "")):
                    problems.append(f"{where}: {env['name']} is a plain value; URLs carry credentials, use secretKeyRef")
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    need_secret_key(f"{where}: env {env.get('name')}", ref.get("name"), ref.get("key"))

    for path, kustomization in by_kind.get("Kustomization", []):
        base = os.path.dirname(path)
        for resource in kustomization.get("resources") or []:
            if not os.path.exists(os.path.join(base, resource)):
                problems.append(f"{path}: resource {resource} does not exist")
        for generator in kustomization.get("configMapGenerator") or []:
            for entry in generator.get("files") or []:
                source = entry.split("=", 1)[-1]
                if not os.path.exists(os.path.join(base, source)):
                    problems.append(f"{path}: configMapGenerator {generator.get('name')} file {source} does not exist")

    # A PodMonitor must select the pods of a Deployment among the manifests, on a port they name.
    for path, monitor in by_kind.get("PodMonitor", []):
        spec = monitor.get("spec") or {}
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        pods = []
        for deployment in deployments.values():
            template = (deployment.get("spec") or {}).get("template") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            if wanted and all(labels.get(k) == v for k, v in wanted.items()):
                pods.append((labels, template.get("spec") or {}))
        if not pods:
            problems.append(f"{path}: PodMonitor selects {wanted}, which no Deployment's pods carry")
        for labels, pod in pods:
            ports = {p.get("name") for c in pod.get("containers") or [] for p in c.get("ports") or []}
            for endpoint in spec.get("podMetricsEndpoints") or []:
                if "port" in endpoint and endpoint["port"] not in ports:
                    problems.append(f"{path}: PodMonitor endpoint port {endpoint['port']} is not a port of the pods ({sorted(p for p in ports if p)})")
            if spec.get("jobLabel") and spec["jobLabel"] not in labels:
                problems.append(f"{path}: PodMonitor jobLabel {spec['jobLabel']} is not a label of the pods")

    for problem in problems:
        print(f"ERROR {problem}")
    if problems:
        return 1
    print(f"validate-crds: {checked} custom-kind resources valid, references between {len(documents)} resources consistent")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
