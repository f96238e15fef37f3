# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification against checkpoints, full or incremental, and advancing them: no Ansible imports.

resolve() matches the stores' entries to tenants and checks them; verify() scans the database in
one snapshot (a checkpointed tenant whose tip and anchors are unchanged is read from its checkpoint
row on) and adds the checkpoint findings; advance() writes new checkpoints for clean tenants.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint as cpk
from ansible_collections.alexandria.ee.plugins.module_utils import audit_epochs as ae
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store as st

try:
    from psycopg2 import sql
except ImportError:  # pg.connect reports it
    sql = None


class TenantCheckpoint:
    """What the stores hold for one tenant: the checkpoint used (newest valid one), and the problems."""

    def __init__(self, tenant_id):
        self.tenant_id = tenant_id
        self.doc = None
        self.found_in = []
        self.missing_in = []
        self.problems = []
        self.why_full = None
        self.witnessed = None

    def describe(self):
        if self.doc is None:
            status = "invalid" if self.problems else "missing"
        else:
            status = "invalid" if self.problems else "ok"
        out = {"status": status, "stores": self.found_in, "missing_in": self.missing_in, "problems": self.problems}
        if self.doc is not None:
            out.update(last_seq=self.doc["last_seq"], last_row_hmac=self.doc["last_row_hmac"],
                       rows=self.doc["rows"], checked_at=self.doc["checked_at"])
        if self.witnessed:
            # Carried into this run's record, so a failed run never launders a replay for the next one.
            out.update(witnessed_last_seq=self.witnessed["last_seq"],
                       witnessed_last_row_hmac=self.witnessed["last_row_hmac"])
        return out


def resolve(loaded, key, identity, db_tenants, wanted=None):
    """Per tenant, the checkpoint to verify against.

    loaded: [(store, {name: Entry})]; db_tenants: tenants with rows; wanted: the tenants asked for
    (None: every tenant with rows or a checkpoint). Returns ({tenant: TenantCheckpoint}, orphans)
    where orphans are words about entries that belong to no tenant (unreadable, or stored under a
    name that is no tenant's).
    """
    candidates = set(db_tenants)
    for store, entries in loaded:
        for name, entry in entries.items():
            doc = entry.doc
            if isinstance(doc, dict) and isinstance(doc.get("tenant_id"), str) \
                    and store.name_for(doc["tenant_id"]) == name:
                candidates.add(doc["tenant_id"])
    if wanted is not None:
        candidates = set(wanted)
    found = dict((t, TenantCheckpoint(t)) for t in candidates)
    orphans = []
    for store, entries in loaded:
        owners = dict((store.name_for(t), t) for t in candidates)
        for name in sorted(entries):
            entry = entries[name]
            tenant_id = owners.get(name)
            if tenant_id is None:
                if wanted is None:
                    why = entry.error or "it belongs to no tenant of this deployment (renamed or copied in)"
                    orphans.append("%s: %s" % (entry.where, why))
                continue
            tcp = found[tenant_id]
            if entry.error:
                tcp.problems.append("%s: %s" % (entry.where, entry.error))
                continue
            problems = cpk.check(key, entry.doc, identity, tenant_id)
            if problems:
                tcp.problems.extend("%s: %s" % (entry.where, p) for p in problems)
                continue
            tcp.found_in.append(store.kind)
            if tcp.doc is None:
                tcp.doc = entry.doc
                continue
            # Two stores: each is the other's witness. An older copy was replaced or missed a write.
            order = cpk.ordering(tcp.doc, entry.doc)
            if order == "forward":
                tcp.problems.append("%s holds an older checkpoint (seq %d) than %s (seq %d): it was replaced by an "
                                    "older one, or a write to it failed" % (
                                        tcp.found_in[0], tcp.doc["last_seq"], store.kind, entry.doc["last_seq"]))
                tcp.doc = entry.doc
            elif order != "same":
                tcp.problems.append("%s holds an older or diverging checkpoint than %s: %s" % (
                    store.kind, tcp.found_in[0], order))
        for tenant_id, tcp in found.items():
            if store.name_for(tenant_id) not in entries:
                tcp.missing_in.append(store.kind)
    return found, orphans


