"""alex_audit_backup against a real PostgreSQL: pg_dump on an exported snapshot, read back, restore."""
import json
import os
import stat
import subprocess

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_backup
from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup

import audit_helpers as h


def server_major(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int / 10000")
        major = cur.fetchone()[0]
    conn.rollback()
    return major


def test_backup_is_verified_and_never_overwritten(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 200) + h.rows_for("b", 3))
    dest = str(tmp_path / "pre.dump")
    args = dict(dsn=pg_dsn, dest=dest)
    check = h.run_module(alex_audit_backup, args, check_mode=True)
    assert check["changed"] is True and not check.get("failed") and os.listdir(tmp_path) == []
    assert check["tools"]["major"] >= server_major(conn)
    res = h.run_module(alex_audit_backup, args)
    assert res["changed"] and not res.get("failed"), res
    manifest = json.load(open(dest + ".manifest.json"))
    assert manifest == res["backup"]
    assert manifest["sha256"] == audit_ranges.sha256_file(dest)[0]
    assert manifest["verified"] is True and manifest["restore_list"]["table_data_entries"] >= 3
    assert manifest["table_rows"]["public.audit_logs"]["rows"] == 203
    assert manifest["table_rows"]["public.audit_chain_anchors"] == {"rows": 0, "fingerprint": "0"}
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    listing = subprocess.run([res["tools"]["pg_restore"], "--list", dest], capture_output=True, text=True, check=True)
    assert "TABLE DATA public audit_logs" in listing.stdout
    again = h.run_module(alex_audit_backup, args)
    assert again["failed"] and "never overwritten" in again["msg"]
    assert audit_ranges.sha256_file(dest)[0] == manifest["sha256"]
    assert sorted(os.listdir(tmp_path)) == ["pre.dump", "pre.dump.manifest.json"]


def test_tool_search_prefers_a_pg_dump_not_older_than_the_server(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    major = server_major(conn)
    tools = audit_backup.find_tools(major)
    assert tools["major"] >= major and os.path.exists(tools["pg_restore"])
    older = [d for d in audit_backup.candidate_dirs()
             if (audit_backup.binary_version(os.path.join(d, "pg_dump")) or (99,))[0] < major]
    if not older:
        pytest.skip("no pg_dump older than the server on this machine")
    old = os.path.join(older[0], "pg_dump")
    res = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=str(tmp_path / "x.dump"), pg_dump_path=old))
    assert res["failed"] and "older than the server" in res["msg"]
    assert os.listdir(tmp_path) == []


def test_password_only_travels_in_the_environment():
    conninfo, env = audit_backup.libpq_environment(
        "postgresql://alice:pa%20ss'w@db.example:5433/alex?sslmode=require", {"dbname": "other"})
    assert "pa ss'w" not in conninfo and "pa%20ss" not in conninfo and env["PGPASSWORD"] == "pa ss'w"
    assert "dbname=other" in conninfo and "port=5433" in conninfo and "sslmode=require" in conninfo


def test_restore_four_runs_and_rows_identical(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 300) + h.rows_for("t'2", 40))
    dest = str(tmp_path / "pre.dump")
    assert h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest))["changed"]
    original = h.table_state(conn)
    # what a retirement (or anything) does afterwards
    h.tamper(conn, "acme", [5])
    h.delete(conn, "acme", range(100, 120))
    h.load(conn, h.rows_for("new", 5))
    with conn.cursor() as cur:
        cur.execute("INSERT INTO audit_quarantine SELECT *, 'hmac_mismatch', 6 FROM audit_logs WHERE seq = 5 AND "
                    "tenant_id = 'acme'")
    conn.commit()
    changed = h.table_state(conn)
    args = dict(dsn=pg_dsn, dest=dest, state="restored")
    first = h.run_module(alex_audit_backup, args, check_mode=True)
    assert first["changed"] is True and h.table_state(conn) == changed
    second = h.run_module(alex_audit_backup, args)
    assert second["changed"] is True, second
    assert h.table_state(conn) == original
    third = h.run_module(alex_audit_backup, args, check_mode=True)
    fourth = h.run_module(alex_audit_backup, args)
    assert third["changed"] is False and fourth["changed"] is False
    assert h.table_state(conn) == original


def test_damaged_backups_are_refused(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 50))
    dest = str(tmp_path / "pre.dump")
    h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest))
    h.delete(conn, "acme", [1])
    state = h.table_state(conn)
    data = bytearray(open(dest, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(dest, "wb").write(bytes(data))
    res = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest, state="restored"))
    assert res["failed"] and "does not match its manifest's sha256" in res["msg"]
    # a file that matches its manifest but is no archive: pg_restore --list decides, not the exit code of pg_dump
    open(dest, "wb").write(b"PGDMP" + b"\0" * 100)
    manifest = json.load(open(dest + ".manifest.json"))
    manifest["sha256"], manifest["bytes"] = audit_ranges.sha256_file(dest)
    files.write_json_atomic(dest + ".manifest.json", manifest)
    res = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest, state="restored"))
    assert res["failed"] and "pg_restore --list" in res["msg"]
    assert h.table_state(conn) == state
    problems = audit_backup.backup_problems(dict(manifest, created_at="2020-01-01T00:00:00Z"), dest,
                                            manifest["database"], audit_store.AuditTables(), 3600)
    assert any("older than max_backup_age" in p for p in problems)


def test_hostile_table_names_backup_and_restore(pg_dsn, tmp_path):
    tables = audit_store.AuditTables(schema="s'; DROP SCHEMA x; --", table='t "x" ;', anchor_table="ánchor 1",
                                     quarantine_table="q\tz")
    names = dict(schema=tables.schema, table=tables.table, anchor_table=tables.anchor_table,
                 quarantine_table=tables.quarantine_table)
    conn = h.setup_tables(pg_dsn, tables)
    h.load(conn, h.rows_for("x'; --", 30), tables)
    dest = str(tmp_path / "h.dump")
    res = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest, **names))
    assert res["changed"] and not res.get("failed"), res
    original = h.table_state(conn, tables)
    h.delete(conn, "x'; --", [3, 4], tables)
    res = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest, state="restored", **names))
    assert res["changed"] and not res.get("failed"), res
    assert h.table_state(conn, tables) == original
