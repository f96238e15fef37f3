# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What alex_license and alex_license_issuers share past the pure logic: the trusted issuer set read from
its Secret, the choice between that set and the single issuer key, and the restart that makes the API
read both again (rollout, then /ready). No Ansible imports; failures are K8sError, ApiError or ValueError
with a message that names no secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.module_utils import license_issuers as li
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_workload as kw
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import ApiError

ISSUER_SET_MODES = ("auto", "require", "ignore")
# The pod template annotation that records which issuer set the running pods were started with.
ISSUERS_ANNOTATION = "alexandria.ee/license-issuers-sha256"


def issuer_set_spec(arg_checks):
    """The options that say where the trusted issuer set is (shared by both license modules)."""
    return dict(
        issuer_set=dict(type="str", default="auto", choices=list(ISSUER_SET_MODES)),
        issuer_set_secret=dict(type=arg_checks.k8s_name(), no_log=False),
        issuer_set_secret_key=dict(type=arg_checks.k8s_key(), default=li.DEFAULT_SECRET_KEY, no_log=False),
    )


def where(namespace, name, key):
    return "Secret %s/%s key %s" % (namespace, name, key)


def read_issuer_set(workload, name, key):
    """(Secret dict or None, the parsed set or None when the Secret or its key is absent).

    ValueError when the stored set is unreadable: the product then trusts no issuer (contract section 3).
    """
    secret = workload.read_secret(name)
    text = kw.secret_value(secret, key)
    if text is None:
        return secret, None
    try:
        return secret, li.parse_set(text)
    except li.IssuerSetInvalid as exc:
        raise ValueError("the trusted issuer set in %s is invalid (%s): the API trusts no issuer while it is; "
                         "fix it, or delete the key to fall back to the single issuer key" % (
                             where(workload.namespace, name, key), exc))


def resolve_trust(params, workload_factory):
    """(trust, source in words): the issuer set of the release, or the single key issuer_public_key; trust is
    None (and source says what is missing) when there is neither.

    issuer_set=auto reads the set and falls back to issuer_public_key when the release has none (what the
    product does); require insists on the set; ignore checks against issuer_public_key alone (offline).
    """
    mode = params["issuer_set"]
    name = li.secret_name(params["release"], params["issuer_set_secret"])
    if mode != "ignore":
        workload = workload_factory()
        _secret, doc = read_issuer_set(workload, name, params["issuer_set_secret_key"])
        if doc is not None:
            return doc, "trusted issuer set in %s" % where(workload.namespace, name, params["issuer_set_secret_key"])
        if mode == "require":
            missing = where(workload.namespace, name, params["issuer_set_secret_key"])
            raise ValueError("issuer_set=require but %s does not exist: add the first key with "
                             "alexandria.ee.alex_license_issuers" % missing)
    if not params["issuer_public_key"]:
        return None, ("issuer_public_key is required: %s" % (
            "issuer_set=ignore checks against that key alone" if mode == "ignore"
            else "the release has no trusted issuer set (Secret %s), so the API trusts its single issuer key" % name))
    return lc.load_public_key(params["issuer_public_key"]), "issuer_public_key"


def wait_ready(api, timeout, clock=time.monotonic, sleep=time.sleep):
    """Poll GET /ready until 200; ApiError naming the last answer after timeout seconds."""
    deadline = clock() + timeout
    while True:
        try:
            resp = api.request("GET", "/ready")
            last = "HTTP %s %s" % (resp.status, (resp.json or {}).get("reason") or "")
            if resp.status == 200:
                return True
        except ApiError as exc:
            if exc.fatal:
                raise
            last = str(exc)
        if clock() >= deadline:
            raise ApiError("/ready did not answer 200 within %ss after the restart (last: %s)" % (timeout, last.strip()))
        sleep(1.0)


def restart_and_wait(result, workload, api, deployment, timeout, ready=True, annotations=None):
    """Roll the Deployment (restart annotation, plus any given), wait for the rollout and, if ready, /ready.

    Sets restarted, rollout and ready in result as they happen, so that a K8sError or ApiError raised when it
    does not complete leaves result saying how far it got.
    """
    workload.restart_deployment(deployment, annotations=annotations)
    result["restarted"] = True
    _dep, result["rollout"] = workload.wait_rollout(deployment, timeout)
    if ready:
        result["ready"] = wait_ready(api, timeout)
    return result
