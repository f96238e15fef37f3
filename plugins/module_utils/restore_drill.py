# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore drills of an audit backup, and what restoring a backup would lose: no Ansible imports.

A drill restores the whole backup (pg_restore, one transaction) into a scratch database that it
creates on the live database's server, never into the live one, and checks the restored audit tables
against the backup manifest's fingerprints. The scratch database carries a marker comment: only a
database with that marker is ever dropped.

What a restore would lose is computed per tenant from two answers: the backup's (its tip, and its
findings against the live deployment's checkpoints - truncated, rolled_back, tenant_missing) and the
live database's (its tip now). The rows up to the checkpoint that the backup lacks are lost against
the checkpoint; the rows the live database holds after max(checkpoint, backup tip) are lost too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import subprocess

from ansible_collections.alexandria.ee.plugins.module_utils import audit_backup
from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint as cpk
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store

try:
    from psycopg2 import sql
except ImportError:  # pg.connect reports it
    sql = None

SCRATCH_MARKER = "alexandria.ee restore drill scratch database (safe to drop)"
# Lowercase, so the name needs no quoting anywhere an SRE types it (psql, DROP DATABASE).
_SCRATCH_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The checkpoint findings that mean rows the checkpoint vouches for are not in the backup.
LOSS_KINDS = (cpk.KIND_TRUNCATED, cpk.KIND_ROLLED_BACK, cpk.KIND_TENANT_MISSING)


class DrillError(audit_store.AuditError):
    """A drill that cannot go on, phrased for an operator."""


# ---------------------------------------------------------------------------------------------
# The scratch database


def scratch_name_problems(name, live_identity):
    """Why name must not be used as the scratch database (list of words; empty when it may)."""
    if not _SCRATCH_NAME.match(name or ""):
        return ["the scratch database name %r is not 1-63 of [a-z0-9_] starting with a letter or _" % (name,)]
    if name == (live_identity or {}).get("database"):
        return ["the scratch database %r is the live database: a drill never restores into it" % name]
    if name in ("postgres", "template0", "template1"):
        return ["the scratch database must not be %r" % name]
    return []


def database_marker(cur, name):
    """None when no database name exists; otherwise whether it carries the scratch marker."""
    cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,))
    row = cur.fetchone()
    if row is None:
        return None
    return row[0] == SCRATCH_MARKER


def create_scratch(conn, name):
    """CREATE DATABASE name (template0, UTF8) with the marker comment; conn is put in autocommit."""
    conn.rollback()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
        cur.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(SCRATCH_MARKER)))


def drop_scratch(conn, name, server_version_num):
    """Drop the scratch database name when it exists; True when dropped. Refuses a database without the marker."""
    conn.rollback()
    conn.autocommit = True
    with conn.cursor() as cur:
        marked = database_marker(cur, name)
        if marked is None:
            return False
        if not marked:
            raise DrillError("database %r exists but is not a restore drill's scratch database (it has no marker "
                             "comment); not dropped" % name)
        # WITH (FORCE) (PostgreSQL 13+) ends sessions left in it, for example an SRE's psql after an inspection.
        force = sql.SQL(" WITH (FORCE)") if server_version_num >= 130000 else sql.SQL("")
        cur.execute(sql.SQL("DROP DATABASE {}{}").format(sql.Identifier(name), force))
    return True


def restore_whole_dump(pg_restore, path, conninfo, env, secrets=()):
    """pg_restore the whole dump into the (empty) scratch database, in one transaction, stopping at any error.

    Objects are owned by the connecting user (--no-owner, --no-privileges): the drill checks the data, not
    the roles of the production cluster.
    """
    argv = [pg_restore, "--no-owner", "--no-privileges", "--no-comments", "--exit-on-error", "--single-transaction",
            "--no-password", "--dbname=" + conninfo, path]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DrillError("pg_restore could not run: %s" % exc.__class__.__name__)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DrillError(audit_backup.audit_store_mask(
            "pg_restore into the scratch database failed (exit %d): %s" % (proc.returncode, " / ".join(err[-3:])),
            secrets))


