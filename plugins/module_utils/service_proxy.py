# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API through the Kubernetes API server's service proxy, when base_url is unset (docs/contract.md section 2).

    <kubernetes host>/api/v1/namespaces/<namespace>/services/<service>:<service_port>/proxy/<path>?<query>

The API server authenticates the caller with the Kubernetes credentials (kubeconfig, context, host, api_key,
certificates: loaded by the official client, k8s_client.build_api_client), checks RBAC on services/proxy,
picks a Ready endpoint of the Service and passes the request and the answer through. Its own refusals come
back as a Kubernetes Status; describe_refusal() turns each into one sentence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import quote

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks

DEFAULT_SERVICE_PORT = "80"
ROUTE = "service_proxy"

# The API server removes the Authorization header of every request it authenticated, so a bearer token for
# the API itself never reaches it through the proxy (kube-apiserver filters.WithAuthentication).
AUTHORIZATION_DROPPED = (
    "the admin API needs base_url: its token travels in the Authorization header, which the Kubernetes API "
    "server removes from requests it passes through services/proxy; give base_url (the public URL, or "
    "kubectl port-forward svc/%s -n %s 8080:80)")


def service_proxy_argument_spec():
    """The Service the proxy goes to (contract section 1); the Kubernetes options come from k8s_client."""
    return dict(
        service=dict(type=arg_checks.k8s_name()),
        service_port=dict(type=arg_checks.text(63, "a Service port number or name"), default=DEFAULT_SERVICE_PORT),
    )


def service_name(params):
    return params.get("service") or params.get("release") or "alexandria-ee"


def proxy_path(namespace, service, port):
    """The path prefix of the service proxy; each part quoted so a name cannot leave its segment."""
    return "/api/v1/namespaces/%s/services/%s:%s/proxy" % (
        quote(namespace, safe=""), quote(service, safe=""), quote(str(port), safe=""))


def kubernetes_status(json_body):
    """The Kubernetes Status the API server answered instead of the service, or None.

    The Alexandria API never answers a Status object, so a Status in the body is the proxy's own refusal.
    """
    if isinstance(json_body, dict) and json_body.get("kind") == "Status" and json_body.get("apiVersion") == "v1" \
            and json_body.get("status") == "Failure":
        return json_body
    return None


def describe_refusal(http_status, status, namespace, service, port):
    """(kind, sentence) for a Status the API server answered on the proxy path.

    kind is one of unauthorized, forbidden, service_missing, no_endpoints, no_port, unreachable, refused.
    """
    message = str(status.get("message") or status.get("reason") or "").strip()
    where = 'Service "%s" in namespace "%s"' % (service, namespace)
    said = "(Kubernetes answered %s: %s)" % (http_status, message)
    if http_status == 401:
        return "unauthorized", ("service proxy: the Kubernetes API refused the credentials %s: check kubeconfig, "
                                "context or api_key, or set base_url" % said)
    if http_status == 403:
        return "forbidden", ("service proxy: Kubernetes RBAC refused services/proxy on %s %s: grant get (and create "
                             "for POST) on services/proxy in that namespace, or set base_url" % (where, said))
    if http_status == 404:
        return "service_missing", ("service proxy: %s not found %s: check namespace, release and service, or set "
                                   "base_url" % (where, said))
    if http_status == 503 and message.startswith("no endpoints available"):
        return "no_endpoints", ("service proxy: %s has no ready endpoint %s: no API pod is Ready, so the API cannot "
                                "be reached through the Service (alex_triage says why; a port-forward to the pod "
                                "reaches it)" % (where, said))
    if http_status == 503 and message.startswith("no service port"):
        return "no_port", "service proxy: %s has no port %s %s: check service_port" % (where, port, said)
    if http_status in (502, 503) and "error trying to reach service" in message:
        return "unreachable", ("service proxy: the Kubernetes API server could not reach the endpoint of %s %s"
                               % (where, said))
    return "refused", "service proxy: %s %s" % (where, said)
