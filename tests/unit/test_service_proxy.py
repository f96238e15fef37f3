"""The service proxy route's pure parts: the path, which answers are the API server's own, their words."""
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import service_proxy as sp
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import ApiClient, DirectRoute, ServiceProxyRoute


def status(code, message, reason="X"):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def test_proxy_path_quotes_each_part():
    assert sp.proxy_path("alexandria", "alexandria-ee", "80") == \
        "/api/v1/namespaces/alexandria/services/alexandria-ee:80/proxy"
    assert sp.proxy_path("a/b", "x?y", "http") == "/api/v1/namespaces/a%2Fb/services/x%3Fy:http/proxy"


def test_service_defaults_to_the_release():
    assert sp.service_name({"release": "r1", "service": None}) == "r1"
    assert sp.service_name({"release": "r1", "service": "api"}) == "api"


@pytest.mark.parametrize("body", [
    {"status": "not_ready", "reason": "orchestrator.sock: no such file or directory"},
    {"error": "not_found"}, None, "text",
    {"kind": "Status", "apiVersion": "v1", "status": "Success"},
])
def test_the_apis_own_answers_are_not_refusals(body):
    assert sp.kubernetes_status(body) is None


@pytest.mark.parametrize("code,message,kind,words", [
    (404, 'services "nope" not found', "service_missing", 'Service "nope" in namespace "ns" not found'),
    (503, 'no endpoints available for service "nope"', "no_endpoints", "has no ready endpoint"),
    (403, 'services "nope" is forbidden: User "u" cannot get resource "services/proxy"', "forbidden",
     "Kubernetes RBAC refused services/proxy"),
    (401, "Unauthorized", "unauthorized", "refused the credentials"),
    (503, 'no service port 81 found for service "nope"', "no_port", "has no port 81"),
    (503, "error trying to reach service: dial tcp 10.0.0.1:8080: connect: connection refused", "unreachable",
     "could not reach the endpoint"),
    (500, "internal error", "refused", "(Kubernetes answered 500: internal error)"),
])
def test_each_refusal_has_its_words(code, message, kind, words):
    got_kind, sentence = sp.describe_refusal(code, status(code, message), "ns", "nope", "81")
    assert got_kind == kind and words in sentence and sentence.startswith("service proxy: ")
    assert "\n" not in sentence


def test_route_choice_and_refusal_severity():
    assert isinstance(ApiClient.from_params({"base_url": "http://127.0.0.1:1"}).route, DirectRoute)
    client = ApiClient.from_params({"base_url": "", "namespace": "ns", "release": "rel", "service_port": "80"})
    assert isinstance(client.route, ServiceProxyRoute) and client.route_name == "service_proxy"
    route = client.route
    assert route.refusal(503, {"status": "not_ready"}) is None
    no_endpoint = route.refusal(503, status(503, 'no endpoints available for service "rel"'))
    assert no_endpoint.status == 503 and not no_endpoint.fatal
    assert route.refusal(403, status(403, "forbidden")).fatal
    unreachable = route.refusal(503, status(503, "error trying to reach service: dial tcp: refused"))
    assert unreachable.status is None and not unreachable.fatal
