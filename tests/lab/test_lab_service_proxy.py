"""The API without a port-forward: the facade's services/proxy, and the HTTP modules with base_url unset.

One lab for the module (tests/lab/conftest.py); each test that breaks something heals it (`healthy`).
kubectl is the real client (`kubectl get --raw`, `kubectl create --raw`); the modules run in-process with the
lab's kubeconfig and no base_url, so every request goes through the facade's proxy to the lab's API.
"""
import base64
import json
import time

import pytest
import requests
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alexandria.ee.plugins.modules import alex_license, alex_ready, alex_seats

pytestmark = pytest.mark.lab

NS = "alexandria"
PROXY = "/api/v1/namespaces/alexandria/services/alexandria-ee:80/proxy"


def run_module(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def k8s_args(lab, **extra):
    """The Kubernetes options only: no base_url, so the modules take the service proxy."""
    return dict(dict(kubeconfig=lab.info["kubeconfig"], namespace=NS), **extra)


def facade(lab, method, path, **kwargs):
    """A request to the facade with the lab's bearer token and CA (as kubectl sends it)."""
    headers = dict(kwargs.pop("headers", {}), Authorization="Bearer " + lab.info["k8s_token"])
    return requests.request(method, lab.info["k8s_url"] + path, headers=headers, verify=lab.info["k8s_ca"],
                            timeout=30, allow_redirects=False, **kwargs)


def raw(lab, path, check=False):
    return lab.kubectl("get", "--raw", path, check=check)


def wait_until(what, predicate, timeout=60):
    """Poll a condition of the lab (not a timing): pod readiness follows the supervisor's probes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.2)


def pod_ready(lab):
    pod = lab.pod()
    conditions = (pod or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture
def served(healthy):
    """The healthy lab, once its pod is Ready again (an endpoint of the Service)."""
    wait_until("the pod to be Ready", lambda: pod_ready(healthy))
    return healthy


# ----------------------------------------------------------------------------------- kubectl

def test_runbook_curl_checks_through_kubectl_get_raw(served):
    ready = raw(served, PROXY + "/ready", check=True)
    assert json.loads(ready.stdout) == {"status": "ready",
                                        "checks": {"orchestrator": "ok", "license": "ok", "database": "ok"}}
    lic = json.loads(raw(served, PROXY + "/license", check=True).stdout)
    assert lic["valid"] is True and lic == served.api("GET", "/license", auth=False)[1]


@pytest.mark.parametrize("service_id", ["http:alexandria-ee:80", "alexandria-ee:http", "http:alexandria-ee:http"])
def test_service_id_forms_the_api_server_accepts(served, service_id):
    out = raw(served, "/api/v1/namespaces/alexandria/services/%s/proxy/ready" % service_id, check=True).stdout
    assert json.loads(out)["status"] == "ready"


def test_bare_service_name_finds_no_endpoint_port_as_the_api_server_does(served):
    # The Service's only port is named "http"; without a port the API server looks for an unnamed one.
    proc = raw(served, "/api/v1/namespaces/alexandria/services/alexandria-ee/proxy/ready")
    assert proc.returncode == 1
    assert 'Error from server (ServiceUnavailable): no endpoints available for service "alexandria-ee"' in proc.stderr


def test_missing_service_and_port(served):
    proc = raw(served, "/api/v1/namespaces/alexandria/services/nope:80/proxy/ready")
    assert 'Error from server (NotFound): services "nope" not found' in proc.stderr
    proc = raw(served, "/api/v1/namespaces/elsewhere/services/alexandria-ee:80/proxy/ready")
    assert 'Error from server (NotFound): services "alexandria-ee" not found' in proc.stderr
    proc = raw(served, "/api/v1/namespaces/alexandria/services/alexandria-ee:81/proxy/ready")
    assert 'no service port 81 found for service "alexandria-ee"' in proc.stderr
    resp = facade(served, "GET", "/api/v1/namespaces/alexandria/services/nope/proxy/ready")
    assert resp.status_code == 404 and resp.json()["message"] == 'endpoints "nope" not found'


def test_post_passes_method_body_and_status_through(served, tmp_path):
    body = tmp_path / "body.json"
    body.write_text("[1]")
    proc = served.kubectl("create", "--raw", PROXY + "/admin/v1/users/1/deactivate", "-f", str(body), "-v=8",
                          check=False)
    assert proc.returncode == 1
    assert "POST %s%s/admin/v1/users/1/deactivate\n" % (served.info["k8s_url"], PROXY) in proc.stderr
    assert "Response Status: 400 Bad Request" in proc.stderr
    assert '{\\"error\\": \\"bad_request\\", \\"detail\\": \\"the body must be a JSON object\\"}' in proc.stderr
    # The same bytes, method and answer with the official Python stack underneath (requests).
    resp = facade(served, "POST", PROXY + "/api/v1/tenants", data=b"not json",
                  headers={"Content-Type": "application/json"})
    assert (resp.status_code, resp.json()) == (400, {"error": "bad_request", "detail": "the body is not JSON"})
    resp = facade(served, "PUT", PROXY + "/admin/v1/users")
    assert (resp.status_code, resp.json()) == (405, {"error": "method_not_allowed"})


def test_the_authorization_header_never_reaches_the_api(served):
    # kube-apiserver removes Authorization after authenticating the caller: an admin token cannot cross.
    resp = facade(served, "GET", PROXY + "/admin/v1/users")
    assert (resp.status_code, resp.json()) == (401, {"error": "unauthorized"})
    direct = served.api("GET", "/admin/v1/users")
    assert direct[0] == 200


def test_unauthenticated_caller_and_redirect_to_the_trailing_slash(served):
    resp = requests.get(served.info["k8s_url"] + PROXY + "/ready", verify=served.info["k8s_ca"], timeout=30)
    assert resp.status_code == 401 and resp.json()["kind"] == "Status"
    resp = facade(served, "GET", PROXY + "?probe=1")
    assert resp.status_code == 301 and resp.headers["Location"] == PROXY + "/?probe=1"


def test_hop_by_hop_headers_are_dropped_from_the_answer(served):
    resp = facade(served, "GET", PROXY + "/ready", headers={"Connection": "keep-alive, X-Lab-Hop", "X-Lab-Hop": "1",
                                                            "TE": "trailers", "Upgrade": "h2c"})
    assert resp.status_code == 200
    assert resp.headers["Server"].startswith("alexandria-api/lab")  # the API's own end-to-end headers pass
    for name in ("Keep-Alive", "Transfer-Encoding", "Upgrade", "Trailer", "Proxy-Authenticate"):
        assert name not in resp.headers


# --------------------------------------------------------------------------- no ready endpoint, RBAC

def test_orchestrator_crash_leaves_the_service_without_an_endpoint(served, capsys):
    served.cli("break", "orchestrator-crash")
    wait_until("the pod to leave Ready", lambda: not pod_ready(served))
    proc = raw(served, PROXY + "/ready")
    assert 'Error from server (ServiceUnavailable): no endpoints available for service "alexandria-ee"' in proc.stderr
    res = run_module(alex_ready, k8s_args(served, retries=0), capsys)
    assert not res.get("failed") and res["ready"] is False and res["status"] == 503
    assert res["api_route"] == "service_proxy"
    assert res["reason"].startswith('GET /ready: service proxy: Service "alexandria-ee" in namespace "alexandria" '
                                    "has no ready endpoint (Kubernetes answered 503: no endpoints available")
    res = run_module(alex_license, k8s_args(served), capsys)
    assert res["failed"] and "has no ready endpoint" in res["msg"]
    served.cli("heal", "orchestrator-crash")
    wait_until("the pod to be Ready", lambda: pod_ready(served))
    assert json.loads(raw(served, PROXY + "/ready", check=True).stdout)["status"] == "ready"


def test_rbac_refusing_services_proxy(served, capsys):
    served.cli("break", "rbac-deny", "--resource", "services/proxy", "--verb", "get")
    proc = raw(served, PROXY + "/ready")
    assert "Error from server (Forbidden):" in proc.stderr
    assert 'User "alexlab-sre" cannot get resource "services/proxy" in API group "" in the namespace "alexandria"' \
        in proc.stderr
    for module in (alex_ready, alex_license):
        res = run_module(module, k8s_args(served), capsys)
        assert res["failed"] and "service proxy: Kubernetes RBAC refused services/proxy on Service " \
            '"alexandria-ee" in namespace "alexandria" (Kubernetes answered 403' in res["msg"], module
    # Only get was denied: a POST (verb create) still passes.
    resp = facade(served, "POST", PROXY + "/api/v1/tenants", data=b"[]")
    assert (resp.status_code, resp.json()["error"]) == (400, "bad_request")


# ------------------------------------------------------------------------------- the modules

def test_alex_ready_without_base_url(served, capsys):
    res = run_module(alex_ready, k8s_args(served), capsys)
    assert res["ready"] is True and res["status"] == 200 and res["license"]["valid_json"] is True
    assert res["api_route"] == "service_proxy"
    assert res["url"] == served.info["k8s_url"] + PROXY
    direct = run_module(alex_ready, dict(base_url=served.info["api_url"]), capsys)
    assert direct["api_route"] == "base_url" and direct["license"]["body"] == res["license"]["body"]


def test_alex_license_query_without_base_url(served, capsys):
    res = run_module(alex_license, k8s_args(served), capsys)
    assert not res.get("failed") and res["api_route"] == "service_proxy"
    served_license = served.api("GET", "/license", auth=False)[1]
    assert res["max_seats"] == served_license["max_seats"] and res["current_seats"] == served_license["current_seats"]
    assert res["seats_headroom"] == res["max_seats"] - res["current_seats"]


def test_wrong_release_or_credentials_fail_with_one_line(served, capsys):
    res = run_module(alex_ready, k8s_args(served, release="nope"), capsys)
    assert res["failed"] and res["msg"] == (
        'GET /ready: service proxy: Service "nope" in namespace "alexandria" not found (Kubernetes answered 404: '
        'services "nope" not found): check namespace, release and service, or set base_url')
    res = run_module(alex_license, k8s_args(served, service="nope", service_port="http"), capsys)
    assert res["failed"] and 'Service "nope" in namespace "alexandria" not found' in res["msg"]
    res = run_module(alex_ready, k8s_args(served, api_key="not-the-token"), capsys)
    assert res["failed"] and res["msg"].startswith("GET /ready: service proxy: the Kubernetes API refused the "
                                                   "credentials (Kubernetes answered 401")
    assert "not-the-token" not in json.dumps(res)


def test_alex_seats_without_base_url_says_why_it_cannot(served, capsys):
    res = run_module(alex_seats, dict(admin_token=served.info["admin_token"]), capsys)
    assert res["failed"] and "the Kubernetes API server removes from requests it passes through services/proxy" \
        in res["msg"]
    ok = run_module(alex_seats, dict(base_url=served.info["api_url"], admin_token=served.info["admin_token"]), capsys)
    assert not ok.get("failed") and ok["users_total"] >= 0


def test_license_applied_and_restart_verified_through_the_proxy(served, capsys):
    blob = served.cli("license", "mint", "--seats", "40", "--tenants", "8", "--tier", "enterprise").stdout.strip()
    res = run_module(alex_license, k8s_args(served, state="present", blob=blob, restart=True, wait_timeout=120,
                                            issuer_public_key=served.info["issuer_public_key"]), capsys)
    assert not res.get("failed"), res.get("msg")
    assert res["api_route"] == "service_proxy" and res["restarted"] is True and res["ready"] is True
    assert res["license"]["max_seats"] == 40
    assert blob not in json.dumps(res)
    secret = served.core().read_namespaced_secret("alexandria-ee-license", NS)
    assert base64.b64decode(secret.data["license.blob"]).decode() == blob
