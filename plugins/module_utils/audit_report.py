# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident report of runbook scenario 3 ("File an incident report"): pure, no Ansible imports.

Built only from what the audit modules returned (never from their arguments), so it cannot
carry a secret: scope, suspected cause with its reasoning, capture, backup, sign-off, anchors,
and the disposition of the captured rows. JSON for machines, Markdown for people.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint

REPORT_FORMAT = "alexandria.ee/audit-incident-report/v1"

CAUSES = {
    "key_mismatch": "HMAC key mismatch (rows written with another key), not tampering",
    "direct_db_edit": "direct database edit (rows changed in place after they were signed)",
    "restore_gap": "rows missing, as after a Postgres restore from an older backup (or a DELETE)",
    "replication_lag": "rows signed against a stale chain tip (replication lag, failover, or a writer without the lock)",
    "tail_truncation": "rows missing at the tail, up to the last checkpoint (a DELETE of the newest rows, or of a tenant)",
    "restore_rollback": "the chain was rolled back past its checkpoint and written again (an older backup restored)",
    "checkpoint_invalid": "a checkpoint that does not verify (edited, another deployment's, or older than its witness)",
    "unknown_key": "rows of a key epoch whose key is not in the keyring given to the verifier (not checked, not tampering)",
    "compromised_key": "rows signed with a compromised key that no checkpoint taken before the compromise vouches for",
    "rotation_record_invalid": "a key rotation record that does not verify (edited in the database)",
}
# Kinds found by the key epochs (docs/contract.md section 4, "Key epochs"): reported, never captured or retired.
EPOCH_KINDS = ("unknown_key", "unattested", "rotation_invalid")
# Kinds found by comparing with a checkpoint: no row of theirs is in the table to capture or retire.
CHECKPOINT_KINDS = audit_checkpoint.CHECKPOINT_KINDS


def _span(seg):
    if seg["first_seq"] == seg["last_seq"]:
        return "seq %d" % seg["first_seq"]
    return "seq %d-%d" % (seg["first_seq"], seg["last_seq"])


def _spans(segments):
    return ", ".join(_span(s) for s in segments)


