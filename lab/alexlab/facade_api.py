"""What the lab's Kubernetes facade serves, as data: its resources and verbs, the discovery documents and the
minimal OpenAPI that kubectl reads, and the request counts of /metrics (alexlab.k8s_facade serves them)."""
import re

from alexlab import rbac, service_proxy

GROUPS = {"": "v1", "apps": "apps/v1"}
RESOURCES = {
    "pods": dict(group="", kind="Pod", namespaced=True, short=["po"], verbs=["delete", "get", "list", "watch"],
                 sub={"log": ["get"], "status": ["get"]}),
    "events": dict(group="", kind="Event", namespaced=True, short=["ev"], verbs=["get", "list", "watch"]),
    "secrets": dict(group="", kind="Secret", namespaced=True, short=[],
                    verbs=["create", "delete", "get", "list", "patch", "update", "watch"]),
    "services": dict(group="", kind="Service", namespaced=True, short=["svc"], verbs=["get", "list", "watch"]),
    "namespaces": dict(group="", kind="Namespace", namespaced=False, short=["ns"], verbs=["get", "list"]),
    "deployments": dict(group="apps", kind="Deployment", namespaced=True, short=["deploy"],
                        verbs=["get", "list", "patch", "update", "watch"],
                        sub={"status": ["get"], "scale": ["get", "patch", "update"]}),
    "replicasets": dict(group="apps", kind="ReplicaSet", namespaced=True, short=["rs"], verbs=["get", "list", "watch"]),
}
PATH_RE = re.compile(r"^/(?:api/v1|apis/(?P<group>apps)/v1)(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)"
                     r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[a-z]+))?)?$")
NS_RE = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+))?$")
METRICS_PATH = "/metrics"


def request_kind(method, path):
    """(method, resource, subresource) of a request, the labels /metrics counts it under."""
    if service_proxy.match(path):
        return method, "services", "proxy"
    match = PATH_RE.match(path)
    if match:
        return method, match.group("res"), match.group("sub") or ""
    if path == rbac.SSAR_PATH:
        return method, "selfsubjectaccessreviews", ""
    return method, "", ""  # discovery, health checks


def metrics_text(counts):
    lines = ["# HELP apiserver_request_total Requests the lab's Kubernetes facade served since it started.",
             "# TYPE apiserver_request_total counter"]
    for (method, resource, sub), count in sorted(counts.items()):
        lines.append('apiserver_request_total{method="%s",resource="%s",subresource="%s"} %d' % (
            method, resource, sub, count))
    return ("\n".join(lines) + "\n").encode("utf-8")


def discovery_list(group):
    version = GROUPS[group]
    resources = []
    for name, spec in sorted(RESOURCES.items()):
        if spec["group"] != group:
            continue
        entry = {"name": name, "singularName": spec["kind"].lower(), "namespaced": spec["namespaced"],
                 "kind": spec["kind"], "verbs": spec["verbs"], "shortNames": spec["short"]}
        if name in ("pods", "services", "deployments", "replicasets"):
            entry["categories"] = ["all"]
        resources.append(entry)
        for sub, verbs in sorted(spec.get("sub", {}).items()):
            kind = {"log": "Pod", "scale": "Scale"}.get(sub, spec["kind"])
            entry = {"name": "%s/%s" % (name, sub), "singularName": "", "namespaced": True, "kind": kind, "verbs": verbs}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1")
            resources.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": version, "resources": resources}


OPENAPI_HASH = "alexlab1"


def openapi_doc(group):
    """A minimal OpenAPI v3 document: enough for kubectl to see that the server validates fields."""
    base = "/apis/%s/v1" % group if group else "/api/v1"
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
    paths = {}
    for name, spec in sorted(RESOURCES.items()):
        if spec["group"] != group:
            continue
        gvk = {"group": group, "version": "v1", "kind": spec["kind"]}
        prefix = base + ("/namespaces/{namespace}/" if spec["namespaced"] else "/") + name

        def ops(pairs):
            return dict((method, {"operationId": "%s%s" % (verb, spec["kind"]), "x-kubernetes-action": verb,
                                  "x-kubernetes-group-version-kind": gvk, "parameters": params,
                                  "responses": {"200": {"description": "OK"}}})
                        for verb, method in pairs if verb in spec["verbs"])
        paths[prefix] = dict(ops([("list", "get"), ("create", "post")]), parameters=params)
        paths[prefix + "/{name}"] = dict(ops([("get", "get"), ("update", "put"), ("patch", "patch"),
                                              ("delete", "delete")]), parameters=params)
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (alexlab facade)", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": {}}}
