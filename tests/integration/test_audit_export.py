"""alex_audit_export against a real PostgreSQL: the four runs, the manifest, evidence never overwritten."""
import csv
import hashlib
import io
import json
import os
import stat

from psycopg2 import sql

from ansible_collections.alexandria.ee.plugins.module_utils import audit_capture
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_export

import audit_helpers as h


def reference_csv(conn, tenant, where="true", tables=None):
    """What psql's \\copy (SELECT * ... ORDER BY seq) TO ... CSV HEADER prints for the same rows."""
    tables = tables or audit_store.AuditTables()
    buf = io.BytesIO()
    with conn.cursor() as cur:
        query = cur.mogrify(sql.SQL("COPY (SELECT * FROM {} WHERE tenant_id = %s AND {} ORDER BY seq) TO STDOUT "
                                    "WITH (FORMAT csv, HEADER true)").format(tables.logs, sql.SQL(where)), (tenant,))
        cur.copy_expert(query.decode(), buf)
    conn.rollback()
    return buf.getvalue()


def four_runs(args):
    """check, real, check, real: (changed, ...) of each."""
    first = h.run_module(alex_audit_export, args, check_mode=True)
    assert not first.get("failed"), first
    assert not os.path.exists(args["dest"])
    second = h.run_module(alex_audit_export, args)
    assert not second.get("failed"), second
    third = h.run_module(alex_audit_export, args, check_mode=True)
    fourth = h.run_module(alex_audit_export, args)
    assert [r["changed"] for r in (first, second, third, fourth)] == [True, True, False, False]
    assert first["rows"] == second["rows"] == third["rows"] == fourth["rows"]
    return second


def test_segments_capture_four_runs_and_manifest(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 40) + h.rows_for("other", 5))
    h.tamper(conn, "acme", [5, 6, 7, 30])
    h.delete(conn, "acme", [20, 21])
    dest = str(tmp_path / "capture.csv")
    before = h.table_state(conn)
    res = four_runs(dict(dsn=pg_dsn, hmac_key=h.KEY, tenant="acme", dest=dest))
    assert h.table_state(conn) == before
    assert res["rows"] == 4 and res["seq_ranges"] == [[5, 7], [30, 30]]
    data = open(dest, "rb").read()
    assert data == reference_csv(conn, "acme", "(seq BETWEEN 5 AND 7 OR seq = 30)")
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    manifest_path = dest + ".manifest.json"
    assert stat.S_IMODE(os.stat(manifest_path).st_mode) == 0o600
    manifest = json.load(open(manifest_path))
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() == res["sha256"]
    assert manifest["bytes"] == len(data) and manifest["rows"] == 4 and manifest["tenant_id"] == "acme"
    assert manifest["segments"] == [{"first_seq": 5, "last_seq": 7, "rows": 3, "kind": "hmac_mismatch"},
                                    {"first_seq": 20, "last_seq": 21, "rows": 2, "kind": "seq_gap"},
                                    {"first_seq": 30, "last_seq": 30, "rows": 1, "kind": "hmac_mismatch"}]
    assert manifest["database"]["database"] and manifest["created_at"].endswith("Z")
    assert [row[1] for row in csv.reader(io.StringIO(data.decode()))][1:] == ["5", "6", "7", "30"]
    assert sorted(os.listdir(tmp_path)) == ["capture.csv", "capture.csv.manifest.json"]


def test_changed_database_never_overwrites_evidence_silently(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 20))
    h.tamper(conn, "acme", [3])
    dest = str(tmp_path / "c.csv")
    args = dict(dsn=pg_dsn, hmac_key=h.KEY, tenant="acme", dest=dest)
    first = h.run_module(alex_audit_export, args)
    h.tamper(conn, "acme", [9])  # new damage: the segments differ now
    res = h.run_module(alex_audit_export, args)
    assert res["failed"] and "refusing to overwrite evidence" in res["msg"]
    assert json.load(open(dest + ".manifest.json"))["sha256"] == first["sha256"]
    res = h.run_module(alex_audit_export, dict(args, force=True))
    assert res["changed"] and res["seq_ranges"] == [[3, 3], [9, 9]]
    # the file itself edited: no longer matches its manifest, so it is not "unchanged"
    with open(dest, "ab") as handle:
        handle.write(b"x")
    res = h.run_module(alex_audit_export, args, check_mode=True)
    assert res["changed"] is True


