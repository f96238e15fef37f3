# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RetireUnverifiableAuditRows (docs/contract.md section 4): plan, anchors, and the one locked transaction.

No Ansible imports. The scan, COPY and capture helpers are audit_store's; see
docs/scenario-audit-chain.md ("The retirement transaction") for the steps and why each is safe.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_epochs as ae
from ansible_collections.alexandria.ee.plugins.module_utils import audit_scan
from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges as ar
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store as st

try:
    import psycopg2
    import psycopg2.errors
    from psycopg2 import sql
except ImportError:  # pg.connect reports it
    psycopg2 = None
    sql = None


RETIRABLE = st.ROW_KINDS + (ac.KIND_GAP,)


def plan_runs(segments, existing_anchors=None):
    """Maximal runs of consecutive bad seqs, each retired behind one anchor at resume_seq.

    existing_anchors: {resume_seq: anchor} already valid for the tenant. A run whose resume_seq
    would collide with one of them stops before that anchor's retired range (those seqs are
    retired already).
    """
    existing_anchors = existing_anchors or {}
    runs = []
    # Only the chain's own findings are retired: unknown_key, unattested and rotation_invalid rows are no edits.
    for seg in sorted((s for s in segments if s["kind"] in RETIRABLE), key=lambda s: s["first_seq"]):
        if runs and seg["first_seq"] == runs[-1]["last_seq"] + 1:
            run = runs[-1]
            run["last_seq"] = seg["last_seq"]
            run["segments"].append(dict(seg))
        else:
            runs.append({"first_seq": seg["first_seq"], "last_seq": seg["last_seq"], "segments": [dict(seg)]})
    planned = []
    for run in runs:
        last = run["last_seq"]
        while last + 1 in existing_anchors and existing_anchors[last + 1]["retired_first_seq"] <= last:
            last = existing_anchors[last + 1]["retired_first_seq"] - 1
        if last < run["first_seq"]:
            continue
        run["last_seq"] = last
        kinds = []
        rows = 0
        for seg in run["segments"]:
            if seg["kind"] not in kinds:
                kinds.append(seg["kind"])
            if seg["kind"] in st.ROW_KINDS:
                rows += max(0, min(seg["last_seq"], last) - seg["first_seq"] + 1)
        run["rows"] = rows
        run["reason"] = ",".join(kinds)
        run["resume_seq"] = last + 1
        run["row_ranges"] = ar.row_ranges([dict(s, last_seq=min(s["last_seq"], last)) for s in run["segments"]
                                           if s["first_seq"] <= last])
        planned.append(run)
    return planned


def resume_prev_hmac(cur, tables, tenant_id, run, runs):
    """The prev_hmac the row at run's resume_seq must have (contract: Anchors)."""
    cur.execute(sql.SQL("SELECT prev_hmac FROM {} WHERE tenant_id = %s AND seq = %s").format(tables.logs),
                (tenant_id, run["resume_seq"]))
    row = cur.fetchone()
    if row:
        return row[0]
    # The tail: the row_hmac of the last good row before the run, skipping rows this plan retires.
    lows = [r["first_seq"] for r in runs]
    highs = [r["last_seq"] for r in runs]
    cur.execute(sql.SQL(
        "SELECT l.row_hmac FROM {} l WHERE l.tenant_id = %s AND l.seq < %s AND NOT EXISTS ("
        " SELECT 1 FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi) WHERE l.seq BETWEEN r.lo AND r.hi)"
        " ORDER BY l.seq DESC LIMIT 1").format(tables.logs), (tenant_id, run["first_seq"], lows, highs))
    row = cur.fetchone()
    return row[0] if row else ac.GENESIS


def retired_rows_digest(cur, tables, tenant_id, run):
    """(sha256, rows) of the run's rows as full COPY text lines, in seq order."""
    sink = audit_scan.LinesDigestSink()
    query = sql.SQL("SELECT {} FROM {} WHERE tenant_id = %s AND seq BETWEEN %s AND %s ORDER BY seq").format(
        st._columns(), tables.logs)
    st.copy_to(cur, query, (tenant_id, run["first_seq"], run["last_seq"]), sink)
    sink.finish()
    return sink.sha256.hexdigest(), sink.count


