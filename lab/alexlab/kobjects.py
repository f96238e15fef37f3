"""Kubernetes objects of the lab's namespace, selectors, and the Table form `kubectl get` prints."""
import base64
import copy
import hashlib
import json
import re
import uuid

from alexlab.common import SOCKET_PATH, now, parse_rfc3339, rfc3339

NODE = "lab-node"
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def meta(namespace, name, labels=None, annotations=None):
    data = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": rfc3339()}
    if namespace:
        data["namespace"] = namespace
    if labels:
        data["labels"] = dict(labels)
    if annotations:
        data["annotations"] = dict(annotations)
    return data


def labels_for(release):
    return {"app.kubernetes.io/instance": release, "app.kubernetes.io/name": "alexandria-ee"}


def namespace_obj(namespace):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(None, namespace),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def secret_obj(namespace, name, values, labels=None):
    data = dict((k, base64.b64encode(v if isinstance(v, bytes) else v.encode("utf-8")).decode("ascii"))
                for k, v in values.items())
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta(namespace, name, labels), "type": "Opaque",
            "data": data}


def service_obj(namespace, release):
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(namespace, release, labels_for(release)),
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.80", "clusterIPs": ["10.96.0.80"],
                     "selector": {"app.kubernetes.io/instance": release},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}}}


def deployment_obj(namespace, release, api_addr, issuer_pem, tls_files=None):
    """The release's Deployment; tls_files (certificate, key): the API serves HTTPS (alexlab up --api-tls)."""
    def secret_env(name, secret, key, optional=False):
        ref = {"name": secret, "key": key}
        if optional:
            ref["optional"] = True
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}

    mount = [{"name": "run", "mountPath": "/run/alexandria"}]
    tls_env, probe = [], {"path": "/ready", "port": 8080}
    if tls_files:
        tls_env = [{"name": "ALEX_TLS_CERT_FILE", "value": tls_files[0]}, {"name": "ALEX_TLS_KEY_FILE", "value": tls_files[1]}]
        probe["scheme"] = "HTTPS"
    containers = [
        {"name": "api", "image": "alexandria/api:lab", "imagePullPolicy": "IfNotPresent",
         "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
         "env": [secret_env("ALEX_DATABASE_DSN", release, "database-dsn"),
                 secret_env("ALEX_AUDIT_HMAC_KEY", release, "audit-hmac-key"),
                 secret_env("ALEX_AUDIT_HMAC_KEYRING", release, "audit-hmac-keyring", optional=True),
                 secret_env("ALEX_ADMIN_TOKEN", release, "admin-token"),
                 secret_env("ALEX_LICENSE_BLOB", release + "-license", "license.blob", optional=True),
                 {"name": "ALEX_LICENSE_ISSUER_PUBLIC_KEY", "value": issuer_pem},
                 # The trusted issuer set (docs/contract.md section 3); when present it replaces the single key.
                 secret_env("ALEX_LICENSE_ISSUERS", release + "-license-issuers", "issuers.json", optional=True),
                 {"name": "ALEX_ORCHESTRATOR_SOCKET", "value": SOCKET_PATH},
                 {"name": "ALEX_HTTP_ADDR", "value": api_addr}] + tls_env,
         "readinessProbe": {"httpGet": probe, "periodSeconds": 2,
                            "timeoutSeconds": 3, "failureThreshold": 1},
         "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
         "volumeMounts": copy.deepcopy(mount)},
        {"name": "orchestrator", "image": "alexandria/orchestrator:lab", "imagePullPolicy": "IfNotPresent",
         "env": [{"name": "ALEX_ORCHESTRATOR_SOCKET", "value": SOCKET_PATH}],
         "readinessProbe": {"exec": {"command": ["grpc_health_probe", "-addr=unix://" + SOCKET_PATH,
                                                 "-connect-timeout=1s", "-rpc-timeout=1s"]},
                            "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 1},
         "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
         "volumeMounts": copy.deepcopy(mount)},
    ]
    template = {"metadata": {"labels": labels_for(release)},
                "spec": {"containers": containers, "volumes": [{"name": "run", "emptyDir": {}}],
                         "restartPolicy": "Always", "terminationGracePeriodSeconds": 3,
                         "serviceAccountName": "default"}}
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": meta(namespace, release, labels_for(release), {"deployment.kubernetes.io/revision": "1"}),
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/instance": release}},
                    "strategy": {"type": "Recreate"}, "template": template, "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600},
           "status": {}}
    obj["metadata"]["generation"] = 1
    return obj


def template_hash(template):
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode("utf-8")).digest()
    return "".join(HASH_ALPHABET[b % len(HASH_ALPHABET)] for b in digest[:10])


