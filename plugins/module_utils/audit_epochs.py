# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The database side of key epochs (docs/contract.md section 4, "Key epochs"): no Ansible imports.

Reads the rotation records of a snapshot and binds a keyring to them (audit_keyring.EpochKeys), and turns
what the epochs find (unknown_key, unattested, rotation_invalid) into segments and probable causes.
audit_store's scan calls these; the pure rules are in audit_keyring.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring as akr

try:
    from psycopg2 import sql
except ImportError:  # reported by the caller (pg.connect names the missing library)
    sql = None


def load_rotations(cur, tables, tenant_ids=None):
    """{tenant: [rotation record dicts]}; {} when the deployment has no rotation table (no rotation yet)."""
    cur.execute("SELECT to_regclass(%s)", (tables.rotations.as_string(cur),))
    if cur.fetchone()[0] is None:
        return {}
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(sql.Identifier(c) for c in akr.ROTATION_COLUMNS), tables.rotations)
    params = None
    if tenant_ids is not None:
        query = query + sql.SQL(" WHERE tenant_id = ANY(%s)")
        params = (list(tenant_ids),)
    cur.execute(query, params)
    found = {}
    for row in cur.fetchall():
        record = dict(zip(akr.ROTATION_COLUMNS, row))
        record["first_seq"] = int(record["first_seq"])
        record["old_last_seq"] = int(record["old_last_seq"])
        found.setdefault(record["tenant_id"], []).append(record)
    return found


def bind_keys(cur, tables, key, tenant_ids=None, attested=None):
    """The key of every row: a Keyring is bound to the rotation records this snapshot sees.

    bytes (a caller's single key) and EpochKeys (already bound) are returned as they are.
    """
    if isinstance(key, akr.Keyring):
        return akr.EpochKeys(key, load_rotations(cur, tables, tenant_ids), attested)
    return key


def rows_between(cur, tables, tenant_id, low, high):
    """(rows, lowest seq, highest seq, row_hmac of the highest) of one tenant's rows in low..high."""
    cur.execute(sql.SQL("SELECT count(*), min(seq), max(seq) FROM {} WHERE tenant_id = %s AND seq BETWEEN %s AND %s")
                .format(tables.logs), (tenant_id, low, high))
    rows, first, last = cur.fetchone()
    if not rows:
        return 0, None, None, None
    cur.execute(sql.SQL("SELECT row_hmac FROM {} WHERE tenant_id = %s AND seq = %s").format(tables.logs),
                (tenant_id, last))
    return int(rows), int(first), int(last), cur.fetchone()[0]


def mark_unattested(cur, tables, keys, tenant_id, epoch, low, high, scan, before):
    """Turn the rows of a compromised epoch that verified (low..high, scanned into scan from segment index
    before on) and that no checkpoint taken before the compromise vouches for into unattested segments.

    Returns how many rows became unattested (they are no longer counted as valid).
    """
    cut = keys.unattested_from(tenant_id, epoch)
    if cut is None or max(cut, low) > min(high, scan.last_seq):
        return 0
    found = []
    unattested = 0
    for span_low, span_high in akr.uncovered(max(cut, low), min(high, scan.last_seq), scan.segments[before:]):
        rows, first, last, _hmac = rows_between(cur, tables, tenant_id, span_low, span_high)
        if rows:
            found.append({"first_seq": first, "last_seq": last, "rows": rows, "kind": akr.KIND_UNATTESTED})
            unattested += rows
    scan.segments[before:] = sorted(scan.segments[before:] + found, key=lambda s: s["first_seq"])
    return unattested


def epoch_cause(rows, hmac_failures, link_failures, segments, key_mismatch_fraction=ac.KEY_MISMATCH_FRACTION):
    """The chain's probable cause (audit_chain.probable_cause) from its own kinds; then the key epochs' findings."""
    chain = [s for s in segments if s["kind"] in (ac.KIND_HMAC, ac.KIND_LINK, ac.KIND_GAP)]
    cause = ac.probable_cause(rows, hmac_failures, link_failures, chain, key_mismatch_fraction)
    kinds = set(s["kind"] for s in segments)
    for kind, words in ((akr.KIND_ROTATION, "rotation_record_invalid"), (akr.KIND_UNKNOWN_KEY, "unknown_key"),
                        (akr.KIND_UNATTESTED, "compromised_key")):
        if cause is None and kind in kinds:
            cause = words
    return cause


def add_rotation_findings(result, key, tenant_id, key_mismatch_fraction=ac.KEY_MISMATCH_FRACTION):
    """Invalid rotation records become rotation_invalid segments (rows 0) with their words; epochs are listed."""
    if not isinstance(key, akr.EpochKeys):
        return
    epochs = key.tenant(tenant_id)
    if len(epochs.epochs) > 1:
        # Only after a rotation: a chain of one epoch reads as it always did.
        result["epochs"] = [e.describe() for e in epochs.epochs]
    if not epochs.problems:
        return
    result["rotation_problems"] = epochs.problems
    found = [{"first_seq": p["first_seq"], "last_seq": p["first_seq"], "rows": 0, "kind": akr.KIND_ROTATION}
             for p in epochs.problems]
    result["segments"] = sorted(result["segments"] + found, key=lambda s: (s["first_seq"], s["kind"]))
    result["verified"] = False
    result["probable_cause"] = epoch_cause(result["rows"], result["hmac_failures"], result["link_failures"],
                                           result["segments"], key_mismatch_fraction)
