# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before the first change: may this credential make every change the module is about to make?

A module lists what it will do as `Need`s (verb, resource, name, namespace) and asks the API server one
SelfSubjectAccessReview per need (what ``kubectl auth can-i`` asks). A real run with a permission missing
fails before anything changes, naming the verb, resource and namespace and the shipped Role that grants it
(extensions/rbac/); check mode reports the same findings as warnings. Everything but `Preflight` and
`enforce` is a pure function of its arguments.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json

from ansible_collections.alexandria.ee.plugins.module_utils import k8s_client
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, describe_api_error

OBSERVER_ROLE = "alexandria-ee-observer"
RESPONDER_ROLE = "alexandria-ee-responder"
MANIFESTS = "extensions/rbac/ in the alexandria.ee collection"

GROUPS = {"pods": "", "events": "", "secrets": "", "services": "", "deployments": "apps"}

# (verb, resource) -> (the least shipped Role that grants it, the names it is pinned to or None for any name).
# Mirrors extensions/rbac/ (Roles of the same names in the product's namespace and in the audit-checkpoint
# namespace); tests/unit/test_k8s_preflight.py checks it against the manifests.
GRANTED_BY = {
    ("list", "pods"): (OBSERVER_ROLE, None),
    ("get", "pods/log"): (OBSERVER_ROLE, None),
    ("list", "events"): (OBSERVER_ROLE, None),
    ("get", "secrets"): (OBSERVER_ROLE, ("alexandria-ee", "alexandria-ee-license", "alexandria-ee-license-issuers",
                                         "alexandria-ee-audit-checkpoints")),
    ("get", "services/proxy"): (OBSERVER_ROLE, ("alexandria-ee", "alexandria-ee:80", "alexandria-ee:http")),
    ("create", "services/proxy"): (RESPONDER_ROLE, ("alexandria-ee", "alexandria-ee:80", "alexandria-ee:http")),
    ("delete", "pods"): (RESPONDER_ROLE, None),
    ("update", "secrets"): (RESPONDER_ROLE, ("alexandria-ee", "alexandria-ee-license", "alexandria-ee-license-issuers",
                                             "alexandria-ee-audit-checkpoints")),
    ("create", "secrets"): (RESPONDER_ROLE, None),
    ("get", "deployments"): (RESPONDER_ROLE, ("alexandria-ee",)),
    ("patch", "deployments"): (RESPONDER_ROLE, ("alexandria-ee",)),
}

Need = collections.namedtuple("Need", "verb resource name namespace")


# -- what each module will do ----------------------------------------------------------------------------


def pod_restart_needs(namespace, pods, wait=True):
    """alex_pod_restart: delete each pod; list the release's pods while waiting for replacements."""
    needs = [Need("delete", "pods", name, namespace) for name in pods]
    if wait:
        needs.append(Need("list", "pods", None, namespace))
    return needs


def license_needs(namespace, secret_name=None, secret_exists=True, deployment=None):
    """alex_license: write the license Secret (replace it, or create it when it does not exist) and/or
    restart the Deployment (patch its pod template, then read it until it has rolled out)."""
    needs = []
    if secret_name:
        needs.append(Need("update", "secrets", secret_name, namespace) if secret_exists
                     else Need("create", "secrets", None, namespace))
    if deployment:
        needs += [Need("patch", "deployments", deployment, namespace),
                  Need("get", "deployments", deployment, namespace)]
    return needs


def checkpoint_needs(namespace, secret_name, secret_exists=True):
    """alex_audit_verify advancing its checkpoints in a Secret: replace it, or create it the first time."""
    return [Need("update", "secrets", secret_name, namespace) if secret_exists
            else Need("create", "secrets", None, namespace)]


def audit_key_needs(namespace, secret_name, deployment):
    """alex_audit_key: read and replace the main Secret (the keyring), then restart the Deployment."""
    return [Need("get", "secrets", secret_name, namespace), Need("update", "secrets", secret_name, namespace),
            Need("patch", "deployments", deployment, namespace)]


# -- words ------------------------------------------------------------------------------------------------


