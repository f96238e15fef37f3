#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_retire
short_description: Retire a tenant's unverifiable audit rows behind signed anchors (RetireUnverifiableAuditRows)
version_added: 0.1.0
description:
  - The runbook's C(RetireUnverifiableAuditRows) of scenario 3, as C(docs/contract.md) section 4 defines it. Every
    maximal run of unverifiable seqs of the tenant is removed from the audit table. Its rows are moved to the
    quarantine table, never deleted. One anchor per run lets verification resume after it. Each anchor commits to
    the retired rows' SHA-256, the capture's and the backup's SHA-256 and the sign-off, under the HMAC key.
  - Destructive, so it refuses, naming everything that is missing, unless all of these hold.
  - O(compliance_signoff) is a non-empty reference.
  - The capture manifest (M(alexandria.ee.alex_audit_export)) is for this tenant, tables and database, its file
    matches its SHA-256, it holds exactly the rows to retire (O(capture_match)), and those rows still print the same
    CSV from the database.
  - The backup manifest (M(alexandria.ee.alex_audit_backup)) is for this database, verified, its file matches its
    SHA-256 and reads back with C(pg_restore --list), and it is younger than O(max_backup_age).
  - The tenant's failures are not a key mismatch. When every row (or more than O(key_mismatch_fraction)) fails its
    HMAC while the links hold, the rows were written with another key; retiring would quarantine a valid log, so
    the module refuses and points to key rotation.
  - Then, in ONE transaction holding the writers' per-tenant advisory lock (concurrent audit writers wait, they do
    not fail), it verifies again and plans again, checks the capture against the database, moves the rows and
    writes the anchors. It then checks the tenant verifies, and rolls everything back unless it does. Then it
    commits and reports C(audit chain anchor reset) (also written to the host's log).
  - To keep the lock short the tenant is first verified without it, in a snapshot, in parallel. Under the lock
    (O(lock_verify=incremental)) a fingerprint proves the rows seen then are unchanged and only the rows written
    since are verified. After the move only the row after each retired run can change its verdict, so those are
    verified again. O(lock_verify=full) verifies the whole tenant twice under the lock instead.
  - Idempotent. When the tenant verifies there is nothing to do and C(changed) is C(false), whatever the
    preconditions.
  - Before anything else it checks that the database role may C(DELETE) from the audit table and C(INSERT) into the
    quarantine and anchor tables (besides C(SELECT) on all three); a missing privilege stops it before any change,
    naming the privilege and the shipped role C(alexandria_audit_retirer) (C(extensions/sql/alexandria_audit_roles.sql));
    in check mode it is a warning.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.audit.KEY
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
attributes:
  check_mode:
    support: full
    details:
      - Returns the exact plan (runs, rows, seq ranges, the anchors it would write) and the preconditions that are
        missing, and touches nothing. A key mismatch still fails.
  diff_mode:
    support: full
    details:
      - The diff shows the broken segments before, and the quarantine moves and anchors after.
options:
  tenant:
    description:
      - The tenant id whose unverifiable rows are retired.
    type: str
    required: true
  compliance_signoff:
    description:
      - Reference of the written compliance sign-off (ticket, change request). Stored in every anchor.
    type: str
  capture:
    description:
      - Path of the capture CSV written by M(alexandria.ee.alex_audit_export) for this tenant.
    type: path
  capture_manifest:
    description:
      - Path of the capture's manifest. Default is O(capture) followed by C(.manifest.json).
    type: path
  capture_match:
    description:
      - C(exact) requires the capture to hold exactly the rows to retire (a capture with C(selection=segments)
        taken for the segments found now). C(superset) accepts a capture holding at least those rows, such as
        C(selection=all).
    type: str
    choices: [exact, superset]
    default: exact
  backup:
    description:
      - Path of the backup dump written by M(alexandria.ee.alex_audit_backup).
    type: path
  backup_manifest:
    description:
      - Path of the backup's manifest. Default is O(backup) followed by C(.manifest.json).
    type: path
  max_backup_age:
    description:
      - How old the backup may be, as seconds or with a unit C(s), C(m), C(h), C(d) (C(90m)).
    type: str
    default: 1h
  key_mismatch_fraction:
    description:
      - Fraction of the tenant's rows (of at least 2) failing their HMAC with intact links above which the cause
        is taken as C(key_mismatch) and the module refuses.
    type: float
    default: 0.5
  lock_verify:
    description:
      - How the tenant is verified while the lock is held. C(incremental) is proven by a fingerprint and re-verifies
        only what can have changed. C(full) verifies everything twice under the lock.
    type: str
    choices: [incremental, full]
    default: incremental
  lock_timeout:
    description:
      - How long to wait for the writers' lock of the tenant (PostgreSQL interval text).
    type: str
    default: 30s
notes:
  - Killing the module at any moment leaves every table as it was. The transaction never commits half-done.
seealso:
  - module: alexandria.ee.alex_audit_verify
  - module: alexandria.ee.alex_audit_export
  - module: alexandria.ee.alex_audit_backup
'''

EXAMPLES = r'''
- name: Show what would be retired (touches nothing)
  alexandria.ee.alex_audit_retire:
    tenant: acme
    capture: /var/tmp/incident/audit_chain_affected_acme.csv
    backup: /var/tmp/incident/pre-retire.dump
    compliance_signoff: CR-2026-0042
  check_mode: true
  diff: true

- name: RetireUnverifiableAuditRows
  alexandria.ee.alex_audit_retire:
    dsn: "{{ alex_dsn }}"
    hmac_key: "{{ alex_audit_hmac_key }}"
    tenant: acme
    capture: /var/tmp/incident/audit_chain_affected_acme.csv
    backup: /var/tmp/incident/pre-retire.dump
    compliance_signoff: CR-2026-0042
  register: retire
'''

RETURN = r'''
tenant:
  description: The tenant id.
  returned: always
  type: str
  sample: acme
plan:
  description: What is (or would be) retired.
  returned: success
  type: dict
  sample:
    tenant_id: acme
    rows: 3
    segments: [{first_seq: 5, last_seq: 7, rows: 3, kind: hmac_mismatch}]
    runs: [{first_seq: 5, last_seq: 7, resume_seq: 8, rows: 3, reason: hmac_mismatch, row_ranges: [[5, 7]]}]
  contains:
    tenant_id:
      description: The tenant.
      type: str
    rows:
      description: Rows moved to quarantine.
      type: int
    segments:
      description: The broken segments found.
      type: list
      elements: dict
    runs:
      description: Maximal runs of bad seqs, each retired behind one anchor at C(resume_seq).
      type: list
      elements: dict
anchors:
  description:
    - The anchor records written (in check mode, that would be written; C(anchor_hmac) is null while the capture,
      backup or sign-off is missing).
  returned: success
  type: list
  elements: dict
  sample: [{tenant_id: acme, resume_seq: 8, resume_prev_hmac: 8f78..., retired_first_seq: 5, retired_last_seq: 7,
            retired_rows: 3, retired_sha256: 18ea..., capture_sha256: aaaa..., backup_sha256: bbbb...,
            signoff: CR-2026-0042, reason: hmac_mismatch, anchor_hmac: bd7e...}]
missing:
  description: The preconditions that do not hold (empty when the retirement may run).
  returned: success
  type: list
  elements: str
  sample: ["compliance_signoff (the written compliance sign-off reference) is not given"]
moved:
  description: Rows moved to the quarantine table (0 in check mode).
  returned: success
  type: int
  sample: 3
lock_seconds:
  description: Seconds the writers' lock was held (null in check mode).
  returned: success
  type: float
  sample: 0.21
lock_phases:
  description:
    - Seconds spent under the lock per phase (C(verify), C(capture_check), C(anchors), C(move), C(verify_after),
      C(commit)); null in check mode.
  returned: success
  type: dict
  sample: {verify: 0.12, capture_check: 0.01, anchors: 0.02, move: 0.05, verify_after: 0.01, commit: 0.003}
verify_under_lock:
  description: How the tenant was verified under the lock, C(incremental) or C(full) (null in check mode).
  returned: success
  type: str
  sample: incremental
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import audit_backup
from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_retire
from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import pg_grants
from ansible_collections.alexandria.ee.plugins.module_utils import files

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text):
    match = re.match(r"^\s*(\d+)\s*([smhd]?)\s*$", text or "")
    if not match:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)]