# ---------------------------------------------------------------------------------------------
# The backup's tips, read from the dump itself (no database needed)


_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)")
_COPY_LINE = re.compile(r"^COPY .* \(([^()]*)\) FROM stdin;$")


def copy_text_field(raw):
    """One field of PostgreSQL's COPY text format, unescaped (None for \\N)."""
    if raw == "\\N":
        return None
    if "\\" not in raw:
        return raw

    def one(match):
        text = match.group(1)
        if text[0] == "x" and len(text) > 1:
            return chr(int(text[1:], 16))
        if text[0] in "01234567":
            return chr(int(text, 8))
        return _COPY_ESCAPES.get(text, text)
    return _ESCAPE.sub(one, raw)


def scan_copy_rows(lines, at_seqs=None):
    """Per tenant {rows, first_seq, last_seq, last_row_hmac, row_hmac_at} from the COPY block of an audit table.

    lines: the text lines of pg_restore's script (newline stripped); at_seqs: {tenant: seq} whose row_hmac
    to return in row_hmac_at (None when the dump has no such row).
    """
    at_seqs = at_seqs or {}
    tips = {}
    columns = None
    for line in lines:
        if columns is None:
            match = _COPY_LINE.match(line)
            if match:
                columns = [c.strip().strip('"') for c in match.group(1).split(",")]
                try:
                    where = [columns.index(c) for c in ("tenant_id", "seq", "row_hmac")]
                except ValueError:
                    raise DrillError("the dump's audit rows have no tenant_id, seq or row_hmac column")
            continue
        if line == "\\.":
            return tips
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise DrillError("the dump's audit rows are not in COPY text format")
        tenant_id = copy_text_field(fields[where[0]])
        seq = int(fields[where[1]])
        row_hmac = copy_text_field(fields[where[2]])
        tip = tips.setdefault(tenant_id, {"rows": 0, "first_seq": seq, "last_seq": seq, "last_row_hmac": row_hmac,
                                          "row_hmac_at": None})
        tip["rows"] += 1
        tip["first_seq"] = min(tip["first_seq"], seq)
        if seq >= tip["last_seq"]:
            tip["last_seq"], tip["last_row_hmac"] = seq, row_hmac
        if at_seqs.get(tenant_id) == seq:
            tip["row_hmac_at"] = row_hmac
    if columns is None:
        raise DrillError("the dump holds no audit rows")
    raise DrillError("the dump's audit rows end without their terminator")


def dump_tips(pg_restore, path, tables, at_seqs=None, secrets=()):
    """scan_copy_rows over the audit rows table of a custom-format dump (streamed, memory flat per tenant)."""
    argv = [pg_restore, "--data-only", "--schema=" + tables.schema, "--table=" + tables.table, "--file=-", path]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise DrillError("pg_restore could not run: %s" % exc.__class__.__name__)
    try:
        lines = (raw.decode("utf-8").rstrip("\r\n") for raw in iter(proc.stdout.readline, b""))
        tips = scan_copy_rows(lines, at_seqs)
        proc.stdout.read()
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise DrillError(audit_backup.audit_store_mask("pg_restore --data-only failed (exit %d): %s" % (code, err),
                                                       secrets))
    return tips


def checkpoint_of(live_result):
    """The checkpoint a live verification used for one tenant ({last_seq, last_row_hmac, rows}), or None."""
    cp = live_result.get("checkpoint") if isinstance(live_result, dict) else None
    if not isinstance(cp, dict) or not isinstance(cp.get("last_seq"), int) or isinstance(cp["last_seq"], bool):
        return None
    return cp