def review_body(need):
    """The SelfSubjectAccessReview asking for one need."""
    resource, _sep, subresource = need.resource.partition("/")
    attributes = {"namespace": need.namespace, "verb": need.verb, "group": GROUPS.get(resource, ""),
                  "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    if need.name:
        attributes["name"] = need.name
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}}


def describe(need):
    """`delete pods "x" in namespace alexandria`, with the API group as kubectl writes it (deployments.apps)."""
    resource, _sep, subresource = need.resource.partition("/")
    group = GROUPS.get(resource, "")
    what = "%s.%s" % (resource, group) if group else resource
    if subresource:
        what += "/" + subresource
    return "%s %s%s in namespace %s" % (need.verb, what, ' "%s"' % need.name if need.name else "", need.namespace)


def grant_hint(need):
    """Which shipped Role grants the need (and for which names), in words."""
    role, names = GRANTED_BY.get((need.verb, need.resource), (None, None))
    if role is None:
        return "no Role in %s grants it" % MANIFESTS
    if names is not None and need.name not in names:
        return "Role %s in %s grants it only for %s: add %s to that rule's resourceNames" % (
            role, MANIFESTS, ", ".join(names), need.name)
    return "granted by Role %s in %s" % (role, MANIFESTS)


def finding(need):
    return "missing Kubernetes permission: %s (%s)" % (describe(need), grant_hint(need))


def failure_message(action, missing):
    return "%s needs Kubernetes permissions this credential does not have, so nothing was changed: %s" % (
        action, "; ".join(finding(n) for n in missing))


def allowed_in(answer):
    """status.allowed of a SelfSubjectAccessReview answer (a dict)."""
    status = answer.get("status") if isinstance(answer, dict) else None
    return bool(isinstance(status, dict) and status.get("allowed") is True and not status.get("denied"))


# -- asking the API server --------------------------------------------------------------------------------


class ReviewUnavailable(Exception):
    """The API server did not answer a SelfSubjectAccessReview (404 or 403 for the review itself)."""


class Preflight:
    """SelfSubjectAccessReviews through the official client's AuthorizationV1Api."""

    def __init__(self, api_client, request_timeout=10.0):
        import kubernetes  # pylint: disable=import-outside-toplevel  # loaded by build_api_client already
        self.api = kubernetes.client.AuthorizationV1Api(api_client)
        self.request_timeout = request_timeout
        self.requests = 0

    def allowed(self, need):
        what = "asking whether this credential may %s (SelfSubjectAccessReview)" % describe(need)
        self.requests += 1
        try:
            resp = self.api.create_self_subject_access_review(review_body(need), _preload_content=False,
                                                              _request_timeout=self.request_timeout)
        except k8s_client.ApiException as exc:
            if getattr(exc, "status", None) in (403, 404):
                raise ReviewUnavailable(describe_api_error(exc, what))
            raise K8sError(describe_api_error(exc, what))
        except k8s_client.transport_errors() as exc:
            raise K8sError(describe_api_error(exc, what))
        try:
            return allowed_in(json.loads(resp.data.decode("utf-8")))
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise K8sError("Kubernetes API answered something that is not JSON while %s" % what)

    def missing(self, needs):
        return [need for need in needs if not self.allowed(need)]


def enforce(module, api_client, needs, action, request_timeout=10.0, **fail_extra):
    """Ask for every need. A real run fails (fail_json) naming what is missing; check mode warns.

    Returns (requests made, findings). When the API server cannot answer reviews at all, warns and returns:
    the API server still refuses what is not allowed, only no longer before the first change.
    """
    if not needs:
        return 0, []
    preflight = Preflight(api_client, request_timeout)
    try:
        missing = preflight.missing(needs)
    except ReviewUnavailable as exc:
        module.warn("permissions not checked before %s: %s" % (action, exc))
        return preflight.requests, []
    findings = [finding(n) for n in missing]
    if missing and not module.check_mode:
        if "k8s_requests" in fail_extra:
            fail_extra["k8s_requests"] += preflight.requests
        module.fail_json(msg=failure_message(action, missing), missing_permissions=findings, **fail_extra)
    for line in findings:
        module.warn("a real run would stop before %s: %s" % (action, line))
    return preflight.requests, findings