def witness_from_records(records, identity):
    """(checkpoints {tenant: {last_seq, last_row_hmac}}, source words) seen by earlier real watch runs.

    records: [(path, parsed JSON or None)]. Check-mode records, other scenarios and other deployments are
    skipped (a rehearsal's record says what would have been written, not what was). Per tenant the highest
    seq any of them saw wins, a record's witnessed_* values (what it was itself shown) included.
    """
    seen = {}
    sources = []
    for path, record in records:
        if not isinstance(record, dict) or record.get("scenario") != "audit_chain_watch" or record.get("check_mode"):
            continue
        deployment = record.get("deployment") or {}
        if deployment.get("namespace") != identity.get("namespace") or \
                deployment.get("release") != identity.get("release"):
            continue
        checkpoints = (record.get("details") or {}).get("checkpoints")
        if not isinstance(checkpoints, dict):
            continue
        sources.append((str(record.get("finished_at") or ""), path))
        for tenant_id, cp in checkpoints.items():
            if not isinstance(cp, dict):
                continue
            for seq_key, hmac_key in (("last_seq", "last_row_hmac"), ("witnessed_last_seq", "witnessed_last_row_hmac")):
                seq, digest = cp.get(seq_key), cp.get(hmac_key)
                if isinstance(seq, int) and not isinstance(seq, bool) and isinstance(digest, str):
                    if tenant_id not in seen or seq > seen[tenant_id]["last_seq"]:
                        seen[tenant_id] = {"last_seq": seq, "last_row_hmac": digest}
    if not sources:
        return {}, None
    newest = max(sources)
    return seen, "the last watch run record %s (finished %s)" % (newest[1], newest[0])


def compare_witness(checkpoints, seen, source):
    """Add a problem to each tenant whose stores hold less than the witness saw (a replay or a deletion)."""
    for tenant_id, tcp in checkpoints.items():
        known = seen.get(tenant_id)
        if not known:
            continue
        if tcp.doc is None:
            tcp.witnessed = known
            if not tcp.problems:
                tcp.problems.append("no store holds a checkpoint, but %s saw seq %d: the checkpoints were deleted"
                                    % (source, known["last_seq"]))
            continue
        order = cpk.ordering(known, tcp.doc)
        if order != "same" and order != "forward":
            tcp.witnessed = known
            tcp.problems.append("the stores hold an older or diverging checkpoint than %s (%s): replaced by an "
                                "older one" % (source, order.replace("stored one", "witness' one")))


def compromised_epoch(key, tenant_id):
    """Whether a key epoch of the tenant is signed with a compromised key (its rows are then read in full)."""
    if not hasattr(key, "tenant"):
        return False
    return any(e.status == "compromised" for e in key.tenant(tenant_id).epochs)


def row_at(cur, tables, tenant_id, seq):
    """(row_hmac, occurred_at text) of one row, or None."""
    cur.execute(sql.SQL("SELECT row_hmac, occurred_at::text FROM {} WHERE tenant_id = %s AND seq = %s").format(
        tables.logs), (tenant_id, seq))
    row = cur.fetchone()
    return (row[0], row[1]) if row else None


def last_original(cur, tables, tenant_id, seq, written_at):
    """The last seq <= seq whose row is not newer than the checkpointed row (0 when every row is).

    Read backwards on the primary key from seq, so it costs the rows written again, not the tenant.
    """
    cur.execute(sql.SQL("SELECT seq FROM {} WHERE tenant_id = %s AND seq <= %s AND occurred_at <= %s::timestamptz "
                        "ORDER BY seq DESC LIMIT 1").format(tables.logs), (tenant_id, seq, written_at))
    found = cur.fetchone()
    return int(found[0]) if found else 0


