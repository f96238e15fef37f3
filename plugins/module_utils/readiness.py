# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probing /ready and /license (docs/contract.md section 2, runbook Scenario 1 step 1 and verification).

Every outcome is data: an HTTP answer of any kind, or a transport failure in words. Nothing here raises for
what the server does; only a fatal ApiError (the service proxy refused: RBAC, a missing Service, the
Kubernetes credentials) goes up, since no probe or wait can change it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.alexandria.ee.plugins.module_utils.api_client import ApiClient, ApiError

MAX_REASON_CHARS = 300


def safe_url(url):
    """The URL without credentials, query or fragment, fit for a result."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def screen_base_url(base_url, secrets):
    """Why base_url cannot be probed (one sentence), or None. A password inside it is added to secrets first (the
    module's no_log_values), so nothing the module says afterwards shows it."""
    try:
        password = urlsplit(base_url).password
    except ValueError:
        password = None
    if password:
        secrets.add(password)
    url = safe_url(base_url)
    parts = urlsplit(base_url) if url != "(unparsable URL)" else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return "base_url must be an http:// or https:// URL, got %r" % url
    return None


def _snippet(text):
    text = " ".join((text or "").split())
    if len(text) > MAX_REASON_CHARS:
        return text[:MAX_REASON_CHARS] + "..."
    return text


def _ready_reason(resp):
    """(ready, reason, checks) of one /ready answer."""
    body = resp.json
    if resp.status == 200:
        if isinstance(body, dict) and body.get("status") == "ready":
            return True, None, body.get("checks")
        if isinstance(body, dict):
            return False, "HTTP 200 but status is %r, not 'ready'" % (body.get("status"),), body.get("checks")
        return False, "HTTP 200 but the body is not the API's JSON: %s" % (_snippet(resp.body) or "(empty)"), None
    if isinstance(body, dict):
        reason = body.get("reason") or body.get("error")
        checks = body.get("checks") if isinstance(body.get("checks"), dict) else None
        if not reason and checks:
            failing = ["%s: %s" % (k, v) for k, v in sorted(checks.items()) if v != "ok"]
            reason = "; ".join(failing)
        return False, str(reason) if reason else "HTTP %s: %s" % (resp.status, _snippet(resp.body)), checks
    if 300 <= resp.status < 400:
        return False, "HTTP %s redirect: point base_url at the API itself" % resp.status, None
    return False, "HTTP %s, body not JSON: %s" % (resp.status, _snippet(resp.body) or "(empty)"), None


def probe_ready(client):
    """One GET /ready: {ready, status, reason, latency_ms, checks}."""
    start = time.monotonic()
    try:
        resp = client.request("GET", "/ready")
    except ApiError as exc:
        if exc.fatal:
            raise
        return dict(ready=False, status=exc.status, reason=str(exc), checks=None,
                    latency_ms=round((time.monotonic() - start) * 1000.0, 1), transport_error=exc.status is None)
    ready, reason, checks = _ready_reason(resp)
    return dict(ready=ready, status=resp.status, reason=reason, checks=checks, latency_ms=resp.elapsed_ms,
                transport_error=False)


def probe_license(client):
    """One GET /license: {valid_json, status, body, error}. body is the decoded JSON object, or None."""
    try:
        resp = client.request("GET", "/license")
    except ApiError as exc:
        if exc.fatal:
            raise
        return dict(valid_json=False, status=exc.status, body=None, error=str(exc))
    if isinstance(resp.json, dict):
        error = None if resp.status == 200 else "HTTP %s" % resp.status
        return dict(valid_json=resp.status == 200, status=resp.status, body=resp.json, error=error)
    return dict(valid_json=False, status=resp.status, body=None,
                error="HTTP %s, body is not a JSON object: %s" % (resp.status, _snippet(resp.body) or "(empty)"))


def probe(client, retries=0, retry_delay=1.0, backoff=2.0, sleep=time.sleep):
    """/ready then /license; transport failures of /ready are retried `retries` times with backoff."""
    attempts = 0
    delay = retry_delay
    while True:
        attempts += 1
        ready = probe_ready(client)
        if not ready["transport_error"] or attempts > retries:
            break
        sleep(delay)
        delay *= backoff
    if ready["transport_error"]:
        lic = dict(valid_json=False, status=None, body=None, error="not probed: %s" % ready["reason"])
    else:
        lic = probe_license(client)
    return dict(ready=ready["ready"], status=ready["status"], reason=ready["reason"], checks=ready["checks"],
                latency_ms=ready["latency_ms"], license=lic, attempts=attempts)


def probe_route(params, retries=0, retry_delay=1.0):
    """alex_ready's result without waiting: probe() plus the URL probed and the route (base_url or the
    service proxy, ApiClient.from_params). Raises a fatal ApiError (the proxy refused, no Kubernetes
    configuration, an untrusted certificate) or an ApiError when no client can be built."""
    client = ApiClient.from_params(params)
    url = safe_url(client.url())
    result = probe(client, retries=retries, retry_delay=retry_delay)
    result.update(url=url, api_route=client.route_name)
    return result


class BackgroundProbe:
    """probe_route() in a thread, so the probe (the API may take its own deadline to answer /ready) overlaps
    other reads. result() waits for it: the probe, or the ApiError it raised; any other exception is re-raised
    in the caller's thread."""

    def __init__(self, params, retries=0, retry_delay=1.0):
        self._args = (params, retries, retry_delay)
        self._outcome = None
        self._thread = threading.Thread(target=self._run, name="alex-probe", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        try:
            self._outcome = ("probe", probe_route(*self._args))
        except ApiError as exc:
            self._outcome = ("error", exc)
        except Exception:  # not ours to judge here: result() re-raises it in the caller's thread
            self._outcome = ("crash", sys.exc_info())

    def result(self):
        """(probe, None) or (None, ApiError)."""
        self._thread.join()
        kind, value = self._outcome
        if kind == "crash":
            raise value[1].with_traceback(value[2])
        return (value, None) if kind == "probe" else (None, value)


def wait_until_ready(client, timeout, sleep_seconds=2.0, retries=0, retry_delay=1.0, clock=time.monotonic,
                     sleep=time.sleep):
    """Probe until /ready is 200 and /license is valid JSON, or `timeout` seconds pass.

    Returns the last probe with `waited_s` (seconds spent) and `probes` (how many probes it took).
    """
    start = clock()
    probes = 0
    while True:
        probes += 1
        result = probe(client, retries=retries, retry_delay=retry_delay, sleep=sleep)
        done = result["ready"] and result["license"]["valid_json"]
        remaining = timeout - (clock() - start)
        if done or remaining <= 0:
            break
        sleep(max(0.05, min(sleep_seconds, remaining)))
    result.update(waited_s=round(clock() - start, 2), probes=probes)
    return result


def check(params, retries=0, retry_delay=1.0):
    """alex_ready's result for one probe (no wait) over the route the options give (probe_route), or failed=True
    with the fatal ApiError's line (the service proxy refused, no Kubernetes configuration); never raises ApiError."""
    try:
        result = probe_route(params, retries=retries, retry_delay=retry_delay)
    except ApiError as exc:
        return dict(failed=True, msg=str(exc))
    result.update(changed=False)
    return result