def backup_findings(tips, live_tenants):
    """Per tenant of the backup or the checkpoints: {last_seq, rows, segments} - the backup against the checkpoints.

    The same rules as a verification against checkpoints (audit_checkpoint.tip_findings), from the dump's tips.
    A rolled_back finding covers only the checkpointed seq here: where the rows written after the checkpointed
    one begin needs their times, which a restore drill (a verification of the restored backup) gives.
    """
    out = {}
    for tenant_id in sorted(set(tips) | set(live_tenants or {})):
        tip = tips.get(tenant_id)
        cp = checkpoint_of((live_tenants or {}).get(tenant_id))
        if tip is None and cp is None:
            continue
        segments = []
        if cp is not None:
            doc = {"first_seq": 1, "last_seq": cp["last_seq"], "last_row_hmac": cp.get("last_row_hmac"),
                   "rows": cp.get("rows") or 0}
            facts = {"max_seq": tip["last_seq"] if tip else None,
                     "row_hmac": tip["row_hmac_at"] if tip else None}
            segments = cpk.tip_findings(doc, facts)
        out[tenant_id] = {"last_seq": tip["last_seq"] if tip else None, "rows": tip["rows"] if tip else 0,
                          "segments": segments}
    return out


# ---------------------------------------------------------------------------------------------
# What a restore would lose


def _span(first, last):
    return {"first_seq": first, "last_seq": last, "rows": last - first + 1}


def loss_report(backup_tenants, live_tenants):
    """What restoring the backup would lose, per tenant and in total.

    backup_tenants: {tenant: {last_seq, segments}} - a verification of the restored backup against the live
    deployment's checkpoints (tenants of alex_audit_verify), or backup_findings(); live_tenants: a verification
    of the live database (tenants of alex_audit_verify, with its checkpoint when a store is set).
    Per tenant: lost_up_to_checkpoint (the truncated, rolled_back and tenant_missing segments) and
    lost_after_checkpoint (the seqs the live database holds after max(checkpoint seq, backup tip), or None).
    """
    backup_tenants = backup_tenants or {}
    live_tenants = live_tenants or {}
    tenants = {}
    for tenant_id in sorted(set(backup_tenants) | set(live_tenants)):
        backup = backup_tenants.get(tenant_id) or {}
        live = live_tenants.get(tenant_id) or {}
        cp = checkpoint_of(live) or checkpoint_of(backup)
        cp_seq = cp["last_seq"] if cp else None
        backup_tip = backup.get("last_seq") if backup.get("rows", 1) else None
        live_tip = live.get("last_seq") if live.get("rows", 1) else None
        up_to = [dict((k, s[k]) for k in ("first_seq", "last_seq", "rows", "kind"))
                 for s in backup.get("segments") or () if s.get("kind") in LOSS_KINDS]
        start = max(cp_seq or 0, backup_tip or 0) + 1
        after = _span(start, live_tip) if live_tip is not None and live_tip >= start else None
        rows = sum(s["rows"] for s in up_to) + (after["rows"] if after else 0)
        tenants[tenant_id] = {"backup_last_seq": backup_tip, "checkpoint_seq": cp_seq, "live_last_seq": live_tip,
                              "lost_up_to_checkpoint": up_to, "lost_after_checkpoint": after, "rows_lost": rows}
    losing = sorted(t for t, v in tenants.items() if v["rows_lost"])
    return {"tenants": tenants, "tenants_losing": losing, "rows_lost": sum(v["rows_lost"] for v in tenants.values()),
            "lines": loss_lines(tenants)}


def loss_lines(tenants):
    """One line per tenant that would lose rows, for people."""
    lines = []
    for tenant_id, loss in sorted(tenants.items()):
        if not loss["rows_lost"]:
            continue
        parts = ["%s seq %d-%d (%d rows) up to checkpoint seq %s" % (
            s["kind"], s["first_seq"], s["last_seq"], s["rows"], loss["checkpoint_seq"])
            for s in loss["lost_up_to_checkpoint"]]
        after = loss["lost_after_checkpoint"]
        if after:
            parts.append("seq %d-%d (%d rows) written after the %s, held by the live database now" % (
                after["first_seq"], after["last_seq"], after["rows"],
                "checkpoint" if loss["checkpoint_seq"] and loss["checkpoint_seq"] >= (loss["backup_last_seq"] or 0)
                else "backup"))
        lines.append("tenant %r would lose %d rows: %s" % (tenant_id, loss["rows_lost"], "; ".join(parts)))
    return lines
