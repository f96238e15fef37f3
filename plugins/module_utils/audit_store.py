# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The database side of the audit chain (docs/contract.md section 4): no Ansible imports.

Verification streams ``COPY (...) TO STDOUT`` (text format) through audit_scan.ScanSink,
which checks the rows a cache-sized batch at a time and hands anything unusual to
audit_chain.TenantScan; memory stays flat in row count. A tenant's seq range can be cut
into chunks that run in several processes reading one exported snapshot: each row only
needs its own bytes and the previous present row's stored row_hmac, so a chunk starts
from the row before it.

Export streams ``COPY (...) TO STDOUT WITH (FORMAT csv, HEADER)`` into files (audit_capture.py
writes them; capture_digest hashes what the database prints now). Retirement, which moves rows
to the quarantine table and writes anchors under the writers' per-tenant lock, is audit_retire.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import multiprocessing
import multiprocessing.util
import os

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_epochs as ae
from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring as akr
from ansible_collections.alexandria.ee.plugins.module_utils import audit_scan

try:
    import psycopg2
    import psycopg2.errors
    import psycopg2.extensions
    from psycopg2 import sql
    HAS_PSYCOPG2 = True
except ImportError:  # reported by the caller (pg.connect names the missing library)
    HAS_PSYCOPG2 = False

ROW_COLUMNS = ("tenant_id", "seq", "occurred_at", "actor", "action", "payload", "prev_hmac", "row_hmac")
ANCHOR_COLUMNS = ac.ANCHOR_FIELDS + ("anchor_hmac",)
ROW_KINDS = (ac.KIND_HMAC, ac.KIND_LINK)
# Below this many rows in all, verification stays in one process.
PARALLEL_MIN_ROWS = 20000
MIN_CHUNK_ROWS = 10000


# Defined beside the codec so that the pure sinks (audit_scan) raise the same error.
AuditError = ac.AuditError


class AuditTables:
    """The three table names of the contract, quoted as identifiers wherever they are used."""

    def __init__(self, schema="public", table="audit_logs", anchor_table="audit_chain_anchors",
                 quarantine_table="audit_quarantine", rotation_table="audit_key_rotations"):
        self.schema = schema
        self.table = table
        self.anchor_table = anchor_table
        self.quarantine_table = quarantine_table
        self.rotation_table = rotation_table

    @property
    def logs(self):
        return sql.Identifier(self.schema, self.table)

    @property
    def anchors(self):
        return sql.Identifier(self.schema, self.anchor_table)

    @property
    def quarantine(self):
        return sql.Identifier(self.schema, self.quarantine_table)

    @property
    def rotations(self):
        return sql.Identifier(self.schema, self.rotation_table)

    def describe(self):
        return {"schema": self.schema, "table": self.table, "anchor_table": self.anchor_table,
                "quarantine_table": self.quarantine_table}


def _columns(names=ROW_COLUMNS, prefix=None):
    if prefix:
        return sql.SQL(", ").join(sql.Identifier(prefix, c) for c in names)
    return sql.SQL(", ").join(sql.Identifier(c) for c in names)


# Streaming sessions: the (tenant_id, seq) primary key already delivers rows in order, so a sort is
# never needed, and parallel query workers would compete with the verification processes for the
# same cores (measured: 6.9 s instead of 5.6 s for 1M rows on 2 cores).
STREAM_SETTINGS = "SET max_parallel_workers_per_gather = 0; SET enable_sort = off"


def tune_session(conn):
    """Apply STREAM_SETTINGS to a connection this code owns (session level)."""
    with conn.cursor() as cur:
        cur.execute(STREAM_SETTINGS)
    conn.commit()
    return conn


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(value):
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


# ---------------------------------------------------------------------------------------------
# COPY plumbing