def test_range_and_all_selections(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 30) + h.rows_for("zz", 3))
    res = four_runs(dict(dsn=pg_dsn, tenant="acme", selection="range", first_seq=10, last_seq=14,
                         dest=str(tmp_path / "r.csv")))
    assert res["rows"] == 5 and open(res["dest"], "rb").read() == reference_csv(conn, "acme", "seq BETWEEN 10 AND 14")
    res = four_runs(dict(dsn=pg_dsn, tenant="acme", selection="all", dest=str(tmp_path / "a.csv")))
    assert res["rows"] == 30 and open(res["dest"], "rb").read() == reference_csv(conn, "acme")
    # new rows written after an "all" capture: the capture still holds seq 1-30 and still matches
    h.load(conn, h.rows_for("acme", 3, start_seq=31, prev_hmac="0" * 64))
    res = h.run_module(alex_audit_export, dict(dsn=pg_dsn, tenant="acme", selection="range", first_seq=1,
                                               last_seq=30, dest=str(tmp_path / "a.csv")), check_mode=True)
    assert res["changed"] is True  # another selection than the manifest says: it would be a new capture
    res = h.run_module(alex_audit_export, dict(dsn=pg_dsn, tenant="acme", selection="range", first_seq=9,
                                               last_seq=3, dest=str(tmp_path / "bad.csv")))
    assert res["failed"] and "before first_seq" in res["msg"]
    res = h.run_module(alex_audit_export, dict(dsn=pg_dsn, tenant="acme", dest=str(tmp_path / "nokey.csv"),
                                               host="http://127.0.0.1:1", kubeconfig=str(tmp_path / "none")))
    assert res["failed"] and "hmac_key" in res["msg"]


def test_hostile_tenant_and_table_names(pg_dsn, tmp_path):
    tables = audit_store.AuditTables(schema="s'; --", table='t"x', anchor_table="a;b", quarantine_table="q\u00e9")
    tenant = "ten'ant\"; DROP TABLE x;--\t\n😀"
    conn = h.setup_tables(pg_dsn, tables)
    h.load(conn, h.rows_for(tenant, 12), tables)
    h.tamper(conn, tenant, [2], tables)
    res = four_runs(dict(dsn=pg_dsn, hmac_key=h.KEY, tenant=tenant, dest=str(tmp_path / "h.csv"),
                         schema=tables.schema, table=tables.table, anchor_table=tables.anchor_table,
                         quarantine_table=tables.quarantine_table))
    assert res["rows"] == 1 and res["seq_ranges"] == [[2, 2]]
    assert open(res["dest"], "rb").read() == reference_csv(conn, tenant, "seq = 2", tables)


def spy_parts(monkeypatch):
    """Record (tenant, part index, ranges) of every COPY part write_captures runs."""
    parts = []
    real = audit_capture._Capture.run_part

    def run_part(self, cur, part):
        parts.append((part.tenant_id, part.index, part.ranges))
        return real(self, cur, part)
    monkeypatch.setattr(audit_capture._Capture, "run_part", run_part)
    return parts


def test_two_sessions_export_the_same_bytes(pg_dsn, tmp_path, monkeypatch):
    """A long range is copied by two sessions reading one snapshot; the file is byte-identical to one COPY."""
    monkeypatch.setattr(audit_capture, "PARALLEL_EXPORT_MIN_ROWS", 10)
    parts = spy_parts(monkeypatch)
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 501) + h.rows_for("b", 3))
    for selection, extra, where in (("all", {}, "true"), ("range", {"first_seq": 3, "last_seq": 400}, "seq BETWEEN 3 AND 400")):
        res = four_runs(dict(dsn=pg_dsn, tenant="acme", selection=selection, dest=str(tmp_path / ("%s.csv" % selection)),
                             workers=2, **extra))
        data = open(res["dest"], "rb").read()
        assert data == reference_csv(conn, "acme", where)
        assert res["sha256"] == hashlib.sha256(data).hexdigest() and res["bytes"] == len(data)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    # Only the real runs copy, each in two halves (the idempotence checks read through one COPY of their own).
    assert sorted(parts) == [("acme", 0, [[1, 251]]), ("acme", 0, [[3, 201]]),
                             ("acme", 1, [[202, 400]]), ("acme", 1, [[252, 501]])]


