#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_license_issuers
short_description: Add and revoke license issuer keys in the trusted issuer set of an Alexandria EE release
version_added: 0.2.0
description:
  - The product trusts the license issuer keys of the release's trusted issuer set (Secret
    C(<release>-license-issuers), key C(issuers.json), docs/contract.md section 3) and refuses blobs signed by
    an unknown (C(unknown_issuer)), revoked (C(revoked_issuer)) or not yet trusted (C(pending_issuer)) key.
    Without that Secret it trusts its single configured key.
  - O(add_public_key) makes a key trusted (from O(not_before)); O(revoke_key_id) revokes one. Both may be given;
    the key is added before the other is revoked, in one write.
  - The first change creates the set, starting with O(issuer_public_key), the key the API trusts today, so the
    license being served stays valid.
  - The Secret is replaced with the resourceVersion it was read at (a concurrent change fails, nothing is
    half-written). A second run with the same options changes nothing.
  - With O(restart=true) the Deployment is rolled when its pods were not started with the set as it now is
    (the pod template carries the set's SHA-256 in the annotation C(alexandria.ee/license-issuers-sha256)),
    then the module waits for the rollout and C(/ready). The API reads the set only at start.
  - Without O(add_public_key) and O(revoke_key_id) the module only reports the set.
  - Only public keys are handled; they are not secret. Key ids are the first 16 hex digits of the SHA-256 of
    the raw public key, the C(issuer_key_id) a blob names.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
  - alexandria.ee.api.SERVICE_PROXY
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written or restarted; C(changed), the diff, RV(restart_needed) and RV(license_check) say what a
        real run would do. A permission the real run would miss is a warning (and in RV(missing_permissions)).
  diff_mode:
    support: full
    details:
      - The diff shows each key's id, status and times before and after (never key material).
options:
  add_public_key:
    description:
      - The Ed25519 public key to trust, PEM C(PUBLIC KEY) or the raw key as 64 hex digits.
      - A key that was revoked is never trusted again.
    type: str
  not_before:
    description:
      - When the added key becomes trusted, RFC 3339 UTC (C(2026-12-01T00:00:00Z)). Defaults to the time it is
        added. Until then blobs it signed are refused with C(pending_issuer).
    type: str
  revoke_key_id:
    description:
      - The key id (16 hex digits) to revoke. Every blob it signed is refused from the next API start, whatever
        its C(issued_at) (whoever holds a compromised key can backdate).
      - The last key trusted now cannot be revoked.
    type: str
  revocation_reason:
    description:
      - Why O(revoke_key_id) is revoked; recorded in the set.
    type: str
    choices: [planned, compromise]
    default: planned
  compromised_at:
    description:
      - With O(revocation_reason=compromise), when the key was compromised, RFC 3339 UTC; recorded in the set.
    type: str
  issuer_public_key:
    description:
      - The single issuer key the API trusts today (PEM or 64 hex digits). Required for the first change, when
        the release has no set yet; the set starts with it.
    type: str
  force:
    description:
      - Write the set even when the blob in the license Secret would then be refused (revoking the key that
        signed it). Without it the real run fails before any change, naming the blob's key, and check mode warns.
    type: bool
    default: false
  restart:
    description:
      - Roll the Deployment when its pods were not started with the set as it is after this run, and wait for the
        rollout and C(/ready).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the rollout, then again for C(/ready); from 1 to 86400.
    type: int
    default: 300
  issuer_set_secret:
    description:
      - Name of the Secret holding the set. Defaults to C(<release>-license-issuers).
    type: str
  issuer_set_secret_key:
    description:
      - Key of the set in O(issuer_set_secret).
    type: str
    default: issuers.json
  license_secret:
    description:
      - Name of the license Secret, whose blob is checked against the new set. Defaults to C(<release>-license).
    type: str
  license_secret_key:
    description:
      - Key of the blob in the license Secret.
    type: str
    default: license.blob
  deployment:
    description:
      - Name of the Deployment to roll. Defaults to the release name.
    type: str
  validate_certs:
    description:
      - Whether to verify TLS certificates, of the HTTP API and of the Kubernetes API server.
notes:
  - Before writing, the module asks the API server (C(SelfSubjectAccessReview)) for C(update) on the set's
    Secret (C(create) when it does not exist) and, with O(restart=true), C(patch) and C(get) on the Deployment;
    a real run missing one fails before any change, naming the Role of C(extensions/rbac/) that grants it.
    Reading needs C(get) on the set's Secret and the license Secret (C(alexandria-ee-observer)).
requirements:
  - kubernetes
  - cryptography
seealso:
  - module: alexandria.ee.alex_license
'''

EXAMPLES = r'''
- name: Trust the issuer's new key (the set starts with the key trusted today)
  alexandria.ee.alex_license_issuers:
    add_public_key: "{{ lookup('ansible.builtin.file', 'issuer-2027.pub.pem') }}"
    issuer_public_key: "{{ alex_license_issuer_public_key }}"
    namespace: alexandria

- name: Revoke the old key after a blob signed by the new one is served, and restart the API
  alexandria.ee.alex_license_issuers:
    revoke_key_id: 3f1c0a9e5b7d2c44
    revocation_reason: compromise
    compromised_at: "2026-11-27T21:40:00Z"
    restart: true
    base_url: http://localhost:8080
'''

RETURN = r'''
keys:
  description: The set after the run (in check mode, as it would be), each key's id, status and times.
  returned: always
  type: list
  elements: dict
  sample: [{id: 3f1c0a9e5b7d2c44, status: revoked, not_before: "2026-01-01T00:00:00Z",
            revoked_at: "2026-11-28T10:00:00Z", revocation_reason: planned}]
key_ids_before:
  description: Key ids by state before the run, C(trusted), C(pending) (not yet trusted) and C(revoked).
  returned: always
  type: dict
key_ids_after:
  description: Key ids by state after the run.
  returned: always
  type: dict
added_key_id:
  description: Id of O(add_public_key) (whether or not it was already trusted).
  returned: when add_public_key is given
  type: str
revoked_key_id:
  description: O(revoke_key_id).
  returned: when revoke_key_id is given
  type: str
created:
  description: Whether the set did not exist and is (or would be) created.
  returned: always
  type: bool
digest:
  description: SHA-256 of the set after the run (what the pod template annotation records); null without a set.
  returned: always
  type: str
license_check:
  description:
    - The blob in the license Secret checked against the set after the run - C(fingerprint), C(issuer_key_id),
      C(valid), C(reason) (never the blob).
  returned: always
  type: dict
restart_needed:
  description: Whether the pods were not started with the set as it is after the run.
  returned: always
  type: bool
restarted:
  description: Whether the Deployment was rolled.
  returned: always
  type: bool
rollout:
  description: The rollout's final status line.
  returned: when restarted
  type: str
ready:
  description: Whether C(/ready) answered 200 after the restart.
  returned: when restarted
  type: bool
secret_resource_version:
  description: resourceVersion of the set's Secret after the run.
  returned: always
  type: str
missing_permissions:
  description: The permissions a real run needs and the credential lacks.
  returned: in check mode, and when a real run stops for a missing permission
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.module_utils import license_issuers as li
from ansible_collections.alexandria.ee.plugins.module_utils import license_k8s as lk
from ansible_collections.alexandria.ee.plugins.module_utils import license_logic as ll
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_preflight as kp
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_workload as kw
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import (
    ApiClient, ApiError, api_route_argument_spec,
)
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, build_api_client


def argument_spec():
    spec = api_route_argument_spec()
    key = arg_checks.text(arg_checks.MAX_TOKEN, "a public key")
    spec.update(
        add_public_key=dict(type=key, no_log=False),
        not_before=dict(type=arg_checks.text(64, "an RFC 3339 UTC time")),
        revoke_key_id=dict(type=arg_checks.text(64, "a key id (16 hex digits)"), no_log=False),
        revocation_reason=dict(type="str", default="planned", choices=list(li.REVOCATION_REASONS)),
        compromised_at=dict(type=arg_checks.text(64, "an RFC 3339 UTC time")),
        issuer_public_key=dict(type=key, no_log=False),
        force=dict(type="bool", default=False),
        restart=dict(type="bool", default=False),
        wait_timeout=dict(type=arg_checks.count(1, arg_checks.DAY), default=300),
        issuer_set_secret=dict(type=arg_checks.k8s_name(), no_log=False),
        issuer_set_secret_key=dict(type=arg_checks.k8s_key(), default=li.DEFAULT_SECRET_KEY, no_log=False),
        license_secret=dict(type=arg_checks.k8s_name(), no_log=False),
        license_secret_key=dict(type=arg_checks.k8s_key(), default=kw.DEFAULT_LICENSE_KEY, no_log=False),
        deployment=dict(type=arg_checks.k8s_name()),
    )
    return spec


def public_key_option(module, name):
    """The Ed25519 public key in option name; a private key pasted by mistake is masked and refused."""
    text = module.params[name]
    if "PRIVATE KEY" in text:
        module.no_log_values.add(text)
        module.fail_json(msg="%s holds a PRIVATE key: give the issuer's public key only (PEM PUBLIC KEY or 64 hex "
                             "digits); this module never handles private keys" % name)
    try:
        return lc.load_public_key(text)
    except ValueError as exc:
        module.fail_json(msg="%s: %s" % (name, exc))


def time_option(module, name):
    try:
        return lc.parse_time(module.params[name])
    except ValueError as exc:
        module.fail_json(msg="%s: %s" % (name, exc))


def planned_set(module, stored, now):
    """(the set after the requested changes, created): the stored set, or a new one from issuer_public_key."""
    p = module.params
    doc, created = stored, False
    if doc is None and (p["add_public_key"] or p["revoke_key_id"]):
        if not p["issuer_public_key"]:
            module.fail_json(msg="the release has no trusted issuer set yet: give issuer_public_key, the key the API "
                                 "trusts today, so that the set starts with it and the license it serves stays valid")
        doc, created = li.add_key(li.empty_set(), public_key_option(module, "issuer_public_key"), now)[0], True
    try:
        if p["add_public_key"]:
            not_before = time_option(module, "not_before") if p["not_before"] else None
            doc = li.add_key(doc, public_key_option(module, "add_public_key"), now, not_before)[0]
        if p["revoke_key_id"]:
            compromised_at = time_option(module, "compromised_at") if p["compromised_at"] else None
            doc = li.revoke_key(doc, p["revoke_key_id"].strip().lower(), now, p["revocation_reason"],
                                compromised_at)[0]
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    return doc, created


def license_check(blob, trust):
    """The blob of the license Secret under trust (a set, or None: not checked); never the blob itself."""
    described = ll.describe_blob(blob, trust)
    return dict(fingerprint=described["fingerprint"], valid=described["valid"], reason=described["reason"],
                issuer_key_id=(described["claims"] or {}).get("issuer_key_id"))


def run(module):
    p = module.params
    if p["revocation_reason"] == "compromise" and p["revoke_key_id"] and not p["compromised_at"]:
        module.fail_json(msg="revocation_reason=compromise needs compromised_at, the time of the compromise "
                             "(RFC 3339 UTC, for example 2026-11-27T21:40:00Z)")
    now = li.utcnow()
    workload = kw.Workload(build_api_client(p), p["namespace"])
    name = li.secret_name(p["release"], p["issuer_set_secret"])
    secret, stored = lk.read_issuer_set(workload, name, p["issuer_set_secret_key"])
    doc, created = planned_set(module, stored, now)
    changed = doc is not None and doc != stored
    blob = kw.secret_value(workload.read_secret(kw.license_secret_name(p["release"], p["license_secret"])),
                           p["license_secret_key"])
    if blob:
        module.no_log_values.add(blob)
    check = license_check(blob, doc)
    before_check = license_check(blob, stored) if stored is not None else None
    broken = check["valid"] is False and (before_check is None or before_check["valid"] is not False)
    if changed and blob and broken:
        words = ("the blob in the license Secret (fingerprint %s, issuer key %s) would be refused with %s under the "
                 "new set" % (check["fingerprint"], check["issuer_key_id"], check["reason"]))
        if not (p["force"] or module.check_mode):
            module.fail_json(msg="%s, so nothing was changed: apply a blob signed by another trusted key first "
                                 "(alexandria.ee.alex_license state=present), or set force=true" % words,
                             license_check=check)
        if not p["force"]:
            module.warn("a real run would stop: %s" % words)
    deployment = kw.deployment_name(p["release"], p["deployment"])
    digest = li.digest(doc) if doc is not None else None
    restart_needed = digest is not None and (
        changed or kw.template_annotation(workload.read_deployment(deployment), lk.ISSUERS_ANNOTATION) != digest)
    needs = kp.license_needs(p["namespace"], name if changed else None, secret is not None,
                             deployment if p["restart"] and restart_needed else None)
    findings = kp.enforce(module, workload.core.api_client, needs, "changing the trusted issuer set")[1]
    result = dict(
        changed=changed, created=created and changed, keys=li.summary(doc), key_ids_before=li.ids_by_status(stored, now),
        key_ids_after=li.ids_by_status(doc, now), digest=digest, license_check=check, restart_needed=restart_needed,
        restarted=False, secret_resource_version=((secret or {}).get("metadata") or {}).get("resourceVersion"),
    )
    if p["add_public_key"]:
        result["added_key_id"] = lc.key_id(public_key_option(module, "add_public_key"))
    if p["revoke_key_id"]:
        result["revoked_key_id"] = p["revoke_key_id"].strip().lower()
    if module._diff:
        where = lk.where(p["namespace"], name, p["issuer_set_secret_key"])
        result["diff"] = dict(before_header=where, after_header=where, before={"keys": li.summary(stored)},
                              after={"keys": li.summary(doc)})
    if module.check_mode:
        result["missing_permissions"] = findings
        return result
    if changed:
        stored_secret = workload.write_secret_values(name, {p["issuer_set_secret_key"]: li.dump_set(doc)}, secret)
        result["secret_resource_version"] = (stored_secret.get("metadata") or {}).get("resourceVersion")
    if p["restart"] and restart_needed:
        try:
            api = ApiClient.from_params(dict(p, admin_token=None))
            lk.restart_and_wait(result, workload, api, deployment, p["wait_timeout"], ready=bool(check["valid"]),
                                annotations={lk.ISSUERS_ANNOTATION: digest})
            result["changed"] = True
        except (K8sError, ApiError) as exc:
            module.fail_json(msg="the trusted issuer set was written but the restart did not complete: %s" % exc,
                             **result)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not lc.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=lc.CRYPTOGRAPHY_IMPORT_ERROR)
    try:
        result = run(module)
    except (K8sError, ApiError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