def copy_to(cur, query, params, sink, fmt="text", header=True):
    """Run COPY (query) TO STDOUT into sink (anything with write(bytes)); params are bound safely."""
    if fmt == "text":
        options = sql.SQL("")
    else:
        options = sql.SQL(" WITH (FORMAT csv, HEADER true)") if header else sql.SQL(" WITH (FORMAT csv)")
    statement = sql.SQL("COPY ({}) TO STDOUT{}").format(query, options)
    text = cur.mogrify(statement, params)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    cur.copy_expert(text, sink)
    return cur.rowcount


# ---------------------------------------------------------------------------------------------
# Reading


def database_identity(cur):
    """What names this database: cluster system identifier (when readable), name, server version."""
    cur.execute("SELECT current_database(), current_setting('server_version_num')::int, "
                "current_setting('server_version')")
    name, version_num, version = cur.fetchone()
    system_identifier = None
    cur.execute("SAVEPOINT alex_identity")
    try:
        cur.execute("SELECT system_identifier::text FROM pg_control_system()")
        system_identifier = cur.fetchone()[0]
        cur.execute("RELEASE SAVEPOINT alex_identity")
    except psycopg2.Error:
        cur.execute("ROLLBACK TO SAVEPOINT alex_identity")
    return {"system_identifier": system_identifier, "database": name, "server_version_num": version_num,
            "server_version": version}


def same_database(a, b):
    """Whether two identities name the same database (system identifier compared when both have it)."""
    if not a or not b or a.get("database") != b.get("database"):
        return False
    if a.get("system_identifier") and b.get("system_identifier"):
        return a["system_identifier"] == b["system_identifier"]
    return True


def check_tables(cur, tables, need=("logs",)):
    """AuditError naming any missing table."""
    missing = []
    for attr in need:
        name = {"logs": tables.table, "anchors": tables.anchor_table, "quarantine": tables.quarantine_table}[attr]
        cur.execute("SELECT to_regclass(%s)", (sql.Identifier(tables.schema, name).as_string(cur),))
        if cur.fetchone()[0] is None:
            missing.append("%s.%s" % (tables.schema, name))
    if missing:
        raise AuditError("table(s) not found: %s (check the schema/table options)" % ", ".join(missing))


def list_tenants(cur, tables):
    """Every tenant with rows, by a loose index scan on the (tenant_id, seq) primary key."""
    query = sql.SQL(
        "WITH RECURSIVE t AS ("
        " (SELECT tenant_id FROM {logs} ORDER BY tenant_id LIMIT 1)"
        " UNION ALL"
        " SELECT (SELECT l.tenant_id FROM {logs} l WHERE l.tenant_id > t.tenant_id ORDER BY l.tenant_id LIMIT 1)"
        " FROM t WHERE t.tenant_id IS NOT NULL)"
        " SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL").format(logs=tables.logs)
    cur.execute(query)
    return [row[0] for row in cur.fetchall()]


def tenant_bounds(cur, tables, tenant_id):
    cur.execute(sql.SQL("SELECT min(seq), max(seq) FROM {} WHERE tenant_id = %s").format(tables.logs), (tenant_id,))
    low, high = cur.fetchone()
    return (low, high) if low is not None else None


def load_anchors(cur, tables, tenant_ids=None):
    """Anchor rows as dicts (ints for the integer fields), optionally for some tenants only."""
    query = sql.SQL("SELECT {} FROM {}").format(_columns(ANCHOR_COLUMNS), tables.anchors)
    params = None
    if tenant_ids is not None:
        query = query + sql.SQL(" WHERE tenant_id = ANY(%s)")
        params = (list(tenant_ids),)
    query = query + sql.SQL(" ORDER BY tenant_id, resume_seq")
    cur.execute(query, params)
    anchors = []
    for row in cur.fetchall():
        anchor = dict(zip(ANCHOR_COLUMNS, row))
        for name in ("resume_seq", "retired_first_seq", "retired_last_seq", "retired_rows"):
            anchor[name] = int(anchor[name])
        anchors.append(anchor)
    return anchors


def previous_row(cur, tables, tenant_id, seq):
    """(seq, row_hmac) of the last present row before seq, or (0, GENESIS)."""
    cur.execute(sql.SQL("SELECT seq, row_hmac FROM {} WHERE tenant_id = %s AND seq < %s "
                        "ORDER BY seq DESC LIMIT 1").format(tables.logs), (tenant_id, seq))
    row = cur.fetchone()
    return (int(row[0]), row[1]) if row else (0, ac.GENESIS)


