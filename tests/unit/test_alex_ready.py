"""alex_ready against small real HTTP(S) servers on 127.0.0.1, for the edge cases the lab does not produce.

Each server is a real ThreadingHTTPServer answering fixed routes; TLS uses a throwaway self-signed CA.
The module runs in-process with patch_module_args.
"""
import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading

import pytest
from ansible.module_utils.testing import patch_module_args
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.alexandria.ee.plugins.modules import alex_ready

READY = {"status": "ready", "checks": {"orchestrator": "ok", "license": "ok", "database": "ok"}}
NOT_READY = {"status": "not_ready", "reason": "orchestrator.sock: no such file or directory",
             "checks": {"orchestrator": "orchestrator.sock: no such file or directory", "license": "ok",
                        "database": "ok"}}
LICENSE = {"valid": True, "reason": None, "license_id": "lic-1", "customer": "Acme", "tier": "enterprise",
           "issued_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z", "max_seats": 25,
           "max_tenants": 5, "current_seats": 3, "current_tenants": 1}


class Routes:
    """path -> (status, body bytes, content type) or a callable returning that; `hits` counts requests."""

    def __init__(self, routes):
        self.routes = routes
        self.hits = {}
        self.lock = threading.Lock()

    def answer(self, path):
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            count = self.hits[path]
        route = self.routes.get(path)
        if route is None:
            return 404, b'{"error": "not_found"}', "application/json"
        return route(count) if callable(route) else route


def js(status, obj):
    return status, json.dumps(obj).encode(), "application/json"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - the http.server API
        status, body, ctype = self.server.routes.answer(self.path)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if status in (301, 302):
            self.send_header("Location", "https://login.example.invalid/")
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *_args):
        pass


class Server:
    def __init__(self, routes, tls=None):
        self.routes = Routes(routes)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = self.routes
        scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(routes, tls=None):
        server = Server(routes, tls)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


