#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_key
short_description: Rotate the Alexandria EE audit HMAC key into a new key epoch
version_added: 0.1.0
description:
  - The runbook's key-rotation.md for the audit HMAC key, as C(docs/contract.md) section 4 ("Key epochs") defines
    it. Nothing already written is signed again - a new key epoch starts, and the old key stays in the keyring,
    marked retired (O(reason=planned)) or compromised (O(reason=compromise)), so the old epoch still verifies.
  - Generates the new key on the managed node (32 random bytes from the operating system), adds it to the keyring
    in the release's main Secret (key O(hmac_keyring_secret_key)) as the active key, and replaces the Secret with
    the resourceVersion it was read at, so a concurrent change fails instead of being lost.
  - Restarts the API (the C(kubectl.kubernetes.io/restartedAt) annotation), which writes a rotation record per
    tenant under the writers' lock, waits until every tenant with rows has one, then verifies every tenant across
    its epochs.
  - The new key records O(change_ref). A second run with the same reference finds that rotation and changes
    nothing; a run killed at any point leaves the old epoch or the new one, and running it again completes it.
  - No key is ever returned, logged or shown in a diff - only key ids and fingerprints.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
attributes:
  check_mode:
    support: full
    details:
      - Reads the Secret and the rotation records and says what a real run would do; no key is generated, the
        Secret is not written, the API is not restarted, no table is written. The new key id is then unknown
        (RV(key_id_after) is null until a real run generates it).
  diff_mode:
    support: full
    details:
      - The keyring before and after, as key ids, fingerprints, statuses and times (never a key).
options:
  reason:
    description:
      - V(planned) retires the active key (the rotation record is then signed by the old and the new key).
        V(compromise) marks it compromised at O(compromised_at) (the record is signed by the new key only, and
        verification reports the rows of that epoch no checkpoint taken before that time vouches for as
        C(unattested)).
    type: str
    choices: [planned, compromise]
    required: true
  change_ref:
    description:
      - The change reference of this rotation, stored with the new key. A rerun with the same reference completes
        or confirms that rotation instead of starting another.
    type: str
    required: true
  compromised_at:
    description:
      - When the key was compromised, RFC 3339 (C(2026-11-27T09:52:00Z)). Required with O(reason=compromise).
    type: str
  hmac_secret_key:
    description:
      - Key of the original audit HMAC key in the main Secret (the key of the rows written before any rotation).
    type: str
    default: audit-hmac-key
  hmac_keyring_secret_key:
    description:
      - Key of the audit keyring in the main Secret (created by the first rotation).
    type: str
    default: audit-hmac-keyring
  deployment:
    description:
      - The Deployment to restart. Defaults to the release name.
    type: str
  wait_timeout:
    description:
      - Seconds to wait for every tenant's rotation record after the restart; from 1 to 86400.
    type: float
    default: 120
  workers:
    description:
      - Processes that verify at the same time after the rotation (see M(alexandria.ee.alex_audit_verify)).
    type: int
seealso:
  - module: alexandria.ee.alex_audit_verify
'''

EXAMPLES = r'''
- name: Planned rotation of the audit HMAC key
  alexandria.ee.alex_audit_key:
    reason: planned
    change_ref: CHG-2026-0142

- name: The key leaked - rotate, and mark it compromised from the time of the leak
  alexandria.ee.alex_audit_key:
    reason: compromise
    change_ref: INC-2026-0077
    compromised_at: "2026-11-27T09:52:00Z"
  register: rotation
'''

RETURN = r'''
key_id_before:
  description: Id of the key that was active before this rotation.
  returned: success
  type: str
  sample: 3f2a9c1d0e4b5a6f
key_id_after:
  description: Id of the key active after it (null in check mode before the rotation).
  returned: success
  type: str
  sample: 9b1c44e0a7d2f310
fingerprint_before:
  description: Fingerprint (64 hex digits of HMAC-SHA256(key, "alexandria-audit-key-id")) of the old key.
  returned: success
  type: str
fingerprint_after:
  description: Fingerprint of the new key (null in check mode before the rotation).
  returned: success
  type: str
state:
  description:
    - What the keyring said before the run - C(rotate) (no key of O(change_ref) yet), C(done) (the key of
      O(change_ref) is active) or C(superseded) (a later rotation followed it; nothing is done).
  returned: success
  type: str
