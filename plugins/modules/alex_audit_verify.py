#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_verify
short_description: Verify the Alexandria EE audit chain and report the exact scope of any damage
version_added: 0.1.0
description:
  - Verifies the HMAC chain of the audit log of one tenant, a list of tenants or all tenants, as
    C(docs/contract.md) section 4 defines it, honouring the anchors earlier retirements wrote.
  - This is the runbook's "Determine scope" step of scenario 3 (audit chain verification failure). Every
    unverifiable seq is reported in segments C({first_seq, last_seq, rows, kind}); adjacent bad seqs of one kind
    form one segment.
  - Rows are streamed with C(COPY ... TO STDOUT) and checked 512 at a time, so memory stays flat whatever the
    chain's length; large chains are cut into seq ranges verified by several processes that read one exported
    snapshot, so the answer is consistent while the API keeps writing.
  - When every row of a tenant, or more than O(key_mismatch_fraction) of them, fails its HMAC while the links
    hold, the probable cause is C(key_mismatch). The rows were written with another key, they are not tampered.
  - After audit key rotations (M(alexandria.ee.alex_audit_key)) each key epoch is verified with its own key, found
    from the tenant's rotation records (C(docs/contract.md) section 4, "Key epochs"), with the keyring of the Secret
    or O(hmac_keyring). Rows of an epoch whose key is not in the keyring are C(unknown_key), an invalid rotation
    record is C(rotation_invalid), and rows signed with a compromised key that no checkpoint taken before the
    compromise vouches for are C(unattested) - none of them is C(hmac_mismatch).
  - With a checkpoint store (O(checkpoint_dir), O(checkpoint_secret)), each tenant is also compared with its last
    checkpoint, kept outside the product's database and signed with O(checkpoint_key). What the chain alone cannot
    show is then reported as segments too - C(truncated) (rows up to the checkpointed seq missing at the tail),
    C(rolled_back) (the row at the checkpointed seq has another row_hmac, for example an older backup restored and
    written to), C(tenant_missing) (a checkpointed tenant has no rows), C(checkpoint_invalid) (a checkpoint with a
    bad signature, of another deployment or tenant, or older than the other store's) - with the probable causes
    C(tail_truncation) and C(restore_rollback).
  - In O(mode=incremental) (the default) a tenant whose checkpointed row and anchors are unchanged is read from its
    checkpoint row on, so the cost follows the new rows. O(update_checkpoints=true) then advances the checkpoints of
    the tenants that verified. A tenant without a checkpoint is read in full and reported in RV(checkpoints.missing).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.audit.KEY
  - alexandria.ee.audit.CHECKPOINT
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
attributes:
  check_mode:
    support: full
    details:
      - The verification only reads. In check mode O(update_checkpoints) writes nothing and RV(checkpoints.written)
        says which tenants' checkpoints would be written.
  diff_mode:
    support: partial
    details:
      - With O(update_checkpoints), the diff shows each changed tenant's checkpointed seq before and after.
options:
  tenants:
    description:
      - Tenant ids to verify. Default is every tenant with audit rows, and with a checkpoint store also every tenant
        with a checkpoint.
      - A listed tenant without rows is reported with O(tenants) C(rows=0) and a warning.
    type: list
    elements: str
  max_rows:
    description:
      - Refuse, before reading any row, a verification that would read more than this many rows (estimated from
        each tenant's seq range, from its checkpoint on when incremental). C(0) means no bound. The fleet health
        check sets it so that a deployment without checkpoints is never read whole.
    type: int
    default: 0
  key_mismatch_fraction:
    description:
      - Fraction of a tenant's rows (of at least 2) failing their HMAC, with intact links, above which the probable
        cause is C(key_mismatch) rather than tampering. Every row failing is always C(key_mismatch).
    type: float
    default: 0.5
seealso:
  - module: alexandria.ee.alex_audit_export
  - module: alexandria.ee.alex_audit_retire
'''

EXAMPLES = r'''
- name: Determine the scope of an audit chain failure (all tenants)
  alexandria.ee.alex_audit_verify:
    dsn: "{{ alex_dsn }}"
    hmac_key: "{{ alex_audit_hmac_key }}"
  register: audit_scope

- name: One tenant, credentials from the release's Secret through the kubeconfig
  alexandria.ee.alex_audit_verify:
    namespace: alexandria
    release: alexandria-ee
    tenants: [acme]

- name: The scheduled watch - incremental, against signed checkpoints, advanced when clean
  alexandria.ee.alex_audit_verify:
    checkpoint_dir: /var/lib/alexandria-checkpoints
    checkpoint_secret: alexandria-audit-checkpoints
    checkpoint_namespace: alexandria-audit
    checkpoint_key: "{{ alex_checkpoint_key }}"
    update_checkpoints: true
  register: audit_watch

- name: Fail when anything is broken
  ansible.builtin.assert:
    that: audit_scope.verified
    fail_msg: "{{ audit_scope.msg }}"
'''

RETURN = r'''
verified:
  description: Whether every verified tenant's chain verifies.
  returned: success
  type: bool
  sample: false
broken:
  description: Tenant ids whose chain does not verify.
  returned: success
  type: list
  elements: str
  sample: [acme]
tenants:
  description: Per tenant id, the verification result.
  returned: success
  type: dict
  sample:
    acme:
      rows: 1000
      valid_rows: 997
      verified: false
      probable_cause: direct_db_edit
      first_seq: 1
      last_seq: 1000
      invalid_anchors: []
      segments:
        - {first_seq: 5, last_seq: 7, rows: 3, kind: hmac_mismatch}
  contains:
    rows:
      description: Rows present.
      type: int
    valid_rows:
      description: Rows whose HMAC and link verify.
      type: int
    verified:
      description: Whether the tenant has no segment.
      type: bool
    probable_cause:
      description:
        - C(null) when verified; otherwise C(key_mismatch), C(direct_db_edit) (rows fail their HMAC),
          C(restore_rollback) (the checkpointed row was replaced), C(tail_truncation) (rows or the tenant missing at
          the tail), C(restore_gap) (rows missing), C(replication_lag) (rows signed but not linking),
          C(checkpoint_invalid), C(rotation_record_invalid), C(unknown_key) or C(compromised_key) (only unattested
          rows).
      type: str
    first_seq:
      description: Lowest seq present (null without rows).
      type: int
    last_seq:
      description: Highest seq present (null without rows).
      type: int
    invalid_anchors:
      description: resume_seq of anchors whose anchor_hmac does not verify (they are ignored).
      type: list
      elements: int
    segments:
      description:
        - Unverifiable seqs, in seq order. C(kind) is C(hmac_mismatch) (the row's own HMAC is wrong),
          C(link_broken) (its prev_hmac is not the previous row's row_hmac) or C(seq_gap) (seqs missing; C(rows)
          counts the missing seqs).
        - Across key epochs also C(unknown_key), C(unattested) and C(rotation_invalid) (at the record's first_seq,
          C(rows) 0).
        - Against a checkpoint also C(truncated) (seqs up to the checkpointed one missing at the tail; C(rows)
          counts them), C(rolled_back) (from the first row written after the checkpointed one up to the checkpointed
          seq), C(tenant_missing) (the checkpointed range; C(rows) is the checkpointed row count) and
          C(checkpoint_invalid) (at the checkpoint's seq, or 0 when unreadable; C(rows) 0).
      type: list
      elements: dict
    mode:
      description: C(incremental) when read from its checkpoint on, otherwise C(full).
      type: str
    rows_read:
      description: Rows this run read for the tenant (the checkpoint row and the rows after it, when incremental).
      type: int
    epochs:
      description:
        - After a key rotation, the tenant's key epochs - C(first_seq), C(last_seq) (null for the current one),
          C(key_id) and its keyring C(status) (C(unknown) when not in the keyring).
      type: list
      elements: dict
    rotation_problems:
      description: Invalid rotation records - C(first_seq), C(new_key_id) and C(problems) (words).
      type: list
      elements: dict
    checkpoint:
      description:
        - With a checkpoint store, the tenant's checkpoint - C(status) (C(ok), C(missing), C(invalid)), C(stores) it
          was found in, C(missing_in), C(problems) (words), C(last_seq), C(last_row_hmac), C(rows), C(checked_at),
          and C(read_in_full_because) when an incremental run read the tenant in full.
      type: dict
key_mismatch:
  description: Tenant ids whose probable cause is C(key_mismatch).
  returned: success
  type: list
  elements: str
  sample: []
scope:
  description: One line per broken tenant naming its segments, for people.
  returned: success
  type: list
  elements: str
  sample: ["tenant 'acme': hmac_mismatch seq 5-7 (3 rows); probable cause direct_db_edit"]
database:
  description: Identity of the database verified (name, cluster system identifier when readable, server version).
  returned: success
  type: dict
  sample: {database: alexandria, system_identifier: "7311111111111111111", server_version_num: 160002,
           server_version: "16.2"}
processes:
  description: Processes that verified (1 for small chains, up to O(workers)).
  returned: success
  type: int
  sample: 2
rows_read:
  description: Rows read from the database, all tenants.
  returned: success
  type: int
  sample: 1001
checkpoints:
  description: With a checkpoint store, what happened to the checkpoints.
  returned: when a checkpoint store is set
  type: dict
  sample: {stores: ["checkpoint directory /var/lib/alexandria-checkpoints/alexandria.alexandria-ee.3f2a9c1d0e4b"],
           missing: [], problems: [], refused: [], written: {dir: [acme]}, check_mode: false}
  contains:
    stores:
      description: The stores read.
      type: list
      elements: str
    missing:
      description: Tenants without a checkpoint in any store (read in full).
      type: list
      elements: str
    problems:
      description: Entries of the stores that belong to no tenant of this deployment (they make RV(verified) false).
      type: list
      elements: str
    refused:
      description: Checkpoints not written because the stored one does not verify or is newer.
      type: list
      elements: str
    written:
      description: Per store kind (C(dir), C(secret)), the tenants whose checkpoint was written (would be, in check mode).
      type: dict
    check_mode:
      description: Whether nothing was written because of check mode.
      type: bool
    witness:
      description: The run record compared as a second witness (O(checkpoint_witness)), or null.
      type: str
elapsed_seconds:
  description: Seconds the verification took.
  returned: success
  type: float
  sample: 1.2
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_verify as cv
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_preflight


def argument_spec():
    spec = am.audit_argument_spec()
    spec.update(am.checkpoint_argument_spec())
    spec.update(
        tenants=dict(type="list", elements=arg_checks.text(1024, "a tenant id")),
        key_mismatch_fraction=dict(type=arg_checks.fraction(), default=0.5, no_log=False),
        max_rows=dict(type=arg_checks.count(0, 10 ** 12), default=0),
    )
    return spec


def run(module, creds, cp_key, tables, workers):
    """(results, invalid anchors, identity, stats, checkpoint outcome) of one verification."""
    params = module.params
    conn = creds.connect()
    stats = {}
    outcome = {"enabled": cp_key is not None}
    try:
        with conn.cursor() as cur:
            identity = audit_store.database_identity(cur)
        conn.rollback()
        deployment = {"namespace": params["namespace"], "release": params["release"],
                      "system_identifier": identity.get("system_identifier")}
        stores = am.checkpoint_stores(params, deployment) if cp_key is not None else []
        # Read before the snapshot: every checkpoint read was written from an earlier snapshot, so this
        # run sees every row a checkpoint vouches for (no false truncation while a watch advances).
        loaded = [(store, store.load()) for store in stores]
        with audit_store.SnapshotTransaction(conn, export=workers > 1) as txn:
            if not stores:
                results, _valid, invalid = audit_store.scan_tenants(
                    conn, tables, creds.key, params["tenants"], workers, creds.connect,
                    key_mismatch_fraction=params["key_mismatch_fraction"], snapshot=txn.snapshot, stats=stats,
                    max_rows=params["max_rows"])
                return results, invalid, identity, stats, outcome
            with conn.cursor() as cur:
                audit_store.check_tables(cur, tables, ("logs", "anchors"))
                db_tenants = audit_store.list_tenants(cur, tables)
            checkpoints, orphans = cv.resolve(loaded, cp_key, deployment, db_tenants, params["tenants"])
            seen, source = cv.witness_from_records(am.read_witness_records(module, params["checkpoint_witness"]),
                                                   deployment)
            cv.compare_witness(checkpoints, seen, source)
            outcome["witness"] = source
            results, invalid, valid_anchors = cv.verify(
                conn, tables, creds.key, checkpoints, params["mode"], workers, creds.connect, txn.snapshot,
                params["key_mismatch_fraction"], stats, params["max_rows"])
            docs = {}
            if params["update_checkpoints"] and not orphans:
                with conn.cursor() as cur:
                    docs = cv.new_checkpoints(cur, tables, cp_key, deployment, results, valid_anchors,
                                              audit_store.rfc3339(audit_store.utc_now()))
        for store in stores:
            if docs and store.kind == "secret":
                # Ask before the first write (SelfSubjectAccessReview): a missing grant names itself and the Role.
                needs = k8s_preflight.checkpoint_needs(store.namespace, store.name, store.exists)
                k8s_preflight.enforce(module, store.core.api_client, needs, "writing the audit checkpoints")
        written, refused = cv.advance(loaded, cp_key, deployment, docs, valid_anchors, dry_run=module.check_mode)
        outcome["missing"] = sorted(t for t, r in results.items() if r["checkpoint"]["status"] == "missing")
        moved = set(t for names in written.values() for t in names)
        for tenant_id in moved:
            doc = docs[tenant_id]
            if module.check_mode:
                # What is stored stays what the record says: a rehearsal is no witness of a write.
                results[tenant_id]["checkpoint"]["would_advance_to"] = doc["last_seq"]
                continue
            results[tenant_id]["checkpoint"].update(
                status="ok", advanced=True, last_seq=doc["last_seq"],
                last_row_hmac=doc["last_row_hmac"], rows=doc["rows"], checked_at=doc["checked_at"])
        outcome.update(stores=[s.describe() for s in stores], orphans=orphans, written=written, refused=refused,
                       before=dict((t, checkpoints[t].doc["last_seq"] if checkpoints[t].doc else None) for t in docs),
                       after=dict((t, d["last_seq"]) for t, d in docs.items()))
        return results, invalid, identity, stats, outcome
    finally:
        conn.close()


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    fraction = module.params["key_mismatch_fraction"]
    creds = am.resolve_credentials(module)
    cp_key = am.checkpoint_key(module, creds)
    tables = am.tables_from_params(module.params)
    workers = am.workers_from_params(module)
    started = time.monotonic()
    try:
        results, invalid, identity, stats, outcome = run(module, creds, cp_key, tables, workers)
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets))
    public = dict((t, audit_store.public_result(r)) for t, r in results.items())
    orphans = outcome.get("orphans") or []
    broken = sorted(t for t, r in public.items() if not r["verified"])
    mismatch = sorted(t for t, r in public.items() if r["probable_cause"] == "key_mismatch")
    for tenant_id in sorted(t for t, r in public.items() if r["rows"] == 0 and r["verified"]):
        module.warn("tenant %r has no audit rows" % tenant_id)
    for anchor in invalid:
        module.warn("anchor of tenant %r at resume_seq %d does not verify and is ignored"
                    % (anchor["tenant_id"], anchor["resume_seq"]))
    for tenant_id in mismatch:
        module.warn(audit_store.key_mismatch_words(tenant_id, results[tenant_id]))
    missing = outcome.get("missing") or []
    if missing:
        module.warn("no checkpoint for tenant(s) %s: read in full, and a cut tail before the first checkpoint "
                    "cannot be seen" % ", ".join(repr(t) for t in missing))
    for words in outcome.get("refused") or []:
        module.warn(words)
    scope = am.scope_words(public) + ["checkpoint store: %s" % o for o in orphans]
    if broken or orphans:
        msg = "audit chain broken: " + " | ".join(scope)
    else:
        msg = "audit chain verified: %d tenant(s), %d rows" % (len(public), sum(r["rows"] for r in public.values()))
    written = outcome.get("written") or {}
    changed = any(written.values())
    result = dict(changed=changed, verified=not (broken or orphans), broken=broken, tenants=public,
                  key_mismatch=mismatch, scope=scope, database=identity, processes=stats.get("processes", 1),
                  elapsed_seconds=round(time.monotonic() - started, 3), msg=msg,
                  rows_read=sum(r.get("rows_read", r["rows"]) for r in results.values()))
    if outcome["enabled"]:
        result["checkpoints"] = {
            "stores": outcome["stores"], "missing": missing, "problems": orphans, "refused": outcome["refused"],
            "written": written, "check_mode": module.check_mode, "witness": outcome.get("witness"),
        }
        if module._diff and changed:
            result["diff"] = {"before": outcome["before"], "after": dict((t, outcome["after"][t]) for t in sorted(
                set(t for names in written.values() for t in names)))}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