@pytest.fixture
def closed_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return "http://127.0.0.1:%d" % port


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA, and a server certificate for 127.0.0.1 signed by it; returns (ssl server context, ca path)."""
    tmp = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alex test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp / "cert.pem"), str(tmp / "key.pem"))
    return ctx, str(tmp / "ca.pem")


def run(args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            alex_ready.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["_rc"] = exit_info.value.code
    return result


def test_ready_and_license(serve, capsys):
    server = serve({"/ready": js(200, READY), "/license": js(200, LICENSE)})
    res = run(dict(base_url=server.url), capsys)
    assert res["_rc"] == 0 and not res.get("failed")
    assert res["ready"] is True and res["status"] == 200 and res["reason"] is None
    assert res["checks"] == READY["checks"]
    assert res["license"] == dict(valid_json=True, status=200, body=LICENSE, error=None)
    assert isinstance(res["latency_ms"], float) and res["latency_ms"] >= 0
    assert res["changed"] is False and res["attempts"] == 1


def test_check_mode_probes_the_same(serve, capsys):
    server = serve({"/ready": js(200, READY), "/license": js(200, LICENSE)})
    res = run(dict(base_url=server.url), capsys, check_mode=True)
    assert res["ready"] is True and res["changed"] is False
    assert server.routes.hits == {"/ready": 1, "/license": 1}


def test_503_reason_is_the_body_reason_and_is_not_retried(serve, capsys):
    server = serve({"/ready": js(503, NOT_READY), "/license": js(200, dict(LICENSE, valid=False, reason="expired"))})
    res = run(dict(base_url=server.url, retries=3, retry_delay=0.01), capsys)
    assert res["_rc"] == 0 and not res.get("failed")
    assert res["ready"] is False and res["status"] == 503
    assert res["reason"] == "orchestrator.sock: no such file or directory"
    assert res["checks"]["orchestrator"] == "orchestrator.sock: no such file or directory"
    assert res["license"]["valid_json"] is True and res["license"]["body"]["reason"] == "expired"
    assert server.routes.hits["/ready"] == 1 and res["attempts"] == 1


def test_503_without_reason_lists_the_failing_checks(serve, capsys):
    body = {"status": "not_ready",
            "checks": {"orchestrator": "ok", "license": "license blob invalid", "database": "ok"}}
    server = serve({"/ready": js(503, body), "/license": js(200, LICENSE)})
    assert run(dict(base_url=server.url), capsys)["reason"] == "license: license blob invalid"


def test_non_json_bodies(serve, capsys):
    html = b"<html><body><h1>502 Bad Gateway</h1>\n<hr>nginx</body></html>"
    server = serve({"/ready": (502, html, "text/html"), "/license": (200, b"not json at all", "text/plain")})
    res = run(dict(base_url=server.url), capsys)
    assert res["ready"] is False and res["status"] == 502
    assert res["reason"].startswith("HTTP 502, body not JSON: <html><body><h1>502 Bad Gateway</h1> <hr>nginx")
    assert res["license"]["valid_json"] is False and res["license"]["body"] is None
    assert res["license"]["error"] == "HTTP 200, body is not a JSON object: not json at all"


def test_200_that_is_not_the_api_is_not_ready(serve, capsys):
    server = serve({"/ready": (200, b"OK", "text/plain"), "/license": js(200, ["not", "an", "object"])})
    res = run(dict(base_url=server.url), capsys)
    assert res["ready"] is False and res["status"] == 200
    assert res["reason"] == "HTTP 200 but the body is not the API's JSON: OK"
    assert res["license"]["valid_json"] is False


def test_redirect_is_reported_not_followed(serve, capsys):
    server = serve({"/ready": (302, b"", "text/html"), "/license": (302, b"", "text/html")})
    res = run(dict(base_url=server.url), capsys)
    assert res["ready"] is False and res["status"] == 302
    assert "redirect" in res["reason"]


def test_huge_body_is_cut_off_with_a_clear_reason(serve, capsys):
    huge = b"x" * (3 * 1024 * 1024)
    big_json = b"[" + b"1," * 800000 + b"1]"
    server = serve({"/ready": (503, huge, "text/plain"), "/license": (200, big_json, "application/json")})
    res = run(dict(base_url=server.url), capsys)
    assert res["ready"] is False and res["status"] == 503
    assert res["reason"] == "GET /ready: response body larger than 1048576 bytes"
    assert res["license"]["valid_json"] is False
    assert "larger than 1048576 bytes" in res["license"]["error"]
    assert len(json.dumps(res)) < 10000


def test_connection_refused_is_retried_then_reported(closed_url, capsys):
    res = run(dict(base_url=closed_url, retries=2, retry_delay=0.01), capsys)
    assert res["_rc"] == 0 and not res.get("failed")
    assert res["ready"] is False and res["status"] is None
    assert res["reason"] == "GET /ready: connection refused"
    assert res["attempts"] == 3
    assert res["license"] == dict(valid_json=False, status=None, body=None,
                                  error="not probed: GET /ready: connection refused")


def test_timeout(serve, capsys):
    release = threading.Event()

    def slow(_count):
        release.wait(5)
        return js(200, READY)
    server = serve({"/ready": slow, "/license": js(200, LICENSE)})
    try:
        res = run(dict(base_url=server.url, timeout=0.3, retries=0), capsys)
    finally:
        release.set()
    assert res["ready"] is False and res["status"] is None
    assert res["reason"] == "GET /ready: timed out"


def test_dns_failure(capsys):
    # .invalid never resolves (RFC 6761); the resolver answers locally, nothing leaves the machine.
    res = run(dict(base_url="http://alexandria-ee.invalid:8080", retries=0), capsys)
    assert res["ready"] is False and res["status"] is None
    assert res["reason"] == "GET /ready: DNS failure: the host name does not resolve"


def test_tls_unknown_ca_fails_clearly(serve, tls_files, capsys):
    ctx, _ca = tls_files
    server = serve({"/ready": js(200, READY), "/license": js(200, LICENSE)}, tls=ctx)
    # A certificate that fails its check is a configuration error: the module fails at once, retries or not.
    res = run(dict(base_url=server.url, retries=3), capsys)
    assert res["failed"] is True and "exception" not in res
    assert res["msg"] == ("GET /ready: TLS failure: the API's certificate is not trusted (certificate verify failed: "
                          "unable to get local issuer certificate): pass ca_path with the CA certificate that signed it")
    assert server.routes.hits.get("/ready", 0) == 0
    assert "Traceback" not in json.dumps(res)


def test_tls_with_ca_path_and_without_verification(serve, tls_files, capsys):
    ctx, ca = tls_files
    server = serve({"/ready": js(200, READY), "/license": js(200, LICENSE)}, tls=ctx)
    assert run(dict(base_url=server.url, ca_path=ca), capsys)["ready"] is True
    assert run(dict(base_url=server.url, validate_certs=False), capsys)["ready"] is True


def test_plain_http_to_a_tls_port_fails_clearly(serve, tls_files, capsys):
    ctx, _ca = tls_files
    server = serve({"/ready": js(200, READY)}, tls=ctx)
    res = run(dict(base_url=server.url.replace("https://", "http://"), retries=0, timeout=2), capsys)
    assert res["ready"] is False and res["status"] is None
    assert res["reason"] == "GET /ready: the server closed the connection without answering (plain HTTP to a TLS port?)"


def test_wait_until_ready(serve, capsys):
    def flips(count):
        return js(200, READY) if count >= 3 else js(503, NOT_READY)
    server = serve({"/ready": flips, "/license": js(200, LICENSE)})
    res = run(dict(base_url=server.url, wait=True, wait_timeout=30, wait_sleep=0.05), capsys)
    assert res["_rc"] == 0 and not res.get("failed")
    assert res["ready"] is True and res["probes"] == 3
    assert server.routes.hits["/ready"] == 3


def test_wait_needs_license_json_too(serve, capsys):
    def license_flips(count):
        return js(200, LICENSE) if count >= 2 else (503, b"starting", "text/plain")
    server = serve({"/ready": js(200, READY), "/license": license_flips})
    res = run(dict(base_url=server.url, wait=True, wait_timeout=30, wait_sleep=0.05), capsys)
    assert res["ready"] is True and res["license"]["valid_json"] is True and res["probes"] == 2


def test_wait_timeout_fails_with_the_reason(serve, capsys):
    server = serve({"/ready": js(503, NOT_READY), "/license": js(200, LICENSE)})
    res = run(dict(base_url=server.url, wait=True, wait_timeout=0.3, wait_sleep=0.05), capsys)
    assert res["_rc"] == 1 and res["failed"] is True
    assert res["msg"] == ("%s did not become ready within 0.3s: orchestrator.sock: no such file or directory"
                          % server.url)
    assert res["probes"] >= 2 and res["status"] == 503


def test_wait_on_a_closed_port_fails_cleanly(closed_url, capsys):
    res = run(dict(base_url=closed_url, wait=True, wait_timeout=0.2, wait_sleep=0.05, retries=0), capsys)
    assert res["failed"] is True and "connection refused" in res["msg"]


def test_credentials_in_base_url_never_come_back(serve, capsys):
    server = serve({"/ready": js(200, READY), "/license": js(200, LICENSE)})
    url = server.url.replace("http://", "http://operator:hunter2pw@")
    res = run(dict(base_url=url), capsys)
    assert "hunter2pw" not in json.dumps(res)
    assert res["url"] == server.url


@pytest.mark.parametrize("args,message", [
    (dict(base_url="localhost:8080"), "argument 'base_url' is of type str and we were unable to convert to an http:// "
                                      "or https:// URL: it has no http/https scheme or no host"),
    (dict(base_url="ftp://127.0.0.1/"), "argument 'base_url' is of type str and we were unable to convert to an "
                                        "http:// or https:// URL"),
    (dict(base_url="http://127.0.0.1:1", timeout=0), "argument 'timeout' is of type int and we were unable to convert "
                                                     "to a number of seconds: 0 is out of range"),
    (dict(base_url="http://127.0.0.1:1", wait_timeout=-1), "argument 'wait_timeout' is of type int and we were unable "
                                                           "to convert to a number of seconds: -1 is out of range"),
    (dict(base_url="http://127.0.0.1:1", retries=-1), "argument 'retries' is of type int and we were unable to convert "
                                                      "to a whole number: -1 is out of range; give a whole number "
                                                      "from 0 to 10"),
])
def test_bad_arguments(args, message, capsys):
    res = run(args, capsys)
    assert res["failed"] is True and res["msg"].startswith(message)


def test_without_base_url_the_service_proxy_needs_a_kubernetes_configuration(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("ALEX_BASE_URL", raising=False)
    res = run(dict(kubeconfig=str(tmp_path / "no-such-kubeconfig")), capsys)
    assert res["failed"] is True and res["api_route"] == "service_proxy"
    assert res["msg"].startswith("service proxy: cannot load Kubernetes configuration") and "base_url" not in res


def test_base_url_from_environment(serve, monkeypatch, capsys):
    server = serve({"/ready": js(200, READY), "/license": js(200, LICENSE)})
    monkeypatch.setenv("ALEX_BASE_URL", server.url)
    assert run({}, capsys)["ready"] is True
