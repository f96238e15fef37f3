"""What the facade's services/proxy sends on and answers, seen from a real upstream that echoes its request.

The lab's API does not echo headers or queries, so here the facade's real request handler serves on a local
port over a real object store (the lab's Service and a Ready pod of its Deployment), and the endpoint it
proxies to is a real HTTP server that answers with what it received, hop-by-hop headers and a chunked body.
No lab processes: this file starts no PostgreSQL.
"""
import http.server
import json
import os
import threading
import types

import pytest
import requests

from alexlab import k8s_facade, kobjects, rbac
from alexlab.store import Store

TOKEN = "facade-test-token"
HOP = ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
       "transfer-encoding", "upgrade")


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):
        return

    def _echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        data = json.dumps({"method": self.command, "path": self.path, "body": body,
                           "headers": [[k.lower(), v] for k, v in self.headers.items()]}).encode()
        self.send_response(418)
        for name, value in (("Connection", "keep-alive, X-Echo-Hop"), ("X-Echo-Hop", "1"), ("Keep-Alive", "timeout=5"),
                            ("Proxy-Authenticate", "Basic"), ("Upgrade", "h2c"), ("Trailer", "X-Never"),
                            ("X-End", "kept"), ("Content-Type", "application/json"),
                            ("Transfer-Encoding", "chunked")):
            self.send_header(name, value)
        self.end_headers()
        half = len(data) // 2
        for part in (data[:half], data[half:]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _echo


def ready_pod(namespace, release):
    deployment = kobjects.deployment_obj(namespace, release, "127.0.0.1:8080", "pem")
    replicaset = kobjects.replicaset_obj(deployment, "h4sh", 1)
    pod = kobjects.pod_obj(replicaset, "%s-h4sh-abcde" % release)
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    return pod


@pytest.fixture
def proxied(tmp_path):
    """(facade URL, echo server) where the Service alexandria-ee's endpoint is the echo server."""
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    store = Store()
    store.put("services", kobjects.service_obj("alexandria", "alexandria-ee"))
    store.put("pods", ready_pod("alexandria", "alexandria-ee"))
    os.makedirs(tmp_path / "faults")
    sup = types.SimpleNamespace(store=store, namespace="alexandria", namespaces=("alexandria",), k8s_token=TOKEN,
                                k8s_user="alexlab-sre", access=rbac.Access(TOKEN, "alexlab-sre", {}, None),
                                info={"api_port": upstream.server_address[1]},
                                layout=types.SimpleNamespace(faults=str(tmp_path / "faults")),
                                log=lambda *_a: None)
    handler = type("BoundHandler", (k8s_facade.Handler,), {"sup": sup, "timeout": 30})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
               for s in (upstream, server)]
    for thread in threads:
        thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1], upstream
    for srv in (server, upstream):
        srv.shutdown()
        srv.server_close()


def test_method_path_query_body_and_status_pass_hop_by_hop_headers_do_not(proxied):
    url, _upstream = proxied
    sent = {"Authorization": "Bearer " + TOKEN, "Connection": "keep-alive, X-Client-Hop", "X-Client-Hop": "1",
            "Keep-Alive": "300", "TE": "trailers", "Upgrade": "websocket", "Proxy-Authorization": "Basic eDp5",
            "Trailer": "X-Never", "X-End": "kept", "Content-Type": "application/json"}
    body = b'{"username": "ada", "tenant_id": "t1"}'
    resp = requests.post(url + "/api/v1/namespaces/alexandria/services/alexandria-ee:80/proxy/api/v1/users?a=1&b=%2F",
                         data=iter([body[:10], body[10:]]), headers=sent, timeout=30)  # a chunked request body
    assert resp.status_code == 418
    seen = resp.json()
    assert seen["method"] == "POST" and seen["path"] == "/api/v1/users?a=1&b=%2F" and seen["body"] == body.decode()
    headers = dict(seen["headers"])
    assert headers["x-end"] == "kept" and headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body))
    for name in HOP + ("x-client-hop", "authorization"):
        assert name not in headers, name
    assert resp.headers["X-End"] == "kept" and resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Content-Length"] == str(len(resp.content))
    for name in HOP[1:] + ("x-echo-hop",):
        assert name not in resp.headers, name


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_every_method_passes(proxied, method):
    url, _upstream = proxied
    resp = requests.request(method, url + "/api/v1/namespaces/alexandria/services/http:alexandria-ee:http/proxy/x",
                            headers={"Authorization": "Bearer " + TOKEN}, timeout=30)
    assert resp.status_code == 418 and resp.json()["method"] == method and resp.json()["path"] == "/x"


def test_rbac_deny_file_refuses_services_proxy_by_verb(proxied, tmp_path):
    url, _upstream = proxied
    (tmp_path / "faults" / "rbac-deny.json").write_text(json.dumps(
        {"rules": [{"resource": "services/proxy", "verb": "create"}]}))
    path = url + "/api/v1/namespaces/alexandria/services/alexandria-ee:80/proxy/x"
    auth = {"Authorization": "Bearer " + TOKEN}
    refused = requests.post(path, data=b"{}", headers=auth, timeout=30)
    assert refused.status_code == 403 and refused.json()["reason"] == "Forbidden"
    assert 'cannot create resource "services/proxy"' in refused.json()["message"]
    assert requests.get(path, headers=auth, timeout=30).status_code == 418
