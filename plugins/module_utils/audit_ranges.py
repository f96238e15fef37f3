# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seq ranges a capture holds, and the manifest that describes it: no Ansible imports.

Selecting ranges (merged, from the segments a scan found), copying, counting and hashing the
rows within them, and the capture manifest with its checks. Split from audit_store, which
keeps scanning and reading the chain.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from ansible_collections.alexandria.ee.plugins.module_utils import audit_scan
from ansible_collections.alexandria.ee.plugins.module_utils.audit_store import (
    ROW_COLUMNS, ROW_KINDS, AuditError, _columns, copy_to, rfc3339, same_database, utc_now)

try:
    from psycopg2 import sql
except ImportError:  # reported by the caller (pg.connect names the missing library)
    sql = None


def normalize_ranges(ranges):
    """Sorted, merged [[low, high], ...] of ints."""
    out = []
    for low, high in sorted((int(a), int(b)) for a, b in ranges):
        if high < low:
            raise AuditError("seq range %d-%d is empty" % (low, high))
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return out


def row_ranges(segments):
    """The seq ranges holding rows (hmac_mismatch, link_broken) among segments, merged."""
    return normalize_ranges([(s["first_seq"], s["last_seq"]) for s in segments if s["kind"] in ROW_KINDS])


def copy_ranges(cur, tables, tenant_id, ranges, sink, fmt="csv", header=True):
    """COPY one tenant's rows within ranges (sorted, disjoint; all eight columns, by seq) into sink; row count.

    One COPY per range, each an index range scan (a join with the ranges would scan the whole
    tenant); only the first prints the CSV header (when header), so the bytes are those of one
    COPY of them all.
    """
    if not ranges:
        # An empty selection still prints a header in CSV: keep the format identical.
        query = sql.SQL("SELECT {} FROM {} WHERE false").format(_columns(), tables.logs)
        copy_to(cur, query, (), sink, fmt, header=header)
        return 0
    query = sql.SQL("SELECT {} FROM {} WHERE tenant_id = %s AND seq BETWEEN %s AND %s ORDER BY seq").format(
        _columns(), tables.logs)
    rows = 0
    for index, (low, high) in enumerate(ranges):
        rows += copy_to(cur, query, (tenant_id, low, high), sink, fmt, header=header and index == 0)
    return rows


def count_ranges(cur, tables, tenant_id, ranges):
    query = sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s AND seq BETWEEN %s AND %s").format(tables.logs)
    total = 0
    for low, high in ranges:
        cur.execute(query, (tenant_id, low, high))
        total += int(cur.fetchone()[0])
    return total


def capture_digest(cur, tables, tenant_id, ranges):
    """(sha256, bytes, rows) of the CSV the capture of these ranges prints now."""
    sink = audit_scan.HashSink()
    copy_ranges(cur, tables, tenant_id, ranges, sink, "csv")
    return sink.hexdigest(), sink.bytes, max(0, sink.writes - 1)


def sha256_file(path, block=1 << 20):
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(block)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


CAPTURE_FORMAT = "alexandria.ee/audit-capture/v1"
BACKUP_FORMAT = "alexandria.ee/audit-backup/v1"


def capture_manifest(tenant_id, tables, selection, ranges, segments, digest, size, rows, identity, dest, now=None):
    return {
        "format": CAPTURE_FORMAT,
        "file": os.path.basename(dest),
        "tenant_id": tenant_id,
        "selection": selection,
        "seq_ranges": ranges,
        "segments": segments,
        "rows": rows,
        "bytes": size,
        "sha256": digest,
        "columns": list(ROW_COLUMNS),
        "csv": "COPY ... TO STDOUT WITH (FORMAT csv, HEADER true), ordered by seq",
        "tables": tables.describe(),
        "database": identity,
        "created_at": rfc3339(now or utc_now()),
    }


def capture_file_problems(manifest, capture_path, tenant_id, tables, identity):
    """Problems (list of words) with a capture manifest and its file, before looking at the plan."""
    if not isinstance(manifest, dict) or manifest.get("format") != CAPTURE_FORMAT:
        return ["the capture manifest is not an %s manifest" % CAPTURE_FORMAT]
    problems = []
    if manifest.get("tenant_id") != tenant_id:
        problems.append("the capture manifest is for another tenant")
    if manifest.get("tables") != tables.describe():
        problems.append("the capture manifest names other tables")
    if not same_database(manifest.get("database"), identity):
        problems.append("the capture manifest is for another database")
    try:
        digest, size = sha256_file(capture_path)
        if digest != manifest.get("sha256") or size != manifest.get("bytes"):
            problems.append("the capture file %s does not match its manifest's sha256" % capture_path)
    except (IOError, OSError) as exc:
        problems.append("the capture file %s cannot be read (%s)" % (capture_path, exc.__class__.__name__))
    return problems


def capture_coverage_problems(manifest, runs, segments, match="exact"):
    """Whether the capture holds exactly (or, match=superset, at least) the rows the runs retire."""
    plan = normalize_ranges([r for run in runs for r in run["row_ranges"]])
    captured = normalize_ranges(manifest.get("seq_ranges") or [])
    if match == "exact":
        if captured != plan:
            return ["the capture holds seq ranges %s but the rows to retire are %s: capture exactly the broken "
                    "segments again (selection=segments)" % (_ranges_text(captured), _ranges_text(plan))]
        if [dict(s) for s in manifest.get("segments") or []] != [dict(s) for s in segments]:
            return ["the capture was taken for other segments than the ones found now: capture them again"]
        return []
    uncovered = [r for r in plan if not any(c[0] <= r[0] and r[1] <= c[1] for c in captured)]
    if uncovered:
        return ["the capture does not hold seq ranges %s" % _ranges_text(uncovered)]
    return []


def _ranges_text(ranges):
    if not ranges:
        return "(none)"
    return ", ".join("%d-%d" % (a, b) if a != b else "%d" % a for a, b in ranges)