def _manifest(path, what, missing):
    try:
        return files.read_json(path)
    except (IOError, OSError) as exc:
        missing.append("the %s manifest %s cannot be read (%s)" % (what, path, exc.__class__.__name__))
    except ValueError:
        missing.append("the %s manifest %s is not JSON" % (what, path))
    return None


def preconditions(params, first, tables, max_age, tools):
    """(missing words, capture manifest, backup manifest) for the plan in first."""
    missing = []
    if not (params["compliance_signoff"] or "").strip():
        missing.append("compliance_signoff (the written compliance sign-off reference) is not given")
    capture = backup = None
    if not params["capture"]:
        missing.append("capture (the capture of the rows to retire, from alex_audit_export) is not given")
    else:
        capture = _manifest(params["capture_manifest"] or params["capture"] + ".manifest.json", "capture", missing)
        if capture is not None:
            problems = audit_ranges.capture_file_problems(capture, params["capture"], params["tenant"], tables,
                                                          first["identity"])
            if not problems:
                problems = audit_ranges.capture_coverage_problems(capture, first["runs"], first["result"]["segments"],
                                                                  params["capture_match"])
            missing.extend(problems)
    if not params["backup"]:
        missing.append("backup (a backup taken right before the retirement, from alex_audit_backup) is not given")
    else:
        backup = _manifest(params["backup_manifest"] or params["backup"] + ".manifest.json", "backup", missing)
        if backup is not None:
            missing.extend(audit_backup.backup_problems(backup, params["backup"], first["identity"], tables, max_age,
                                                        tools=tools))
    return missing, capture, backup