def scan_range(cur, tables, key, tenant_id, low, high, anchors=None):
    """Verify one tenant's rows with low <= seq <= high; returns a partial result (see merge_partials).

    Each key epoch of the range is streamed with its own key. Rows of an epoch whose key is not in the
    keyring are one unknown_key segment (their links are still followed); rows of a compromised epoch that
    verify but that no checkpoint taken before the compromise vouches for are unattested.
    """
    keys = akr.as_epoch_keys(key)
    start_seq, start_hmac = previous_row(cur, tables, tenant_id, low)
    scan = ac.TenantScan(tenant_id, anchors)
    scan.last_seq = start_seq
    scan.last_row_hmac = start_hmac
    query = sql.SQL("SELECT {} FROM {} WHERE tenant_id = %s AND seq BETWEEN %s AND %s ORDER BY seq").format(
        _columns(), tables.logs)
    first_seq = None
    unattested = 0
    for epoch, lo, hi in keys.tenant(tenant_id).spans(low, high):
        if epoch.key is None:
            rows, first, last, last_hmac = ae.rows_between(cur, tables, tenant_id, lo, hi)
            if rows:
                scan.rows += rows
                scan.segments.append({"first_seq": first, "last_seq": last, "rows": rows,
                                      "kind": akr.KIND_UNKNOWN_KEY})
                scan.last_seq, scan.last_row_hmac = last, last_hmac
                first_seq = first if first_seq is None else first_seq
            continue
        before = len(scan.segments)
        sink = audit_scan.ScanSink(epoch.key, scan)
        copy_to(cur, query, (tenant_id, lo, hi), sink)
        sink.finish()
        if first_seq is None:
            first_seq = sink.first_seq
        unattested += ae.mark_unattested(cur, tables, keys, tenant_id, epoch, lo, hi, scan, before)
    scan.valid_rows -= unattested
    return {
        "tenant_id": tenant_id, "low": low, "high": high, "rows": scan.rows, "valid_rows": scan.valid_rows,
        "hmac_failures": scan.hmac_failures, "link_failures": scan.link_failures, "segments": scan.segments,
        "first_seq": first_seq, "last_seq": scan.last_seq if scan.rows else None,
        "last_row_hmac": scan.last_row_hmac if scan.rows else None,
    }


def merge_partials(tenant_id, partials, key_mismatch_fraction=ac.KEY_MISMATCH_FRACTION):
    """One tenant's result from its chunks (any order): the same as one scan of all its rows."""
    partials = sorted(partials, key=lambda p: p["low"])
    rows = valid = hmac_failures = link_failures = 0
    segments = []
    first_seq = last_seq = last_row_hmac = None
    for part in partials:
        rows += part["rows"]
        valid += part["valid_rows"]
        hmac_failures += part["hmac_failures"]
        link_failures += part["link_failures"]
        if part["rows"]:
            if first_seq is None:
                first_seq = part["first_seq"]
            last_seq = part["last_seq"]
            last_row_hmac = part["last_row_hmac"]
        for seg in part["segments"]:
            if segments and segments[-1]["kind"] == seg["kind"] and segments[-1]["last_seq"] == seg["first_seq"] - 1:
                segments[-1]["last_seq"] = seg["last_seq"]
                segments[-1]["rows"] += seg["rows"]
            else:
                segments.append(dict(seg))
    return {
        "rows": rows, "valid_rows": valid, "segments": segments, "verified": not segments,
        "probable_cause": ae.epoch_cause(rows, hmac_failures, link_failures, segments, key_mismatch_fraction),
        "hmac_failures": hmac_failures, "link_failures": link_failures,
        "first_seq": first_seq, "last_seq": last_seq, "last_row_hmac": last_row_hmac,
    }