def random_suffix(length=5):
    raw = uuid.uuid4().bytes
    return "".join(HASH_ALPHABET[b % len(HASH_ALPHABET)] for b in raw[:length])


def owner_ref(obj):
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def replicaset_obj(deployment, pod_hash, revision):
    template = copy.deepcopy(deployment["spec"]["template"])
    template["metadata"].setdefault("labels", {})["pod-template-hash"] = pod_hash
    selector = copy.deepcopy(deployment["spec"]["selector"])
    selector["matchLabels"]["pod-template-hash"] = pod_hash
    name = "%s-%s" % (deployment["metadata"]["name"], pod_hash)
    obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
           "metadata": meta(deployment["metadata"]["namespace"], name, template["metadata"]["labels"],
                            {"deployment.kubernetes.io/revision": str(revision)}),
           "spec": {"replicas": 1, "selector": selector, "template": template},
           "status": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "observedGeneration": 1}}
    obj["metadata"]["ownerReferences"] = [owner_ref(deployment)]
    return obj


def pod_obj(replicaset, name):
    template = replicaset["spec"]["template"]
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": meta(replicaset["metadata"]["namespace"], name, template["metadata"].get("labels"),
                            template["metadata"].get("annotations")),
           "spec": copy.deepcopy(template["spec"]),
           "status": {"phase": "Pending", "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                      "podIPs": [{"ip": "127.0.0.1"}], "qosClass": "Burstable"}}
    obj["metadata"]["ownerReferences"] = [owner_ref(replicaset)]
    obj["metadata"]["generateName"] = replicaset["metadata"]["name"] + "-"
    obj["spec"]["nodeName"] = NODE
    return obj


def event_obj(namespace, involved, reason, message, kind="Normal", component="kubelet"):
    stamp = rfc3339()
    name = "%s.%s" % (involved["name"], uuid.uuid4().hex[:16])
    return {"apiVersion": "v1", "kind": "Event", "metadata": meta(namespace, name),
            "involvedObject": dict(involved), "reason": reason, "message": message, "type": kind,
            "source": dict({"component": component}, **({"host": NODE} if component == "kubelet" else {})),
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": component, "reportingInstance": NODE if component == "kubelet" else ""}


def involved(obj, field_path=None):
    ref = {"kind": obj["kind"], "namespace": obj["metadata"].get("namespace"), "name": obj["metadata"]["name"],
           "uid": obj["metadata"]["uid"], "apiVersion": obj["apiVersion"]}
    if field_path:
        ref["fieldPath"] = field_path
    return ref


# -- selectors -------------------------------------------------------------------------------

_REQ = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_top(text):
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def label_matcher(text):
    """A predicate on a labels dict; ValueError on a selector it cannot read."""
    requirements = []
    for part in _split_top(text or ""):
        match = _REQ.match(part)
        if not match:
            raise ValueError("unable to parse requirement %r" % part.strip())
        negate, key, op, value, setop, values = match.groups()
        if negate and (op or setop):
            raise ValueError("unable to parse requirement %r" % part.strip())
        requirements.append((negate, key, op, value, setop,
                             [v.strip() for v in (values or "").split(",") if v.strip()]))

    def matches(labels):
        labels = labels or {}
        for negate, key, op, value, setop, values in requirements:
            if op in ("=", "=="):
                ok = labels.get(key) == value
            elif op == "!=":
                ok = labels.get(key) != value
            elif setop == "in":
                ok = labels.get(key) in values
            elif setop == "notin":
                ok = labels.get(key) not in values
            else:
                ok = (key in labels) != bool(negate)
            if not ok:
                return False
        return True
    return matches


def field_value(obj, path):
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def field_matcher(text):
    requirements = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise ValueError("invalid field selector %r" % part)
        requirements.append(match.groups())

    def matches(obj):
        for path, op, value in requirements:
            equal = field_value(obj, path) == value
            if equal != (op != "!="):
                return False
        return True
    return matches


# -- Table (what `kubectl get` prints) ---------------------------------------------------------

def human_duration(seconds):
    seconds = int(seconds)
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return "%ds" % seconds
    minutes = seconds // 60
    if minutes < 10:
        return "%dm%ds" % (minutes, seconds % 60) if seconds % 60 else "%dm" % minutes
    if minutes < 180:
        return "%dm" % minutes
    hours = minutes // 60
    if hours < 8:
        return "%dh%dm" % (hours, minutes % 60) if minutes % 60 else "%dh" % hours
    if hours < 48:
        return "%dh" % hours
    if hours < 192:
        return "%dd%dh" % (hours // 24, hours % 24) if hours % 24 else "%dd" % (hours // 24)
    return "%dd" % (hours // 24)


def age(stamp):
    if not stamp:
        return "<unknown>"
    return human_duration((now() - parse_rfc3339(stamp)).total_seconds())


def _col(name, kind="string", priority=0, fmt=""):
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


def pod_status_word(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    reason = pod["status"].get("reason") or pod["status"].get("phase", "Unknown")
    for status in pod["status"].get("containerStatuses", []):
        state = status.get("state", {})
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            reason = state["terminated"].get("reason") or "ExitCode:%d" % state["terminated"].get("exitCode", 0)
    return reason


def _pod_row(pod):
    statuses = pod["status"].get("containerStatuses", [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    last = max((s.get("lastState", {}).get("terminated", {}).get("finishedAt") or "" for s in statuses), default="")
    restart_text = "%d (%s ago)" % (restarts, age(last)) if restarts and last else str(restarts)
    return ([pod["metadata"]["name"], "%d/%d" % (ready, len(pod["spec"]["containers"])), pod_status_word(pod),
             restart_text, age(pod["metadata"].get("creationTimestamp")), pod["status"].get("podIP", "<none>"),
             pod["spec"].get("nodeName", "<none>"), "<none>", "<none>"])


def _event_row(event):
    last = age(event.get("lastTimestamp"))
    if event.get("count", 1) > 1:
        last = "%s (x%d over %s)" % (last, event["count"], age(event.get("firstTimestamp")))
    obj = event["involvedObject"]
    return [last, event.get("type", ""), event.get("reason", ""), "%s/%s" % (obj["kind"].lower(), obj["name"]),
            obj.get("fieldPath", ""), (event.get("source") or {}).get("component", ""), event.get("message", ""),
            age(event.get("firstTimestamp")), event.get("count", 1), event["metadata"]["name"]]


def _deploy_row(dep):
    status, spec = dep.get("status", {}), dep["spec"]
    containers = spec["template"]["spec"]["containers"]
    return [dep["metadata"]["name"], "%d/%d" % (status.get("readyReplicas", 0), spec.get("replicas", 1)),
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
            age(dep["metadata"].get("creationTimestamp")), ",".join(c["name"] for c in containers),
            ",".join(c["image"] for c in containers),
            ",".join("%s=%s" % kv for kv in sorted(spec["selector"]["matchLabels"].items()))]


def _rs_row(rs):
    status = rs.get("status", {})
    return [rs["metadata"]["name"], rs["spec"].get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0), age(rs["metadata"].get("creationTimestamp"))]


def _svc_row(svc):
    ports = ",".join("%d/%s" % (p["port"], p.get("protocol", "TCP")) for p in svc["spec"].get("ports", []))
    return [svc["metadata"]["name"], svc["spec"].get("type", "ClusterIP"), svc["spec"].get("clusterIP", ""),
            "<none>", ports, age(svc["metadata"].get("creationTimestamp")),
            ",".join("%s=%s" % kv for kv in sorted(svc["spec"].get("selector", {}).items()))]


TABLES = {
    "pods": ([_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts"), _col("Age"),
              _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
              _col("Readiness Gates", priority=1)], _pod_row),
    "events": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Subobject", priority=1),
                _col("Source", priority=1), _col("Message"), _col("First Seen", priority=1),
                _col("Count", "integer", 1), _col("Name", priority=1)], _event_row),
    "secrets": ([_col("Name", fmt="name"), _col("Type"), _col("Data", "integer"), _col("Age")],
                lambda s: [s["metadata"]["name"], s.get("type", "Opaque"), len(s.get("data") or {}),
                           age(s["metadata"].get("creationTimestamp"))]),
    "deployments": ([_col("Name", fmt="name"), _col("Ready"), _col("Up-to-date", "integer"),
                     _col("Available", "integer"), _col("Age"), _col("Containers", priority=1),
                     _col("Images", priority=1), _col("Selector", priority=1)], _deploy_row),
    "replicasets": ([_col("Name", fmt="name"), _col("Desired", "integer"), _col("Current", "integer"),
                     _col("Ready", "integer"), _col("Age")], _rs_row),
    "services": ([_col("Name", fmt="name"), _col("Type"), _col("Cluster-IP"), _col("External-IP"),
                  _col("Port(s)"), _col("Age"), _col("Selector", priority=1)], _svc_row),
    "namespaces": ([_col("Name", fmt="name"), _col("Status"), _col("Age")],
                   lambda n: [n["metadata"]["name"], n["status"]["phase"], age(n["metadata"].get("creationTimestamp"))]),
}


def to_table(resource, objects, include_object, resource_version):
    columns, row_of = TABLES[resource]
    rows = []
    for obj in objects:
        row = {"cells": row_of(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns, "rows": rows}