def build_anchors(cur, tables, key, tenant_id, runs, capture_sha256, backup_sha256, signoff):
    """The anchor records for runs (retired_sha256 read from the rows still in place).

    Each anchor is authenticated with the key of the epoch its resume_seq falls in.
    """
    key = ae.bind_keys(cur, tables, key, [tenant_id])
    anchors = []
    for run in runs:
        digest, count = retired_rows_digest(cur, tables, tenant_id, run)
        anchor = {
            "tenant_id": tenant_id,
            "resume_seq": run["resume_seq"],
            "resume_prev_hmac": resume_prev_hmac(cur, tables, tenant_id, run, runs),
            "retired_first_seq": run["first_seq"],
            "retired_last_seq": run["last_seq"],
            "retired_rows": count,
            "retired_sha256": digest,
            "capture_sha256": capture_sha256,
            "backup_sha256": backup_sha256,
            "signoff": signoff,
            "reason": run["reason"],
        }
        anchor["anchor_hmac"] = ac.anchor_hmac(key, anchor) if None not in anchor.values() else None
        anchors.append(anchor)
    return anchors


def lock_tenant(cur, tenant_id):
    """The writers' per-tenant lock (contract: Writers); held until the transaction ends."""
    cur.execute(ac.TENANT_LOCK_SQL, (tenant_id,))


def move_rows(cur, tables, tenant_id, runs):
    """Move the runs' rows into quarantine (kind per segment, anchor_resume_seq per run); returns the count."""
    lows, highs, kinds, resumes = [], [], [], []
    for run in runs:
        for seg in run["segments"]:
            if seg["kind"] in st.ROW_KINDS and seg["first_seq"] <= run["last_seq"]:
                lows.append(seg["first_seq"])
                highs.append(min(seg["last_seq"], run["last_seq"]))
                kinds.append(seg["kind"])
                resumes.append(run["resume_seq"])
    if not lows:
        return 0
    row_cols = st._columns()
    statement = sql.SQL(
        "WITH r(lo, hi, kind, resume) AS (SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[])),"
        " moved AS (DELETE FROM {logs} l USING r WHERE l.tenant_id = %s AND l.seq BETWEEN r.lo AND r.hi"
        " RETURNING {lcols}, r.kind AS kind, r.resume AS resume)"
        " INSERT INTO {quarantine} ({cols}, kind, anchor_resume_seq) SELECT {cols}, kind, resume FROM moved").format(
        logs=tables.logs, quarantine=tables.quarantine, cols=row_cols, lcols=st._columns(prefix="l"))
    cur.execute(statement, (lows, highs, kinds, resumes, tenant_id))
    return cur.rowcount


def insert_anchors(cur, tables, anchors):
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        tables.anchors, st._columns(st.ANCHOR_COLUMNS), sql.SQL(", ").join(sql.Placeholder() * len(st.ANCHOR_COLUMNS)))
    for anchor in anchors:
        cur.execute(statement, [anchor[c] for c in st.ANCHOR_COLUMNS])


def tenant_fingerprint(cur, tables, tenant_id, up_to_seq):
    """(rows, sum of 64-bit hashes of each row version's (ctid, xmin)) for seq <= up_to_seq.

    Any insert, update or delete among those rows changes it: a changed row is a new version with a
    new xmin (the writing transaction) and a new ctid. Reading only system columns keeps it cheap
    (no row is converted to text). A VACUUM FULL also changes it (new ctids): that only costs a full
    re-verification, never a missed change.
    """
    cur.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(l.ctid::text || ':' || l.xmin::text, 0)::numeric), 0)::text"
        " FROM {} l WHERE l.tenant_id = %s AND l.seq <= %s").format(tables.logs), (tenant_id, up_to_seq))
    count, total = cur.fetchone()
    return int(count), total


def timer():
    return time.monotonic()


class RetireRefused(st.AuditError):
    """A precondition of the retirement does not hold; problems names each one."""

    def __init__(self, problems):
        super(RetireRefused, self).__init__("; ".join(problems))
        self.problems = list(problems)


def _as_partial(result):
    return {"low": result["first_seq"] or 0, "rows": result["rows"], "valid_rows": result["valid_rows"],
            "hmac_failures": result["hmac_failures"], "link_failures": result["link_failures"],
            "segments": result["segments"], "first_seq": result["first_seq"], "last_seq": result["last_seq"],
            "last_row_hmac": result["last_row_hmac"]}


