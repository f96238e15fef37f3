# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP access to the Alexandria EE API (docs/contract.md section 2): spec and client."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import time
import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.alexandria.ee.plugins.module_utils import k8s_client
from ansible_collections.alexandria.ee.plugins.module_utils import service_proxy
from ansible_collections.alexandria.ee.plugins.module_utils import tls

MAX_BODY_BYTES = 1024 * 1024


def api_argument_spec(admin=False):
    spec = dict(
        base_url=dict(type=arg_checks.url(empty_ok=True), fallback=(env_fallback, ["ALEX_BASE_URL"])),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type=arg_checks.path("a CA bundle file or directory")),
        timeout=dict(type=arg_checks.seconds(), default=10.0),
    )
    if admin:
        spec["admin_token"] = dict(type=arg_checks.token("the admin token"), no_log=True, required=True,
                                   fallback=(env_fallback, ["ALEX_ADMIN_TOKEN"]))
    return spec


def api_route_argument_spec(admin=False):
    """The API options plus the Kubernetes ones the service proxy uses when base_url is unset.

    One validate_certs serves both routes: the Kubernetes spec's, with no default (unset, the API's own
    certificate is verified and the Kubernetes API server's follows the kubeconfig).
    """
    spec = k8s_client.k8s_auth_argument_spec()
    spec.update(k8s_client.deployment_argument_spec())
    spec.update(service_proxy.service_proxy_argument_spec())
    api = api_argument_spec(admin)
    api.pop("validate_certs")
    spec.update(api)
    return spec


class ApiError(Exception):
    """An HTTP failure, phrased for an operator; status is the HTTP code or None.

    fatal: a configuration error (service proxy refused, credentials, missing Service) that no retry or
    wait can fix; a probe reports the others as results.
    """

    def __init__(self, message, status=None, body=None, fatal=False):
        super(ApiError, self).__init__(message)
        self.status = status
        self.body = body
        self.fatal = fatal


class ApiResponse:
    def __init__(self, status, body, json_body, elapsed_ms):
        self.status = status
        self.body = body
        self.json = json_body
        self.elapsed_ms = elapsed_ms


def describe_transport_error(exc):
    """Words for a connection-level failure (no URL credentials, no traceback)."""
    name = exc.__class__.__name__
    text = str(exc)
    if "SSLError" in name or "CERTIFICATE" in text.upper():
        detail = re.search(r"(certificate verify failed: [^(')\]]*|\[SSL: [A-Z0-9_]+\][^(')]*)", text)
        return "TLS failure: %s" % (detail.group(1).strip().rstrip(" ,") if detail else name)
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text \
            or "Temporary failure in name resolution" in text:
        return "DNS failure: the host name does not resolve"
    if "Timeout" in name:
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the server closed the connection without answering (plain HTTP to a TLS port?)"
    return "connection failed (%s)" % name


class DirectRoute:
    """base_url: the public URL or a port-forward."""

    name = "base_url"

    def __init__(self, base_url, verify):
        self.base_url = base_url.rstrip("/")
        self.verify = verify

    def url(self):
        return self.base_url

    def prepare(self, auth_header):
        """(url prefix, extra headers, requests keyword arguments) for one request."""
        return self.base_url, dict(auth_header), dict(verify=self.verify)

    def refusal(self, status, json_body):
        return None

    def transport_words(self, exc):
        return describe_transport_error(exc)

    @staticmethod
    def untrusted_words(reason):
        return "TLS failure: " + tls.untrusted("the API's", reason, "ca_path")


class ServiceProxyRoute:
    """The Kubernetes API server's services/proxy, with the Kubernetes credentials (module service_proxy)."""

    name = service_proxy.ROUTE

    def __init__(self, params):
        self.params = params
        self.namespace = params.get("namespace") or k8s_client.DEFAULT_NAMESPACE
        self.service = service_proxy.service_name(params)
        self.port = params.get("service_port") or service_proxy.DEFAULT_SERVICE_PORT
        self._configuration = None

    def configuration(self):
        """The official client's Configuration (kubeconfig, context, host, api_key, certificates), loaded once."""
        if self._configuration is None:
            try:
                self._configuration = k8s_client.build_api_client(self.params).configuration
            except k8s_client.K8sError as exc:
                raise ApiError("service proxy: %s" % exc, fatal=True)
        return self._configuration

    def url(self):
        host = (self.configuration().host or "").rstrip("/")
        return host + service_proxy.proxy_path(self.namespace, self.service, self.port)

    def prepare(self, auth_header):
        if auth_header:
            raise ApiError(service_proxy.AUTHORIZATION_DROPPED % (self.service, self.namespace), fatal=True)
        conf = self.configuration()
        headers = {}
        for setting in conf.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        if conf.username or conf.password:
            headers.setdefault("authorization", conf.get_basic_auth_token())
        kwargs = dict(verify=(conf.ssl_ca_cert or True) if conf.verify_ssl else False)
        if conf.cert_file:
            kwargs["cert"] = (conf.cert_file, conf.key_file) if conf.key_file else conf.cert_file
        if conf.proxy:
            kwargs["proxies"] = {"http": conf.proxy, "https": conf.proxy}
        return self.url(), headers, kwargs

    def refusal(self, status, json_body):
        """ApiError for a Status the API server answered itself (the API's own answers pass)."""
        refused = service_proxy.kubernetes_status(json_body)
        if refused is None:
            return None
        kind, words = service_proxy.describe_refusal(status, refused, self.namespace, self.service, self.port)
        if kind == "unreachable":
            return ApiError(words)  # as a refused connection: a probe may retry
        return ApiError(words, status=status, body=json_body, fatal=kind != "no_endpoints")

    def transport_words(self, exc):
        return "service proxy: Kubernetes API server unreachable: %s" % describe_transport_error(exc)

    @staticmethod
    def untrusted_words(reason):
        return "service proxy: " + k8s_client.untrusted_words(reason)