def reasoning(result):
    """(cause code, [sentences]) inferred from one tenant's verification result."""
    segments = result.get("segments") or []
    cause = result.get("probable_cause")
    rows = result.get("rows", 0)
    by_kind = {}
    for seg in segments:
        by_kind.setdefault(seg["kind"], []).append(seg)
    why = []
    if cause == "key_mismatch":
        failing = sum(s["rows"] for s in by_kind.get("hmac_mismatch", []))
        why.append("%d of %d rows fail their own HMAC while no link between consecutive rows is broken: the rows "
                   "agree with each other but not with this key." % (failing, rows))
        why.append("That is the signature of rows written with another HMAC key (the key in the Secret was rotated "
                   "without re-keying, or the verifier was given the wrong key), not of edits, which leave the "
                   "edited rows alone failing.")
        why.append("Retiring would quarantine a valid log: check the audit-hmac-key Secret and follow "
                   "key-rotation.md instead.")
        return cause, why
    if "hmac_mismatch" in by_kind:
        segs = by_kind["hmac_mismatch"]
        followed = [s for s in segs if not any(o["kind"] == "link_broken" and o["first_seq"] == s["last_seq"] + 1
                                               for o in segments)]
        why.append("%d row(s) fail their own HMAC (%s) while the rest of the chain verifies with the same key: "
                   "their content changed after they were signed, without re-signing - a direct database edit."
                   % (sum(s["rows"] for s in segs), _spans(segs)))
        if followed:
            why.append("The row after each edited run still links to its stored row_hmac, so the rows were not "
                       "re-chained: an UPDATE in place, not a rewritten tail.")
    if "seq_gap" in by_kind:
        segs = by_kind["seq_gap"]
        why.append("%d seq(s) are missing (%s) while the rows around them verify: rows were removed without touching "
                   "the others - typical of a restore from a backup older than those rows (re-verify after making "
                   "sure the restore was complete, runbook Procedure), or of a DELETE."
                   % (sum(s["rows"] for s in segs), _spans(segs)))
    if "link_broken" in by_kind:
        segs = by_kind["link_broken"]
        count = sum(s["rows"] for s in segs)
        why.append("%d row(s) carry a valid HMAC but their prev_hmac is not the previous row's row_hmac (%s): they "
                   "were signed against another version of the chain - a writer reading a stale tip (replication "
                   "lag, failover) or a previous row re-signed after an edit." % (count, _spans(segs)))
    if "truncated" in by_kind:
        segs = by_kind["truncated"]
        why.append("%d row(s) the last checkpoint vouched for are missing at the tail (%s) while every remaining row "
                   "verifies: the newest rows were deleted, which the chain alone cannot show. The checkpoint is kept "
                   "outside the database under its own key, so it was not moved with them. Look for them in a backup "
                   "(playbook backup_restore) before anything else." % (sum(s["rows"] for s in segs), _spans(segs)))
    if "tenant_missing" in by_kind:
        segs = by_kind["tenant_missing"]
        why.append("The tenant has no row at all, though its checkpoint vouched for %d row(s) (%s): every row of it "
                   "was deleted." % (sum(s["rows"] for s in segs), _spans(segs)))
    if "rolled_back" in by_kind:
        segs = by_kind["rolled_back"]
        why.append("The row at the checkpointed seq has another row_hmac than the checkpoint recorded, and the rows "
                   "from %s on were written after the checkpointed row: the database was restored from a backup "
                   "older than the checkpoint and written to again, so the original %d row(s) (%s) are lost from "
                   "the table (re-verify the restore, runbook Procedure; the backup taken after the checkpoint may "
                   "still hold them)." % (_span(segs[0]).split("-")[0], sum(s["rows"] for s in segs), _spans(segs)))
    if "unknown_key" in by_kind:
        segs = by_kind["unknown_key"]
        why.append("%d row(s) (%s) belong to a key epoch whose key is not in the keyring the verifier was given: they "
                   "were not checked. Verify with the release's whole keyring (Secret key audit-hmac-keyring)."
                   % (sum(s["rows"] for s in segs), _spans(segs)))
    if "unattested" in by_kind:
        segs = by_kind["unattested"]
        why.append("%d row(s) (%s) verify only with a key marked compromised, and no checkpoint taken before the "
                   "compromise vouches for them: whoever stole the key could have written them. They are not proven "
                   "tampered either; compare them with other records of those events."
                   % (sum(s["rows"] for s in segs), _spans(segs)))
    if "rotation_invalid" in by_kind:
        why.append("A key rotation record of this tenant does not verify (see the verification's rotation_problems): "
                   "it was edited in the database after the rotation.")
    if "checkpoint_invalid" in by_kind:
        why.append("A checkpoint of this tenant does not verify (see the verification's checkpoint problems): it was "
                   "edited, swapped with another deployment's or tenant's, or replaced by an older one. Whoever did "
                   "that had access to the checkpoint store, not only to the database.")
    if len(by_kind) > 1:
        why.append("Several kinds of damage in one tenant: each is listed with its own reading above; the most "
                   "likely single cause is given first.")
    return cause, why


def _capture_of(capture_result):
    manifest = capture_result.get("capture") or {}
    if not manifest:
        return None
    return {"file": capture_result.get("dest"), "manifest": capture_result.get("manifest"),
            "sha256": manifest.get("sha256"), "rows": manifest.get("rows"), "bytes": manifest.get("bytes"),
            "seq_ranges": manifest.get("seq_ranges"), "selection": manifest.get("selection"),
            "created_at": manifest.get("created_at")}


def _retire_of(retire_result):
    if not retire_result or not retire_result.get("changed") or retire_result.get("failed"):
        return None
    return {"rows_moved": retire_result.get("moved"), "anchors": retire_result.get("anchors") or [],
            "lock_seconds": retire_result.get("lock_seconds"), "message": retire_result.get("msg")}