def plan_of(first):
    runs = [dict((k, r[k]) for k in ("first_seq", "last_seq", "resume_seq", "rows", "reason", "row_ranges"))
            for r in first["runs"]]
    return {"tenant_id": first["tenant_id"], "segments": first["result"]["segments"], "runs": runs,
            "rows": sum(r["rows"] for r in runs)}


def diff_of(plan, anchors, tables):
    before = ["tenant %r in %s.%s:" % (plan["tenant_id"], tables.schema, tables.table)]
    before.extend("  seq %d-%d %s (%d %s)" % (s["first_seq"], s["last_seq"], s["kind"], s["rows"],
                                              "missing" if s["kind"] == "seq_gap" else "rows")
                  for s in plan["segments"])
    after = ["tenant %r:" % plan["tenant_id"]]
    for run, anchor in zip(plan["runs"], anchors):
        ranges = ", ".join("%d-%d" % (a, b) for a, b in run["row_ranges"]) or "none"
        after.append("  seq %d-%d retired (%s): rows %s moved to %s.%s" % (
            run["first_seq"], run["last_seq"], run["reason"], ranges, tables.schema, tables.quarantine_table))
        after.append("  anchor resume_seq=%d resume_prev_hmac=%s retired_rows=%d retired_sha256=%s in %s.%s" % (
            anchor["resume_seq"], anchor["resume_prev_hmac"], anchor["retired_rows"], anchor["retired_sha256"],
            tables.schema, tables.anchor_table))
    return {"before": "\n".join(before) + "\n", "after": "\n".join(after) + "\n"}


