# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One audit chain verification (alex_audit_verify, and S3 of alex_health): credentials, checkpoints, the scan,
and the module's result with its warnings.

verify() takes the module (or anything with its params, no_log_values, check_mode, _diff, warn() and fail_json(),
see health_gather.ProbeContext) and returns the result; every failure goes through fail_json with one masked line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_verify as cv
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_preflight


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


def verify(module):
    """The result of one verification, as alex_audit_verify returns it (warnings through module.warn)."""
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
    return result