def build_report(incident_id, verify, captures=None, backup=None, retires=None, verify_after=None, api_checks=None,
                 signoff=None, generated_at=None, tables=None):
    """The report dict. verify: alex_audit_verify's result before; captures/retires/api_checks: {tenant: ...}."""
    api_checks = api_checks or {}
    captures = captures or {}
    retires = retires or {}
    tenants = []
    statuses = set()
    for tenant_id in sorted(verify.get("broken") or []):
        result = verify["tenants"][tenant_id]
        cause, why = reasoning(result)
        capture = _capture_of(captures.get(tenant_id) or {})
        retired = _retire_of(retires.get(tenant_id))
        segments = result.get("segments") or []
        affected = [[s["first_seq"], s["last_seq"]] for s in segments
                    if s["kind"] != "seq_gap" and s["kind"] not in CHECKPOINT_KINDS and s["kind"] not in EPOCH_KINDS]
        missing = [[s["first_seq"], s["last_seq"]] for s in segments if s["kind"] == "seq_gap"]
        lost = [dict(s) for s in segments if s["kind"] in CHECKPOINT_KINDS]
        if cause == "key_mismatch":
            status = "refused_key_mismatch"
            disposition = ("Nothing retired and nothing needs to be: the rows are a valid log written with another "
                           "HMAC key. Fix the key (key-rotation.md); the chain then verifies as it is.")
        elif lost and not affected and not missing:
            status = "lost_against_checkpoint"
            disposition = ("Nothing can be retired: the rows the checkpoint vouched for are not in the table. Find a "
                           "backup that holds them (playbook backup_restore reports what each backup would restore "
                           "or lose), then file this report with the suspected cause.")
        elif retired:
            status = "retired"
            quarantine = (tables or {}).get("quarantine_table", "audit_quarantine")
            if capture and capture.get("rows"):
                kept = ("The %d captured row(s) (%s) are kept as compliance evidence in %s (sha256 %s). "
                        % (capture["rows"], ", ".join("%d-%d" % tuple(r) for r in capture["seq_ranges"]),
                           capture["file"], capture["sha256"]))
            else:
                kept = ("No row was there to capture (missing seqs only); the capture %s (sha256 %s) records "
                        "that. " % (capture["file"], capture["sha256"]) if capture else "")
            resumes = ", ".join(str(a["resume_seq"]) for a in retired["anchors"])
            disposition = kept + (
                "%d row(s) were moved from the audit table to %s, never deleted; anchor(s) at resume_seq %s "
                "commit to their sha256, the capture's and backup's sha256 and the sign-off, so verification "
                "resumes after them." % (retired["rows_moved"], quarantine, resumes))
        elif capture:
            status = "captured_awaiting_signoff"
            disposition = ("Captured in %s (sha256 %s), %d row(s); nothing retired yet: waiting for the written "
                           "compliance sign-off and the operator's confirmation." % (capture["file"],
                                                                                     capture["sha256"],
                                                                                     capture["rows"] or 0))
        else:
            status = "scoped"
            disposition = "Scoped only; nothing captured or retired yet."
        statuses.add(status)
        tenants.append({
            "tenant_id": tenant_id, "rows": result.get("rows"), "valid_rows": result.get("valid_rows"),
            "segments": segments, "affected_row_ranges": affected, "missing_seq_ranges": missing,
            "lost_against_checkpoint": lost,
            "suspected_cause": {"code": cause, "summary": CAUSES.get(cause, cause), "reasoning": why},
            "capture": capture, "retired": retired, "status": status, "disposition": disposition,
            "api_write_after": api_checks.get(tenant_id),
        })
    backup_info = None
    if backup and backup.get("backup"):
        manifest = backup["backup"]
        backup_info = {"file": backup.get("dest"), "manifest": backup.get("manifest"), "sha256": manifest.get("sha256"),
                       "bytes": manifest.get("bytes"), "created_at": manifest.get("created_at"),
                       "pg_dump": (manifest.get("pg_dump") or {}).get("version"),
                       "verified_by": manifest.get("verified_by")}
    after = None
    if verify_after:
        after = {"verified": verify_after.get("verified"), "broken": verify_after.get("broken"),
                 "scope": verify_after.get("scope")}
    order = ["refused_key_mismatch", "lost_against_checkpoint", "scoped", "captured_awaiting_signoff", "retired"]
    status = next((s for s in order if s in statuses), "verified")
    return {
        "format": REPORT_FORMAT,
        "incident_id": incident_id,
        "generated_at": generated_at,
        "status": status,
        "database": verify.get("database"),
        "tables": tables,
        "scope": verify.get("scope") or [],
        "tenants": tenants,
        "backup": backup_info,
        "signoff": signoff or None,
        "verification_after": after,
    }