def _anchor_keys(valid, tenant_id):
    return sorted((seq, a["anchor_hmac"]) for seq, a in (valid.get(tenant_id) or {}).items())


def retire_scan(conn, tables, key, tenant_id, workers=1, connect=None, chunk_rows=None,
                key_mismatch_fraction=ac.KEY_MISMATCH_FRACTION):
    """First look, without the lock, in one snapshot: the tenant's result, its anchors, a fingerprint, the plan."""
    with st.SnapshotTransaction(conn, export=workers > 1 and connect is not None) as txn:
        results, valid, invalid = st.scan_tenants(conn, tables, key, [tenant_id], workers, connect, chunk_rows,
                                                  key_mismatch_fraction, snapshot=txn.snapshot)
        result = results[tenant_id]
        with conn.cursor() as cur:
            st.check_tables(cur, tables, ("quarantine",))
            identity = st.database_identity(cur)
            fingerprint = tenant_fingerprint(cur, tables, tenant_id, result["last_seq"] or 0)
            runs = plan_runs(result["segments"], valid.get(tenant_id))
            key = ae.bind_keys(cur, tables, key, [tenant_id])
            preview = build_anchors(cur, tables, key, tenant_id, runs, None, None, None)
    return {"tenant_id": tenant_id, "result": result, "valid": valid, "invalid": invalid, "identity": identity,
            "fingerprint": fingerprint, "runs": runs, "anchors": preview}


def _verify_under_lock(conn, cur, tables, key, tenant_id, first, mode, key_mismatch_fraction):
    """The tenant's result now (lock held): full rescan, or the first scan plus the rows written since."""
    valid, _invalid = ac.check_anchors(key, st.load_anchors(cur, tables, [tenant_id]))
    result = None
    how = "full"
    if mode == "incremental" and _anchor_keys(valid, tenant_id) == _anchor_keys(first["valid"], tenant_id):
        last = first["result"]["last_seq"]
        if last is not None and tenant_fingerprint(cur, tables, tenant_id, last) == first["fingerprint"]:
            how = "incremental"
            partials = [_as_partial(first["result"])]
            bounds = st.tenant_bounds(cur, tables, tenant_id)
            if bounds and bounds[1] > last:
                partials.append(st.scan_range(cur, tables, key, tenant_id, last + 1, bounds[1], valid.get(tenant_id)))
            result = st.merge_partials(tenant_id, partials, key_mismatch_fraction)
    if result is None:
        results, valid, _invalid = st.scan_tenants(conn, tables, key, [tenant_id],
                                                   key_mismatch_fraction=key_mismatch_fraction)
        result = results[tenant_id]
    return result, valid, how


def _verify_after_move(conn, cur, tables, key, tenant_id, runs, result, anchors, mode, key_mismatch_fraction):
    """Segments left after the move (empty when the tenant verifies), checked in this transaction."""
    valid, _invalid = ac.check_anchors(key, st.load_anchors(cur, tables, [tenant_id]))
    mine = valid.get(tenant_id) or {}
    problems = ["anchor at resume_seq %d does not verify" % a["resume_seq"] for a in anchors
                if a["resume_seq"] not in mine]
    if mode == "full":
        results, _valid, _invalid = st.scan_tenants(conn, tables, key, [tenant_id],
                                                    key_mismatch_fraction=key_mismatch_fraction)
        return problems + ["%s %d-%d" % (s["kind"], s["first_seq"], s["last_seq"])
                           for s in results[tenant_id]["segments"] if s["kind"] in RETIRABLE]
    # Incremental: a row's verdict depends only on itself, the previous present row and the anchors,
    # so after the move only the first row after each run can change; every other segment must be
    # inside a run.
    for seg in (s for s in result["segments"] if s["kind"] in RETIRABLE):
        if not any(r["first_seq"] <= seg["first_seq"] and seg["last_seq"] <= r["last_seq"] for r in runs):
            problems.append("%s %d-%d is not retired by this plan" % (seg["kind"], seg["first_seq"], seg["last_seq"]))
    for run in runs:
        cur.execute(sql.SQL("SELECT min(seq) FROM {} WHERE tenant_id = %s AND seq > %s").format(tables.logs),
                    (tenant_id, run["last_seq"]))
        following = cur.fetchone()[0]
        if following is None:
            continue
        part = st.scan_range(cur, tables, key, tenant_id, run["first_seq"], following, mine)
        problems.extend("%s %d-%d" % (s["kind"], s["first_seq"], s["last_seq"]) for s in part["segments"]
                        if s["kind"] in RETIRABLE)
    return problems