def argument_spec():
    spec = am.audit_argument_spec()
    spec.update(
        tenant=dict(type=arg_checks.text(1024, "a tenant id"), required=True),
        compliance_signoff=dict(type=arg_checks.text(4096, "a sign-off text")),
        capture=dict(type=arg_checks.path("a capture file path")),
        capture_manifest=dict(type=arg_checks.path("a manifest file path")),
        capture_match=dict(type="str", default="exact", choices=["exact", "superset"]),
        backup=dict(type=arg_checks.path("a backup file path")),
        backup_manifest=dict(type=arg_checks.path("a manifest file path")),
        max_backup_age=dict(type=arg_checks.text(64, "an age such as 1h"), default="1h"),
        key_mismatch_fraction=dict(type=arg_checks.fraction(), default=0.5, no_log=False),
        lock_verify=dict(type="str", default="incremental", choices=["incremental", "full"]),
        lock_timeout=dict(type=arg_checks.text(64, "a PostgreSQL duration such as 30s"), default="30s"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    tenant = p["tenant"]
    max_age = parse_age(p["max_backup_age"])
    if max_age is None:
        module.fail_json(msg="max_backup_age %r is not a number of seconds with an optional unit s, m, h or d"
                         % p["max_backup_age"])
    fraction = p["key_mismatch_fraction"]
    creds = am.resolve_credentials(module)
    tables = am.tables_from_params(p)
    workers = am.workers_from_params(module)
    result = dict(changed=False, tenant=tenant, plan=None, anchors=[], missing=[], moved=0, lock_seconds=None,
                  lock_phases=None, verify_under_lock=None)
    conn = None
    try:
        conn = creds.connect()
        with conn.cursor() as cur:
            audit_store.check_tables(cur, tables, ("logs", "anchors", "quarantine"))
            user, lacking = pg_grants.missing_privileges(cur, tables, "retire")
        conn.rollback()
        if lacking:
            words = pg_grants.refusal(user, lacking, "retire", "retiring rows")
            if not module.check_mode:
                module.fail_json(msg="refusing to retire: " + words, **result)
            module.warn("a real run would refuse: " + words)
        first = audit_retire.retire_scan(conn, tables, creds.key, tenant, workers, creds.connect,
                                         key_mismatch_fraction=fraction)
        plan = plan_of(first)
        result["plan"] = plan
        if first["result"]["probable_cause"] == "key_mismatch":
            module.fail_json(msg="refusing to retire: " + audit_store.key_mismatch_words(tenant, first["result"]),
                             probable_cause="key_mismatch", **result)
        if not first["runs"]:
            result["msg"] = "tenant %r verifies (%d rows): nothing to retire" % (tenant, first["result"]["rows"])
            module.exit_json(**result)
        tools = None
        if p["backup"]:
            tools = audit_backup.find_tools(first["identity"]["server_version_num"] // 10000)
        missing, capture, backup = preconditions(p, first, tables, max_age, tools)
        signoff = (p["compliance_signoff"] or "").strip() or None
        with conn.cursor() as cur:
            anchors = audit_retire.build_anchors(
                cur, tables, creds.key, tenant, first["runs"], capture.get("sha256") if capture else None,
                backup.get("sha256") if backup else None, signoff)
        conn.rollback()
        result.update(anchors=anchors, missing=missing)
        if module._diff:
            result["diff"] = diff_of(plan, anchors, tables)
        if module.check_mode:
            for item in missing:
                module.warn("a real run would refuse: " + item)
            result.update(changed=True, msg="would retire %d rows of tenant %r in %d run(s)%s" % (
                plan["rows"], tenant, len(plan["runs"]), "; missing: " + "; ".join(missing) if missing else ""))
            module.exit_json(**result)
        if missing:
            module.fail_json(msg="refusing to retire the unverifiable audit rows of tenant %r: %s"
                             % (tenant, "; ".join(missing)), **result)
        done = audit_retire.retire_apply(conn, tables, creds.key, tenant, first, capture, backup["sha256"], signoff,
                                         p["capture_match"], p["lock_verify"], p["lock_timeout"], fraction)
    except audit_retire.RetireRefused as exc:
        module.fail_json(msg="refusing to retire the unverifiable audit rows of tenant %r: %s"
                         % (tenant, am.describe_error(exc, creds.secrets)), **result)
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets), **result)
    finally:
        if conn is not None:
            conn.close()
    result.update(lock_seconds=round(done["lock_seconds"], 4), verify_under_lock=done["verify_under_lock"],
                  lock_phases=done.get("lock_phases"))
    if not done["changed"]:
        result.update(anchors=[], msg="tenant %r verified under the lock: nothing to retire" % tenant)
        module.exit_json(**result)
    if done["anchors"] != anchors:
        now = dict(first["result"], segments=done["segments"])
        result["plan"] = plan_of(dict(first, runs=done["runs"], result=now))
    msg = "audit chain anchor reset: tenant %r, %d rows moved to %s.%s, anchors at resume_seq %s (sign-off %s)" % (
        tenant, done["moved"], tables.schema, tables.quarantine_table,
        ", ".join(str(a["resume_seq"]) for a in done["anchors"]), signoff)
    module.log(msg)
    result.update(changed=True, anchors=done["anchors"], moved=done["moved"], msg=msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