keyring:
  description: Every key of the keyring after the run - id, fingerprint, status, times, change_ref (never a key).
  returned: success
  type: list
  elements: dict
secret_written:
  description: Whether this run replaced the Secret (would, in check mode).
  returned: success
  type: bool
restarted:
  description: Whether this run restarted the API (would, in check mode).
  returned: success
  type: bool
tenants_rotated:
  description: Tenants with rows whose rotation record to the new key was missing when the run started.
  returned: success
  type: list
  elements: str
tenants_missing:
  description: Tenants still without their rotation record (check mode - all that a real run would wait for).
  returned: success
  type: list
  elements: str
verification:
  description:
    - The verification across epochs after the rotation - C(verified), C(tenants), C(rows), C(broken),
      C(rows_by_kind) (C(hmac_mismatch), C(unknown_key), C(unattested), C(rotation_invalid), ...),
      C(probable_causes), C(epochs) and C(rotation_problems) per tenant.
  returned: success
  type: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_key_rotation as rot
from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring as akr
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_preflight
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_workload as kw
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, build_api_client


def argument_spec():
    spec = am.audit_argument_spec(key=False)
    spec.update(
        reason=dict(type="str", required=True, choices=["planned", "compromise"]),
        change_ref=dict(type=arg_checks.text(256, "a change reference"), required=True),
        compromised_at=dict(type=arg_checks.text(64, "an RFC 3339 time")),
        hmac_secret_key=dict(type=arg_checks.k8s_key(), default="audit-hmac-key", no_log=False),
        hmac_keyring_secret_key=dict(type=arg_checks.k8s_key(), default="audit-hmac-keyring", no_log=False),
        deployment=dict(type=arg_checks.k8s_name()),
        wait_timeout=dict(type=arg_checks.seconds(), default=120.0),
        workers=dict(type=arg_checks.count(1, 64)),
    )
    return spec