def render_markdown(report):
    lines = ["# Incident report: audit chain verification failure", ""]
    lines.append("- Incident: `%s`" % report["incident_id"])
    lines.append("- Generated: %s" % report["generated_at"])
    lines.append("- Status: **%s**" % report["status"])
    database = report.get("database") or {}
    lines.append("- Database: `%s` (system identifier %s, PostgreSQL %s)" % (
        database.get("database"), database.get("system_identifier"), database.get("server_version")))
    lines.append("- Compliance sign-off: %s" % (report["signoff"] or "not given"))
    lines.append("")
    lines.append("## Scope")
    lines.append("")
    if not report["tenants"]:
        lines.append("Every tenant's chain verifies.")
    for tenant in report["tenants"]:
        lines.append("### Tenant `%s`" % tenant["tenant_id"].replace("`", "'"))
        lines.append("")
        lines.append("%d rows, %d verify. Affected:" % (tenant["rows"] or 0, tenant["valid_rows"] or 0))
        lines.append("")
        lines.append("| seqs | kind | rows |")
        lines.append("| --- | --- | --- |")
        for seg in tenant["segments"]:
            missing = {"seq_gap": " missing", "truncated": " missing", "tenant_missing": " missing",
                       "rolled_back": " replaced"}.get(seg["kind"], "")
            lines.append("| %d-%d | %s | %d%s |" % (seg["first_seq"], seg["last_seq"], seg["kind"], seg["rows"], missing))
        lines.append("")
        cause = tenant["suspected_cause"]
        lines.append("**Suspected cause:** %s (`%s`)." % (cause["summary"], cause["code"]))
        lines.append("")
        for sentence in cause["reasoning"]:
            lines.append("- " + sentence)
        lines.append("")
        if tenant["capture"]:
            cap = tenant["capture"]
            lines.append("**Capture:** `%s`, %s rows, sha256 `%s` (manifest `%s`)." % (
                cap["file"], cap["rows"], cap["sha256"], cap["manifest"]))
            lines.append("")
        if tenant["retired"]:
            lines.append("**Anchors written:**")
            lines.append("")
            lines.append("| resume_seq | retired seqs | rows | retired_sha256 | reason |")
            lines.append("| --- | --- | --- | --- | --- |")
            for anchor in tenant["retired"]["anchors"]:
                lines.append("| %d | %d-%d | %d | `%s` | %s |" % (
                    anchor["resume_seq"], anchor["retired_first_seq"], anchor["retired_last_seq"],
                    anchor["retired_rows"], anchor["retired_sha256"], anchor["reason"]))
            lines.append("")
        lines.append("**Disposition:** " + tenant["disposition"])
        lines.append("")
        api = tenant.get("api_write_after")
        if api:
            lines.append("**API audit write afterwards:** HTTP %s, seq %s." % (api.get("status"), api.get("seq")))
            lines.append("")
    lines.append("## Backup")
    lines.append("")
    backup = report.get("backup")
    if backup:
        lines.append("`%s`, sha256 `%s`, taken %s with %s; %s." % (
            backup["file"], backup["sha256"], backup["created_at"], backup["pg_dump"], backup["verified_by"]))
        lines.append("Rollback: `ansible-playbook alexandria.ee.audit_chain_rollback -e audit_chain_backup=%s "
                     "-e audit_chain_confirm_rollback=true` (rows written after the backup are lost)." % backup["file"])
    else:
        lines.append("No backup taken (nothing was retired).")
    lines.append("")
    lines.append("## Verification afterwards")
    lines.append("")
    after = report.get("verification_after")
    if after:
        lines.append("Chain verifies: **%s**." % ("yes" if after["verified"] else "no"))
        for item in after.get("scope") or []:
            lines.append("- " + item)
    else:
        lines.append("Not run (nothing was retired).")
    lines.append("")
    return "\n".join(lines)


def same_report(old, new):
    """Equal but for the time they were generated."""
    if not isinstance(old, dict):
        return False
    return dict(old, generated_at=None) == dict(new, generated_at=None)