def plan_chunks(bounds, workers, chunk_rows=None, min_parallel_rows=PARALLEL_MIN_ROWS):
    """[(tenant_id, low, high)] covering each tenant's seq range; cut finer when several workers run."""
    total = sum(high - low + 1 for low, high in bounds.values())
    if workers <= 1 or total < min_parallel_rows:
        size = None
    else:
        size = chunk_rows or max(MIN_CHUNK_ROWS, -(-total // (workers * 4)))
    chunks = []
    for tenant_id, (low, high) in bounds.items():
        if size is None:
            chunks.append((tenant_id, low, high))
            continue
        start = low
        while start <= high:
            end = min(high, start + size - 1)
            chunks.append((tenant_id, start, end))
            start = end + 1
    return chunks


# ---------------------------------------------------------------------------------------------
# Parallel verification: forked workers, one exported snapshot

_WORKER = {}


def connect_to_snapshot(connect, snapshot):
    """A new session (connect()) in a read-only transaction that sees exactly the exported snapshot."""
    conn = connect()
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
    except BaseException:
        conn.close()
        raise
    return conn


def _worker_init(connect, snapshot, key, tables):
    conn = connect_to_snapshot(connect, snapshot)
    _WORKER.update(conn=conn, key=key, tables=tables)
    multiprocessing.util.Finalize(None, conn.close, exitpriority=10)


def _worker_scan(task):
    tenant_id, low, high, anchors = task
    with _WORKER["conn"].cursor() as cur:
        return scan_range(cur, _WORKER["tables"], _WORKER["key"], tenant_id, low, high, anchors)


class SnapshotTransaction:
    """A REPEATABLE READ READ ONLY transaction on conn for the block; rolled back at the end."""

    def __init__(self, conn, export=False):
        self.conn = conn
        self.export = export
        self.snapshot = None
        self._saved = None

    def __enter__(self):
        self.conn.rollback()
        self._saved = (self.conn.isolation_level, self.conn.readonly)
        self.conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with self.conn.cursor() as cur:
            if self.export:
                cur.execute("SELECT pg_export_snapshot()")
                self.snapshot = cur.fetchone()[0]
            else:
                cur.execute("SELECT 1")
        return self

    def __exit__(self, *exc):
        try:
            self.conn.rollback()
            self.conn.set_session(isolation_level=self._saved[0], readonly=self._saved[1])
        except psycopg2.Error:
            pass
        return False


def default_workers():
    return max(1, min(4, os.cpu_count() or 1))


def scan_tenants(conn, tables, key, tenant_ids=None, workers=1, connect=None, chunk_rows=None,
                 key_mismatch_fraction=ac.KEY_MISMATCH_FRACTION, snapshot=None, min_parallel_rows=PARALLEL_MIN_ROWS, stats=None,
                 start_seqs=None, max_rows=None, known_bounds=None, attested=None):
    """Verify tenants (all when tenant_ids is None) in conn's current transaction/snapshot.

    start_seqs: {tenant: seq} reads only that tenant's rows from seq on (incremental verification
    from a checkpoint: the row before seq is still read for the link). known_bounds: {tenant: (min, max)
    or None} already read in this snapshot, so they are not asked for again.

    With workers > 1 and connect (a callable opening a new connection), chunks run in forked
    processes that import `snapshot` (an exported snapshot id of conn's transaction).
    Returns (results {tenant: result}, valid anchors {tenant: {resume_seq: anchor}}, invalid [..]);
    stats, when a dict, gets the number of processes and chunks used.
    key: bytes, an audit_keyring.Keyring (bound here to the snapshot's rotation records; attested:
    {tenant: checkpoint} for the unattested rows of compromised epochs) or EpochKeys.
    """
    with conn.cursor() as cur:
        check_tables(cur, tables, ("logs", "anchors"))
        if tenant_ids is None:
            tenant_ids = list_tenants(cur, tables)
        key = ae.bind_keys(cur, tables, key, tenant_ids, attested)
        bounds = {}
        for tenant_id in tenant_ids:
            if known_bounds is not None and tenant_id in known_bounds:
                found = known_bounds[tenant_id]
            else:
                found = tenant_bounds(cur, tables, tenant_id)
            if found and start_seqs and tenant_id in start_seqs:
                found = (max(found[0], start_seqs[tenant_id]), found[1])
                if found[0] > found[1]:
                    found = None
            if found:
                bounds[tenant_id] = found
        anchors = load_anchors(cur, tables, None if tenant_ids is None else tenant_ids)
    valid, invalid = ac.check_anchors(key, anchors)
    planned = sum(high - low + 1 for low, high in bounds.values())
    if max_rows and planned > max_rows:
        # Checked before reading a row: a bounded check (fleet health) must not turn into a full table read.
        raise AuditError("this verification would read about %d rows, more than max_rows=%d: run the audit chain "
                         "watch (incremental, with checkpoints) or raise max_rows" % (planned, max_rows))
    if not (connect and snapshot):
        workers = 1
    chunks = plan_chunks(bounds, workers, chunk_rows, min_parallel_rows)
    total = sum(high - low + 1 for low, high in bounds.values())
    partials = {}
    parallel = len(chunks) > 1 and workers > 1 and total >= min_parallel_rows
    if stats is not None:
        stats.update(processes=min(workers, len(chunks)) if parallel else 1, chunks=len(chunks))
    if parallel:
        tasks = [(t, low, high, valid.get(t)) for t, low, high in sorted(chunks, key=lambda c: c[1] - c[2])]
        context = multiprocessing.get_context("fork")
        from concurrent.futures import ProcessPoolExecutor  # only this path needs it
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                                 initializer=_worker_init, initargs=(connect, snapshot, key, tables)) as pool:
            for part in pool.map(_worker_scan, tasks):
                partials.setdefault(part["tenant_id"], []).append(part)
    else:
        with conn.cursor() as cur:
            for tenant_id, low, high in chunks:
                part = scan_range(cur, tables, key, tenant_id, low, high, valid.get(tenant_id))
                partials.setdefault(tenant_id, []).append(part)
    results = {}
    for tenant_id in tenant_ids:
        if tenant_id in partials:
            results[tenant_id] = merge_partials(tenant_id, partials[tenant_id], key_mismatch_fraction)
        else:
            results[tenant_id] = merge_partials(tenant_id, [], key_mismatch_fraction)
        results[tenant_id]["invalid_anchors"] = [a["resume_seq"] for a in invalid if a["tenant_id"] == tenant_id]
        ae.add_rotation_findings(results[tenant_id], key, tenant_id, key_mismatch_fraction)
    return results, valid, invalid


def verify(conn, tables, key, tenant_ids=None, workers=1, connect=None, chunk_rows=None,
           key_mismatch_fraction=ac.KEY_MISMATCH_FRACTION, min_parallel_rows=PARALLEL_MIN_ROWS, stats=None):
    """Verify in one consistent snapshot (exported to the workers when there are several)."""
    with SnapshotTransaction(conn, export=workers > 1 and connect is not None) as txn:
        return scan_tenants(conn, tables, key, tenant_ids, workers, connect, chunk_rows, key_mismatch_fraction,
                            snapshot=txn.snapshot, min_parallel_rows=min_parallel_rows, stats=stats)


def public_result(result):
    """What a module returns for one tenant (internal scan state left out)."""
    keep = ("rows", "valid_rows", "segments", "verified", "probable_cause", "first_seq", "last_seq",
            "invalid_anchors", "mode", "rows_read", "checkpoint", "epochs", "rotation_problems")
    return dict((k, result[k]) for k in keep if k in result)


def key_mismatch_words(tenant_id, result):
    return ("tenant %r: %d of %d rows fail their HMAC while the links between them hold (probable_cause "
            "key_mismatch): the rows were most likely written with another HMAC key, so they are a valid log. "
            "Retiring them would quarantine that log; check the audit HMAC key (Secret key audit-hmac-key) and "
            "follow key rotation (key-rotation.md) instead"
            % (tenant_id, result["hmac_failures"], result["rows"]))