def test_several_tenants_in_one_snapshot(pg_dsn, tmp_path, monkeypatch):
    """tenants=[...]: one file per tenant in dest, each byte-identical to its own COPY; check, real, check, real."""
    parts = spy_parts(monkeypatch)
    hostile = "ten'ant\"; DROP TABLE x;--\t/../\U0001f600"
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 30) + h.rows_for("globex", 12) + h.rows_for(hostile, 9) + h.rows_for("ok", 4))
    h.tamper(conn, "acme", [3, 4])
    h.tamper(conn, "globex", [12])
    h.tamper(conn, hostile, [1])
    before = h.table_state(conn)
    args = dict(dsn=pg_dsn, hmac_key=h.KEY, tenants=["acme", "globex", hostile, "ok"], dest=str(tmp_path), workers=2)
    runs = []
    for check in (True, False, True, False):
        res = h.run_module(alex_audit_export, args, check_mode=check)
        assert not res.get("failed"), res
        runs.append(res)
        if check and not runs[1:]:
            assert os.listdir(tmp_path) == []
    assert [r["changed"] for r in runs] == [True, True, False, False]
    assert [[c["changed"] for c in r["captures"]] for r in runs] == [[True, True, True, True]] * 2 + [[False] * 4] * 2
    assert [r["rows"] for r in runs] == [4] * 4  # 2 + 1 + 1 rows; tenant ok has none, its file holds the header
    assert h.table_state(conn) == before
    names = set()
    for capture, where in zip(runs[1]["captures"], ("seq BETWEEN 3 AND 4", "seq = 12", "seq = 1", "false")):
        assert os.path.dirname(capture["dest"]) == str(tmp_path)
        assert capture["dest"] == os.path.join(str(tmp_path), audit_capture.capture_file_name(capture["tenant"]))
        data = open(capture["dest"], "rb").read()
        assert data == reference_csv(conn, capture["tenant"], where)
        manifest = json.load(open(capture["manifest"]))
        assert manifest["tenant_id"] == capture["tenant"] and manifest["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["rows"] == capture["rows"] and stat.S_IMODE(os.stat(capture["dest"]).st_mode) == 0o600
        names.add(os.path.basename(capture["dest"]))
    assert len(names) == 4 and all(n.startswith("capture-") and "/" not in n for n in names)
    assert sorted(t for t, _i, _r in parts) == sorted(["acme", "globex", hostile, "ok"])  # one COPY part each

    # A capture that no longer matches is evidence: refused for all, nothing of the others rewritten.
    h.tamper(conn, "globex", [11])
    stamps = dict((c["dest"], os.stat(c["dest"]).st_mtime_ns) for c in runs[1]["captures"])
    refused = h.run_module(alex_audit_export, args)
    assert refused.get("failed") and "refusing to overwrite evidence" in refused["msg"]
    assert dict((d, os.stat(d).st_mtime_ns) for d in stamps) == stamps
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_tenants_needs_an_existing_directory_and_no_manifest(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 3))
    missing = h.run_module(alex_audit_export, dict(dsn=pg_dsn, tenants=["acme"], selection="all",
                                                   dest=str(tmp_path / "nope")))
    assert missing.get("failed") and "does not exist: create it first" in missing["msg"]
    both = h.run_module(alex_audit_export, dict(dsn=pg_dsn, tenants=["acme"], selection="all", dest=str(tmp_path),
                                                manifest=str(tmp_path / "m.json")))
    assert both.get("failed") and "mutually exclusive" in both["msg"]
    empty = h.run_module(alex_audit_export, dict(dsn=pg_dsn, tenants=[], selection="all", dest=str(tmp_path)))
    assert empty.get("failed") and "tenants is empty" in empty["msg"]
    assert os.listdir(tmp_path) == []