def retire_apply(conn, tables, key, tenant_id, first, capture_manifest, backup_sha256, signoff,
                 capture_match="exact", lock_verify="incremental", lock_timeout="30s",
                 key_mismatch_fraction=ac.KEY_MISMATCH_FRACTION):
    """Retire the tenant's unverifiable seqs in ONE transaction holding the writers' lock.

    first: retire_scan's result (the plan approved outside the lock). Under the lock: verify again,
    re-plan, check the capture still holds exactly those rows and still matches the database, move
    the rows to quarantine, write the anchors, verify the tenant; any problem rolls everything back.
    Returns a dict with the anchors written, rows moved and how long the lock was held.
    """
    conn.rollback()
    conn.set_session(isolation_level="READ COMMITTED", readonly=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            started = timer()
            try:
                lock_tenant(cur, tenant_id)
            except psycopg2.errors.LockNotAvailable:
                raise st.AuditError("another session held the audit lock of tenant %r for longer than lock_timeout (%s)"
                                    % (tenant_id, lock_timeout))
            locked = timer()
            phases = {}
            cur.execute("SELECT set_config('lock_timeout', '0', true)")
            # Under the lock no rotation record of this tenant can be written: bind the keys once.
            key = ae.bind_keys(cur, tables, key, [tenant_id])
            result, valid, how = _verify_under_lock(conn, cur, tables, key, tenant_id, first, lock_verify,
                                                    key_mismatch_fraction)
            phases["verify"] = timer() - locked
            if result["probable_cause"] == "key_mismatch":
                raise RetireRefused([st.key_mismatch_words(tenant_id, result)])
            runs = plan_runs(result["segments"], valid.get(tenant_id))
            if not runs:
                conn.rollback()
                return {"changed": False, "runs": [], "anchors": [], "moved": 0, "verify_under_lock": how,
                        "lock_seconds": timer() - locked, "lock_wait_seconds": locked - started}
            problems = ar.capture_coverage_problems(capture_manifest, runs, result["segments"], capture_match)
            digest, _size, _rows = ar.capture_digest(cur, tables, tenant_id,
                                                     ar.normalize_ranges(capture_manifest.get("seq_ranges") or []))
            if digest != capture_manifest.get("sha256"):
                problems.append("the rows the capture holds changed in the database since the capture")
            if problems:
                raise RetireRefused(problems)
            phases["capture_check"] = timer() - locked - phases["verify"]
            mark = timer()
            anchors = build_anchors(cur, tables, key, tenant_id, runs, capture_manifest["sha256"], backup_sha256,
                                    signoff)
            phases["anchors"] = timer() - mark
            mark = timer()
            moved = move_rows(cur, tables, tenant_id, runs)
            expected = sum(a["retired_rows"] for a in anchors)
            if moved != expected:
                raise st.AuditError("moved %d rows to quarantine but %d were planned; rolled back" % (moved, expected))
            insert_anchors(cur, tables, anchors)
            phases["move"] = timer() - mark
            mark = timer()
            left = _verify_after_move(conn, cur, tables, key, tenant_id, runs, result, anchors, lock_verify,
                                      key_mismatch_fraction)
            phases["verify_after"] = timer() - mark
            if left:
                raise st.AuditError("tenant %r would still not verify after the retirement (%s); rolled back, nothing "
                                    "changed" % (tenant_id, "; ".join(left[:10])))
        mark = timer()
        conn.commit()
        committed = timer()
        phases["commit"] = committed - mark
    except BaseException:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass
        raise
    return {"changed": True, "runs": runs, "anchors": anchors, "moved": moved, "segments": result["segments"],
            "verify_under_lock": how, "lock_seconds": committed - locked, "lock_wait_seconds": locked - started,
            "lock_phases": dict((k, round(v, 4)) for k, v in phases.items())}