def verify(conn, tables, key, checkpoints, mode="incremental", workers=1, connect=None, snapshot=None,
           key_mismatch_fraction=0.5, stats=None, max_rows=None):
    """Verify every tenant of checkpoints ({tenant: TenantCheckpoint}) in conn's snapshot.

    Returns (results {tenant: result}, invalid anchors). Each result is audit_store's, with the
    checkpoint's findings among its segments, plus mode, rows_read and checkpoint.
    """
    tenants = sorted(checkpoints)
    # A checkpoint vouches for the rows of a compromised key's epoch only when taken before the compromise.
    attested = dict((t, checkpoints[t].doc) for t in tenants if checkpoints[t].doc is not None)
    with conn.cursor() as cur:
        st.check_tables(cur, tables, ("logs", "anchors"))
        key = ae.bind_keys(cur, tables, key, tenants, attested)
        anchors_all = st.load_anchors(cur, tables, tenants)
        valid_anchors, _invalid = st.ac.check_anchors(key, anchors_all)
        facts = {}
        starts = {}
        known_bounds = {}
        for tenant_id in tenants:
            tcp = checkpoints[tenant_id]
            doc = tcp.doc
            if doc is None:
                continue
            bounds = known_bounds[tenant_id] = st.tenant_bounds(cur, tables, tenant_id)
            tip = row_at(cur, tables, tenant_id, doc["last_seq"])
            tip_unchanged = tip is not None and tip[0] == doc["last_row_hmac"]
            fact = {"max_seq": bounds[1] if bounds else None, "row_hmac": tip[0] if tip else None}
            if bounds and not tip_unchanged:
                fact["last_original"] = last_original(cur, tables, tenant_id, doc["last_seq"],
                                                      doc["last_occurred_at"])
            facts[tenant_id] = fact
            same_anchors = cpk.anchors_digest(valid_anchors.get(tenant_id)) == doc["anchors_sha256"]
            if mode != "incremental":
                continue
            if compromised_epoch(key, tenant_id):
                tcp.why_full = "a key of the tenant's chain is compromised"
            elif tip_unchanged and same_anchors:
                starts[tenant_id] = doc["last_seq"]
            elif tip_unchanged:
                tcp.why_full = "the tenant's anchors changed"
            else:
                tcp.why_full = "the checkpointed row changed" if tip else "the checkpointed row is gone"
    results, _valid, invalid = st.scan_tenants(conn, tables, key, tenants, workers, connect,
                                               key_mismatch_fraction=key_mismatch_fraction, snapshot=snapshot,
                                               stats=stats, start_seqs=starts, max_rows=max_rows,
                                               known_bounds=known_bounds)
    for tenant_id in tenants:
        res = results[tenant_id]
        tcp = checkpoints[tenant_id]
        doc = tcp.doc
        res["rows_read"] = res["rows"]
        if tenant_id in starts:
            res["mode"] = "incremental"
            # The checkpoint vouches for the rows before its seq; the scan read its row again.
            res["rows"] = doc["rows"] - 1 + res["rows"]
            res["valid_rows"] = doc["rows"] - 1 + res["valid_rows"]
            res["first_seq"] = doc["first_seq"]
        else:
            res["mode"] = "full"
        found = []
        if doc is not None:
            found.extend(cpk.tip_findings(doc, facts[tenant_id], valid_anchors.get(tenant_id)))
        if tcp.problems:
            seq = (doc or {}).get("last_seq")
            found.append(cpk.invalid_segment(seq))
        if found:
            segments = sorted(res["segments"] + found, key=lambda s: (s["first_seq"], s["kind"]))
            res["segments"] = segments
            res["verified"] = False
        res["probable_cause"] = cpk.probable_cause(res["probable_cause"], res["segments"])
        res["checkpoint"] = tcp.describe()
        if tcp.why_full:
            res["checkpoint"]["read_in_full_because"] = tcp.why_full
    return results, invalid, valid_anchors


def new_checkpoints(cur, tables, key, identity, results, valid_anchors, checked_at):
    """{tenant: signed checkpoint} for every verified tenant with rows (read in the verification's snapshot)."""
    docs = {}
    for tenant_id, res in sorted(results.items()):
        if not res["verified"] or not res["rows"] or res["last_seq"] is None:
            continue
        tip = row_at(cur, tables, tenant_id, res["last_seq"])
        if tip is None:
            continue
        docs[tenant_id] = cpk.build(key, identity, tenant_id, {
            "first_seq": res["first_seq"], "last_seq": res["last_seq"], "last_row_hmac": tip[0],
            "last_occurred_at": tip[1], "rows": res["rows"]}, valid_anchors.get(tenant_id), checked_at)
    return docs


def advance(loaded, key, identity, docs, valid_anchors, dry_run=False):
    """Write docs to every store, never backwards; dry_run only says what would be written.

    loaded: [(store, {name: Entry})] as read before the verification (dry_run compares with these;
    a real write re-reads each store under its lock). Returns (written {store kind: [tenant]}, refused [words]).
    """
    written = {}
    refused = []
    for store, entries in loaded:
        by_name = dict((store.name_for(t), t) for t in docs)

        def accept(name, current, store=store, owners=tuple(by_name.items())):
            tenant_id = dict(owners)[name]
            new = docs[tenant_id]
            if current is None:
                return True
            if current.error or cpk.check(key, current.doc, identity, tenant_id):
                refused.append("%s: the stored checkpoint of tenant %r does not verify; not replaced" % (
                    store.describe(), tenant_id))
                return False
            order = cpk.ordering(current.doc, new)
            if order == "same":
                return False
            if order == "forward" or cpk.retired_through(valid_anchors.get(tenant_id), current.doc["last_seq"]):
                return True
            refused.append("%s: tenant %r's checkpoint would move backwards (%s); not replaced" % (
                store.describe(), tenant_id, order))
            return False

        named = dict((store.name_for(t), doc) for t, doc in docs.items())
        if dry_run:
            names = [n for n in sorted(named) if accept(n, entries.get(n))]
        else:
            names = store.write(named, accept) if named else []
        written[store.kind] = sorted(by_name[n] for n in names)
    # A Secret write re-reads and asks again after a 409: each refusal once.
    return written, list(dict.fromkeys(refused))
