"""A Kubernetes API facade for the lab's namespace, enough for kubectl and the kubernetes client.

Served (everything else answers a Kubernetes Status, 404 NotFound or 405 MethodNotAllowed):

    core/v1  pods              get list watch delete; pods/log get; pods/status get
             events            get list watch
             secrets           get list watch create update patch delete
             services          get list watch; services/proxy (any method, alexlab/service_proxy.py)
             namespaces        get list (the lab's namespace and <ns>-audit, the automation's)
    apps/v1  deployments       get list watch update patch; deployments/status get; deployments/scale get update patch
             replicasets       get list watch

plus discovery (/api, /apis, /version), `/metrics` (apiserver_request_total: the requests served since start, by
method, resource and subresource; for the benches), label and field selectors, `as=Table` for kubectl get,
JSON / merge / strategic-merge / JSON patches, dryRun and resourceVersion preconditions.
Auth: bearer tokens (the lab's admin token, or a ServiceAccount's with the RBAC of extensions/rbac/:
alexlab.rbac); SelfSubjectAccessReview answers for them; DIR/faults/rbac-deny.json makes it answer 403.
"""
import base64
import binascii
import collections
import copy
import json
import os
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alexlab import kobjects, patch, podlogs, protowire, rbac, service_proxy
from alexlab.common import parse_quantity, read_json
from alexlab.facade_api import (GROUPS, METRICS_PATH, NS_RE, OPENAPI_HASH, PATH_RE, RESOURCES, discovery_list,
                                metrics_text, openapi_doc, request_kind)
from alexlab.store import Gone


class ApiStatus(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def body(self):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "details": self.details, "code": self.code}


def not_found(resource, name):
    group = RESOURCES.get(resource, {}).get("group", "")
    what = "%s.%s" % (resource, group) if group else resource
    return ApiStatus(404, "NotFound", '%s "%s" not found' % (what, name), {"name": name, "group": group, "kind": resource})


def invalid(kind, name, message, field=""):
    return ApiStatus(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, message),
                     {"name": name, "kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": message,
                                                              "field": field}]})


