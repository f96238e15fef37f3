"""Shared by the audit-chain tests: build real chains, load them with COPY, break them, run modules."""
import contextlib
import datetime
import io
import json
import os
import subprocess
import sys

import psycopg2
from psycopg2 import sql

from ansible.module_utils.testing import patch_module_args
from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store

from alexlab.schema import create_audit_tables

KEY = "integration-hmac-key-5f2c9e1d7a"
OTHER_KEY = "another-hmac-key-after-rotation-88"
UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
COLUMNS = audit_store.ROW_COLUMNS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def connect(dsn):
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
    conn.commit()
    return conn


def setup_tables(dsn, tables=None):
    tables = tables or audit_store.AuditTables()
    conn = connect(dsn)
    create_audit_tables(conn, tables.schema, tables.table, tables.anchor_table, tables.quarantine_table,
                        tables.rotation_table)
    return conn


def rows_for(tenant, n, start_seq=1, prev_hmac=ac.GENESIS, key=KEY):
    base = [dict(occurred_at=T0 + datetime.timedelta(seconds=start_seq + i, microseconds=(i * 7919) % 1000000),
                 actor="user-%d" % (i % 17), action="doc.read" if i % 3 else "user.login",
                 payload={"i": start_seq + i, "ip": "10.0.%d.%d" % (i % 250, i % 7), "tags": ["a", "b\tc"],
                          "note": "line\nnext" if i % 11 == 0 else "plain"})
            for i in range(n)]
    return ac.build_chain(key, tenant, base, start_seq=start_seq, prev_hmac=prev_hmac)


def load(conn, rows, tables=None):
    tables = tables or audit_store.AuditTables()
    buf = io.BytesIO()
    for r in rows:
        buf.write(ac.copy_line(r["tenant_id"], r["seq"], r["occurred_at"], r["actor"], r["action"], r["payload"],
                               r["prev_hmac"], r["row_hmac"]))
        buf.write(b"\n")
    buf.seek(0)
    with conn.cursor() as cur:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            tables.logs, sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)).as_string(cur)
        cur.copy_expert(statement, buf)
    conn.commit()


def tamper(conn, tenant, seqs, tables=None):
    """A direct database edit: payload changed in place, HMACs untouched (hmac_mismatch)."""
    tables = tables or audit_store.AuditTables()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET payload = payload || '{{\"edited\": true}}'::jsonb "
                            "WHERE tenant_id = %s AND seq = ANY(%s)").format(tables.logs), (tenant, list(seqs)))
    conn.commit()


def delete(conn, tenant, seqs, tables=None):
    tables = tables or audit_store.AuditTables()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} WHERE tenant_id = %s AND seq = ANY(%s)").format(tables.logs),
                    (tenant, list(seqs)))
    conn.commit()


def table_state(conn, tables=None):
    """md5 and count of every row of the three tables, in key order: equal means byte-identical rows."""
    tables = tables or audit_store.AuditTables()
    state = {}
    with conn.cursor() as cur:
        for name, ident, order in (("logs", tables.logs, "tenant_id, seq"),
                                   ("anchors", tables.anchors, "tenant_id, resume_seq"),
                                   ("quarantine", tables.quarantine, "tenant_id, seq")):
            cur.execute(sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {}), ''))"
                                " FROM {} t").format(sql.SQL(order), ident))
            state[name] = cur.fetchone()
    conn.rollback()
    return state


def row_versions(conn, tables=None):
    """md5 of every row's physical version (ctid, xmin) in the three tables: equal means nothing was written,
    not even a row rewritten with the same values."""
    tables = tables or audit_store.AuditTables()
    out = {}
    with conn.cursor() as cur:
        for name, ident in (("logs", tables.logs), ("anchors", tables.anchors), ("quarantine", tables.quarantine)):
            cur.execute(sql.SQL("SELECT md5(coalesce(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid), ''))"
                                " FROM {}").format(ident))
            out[name] = cur.fetchone()[0]
    conn.rollback()
    return out


def run_module(module, args, check_mode=False, diff=False):
    """Run a module's main() in-process (patch_module_args); returns its JSON result."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            module.main()
        except SystemExit:
            pass
    text = out.getvalue()
    result = json.loads(text[text.index("{"):])
    # ansible-core 2.19 returns warnings as structured summaries; tests read the text.
    result["warnings"] = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
    return result


def run_module_process(module_name, args, env=None, **popen):
    """Start a module as its own process (python -m ...), args through a file; returns the Popen."""
    path = popen.pop("args_path")
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    return subprocess.Popen([sys.executable, "-m", "ansible_collections.alexandria.ee.plugins.modules." + module_name,
                             path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO, **popen)


def write_audit(conn, tenant, action, key=KEY, tables=None, payload=None):
    """One audit write exactly as the contract's writers do it; returns the seq written.

    Raises ChainBroken when the tenant's tip does not verify (the API answers 409 then).
    """
    tables = tables or audit_store.AuditTables()
    with conn.cursor() as cur:
        cur.execute(ac.TENANT_LOCK_SQL, (tenant,))
        cur.execute(sql.SQL("SELECT seq, occurred_at, actor, action, payload::text, prev_hmac, row_hmac FROM {} "
                            "WHERE tenant_id = %s ORDER BY seq DESC LIMIT 2").format(tables.logs), (tenant,))
        tip = cur.fetchall()
        cur.execute(sql.SQL("SELECT resume_seq, resume_prev_hmac, retired_last_seq FROM {} WHERE tenant_id = %s")
                    .format(tables.anchors), (tenant,))
        anchors = dict((r[0], r) for r in cur.fetchall())
        cur.execute(sql.SQL("SELECT max(seq) FROM {} WHERE tenant_id = %s").format(tables.quarantine), (tenant,))
        quarantined = cur.fetchone()[0] or 0
        if tip:
            last = tip[0]
            message = ac.row_message(tenant, last[0], last[1], last[2], last[3], last[4], last[5])
            link = tip[1][6] if len(tip) > 1 and tip[1][0] == last[0] - 1 else (
                anchors[last[0]][1] if last[0] in anchors else (ac.GENESIS if last[0] == 1 else None))
            if ac.row_hmac(key, message) != last[6] or (link is not None and link != last[5]):
                conn.rollback()
                raise ChainBroken("audit chain broken: tenant %r seq %d" % (tenant, last[0]))
        top = max([tip[0][0] if tip else 0, quarantined] + [a[2] for a in anchors.values()])
        seq = top + 1
        if tip and tip[0][0] == seq - 1:
            prev = tip[0][6]
        elif seq in anchors:
            prev = anchors[seq][1]
        else:
            prev = ac.GENESIS
        cur.execute("SELECT now()")
        now = cur.fetchone()[0]
        payload = payload if payload is not None else {"n": seq}
        digest = ac.row_hmac(key, ac.row_message(tenant, seq, now, "writer", action, payload, prev))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)").format(tables.logs),
                    (tenant, seq, now, "writer", action, ac.jsonb_text(payload), prev, digest))
    conn.commit()
    return seq


class ChainBroken(Exception):
    pass
