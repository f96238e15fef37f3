# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Triage as one function: gather the release's pods, events, logs and license Secret (ReleaseService.gather) and
classify them (triage.classify), with the OOM fix's proposed limit - what alex_triage does without its check-mode
restart preflight. alex_health runs it in a thread when /ready does not answer 200."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.alexandria.ee.plugins.module_utils import memory_quantity, triage
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, build_api_client
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import (
    DEFAULT_LIMIT_BYTES, DEFAULT_TAIL_LINES, ReleaseService, selector_for,
)

# alex_triage's defaults (its request_timeout, license_secret_key).
REQUEST_TIMEOUT = 10.0
LICENSE_SECRET_KEY = "license.blob"


def run(params, probe=None, tail_lines=DEFAULT_TAIL_LINES, limit_bytes=DEFAULT_LIMIT_BYTES,
        request_timeout=REQUEST_TIMEOUT, stable_seconds=triage.DEFAULT_STABLE_SECONDS):
    """(result, warnings): alex_triage's result keys, or failed=True with one line in msg (never raises K8sError).

    params: the Kubernetes options (k8s_client.k8s_auth_argument_spec), namespace, release, license_secret and
    license_secret_key. probe: {ready, status, reason} of /ready, or None.
    """
    release = params["release"]
    license_secret = params.get("license_secret") or "%s-license" % release
    selector = selector_for(release)
    service = None
    try:
        service = ReleaseService(build_api_client(params), params["namespace"], release,
                                 request_timeout=request_timeout)
        gathered = service.gather(license_secret, params.get("license_secret_key") or LICENSE_SECRET_KEY,
                                  tail_lines, limit_bytes)
    except K8sError as exc:
        return dict(failed=True, msg=str(exc), k8s_requests=service.requests if service else 0,
                    selector=selector), []
    if probe is not None:
        probe = dict(ready=bool(probe.get("ready")), status=probe.get("status"), reason=probe.get("reason"))
    try:
        decided = triage.classify(gathered["pods"], gathered["events"], gathered["logs"],
                                  gathered["license_secret"], probe=probe, release=release,
                                  now=time.time(), stable_seconds=stable_seconds)
        for cause in decided["causes"]:
            if cause["code"] == "oom_killed":
                cause["proposed_memory_limit"] = memory_quantity.propose_memory_limit(cause.get("memory_limit"))
    except ValueError as exc:
        return dict(failed=True, msg="cannot classify: %s" % exc, k8s_requests=service.requests,
                    selector=selector), []
    warnings = [gathered["license_secret"]["error"]] if gathered["license_secret"]["error"] else []
    return dict(changed=False, causes=decided["causes"], pods=decided["pods"], events=decided["events"],
                logs=gathered["logs"], license_secret=gathered["license_secret"], k8s_requests=service.requests,
                selector=selector, namespace=params["namespace"], release=release), warnings
