# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Triage as one function: gather the release's pods, events, logs and license Secret (ReleaseService.gather) and
classify them (triage.classify), with the OOM fix's proposed limit - what alex_triage does without its check-mode
restart preflight. alex_health runs it in a thread when /ready does not answer 200."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.alexandria.ee.plugins.module_utils import helm_history, memory_quantity, triage, upgrade_cause
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, build_api_client
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import (
    DEFAULT_LIMIT_BYTES, DEFAULT_TAIL_LINES, ReleaseService, selector_for,
)

# alex_triage's defaults (its request_timeout, license_secret_key).
REQUEST_TIMEOUT = 10.0
LICENSE_SECRET_KEY = "license.blob"


def run(params, probe=None, tail_lines=DEFAULT_TAIL_LINES, limit_bytes=DEFAULT_LIMIT_BYTES,
        request_timeout=REQUEST_TIMEOUT, stable_seconds=triage.DEFAULT_STABLE_SECONDS, helm=True,
        upgrade_window=upgrade_cause.DEFAULT_WINDOW_MINUTES):
    """(result, warnings): alex_triage's result keys, or failed=True with one line in msg (never raises K8sError).

    params: the Kubernetes options (k8s_client.k8s_auth_argument_spec), namespace, release, license_secret and
    license_secret_key. probe: {ready, status, reason} of /ready, or None. helm: also read the Helm history and
    name recent_upgrade (alex_triage's helm_history).
    """
    release = params["release"]
    license_secret = params.get("license_secret") or "%s-license" % release
    selector = selector_for(release)
    service = None
    try:
        service = ReleaseService(build_api_client(params), params["namespace"], release,
                                 request_timeout=request_timeout)
        gathered = service.gather(license_secret, params.get("license_secret_key") or LICENSE_SECRET_KEY,
                                  tail_lines, limit_bytes, helm_history=helm)
    except K8sError as exc:
        return dict(failed=True, msg=str(exc), k8s_requests=service.requests if service else 0,
                    selector=selector), []
    try:
        decided, extra, warnings = decide(gathered, probe, release, params["namespace"], stable_seconds, helm,
                                          upgrade_window)
    except ValueError as exc:
        return dict(failed=True, msg="cannot classify: %s" % exc, k8s_requests=service.requests,
                    selector=selector), []
    return dict(changed=False, causes=decided["causes"], pods=decided["pods"], events=decided["events"],
                logs=gathered["logs"], license_secret=gathered["license_secret"], k8s_requests=service.requests,
                selector=selector, namespace=params["namespace"], release=release, **extra), warnings


def decide(gathered, probe, release, namespace, stable_seconds, helm, upgrade_window, now=None):
    """(decided, extra, warnings) from what ReleaseService.gather read: triage.classify's causes, pods and events,
    the OOM fix's proposed limit, and with helm the history as extra["helm_release"] (recent_upgrade added to the
    causes when the outage followed an upgrade). Raises ValueError when the input cannot be classified."""
    now = time.time() if now is None else now
    if probe is not None:
        probe = dict(ready=bool(probe.get("ready")), status=probe.get("status"), reason=probe.get("reason"))
    decided = triage.classify(gathered["pods"], gathered["events"], gathered["logs"], gathered["license_secret"],
                              probe=probe, release=release, now=now, stable_seconds=stable_seconds)
    for cause in decided["causes"]:
        if cause["code"] == "oom_killed":
            cause["proposed_memory_limit"] = memory_quantity.propose_memory_limit(cause.get("memory_limit"))
    warnings = [gathered["license_secret"]["error"]] if gathered["license_secret"]["error"] else []
    extra = {}
    if helm:
        extra["helm_release"] = helm_release_of(gathered, decided, release, namespace, upgrade_window, now,
                                                warnings)
    return decided, extra, warnings


def helm_release_of(gathered, decided, release, namespace, upgrade_window, now, warnings):
    """The release's Helm history, and recent_upgrade added to decided["causes"] when the outage followed it."""
    if "helm_error" in gathered:
        warnings.append("Helm history not read: %s" % gathered["helm_error"])
        return dict(installed=None, current=None, previous=None, problems=[], error=gathered["helm_error"],
                    summary="Helm history not read: %s" % gathered["helm_error"], note=None)
    found = helm_history.history(gathered.pop("helm_secrets"))
    warnings.extend(found["problems"])
    decided["causes"], note = upgrade_cause.with_upgrade_cause(
        decided["causes"], found, gathered["pods"], gathered["events"], now, upgrade_window, release, namespace)
    return dict(installed=found["installed"], current=found["current"], previous=found["previous"],
                problems=found["problems"], error=None, summary=helm_history.summary(release, found), note=note)