class ApiClient:
    """Thin requests wrapper: bounded bodies, JSON decoding, errors in words, over one of two routes."""

    def __init__(self, base_url, validate_certs=True, ca_path=None, timeout=10.0, admin_token=None, route=None):
        if not HAS_REQUESTS:
            raise ApiError("the Python library 'requests' is required: pip install requests")
        verify = ca_path if (ca_path and validate_certs) else validate_certs
        self.route = route or DirectRoute(base_url, verify)
        self.timeout = timeout
        self._token = admin_token
        self.session = requests.Session()
        self.session.trust_env = False

    @classmethod
    def from_params(cls, params):
        """base_url when given (and not empty), otherwise the service proxy."""
        verify = params.get("validate_certs")
        verify = True if verify is None else verify
        route = None if params.get("base_url") else ServiceProxyRoute(params)
        return cls(params.get("base_url"), verify, params.get("ca_path"), params.get("timeout") or 10.0,
                   params.get("admin_token"), route=route)

    @property
    def route_name(self):
        return self.route.name

    def url(self):
        return self.route.url()

    def request(self, method, path, payload=None, auth=False):
        headers = {"Accept": "application/json"}
        auth_header = {"Authorization": "Bearer %s" % (self._token or "")} if auth else {}
        prefix, extra, kwargs = self.route.prepare(auth_header)
        headers.update(extra)
        url = prefix + path
        start = time.monotonic()
        try:
            resp = self.session.request(method, url, json=payload, headers=headers, timeout=self.timeout,
                                        stream=True, allow_redirects=False, **kwargs)
            chunks = []
            size = 0
            for chunk in resp.iter_content(65536):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    resp.close()
                    raise ApiError("%s %s: response body larger than %d bytes" % (method, path, MAX_BODY_BYTES),
                                   status=resp.status_code)
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            reason = tls.certificate_failure(str(exc))
            if reason is not None:  # a configuration error: no retry or wait gets past it
                raise ApiError("%s %s: %s" % (method, path, self.route.untrusted_words(reason)), fatal=True)
            raise ApiError("%s %s: %s" % (method, path, self.route.transport_words(exc)))
        elapsed_ms = round((time.monotonic() - start) * 1000.0, 1)
        body = b"".join(chunks).decode("utf-8", "replace")
        try:
            json_body = json.loads(body) if body else None
        except ValueError:
            json_body = None
        refused = self.route.refusal(resp.status_code, json_body)
        if refused is not None:
            raise ApiError("%s %s: %s" % (method, path, refused), status=refused.status, body=refused.body,
                           fatal=refused.fatal)
        return ApiResponse(resp.status_code, body, json_body, elapsed_ms)

    def call_json(self, method, path, payload=None, auth=True, ok=(200,)):
        """A request that must succeed with JSON; ApiError in words otherwise."""
        resp = self.request(method, path, payload=payload, auth=auth)
        if resp.status not in ok:
            raise ApiError(describe_status(method, path, resp), status=resp.status, body=resp.json)
        if not isinstance(resp.json, dict):
            raise ApiError("%s %s: answered %s without a JSON object" % (method, path, resp.status), status=resp.status)
        return resp.json


def describe_status(method, path, resp):
    detail = ""
    if isinstance(resp.json, dict) and resp.json.get("error"):
        detail = " (%s)" % resp.json["error"]
    hints = {
        401: "the admin token was refused: check admin_token",
        403: "the token or license tier does not allow this",
        404: "not found: check base_url and the id",
        402: "quota exceeded",
    }
    hint = hints.get(resp.status, "server error" if resp.status >= 500 else "unexpected answer")
    return "%s %s answered HTTP %s%s: %s" % (method, path, resp.status, detail, hint)