def secret_normalize(obj):
    """stringData folds into data; data values must be base64 (as the API server requires)."""
    string_data = obj.pop("stringData", None) or {}
    data = obj.get("data") or {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise invalid("Secret", obj["metadata"].get("name", ""), "data[%s]: illegal base64 data" % key,
                          "data[%s]" % key)
    obj["data"] = data
    obj.setdefault("type", "Opaque")
    return obj


def validate_deployment(new, old):
    name = old["metadata"]["name"]
    spec = new.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    names = sorted(c.get("name", "") for c in containers)
    if names != ["api", "orchestrator"]:
        raise invalid("Deployment", name, "the lab runs exactly the containers api and orchestrator",
                      "spec.template.spec.containers")
    if spec.get("replicas", 1) not in (0, 1):
        raise invalid("Deployment", name, "the lab runs replicas 0 or 1", "spec.replicas")
    if spec.get("selector") != old["spec"]["selector"]:
        raise invalid("Deployment", name, "field is immutable", "spec.selector")
    for container in containers:
        for scope in ("limits", "requests"):
            value = ((container.get("resources") or {}).get(scope) or {}).get("memory")
            if value is not None:
                try:
                    parse_quantity(value)
                except ValueError:
                    raise invalid("Deployment", name, "quantities must match the regular expression",
                                  "spec.template.spec.containers[%s].resources.%s.memory" % (container["name"], scope))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alexlab-kube-facade"
    sup = None  # the Supervisor, set by make_server
    counts = collections.Counter()  # request_kind -> requests served (make_server gives each server its own)
    counts_lock = threading.Lock()

    def log_message(self, *_args):
        return

    # -- plumbing --------------------------------------------------------------------------

    def _send(self, code, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _start_stream(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        if self.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
            try:
                return protowire.decode(raw)
            except protowire.Unsupported as exc:
                raise ApiStatus(415, "UnsupportedMediaType", str(exc))
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiStatus(400, "BadRequest", "the body of the request was in an unknown format - "
                            "accepted media types include: application/json")

    def _authorized(self):
        self.user = self.sup.access.authenticate(self.headers.get("Authorization", ""))
        return self.user is not None

    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict((k, v[-1]) for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items())
        if url.path != METRICS_PATH:
            with self.counts_lock:
                self.counts[request_kind(self.command, url.path)] += 1
        try:
            proxied = service_proxy.match(url.path)  # services/proxy: raw bodies, its own module
            if proxied:
                return service_proxy.serve(self, proxied, url)
            body = self._read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else None
            path = url.path.rstrip("/") or "/"
            if path in ("/healthz", "/livez", "/readyz"):
                return self._send(200, b"ok", "text/plain")
            if not self._authorized():
                raise ApiStatus(401, "Unauthorized", "Unauthorized")
            if path == METRICS_PATH and self.command == "GET":
                with self.counts_lock:
                    counts = dict(self.counts)
                return self._send(200, metrics_text(counts), "text/plain; version=0.0.4")
            if self._discovery(path):
                return None
            if path == rbac.SSAR_PATH and self.command == "POST":
                return self._review(body)
            self._resource(path, query, body)
        except ApiStatus as status:
            self._send(status.code, status.body())
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        except Exception as exc:  # a Status, never a crash of the facade
            self.sup.log("error", "facade: %s %s failed: %r" % (self.command, self.path, exc))
            self._send(500, ApiStatus(500, "InternalError", "internal error: %s" % exc.__class__.__name__).body())
        return None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _discovery(self, path):
        if self.command != "GET":
            return False
        host = self.headers.get("Host", "127.0.0.1")
        if path == "/version":
            self._send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-alexlab", "platform": "linux/amd64",
                             "goVersion": "go1.23", "compiler": "gc", "buildDate": "2026-01-01T00:00:00Z"})
        elif path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        elif path == "/apis":
            self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}, rbac.group_entry()]})
        elif rbac.discovery(path):
            self._send(200, rbac.discovery(path))
        elif path == "/apis/apps":
            self._send(200, {"kind": "APIGroup", "apiVersion": "v1", "name": "apps",
                             "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                             "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}})
        elif path == "/openapi/v3":
            self._send(200, {"paths": dict((gv, {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (gv, OPENAPI_HASH)})
                                           for gv in ("api/v1", "apis/apps/v1"))})
        elif path in ("/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1"):
            self._send(200, openapi_doc("apps" if "apps" in path else ""))
        elif path == "/api/v1":
            self._send(200, discovery_list(""))
        elif path == "/apis/apps/v1":
            self._send(200, discovery_list("apps"))
        else:
            return False
        return True

    # -- resources ---------------------------------------------------------------------------

    def _resource(self, path, query, body):
        ns_match = NS_RE.match(path)
        match = PATH_RE.match(path)
        if ns_match:
            resource, namespace, name, sub = "namespaces", None, ns_match.group("name"), None
        elif match and (match.group("group") or "") == RESOURCES.get(match.group("res"), {}).get("group", "-"):
            resource, namespace, name, sub = match.group("res"), match.group("ns"), match.group("name"), match.group("sub")
            if RESOURCES[resource]["namespaced"] != bool(namespace) and name:
                raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        else:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        spec = RESOURCES[resource]
        verb = {"GET": "get" if name else ("watch" if query.get("watch") in ("1", "true") else "list"),
                "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[self.command]
        full = "%s/%s" % (resource, sub) if sub else resource
        allowed = spec.get("sub", {}).get(sub) if sub else spec["verbs"]
        if allowed is None:  # exec, attach, portforward, ...
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        self._rbac(verb, full, spec["group"], namespace, name)
        if verb not in allowed or (self.command == "POST" and name):
            raise ApiStatus(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if namespace is not None and namespace not in self.sup.namespaces:
            if verb in ("list", "watch"):
                return self._list(resource, "-none-", query) if verb == "list" else self._watch(resource, "-none-", query)
            raise not_found(resource if not (verb == "create") else "namespaces", name or namespace)
        if resource == "namespaces":
            namespace = None
        if verb == "list":
            return self._list(resource, namespace, query)
        if verb == "watch":
            return self._watch(resource, namespace, query)
        if sub == "log":
            return self._log(name, query)
        if sub == "scale":
            return self._scale(verb, name, body, query)
        if verb == "get":
            return self._get(resource, namespace, name)
        if verb == "delete":
            return self._delete(resource, namespace, name, body, query)
        return self._write(verb, resource, namespace, name, body, query)

    def _rbac(self, verb, resource, group, namespace, name):
        request = rbac.request_for(verb, group, resource, namespace, name)
        if not self._decide(request)[0]:
            raise ApiStatus(403, "Forbidden", *rbac.forbidden(self.user, request))

    def _decide(self, request):
        faults = (read_json(os.path.join(self.sup.layout.faults, "rbac-deny.json"), {}) or {}).get("rules", [])
        return self.sup.access.decide(self.user, request, faults)

    def _review(self, body):
        try:
            return self._send(201, rbac.access_review(body, self._decide))
        except ValueError as exc:
            raise ApiStatus(422, "Invalid", 'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: %s' % exc)

    def _wants_table(self, resource):
        return "as=Table" in self.headers.get("Accept", "") and resource in kobjects.TABLES

    def _select(self, resource, namespace, query):
        try:
            labels = kobjects.label_matcher(query.get("labelSelector"))
            fields = kobjects.field_matcher(query.get("fieldSelector"))
        except ValueError as exc:
            raise ApiStatus(400, "BadRequest", "unable to parse requirement: %s" % exc)
        return lambda obj: ((namespace is None or obj["metadata"].get("namespace") == namespace)
                            and labels(obj["metadata"].get("labels")) and fields(obj))

    def _list(self, resource, namespace, query):
        spec = RESOURCES[resource]
        rv = self.sup.store.current_rv()
        keep = self._select(resource, namespace, query)
        items = [obj for obj in self.sup.store.list(resource) if keep(obj)]
        if self._wants_table(resource):
            return self._send(200, kobjects.to_table(resource, items, query.get("includeObject"), rv))
        self._send(200, {"kind": spec["kind"] + "List", "apiVersion": GROUPS[spec["group"]],
                         "metadata": {"resourceVersion": rv}, "items": items})

    def _watch(self, resource, namespace, query):
        keep = self._select(resource, namespace, query)
        deadline = time.monotonic() + min(float(query.get("timeoutSeconds") or 300), 600)
        rv_text = query.get("resourceVersion") or ""
        self._start_stream("application/json")

        table = self._wants_table(resource)

        def send(kind, obj):
            if table and kind != "ERROR":
                obj = kobjects.to_table(resource, [obj], query.get("includeObject"), obj["metadata"]["resourceVersion"])
            self._chunk(json.dumps({"type": kind, "object": obj}).encode("utf-8") + b"\n")

        try:
            rv = int(rv_text) if rv_text not in ("", "0") else None
            if rv is None or query.get("sendInitialEvents") == "true":
                rv = int(self.sup.store.current_rv())
                for obj in self.sup.store.list(resource):
                    if keep(obj):
                        send("ADDED", obj)
                if query.get("sendInitialEvents") == "true":
                    send("BOOKMARK", {"kind": RESOURCES[resource]["kind"], "apiVersion": GROUPS[RESOURCES[resource]["group"]],
                                      "metadata": {"resourceVersion": str(rv),
                                                   "annotations": {"k8s.io/initial-events-end": "true"}}})
            while time.monotonic() < deadline:
                seen = int(self.sup.store.current_rv())
                try:
                    changes = self.sup.store.changes_since(rv, resource)
                except Gone:
                    send("ERROR", ApiStatus(410, "Expired", "too old resource version: %d" % rv).body())
                    break
                for kind, obj, entry_rv in changes:
                    if keep(obj):
                        send(kind, obj)
                    rv = max(rv, entry_rv)
                rv = max(rv, seen) if not changes else rv
                self.sup.store.wait_past(max(rv, seen), min(1.0, max(0.0, deadline - time.monotonic())))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _get(self, resource, namespace, name):
        obj = self.sup.store.get(resource, namespace, name)
        if obj is None:
            raise not_found(resource, name)
        if self._wants_table(resource):
            return self._send(200, kobjects.to_table(resource, [obj], "Object", obj["metadata"]["resourceVersion"]))
        self._send(200, obj)

    def _delete(self, resource, namespace, name, body, query):
        obj = self.sup.store.get(resource, namespace, name)
        if obj is None:
            raise not_found(resource, name)
        preconditions = (body or {}).get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) and preconditions[field] != obj["metadata"].get(field):
                raise ApiStatus(409, "Conflict", "Precondition failed: %s in precondition: %s, %s in object meta: %s" % (
                    field, preconditions[field], field, obj["metadata"].get(field)))
        if query.get("dryRun") == "All":
            return self._send(200, obj)
        if resource == "pods":
            return self._send(200, self.sup.request_pod_deletion(name))
        gone = self.sup.store.delete(resource, namespace, name)
        self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": name, "kind": resource, "uid": gone["metadata"]["uid"]}})

    def _write(self, verb, resource, namespace, name, body, query):
        if not isinstance(body, (dict, list)):
            raise ApiStatus(400, "BadRequest", "the request body is missing or not JSON")
        content_type = self.headers.get("Content-Type", "application/json")
        if verb == "patch" and content_type.startswith("application/apply-patch"):
            raise ApiStatus(415, "UnsupportedMediaType", "server-side apply is not served by the lab facade; "
                            "use client-side kubectl apply or a strategic merge patch")
        with self.sup.write_lock:
            old = self.sup.store.get(resource, namespace, name) if name else None
            if verb == "create":
                new_name = (body.get("metadata") or {}).get("name")
                if not new_name:
                    raise invalid(RESOURCES[resource]["kind"], "", "name or generateName is required", "metadata.name")
                if self.sup.store.get(resource, namespace, new_name) is not None:
                    raise ApiStatus(409, "AlreadyExists", '%s "%s" already exists' % (resource, new_name),
                                    {"name": new_name, "kind": resource})
                new = copy.deepcopy(body)
                new["metadata"] = dict(kobjects.meta(namespace, new_name), **dict(
                    (k, v) for k, v in body["metadata"].items() if k in ("labels", "annotations")))
                code = 201
            else:
                if old is None:
                    raise not_found(resource, name)
                if verb == "patch":
                    try:
                        new = patch.apply_patch(content_type, old, body)
                    except patch.PatchError as exc:
                        raise ApiStatus(422 if "unsupported" not in str(exc) else 415,
                                        "Invalid" if "unsupported" not in str(exc) else "UnsupportedMediaType", str(exc))
                else:
                    new = copy.deepcopy(body)
                    wanted = (new.get("metadata") or {}).get("resourceVersion")
                    if wanted and wanted != old["metadata"]["resourceVersion"]:
                        raise ApiStatus(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been '
                                        "modified; please apply your changes to the latest version and try again" % (
                                            resource, name), {"name": name, "kind": resource})
                if not isinstance(new, dict) or (new.get("metadata") or {}).get("name", name) != name:
                    raise invalid(RESOURCES[resource]["kind"], name, "field is immutable", "metadata.name")
                merged_meta = dict(old["metadata"])
                for key in ("labels", "annotations"):
                    merged_meta.pop(key, None)
                    if (new.get("metadata") or {}).get(key):
                        merged_meta[key] = new["metadata"][key]
                new["metadata"] = merged_meta
                code = 200
            new["apiVersion"], new["kind"] = GROUPS[RESOURCES[resource]["group"]], RESOURCES[resource]["kind"]
            if resource == "secrets":
                new = secret_normalize(new)
                if old is not None and old.get("type") != new.get("type"):
                    raise invalid("Secret", name, "field is immutable", "type")
            elif resource == "deployments":
                validate_deployment(new, old)
                new["status"] = old["status"]
                new["metadata"]["generation"] = old["metadata"]["generation"] + (new["spec"] != old["spec"])
            if query.get("dryRun") == "All":
                return self._send(code, new)
            stored = self.sup.store.put(resource, new)
        self.sup.wake()
        self._send(code, stored)

    def _scale(self, verb, name, body, query):
        dep = self.sup.store.get("deployments", self.sup.namespace, name)
        if dep is None:
            raise not_found("deployments", name)

        def scale_of(d):
            selector = ",".join("%s=%s" % kv for kv in sorted(d["spec"]["selector"]["matchLabels"].items()))
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {"name": name, "namespace": self.sup.namespace, "uid": d["metadata"]["uid"],
                                 "resourceVersion": d["metadata"]["resourceVersion"],
                                 "creationTimestamp": d["metadata"]["creationTimestamp"]},
                    "spec": {"replicas": d["spec"].get("replicas", 1)},
                    "status": {"replicas": d.get("status", {}).get("replicas", 0), "selector": selector}}
        if verb == "get":
            return self._send(200, scale_of(dep))
        current = scale_of(dep)
        try:
            wanted = patch.apply_patch(self.headers.get("Content-Type"), current, body) if verb == "patch" else body
        except patch.PatchError as exc:
            raise ApiStatus(422, "Invalid", str(exc))
        replicas = ((wanted or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int):
            raise invalid("Scale", name, "spec.replicas must be an integer", "spec.replicas")
        body = {"spec": {"replicas": replicas}}
        with self.sup.write_lock:
            new = patch.merge_patch(dep, body)
            validate_deployment(new, dep)
            new["metadata"]["generation"] = dep["metadata"]["generation"] + (new["spec"] != dep["spec"])
            if query.get("dryRun") != "All":
                new = self.sup.store.put("deployments", new)
        self.sup.wake()
        self._send(200, scale_of(new))

    def _log(self, name, query):
        pod = self.sup.store.get("pods", self.sup.namespace, name)
        if pod is None:
            raise not_found("pods", name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise ApiStatus(400, "BadRequest", "a container name must be specified for pod %s, choose one of: [%s]" % (
                name, " ".join(names)))
        if container not in names:
            raise ApiStatus(400, "BadRequest", "container %s is not valid for pod %s" % (container, name))
        previous = query.get("previous") in ("true", "1")
        path, reason = self.sup.log_file(name, container, previous)
        if path is None:
            raise ApiStatus(400, "BadRequest", reason)
        try:
            since = podlogs.since_of(query)
        except ValueError as exc:
            raise ApiStatus(400, "BadRequest", str(exc))
        data = podlogs.tail(path, query.get("tailLines"), query.get("limitBytes"), since)
        if query.get("follow") not in ("true", "1") or previous:
            return self._send(200, data, "text/plain")
        self._start_stream("text/plain")
        try:
            if data:
                self._chunk(data)
            offset = os.path.getsize(path)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                time.sleep(0.2)
                size = os.path.getsize(path) if os.path.exists(path) else 0
                if size > offset:
                    with open(path, "rb") as handle:
                        handle.seek(offset)
                        self._chunk(handle.read(size - offset))
                    offset = size
                current, _r = self.sup.log_file(name, container, False)
                if current != path:
                    break
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


class TLSServer(ThreadingHTTPServer):
    """HTTPS; the TLS handshake happens in the connection's own thread, not in accept()."""

    allow_reuse_address = True
    daemon_threads = True
    context = None

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def make_server(sup, port, cert, key):
    handler = type("BoundHandler", (Handler,), {"sup": sup, "timeout": 120, "counts": collections.Counter(),
                                                "counts_lock": threading.Lock()})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = TLSServer(("127.0.0.1", port), handler)
    server.context = context
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    return server
