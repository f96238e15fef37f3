"""services/proxy for the Kubernetes facade, the way kube-apiserver serves it.

    /api/v1/namespaces/<ns>/services/<id>/proxy[/<path>][?<query>]
    <id> = <name> | <name>:<port> | http:<name>:<port> | https:<name>:<port>   (port: number or port name)

As the API server does (pkg/registry/core/service/storage ResourceLocation, the upgrade-aware proxy):
the caller is authenticated and the Authorization header is then removed (it never reaches the
service); RBAC is checked on `services/proxy` with the verb of the HTTP method (GET get, POST create,
PUT update, PATCH patch, DELETE delete); a port number is mapped to the Service port's name (missing
Service: 404 `services "<name>" not found`; unknown port: 503 `no service port <n> found for service`);
without a port number the Endpoints are read directly (404 `endpoints "<name>" not found`); an endpoint
address is a pod selected by the Service that is Ready and not terminating, otherwise 503
`no endpoints available for service "<name>"`. The method, path, query, body and the status, headers
and body of the answer pass through; hop-by-hop headers (and those the Connection header names) are
dropped both ways. A GET of `.../proxy` without a trailing slash is redirected to `.../proxy/`.

The lab's API is the only endpoint there is: target port 8080 of the `api` container is the API's
`127.0.0.1:<api port>`; any other target port refuses the connection (503 error trying to reach service).
"""
import http.client
import re
import ssl
import urllib.parse

from alexlab import k8s_facade as facade

PROXY_RE = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?P<id>[^/]+)/proxy(?P<rest>/.*)?$")
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "transfer-encoding", "upgrade"))
VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
API_CONTAINER_PORT = 8080
UPSTREAM_TIMEOUT = 60


def match(path):
    """The match of a services/proxy path, or None (then the facade's other routes apply)."""
    return PROXY_RE.match(path)


def split_id(service_id):
    """(scheme, name, port) the way utilnet.SplitSchemeNamePort reads `<id>`; None when invalid."""
    parts = service_id.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, (name, port) = "", parts
    elif len(parts) == 3 and parts[0] in ("http", "https"):
        scheme, name, port = parts
    else:
        return None
    return (scheme or "http", name, port) if name else None


def dropped_headers(headers):
    """Hop-by-hop headers plus the ones the Connection header names, lower-cased."""
    named = set()
    for value in headers.get_all("Connection") or []:
        named.update(token.strip().lower() for token in value.split(",") if token.strip())
    return HOP_BY_HOP | named


def service_port(sup, namespace, name, port):
    """The Service port (a dict) the request names, raising the Status the API server would."""
    service = sup.store.get("services", namespace, name) if namespace == sup.namespace else None
    if port.isdigit():
        if service is None:
            raise facade.not_found("services", name)
        for spec in service["spec"].get("ports") or []:
            if spec.get("port") == int(port):
                return service, spec
        raise facade.ApiStatus(503, "ServiceUnavailable", 'no service port %s found for service "%s"' % (port, name))
    if service is None:  # the API server reads the Endpoints, named after the Service
        raise facade.ApiStatus(404, "NotFound", 'endpoints "%s" not found' % name, {"name": name, "kind": "endpoints"})
    for spec in service["spec"].get("ports") or []:
        if spec.get("name", "") == port:
            return service, spec
    raise facade.ApiStatus(503, "ServiceUnavailable", 'no endpoints available for service "%s"' % name)


def _pod_ready(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def endpoint(sup, service, port_spec):
    """(host, port) of a ready endpoint for that Service port, as the Endpoints controller would list it."""
    selector = service["spec"].get("selector") or {}
    target = port_spec.get("targetPort", port_spec.get("port"))
    for pod in sup.store.list("pods", sup.namespace):
        labels = pod["metadata"].get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()) or not _pod_ready(pod):
            continue
        for container in pod["spec"]["containers"]:
            for cport in container.get("ports") or []:
                if target in (cport.get("containerPort"), cport.get("name")):
                    listening = container["name"] == "api" and cport.get("containerPort") == API_CONTAINER_PORT
                    # Nothing of the lab listens on another container port: port 1 is refused.
                    return "127.0.0.1", sup.info["api_port"] if listening else 1
    raise facade.ApiStatus(503, "ServiceUnavailable", 'no endpoints available for service "%s"' % service["metadata"]["name"])


def read_request_body(handler):
    """The raw request body: Content-Length or chunked (decoded), b"" without one."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers, dropped
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def serve(handler, proxied, url):
    """Answer one services/proxy request on the facade's handler (raises facade.ApiStatus for a Status)."""
    body = read_request_body(handler)  # read before any Status so the connection stays usable
    if not handler._authorized():
        raise facade.ApiStatus(401, "Unauthorized", "Unauthorized")
    namespace = proxied.group("ns")
    parts = split_id(urllib.parse.unquote(proxied.group("id")))
    verb = VERBS.get(handler.command)
    if verb is None:
        raise facade.ApiStatus(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    if parts is None:
        raise facade.ApiStatus(400, "BadRequest", 'invalid service request "%s"' % proxied.group("id"))
    scheme, name, port = parts
    handler._rbac(verb, "services/proxy", "", namespace, name)
    service, port_spec = service_port(handler.sup, namespace, name, port)
    host, upstream_port = endpoint(handler.sup, service, port_spec)
    rest = proxied.group("rest")
    if not rest and handler.command == "GET":
        location = url.path + "/" + ("?" + url.query if url.query else "")
        handler.send_response(301)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return None
    target = (rest or "/") + ("?" + url.query if url.query else "")
    drop = dropped_headers(handler.headers) | {"authorization", "host", "content-length"}
    headers = dict((k, v) for k, v in handler.headers.items() if k.lower() not in drop)
    if body or handler.command in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(body))
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, upstream_port, timeout=UPSTREAM_TIMEOUT,
                                           context=ssl._create_unverified_context())  # as the API server: no verify
    else:
        conn = http.client.HTTPConnection(host, upstream_port, timeout=UPSTREAM_TIMEOUT)
    try:
        conn.request(handler.command, target, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        reason = "connect: connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc) or repr(exc)
        raise facade.ApiStatus(503, "ServiceUnavailable", "error trying to reach service: dial tcp %s:%d: %s" % (
            host, upstream_port, reason))
    finally:
        conn.close()
    return relay(handler, resp, data)


def relay(handler, resp, data):
    """Send the upstream answer on: its status, its end-to-end headers, its body."""
    drop = dropped_headers(resp.headers) | {"content-length"}
    handler.send_response_only(resp.status, resp.reason)
    for key, value in resp.headers.items():
        if key.lower() not in drop:
            handler.send_header(key, value)
    if resp.headers.get("Date") is None:
        handler.send_header("Date", handler.date_time_string())
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)
    return None