def mask(module, keyring):
    for material in keyring.secrets():
        module.no_log_values.update(akr.shown_forms(material))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    change_ref = p["change_ref"].strip()
    if not change_ref:
        module.fail_json(msg="change_ref is empty: give the change or incident reference of this rotation")
    compromised_at = None
    if p["reason"] == "compromise" and not p["compromised_at"]:
        module.fail_json(msg="reason=compromise needs compromised_at: the time the key was compromised "
                             "(RFC 3339, such as 2026-11-27T09:52:00Z)")
    if p["compromised_at"]:
        try:
            compromised_at = akr.rfc3339(akr.utc_instant(p["compromised_at"]))
        except akr.KeyringError as exc:
            module.fail_json(msg="compromised_at: %s" % exc)
    creds = am.resolve_credentials(module, need_key=False)
    tables = am.tables_from_params(p)
    secret_name = p.get("secret_name") or p["release"]
    deployment = kw.deployment_name(p["release"], p["deployment"])
    result = dict(changed=False, reason=p["reason"], change_ref=change_ref, secret_written=False, restarted=False)
    try:
        workload = kw.Workload(build_api_client(p), p["namespace"])
        secret = workload.read_secret(secret_name)
        if secret is None:
            module.fail_json(msg="Secret %s/%s does not exist: it holds the audit key to rotate" % (
                p["namespace"], secret_name))
        keyring, _had = rot.current_keyring(secret, p["hmac_secret_key"], p["hmac_keyring_secret_key"])
        mask(module, keyring)
        state, done_id = rot.plan(keyring, change_ref)
        before = rot.public_keys(keyring)
        old_id = keyring.active_id
        if state != "rotate":
            # The Secret already holds this change's key: the key before it is the one it replaced.
            old_id = next((k["id"] for k in before if k.get("retired_at") == keyring.keys[done_id]["created_at"]
                           and k["id"] != done_id), None)
        result.update(state=state, key_id_before=old_id,
                      fingerprint_before=akr.key_fingerprint(keyring.key(old_id)) if old_id else None)
        needs = k8s_preflight.audit_key_needs(p["namespace"], secret_name, deployment)
        if state == "rotate":
            result["findings"] = k8s_preflight.enforce(module, workload.core.api_client, needs,
                                                       "rotating the audit HMAC key")[1]
        new_id = done_id
        after = before
        if state == "rotate":
            result.update(changed=True, secret_written=True)
            if not module.check_mode:
                now = audit_store.rfc3339(audit_store.utc_now())
                new_key = akr.generate_key()
                module.no_log_values.update(akr.shown_forms(new_key))
                rotated = akr.rotate(keyring, new_key, p["reason"], now, change_ref, compromised_at)
                workload.write_secret_values(secret_name, {p["hmac_keyring_secret_key"]: akr.dump_keyring(rotated)},
                                             secret)
                keyring, new_id = rotated, rotated.active_id
                after = rot.public_keys(keyring)
                rot.maybe_die("after_secret")
            else:
                after = before + [{"id": None, "status": "active", "change_ref": change_ref,
                                   "note": "generated by the real run"}]
                for entry in after:
                    if entry["id"] == old_id:
                        entry.update(status="retired" if p["reason"] == "planned" else "compromised")
        result.update(key_id_after=new_id, fingerprint_after=akr.key_fingerprint(keyring.key(new_id)) if new_id
                      else None, keyring=after)
        if module._diff and state == "rotate":
            where = "%s/%s[%s]" % (p["namespace"], secret_name, p["hmac_keyring_secret_key"])
            result["diff"] = dict(before_header=where, after_header=where, before={"keys": before},
                                  after={"keys": after})
        if state == "superseded":
            module.warn("the key of change %s (%s) is no longer active: a later rotation replaced it; nothing done"
                        % (change_ref, done_id))
        conn = creds.connect()
        try:
            with conn.cursor() as cur:
                audit_store.check_tables(cur, tables, ("logs", "anchors"))
                tenants, rotated_tenants = rot.rotation_state(cur, tables, new_id or "")
            conn.rollback()
        finally:
            conn.close()
        missing = sorted(set(tenants) - set(rotated_tenants)) if state != "superseded" else []
        result.update(tenants_rotated=missing, tenants_missing=missing)
        if missing and not module.check_mode:
            if state != "rotate":
                k8s_preflight.enforce(module, workload.core.api_client, needs[2:], "restarting the API")
            workload.restart_deployment(deployment)
            result.update(changed=True, restarted=True)
            rot.maybe_die("after_restart")
            _tenants, result["tenants_missing"] = rot.wait_rotated(creds.connect, tables, new_id, p["wait_timeout"])
            if result["tenants_missing"]:
                module.fail_json(msg="the API did not write the rotation record of tenant(s) %s within %ss: check "
                                     "its log (audit key rotated) and run again with the same change_ref to complete "
                                     "the rotation" % (", ".join(repr(t) for t in result["tenants_missing"]),
                                                       p["wait_timeout"]), **result)
        elif missing:
            result.update(changed=True, restarted=True)
        if not module.check_mode or state != "rotate":
            result["verification"] = verify(creds, tables, keyring, am.workers_from_params(module))
    except (akr.KeyringError, K8sError) as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets), **result)
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets), **result)
    result["msg"] = words(result)
    module.exit_json(**result)


def verify(creds, tables, keyring, workers):
    conn = creds.connect()
    started = time.monotonic()
    try:
        results = audit_store.verify(conn, tables, keyring, workers=workers, connect=creds.connect)[0]
    finally:
        conn.close()
    summary = rot.summarize(results)
    summary["elapsed_seconds"] = round(time.monotonic() - started, 3)
    return summary


def words(result):
    verification = result.get("verification") or {}
    tail = ""
    if verification:
        tail = "; verified across epochs: %s" % ("yes" if verification["verified"] else "no (%s)" % ", ".join(
            "%s %d rows" % kv for kv in sorted(verification["rows_by_kind"].items())))
    if result["state"] == "superseded":
        return "the rotation of %s was superseded by a later one; nothing done%s" % (result["change_ref"], tail)
    if not result["changed"]:
        return "audit key %s is active and every tenant is in its epoch; nothing to do%s" % (
            result["key_id_after"], tail)
    return "audit key rotated (%s): %s -> %s, %d tenant(s) moved to the new epoch%s" % (
        result["reason"], result["key_id_before"], result["key_id_after"] or "(new key)",
        len(result["tenants_rotated"]), tail)


if __name__ == "__main__":
    main()
