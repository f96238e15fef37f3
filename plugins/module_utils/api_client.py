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

MAX_BODY_BYTES = 1024 * 1024


def api_argument_spec(admin=False):
    spec = dict(
        base_url=dict(type=arg_checks.url(), required=True, fallback=(env_fallback, ["ALEX_BASE_URL"])),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type=arg_checks.path("a CA bundle file or directory")),
        timeout=dict(type=arg_checks.seconds(), default=10.0),
    )
    if admin:
        spec["admin_token"] = dict(type=arg_checks.token("the admin token"), no_log=True, required=True,
                                   fallback=(env_fallback, ["ALEX_ADMIN_TOKEN"]))
    return spec


class ApiError(Exception):
    """An HTTP failure, phrased for an operator; status is the HTTP code or None."""

    def __init__(self, message, status=None, body=None):
        super(ApiError, self).__init__(message)
        self.status = status
        self.body = body


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


class ApiClient:
    """Thin requests wrapper: bounded bodies, JSON decoding, errors in words."""

    def __init__(self, base_url, validate_certs=True, ca_path=None, timeout=10.0, admin_token=None):
        if not HAS_REQUESTS:
            raise ApiError("the Python library 'requests' is required: pip install requests")
        self.base_url = base_url.rstrip("/")
        self.verify = ca_path if (ca_path and validate_certs) else validate_certs
        self.timeout = timeout
        self._token = admin_token
        self.session = requests.Session()
        self.session.trust_env = False

    @classmethod
    def from_params(cls, params):
        return cls(params["base_url"], params.get("validate_certs", True), params.get("ca_path"),
                   params.get("timeout", 10.0), params.get("admin_token"))

    def request(self, method, path, payload=None, auth=False):
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer %s" % (self._token or "")
        url = self.base_url + path
        start = time.monotonic()
        try:
            resp = self.session.request(method, url, json=payload, headers=headers, timeout=self.timeout,
                                        verify=self.verify, stream=True, allow_redirects=False)
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
            raise ApiError("%s %s: %s" % (method, path, describe_transport_error(exc)))
        elapsed_ms = round((time.monotonic() - start) * 1000.0, 1)
        body = b"".join(chunks).decode("utf-8", "replace")
        try:
            json_body = json.loads(body) if body else None
        except ValueError:
            json_body = None
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
