"""alex_audit_verify and audit_store verification against a real PostgreSQL."""
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_retire
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

import audit_helpers as h


def verify_args(dsn, **extra):
    args = dict(dsn=dsn, hmac_key=h.KEY)
    args.update(extra)
    return args


def test_clean_chains_verify(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 50) + h.rows_for("globex", 7))
    before = h.table_state(conn)
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn), check_mode=True)
    assert res["changed"] is False and res["verified"] is True and res["broken"] == []
    assert res["tenants"]["acme"] == {"rows": 50, "valid_rows": 50, "segments": [], "verified": True,
                                      "probable_cause": None, "first_seq": 1, "last_seq": 50, "invalid_anchors": []}
    assert res["tenants"]["globex"]["rows"] == 7
    assert h.table_state(conn) == before


def test_each_fault_is_scoped_exactly(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("tamper", 40) + h.rows_for("deleted", 40) + h.rows_for("both", 60)
           + h.rows_for("clean", 10) + h.rows_for("head", 10))
    h.tamper(conn, "tamper", [7, 8, 9, 20])
    h.delete(conn, "deleted", range(11, 16))
    h.tamper(conn, "both", [3])
    h.delete(conn, "both", [30, 31])
    h.delete(conn, "head", [1, 2])
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn))
    assert res["verified"] is False
    assert res["broken"] == ["both", "deleted", "head", "tamper"]
    t = res["tenants"]
    assert t["tamper"]["segments"] == [{"first_seq": 7, "last_seq": 9, "rows": 3, "kind": "hmac_mismatch"},
                                       {"first_seq": 20, "last_seq": 20, "rows": 1, "kind": "hmac_mismatch"}]
    assert t["tamper"]["probable_cause"] == "direct_db_edit" and t["tamper"]["valid_rows"] == 36
    assert t["deleted"]["segments"] == [{"first_seq": 11, "last_seq": 15, "rows": 5, "kind": "seq_gap"}]
    assert t["deleted"]["probable_cause"] == "restore_gap" and t["deleted"]["rows"] == 35
    assert t["both"]["segments"] == [{"first_seq": 3, "last_seq": 3, "rows": 1, "kind": "hmac_mismatch"},
                                     {"first_seq": 30, "last_seq": 31, "rows": 2, "kind": "seq_gap"}]
    assert t["head"]["segments"] == [{"first_seq": 1, "last_seq": 2, "rows": 2, "kind": "seq_gap"}]
    assert t["clean"]["verified"] is True
    assert any("tamper" in line and "hmac_mismatch seq 7-9 (3 rows)" in line for line in res["scope"])


def test_resigned_row_is_link_broken(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    rows = h.rows_for("acme", 12)
    forged = dict(rows[4], actor="mallory")
    message = ac.row_message("acme", 5, forged["occurred_at"], "mallory", forged["action"], forged["payload"],
                             forged["prev_hmac"])
    forged["row_hmac"] = ac.row_hmac(h.KEY, message)
    rows[4] = forged
    h.load(conn, rows)
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn, tenants=["acme"]))
    assert res["tenants"]["acme"]["segments"] == [{"first_seq": 6, "last_seq": 6, "rows": 1, "kind": "link_broken"}]
    assert res["tenants"]["acme"]["probable_cause"] == "replication_lag"


def test_wrong_key_is_key_mismatch_not_tampering(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("rotated", 30, key=h.OTHER_KEY) + h.rows_for("fine", 5))
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn))
    assert res["tenants"]["rotated"]["probable_cause"] == "key_mismatch"
    assert res["tenants"]["rotated"]["segments"] == [{"first_seq": 1, "last_seq": 30, "rows": 30,
                                                      "kind": "hmac_mismatch"}]
    assert res["key_mismatch"] == ["rotated"]
    assert any("key_mismatch" in w and "rotated" in w for w in res["warnings"]), res.get("warnings")
    # More than the fraction (default 0.5): the newer 20 of 30 rows written with another key.
    conn2 = h.setup_tables(pg_dsn)
    good = h.rows_for("partial", 10)
    h.load(conn2, good + h.rows_for("partial", 20, start_seq=11, prev_hmac=good[-1]["row_hmac"], key=h.OTHER_KEY))
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn, tenants=["partial"]))
    assert res["tenants"]["partial"]["probable_cause"] == "key_mismatch"
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn, tenants=["partial"], key_mismatch_fraction=0.9))
    assert res["tenants"]["partial"]["probable_cause"] == "direct_db_edit"


def test_anchors_are_honoured_and_forged_anchors_ignored(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    rows = h.rows_for("acme", 20)
    h.load(conn, rows)
    h.delete(conn, "acme", [8, 9])
    anchor = {"tenant_id": "acme", "resume_seq": 10, "resume_prev_hmac": rows[9]["prev_hmac"],
              "retired_first_seq": 8, "retired_last_seq": 9, "retired_rows": 0,
              "retired_sha256": ac.retired_digest([]), "capture_sha256": "c" * 64, "backup_sha256": "b" * 64,
              "signoff": "CR-1", "reason": "seq_gap"}
    anchor["anchor_hmac"] = ac.anchor_hmac(h.KEY, anchor)
    with conn.cursor() as cur:
        audit_retire.insert_anchors(cur, audit_store.AuditTables(), [anchor])
        forged = dict(anchor, resume_seq=30, retired_first_seq=25, retired_last_seq=29, anchor_hmac="f" * 64)
        audit_retire.insert_anchors(cur, audit_store.AuditTables(), [forged])
    conn.commit()
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn))
    assert res["verified"] is True and res["tenants"]["acme"]["rows"] == 18
    assert res["tenants"]["acme"]["invalid_anchors"] == [30]
    assert any("does not verify" in w for w in res["warnings"])
    # The same anchor under another key does not verify: the gap is back.
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn, hmac_key=h.OTHER_KEY))
    assert {"first_seq": 8, "last_seq": 9, "rows": 2, "kind": "seq_gap"} in res["tenants"]["acme"]["segments"]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_parallel_chunks_give_the_same_answer(pg_dsn, workers):
    conn = h.setup_tables(pg_dsn)
    big = h.rows_for("big", 30000)
    h.load(conn, big + h.rows_for("small", 3000))
    # faults right at and around chunk boundaries of a 1000-row chunking
    h.tamper(conn, "big", [1000, 1001, 2000, 29999, 30000])
    h.delete(conn, "big", list(range(4990, 5012)) + [12001])
    h.delete(conn, "small", [1])
    tables = audit_store.AuditTables()
    serial = audit_store.verify(conn, tables, h.KEY.encode())[0]
    stats = {}
    res = audit_store.verify(conn, tables, h.KEY.encode(), workers=workers, connect=lambda: h.connect(pg_dsn),
                             chunk_rows=1000, min_parallel_rows=0, stats=stats)[0]
    assert res == serial
    assert stats == ({"processes": workers, "chunks": 33} if workers > 1 else {"processes": 1, "chunks": 2})
    assert serial["big"]["segments"] == [
        {"first_seq": 1000, "last_seq": 1001, "rows": 2, "kind": "hmac_mismatch"},
        {"first_seq": 2000, "last_seq": 2000, "rows": 1, "kind": "hmac_mismatch"},
        {"first_seq": 4990, "last_seq": 5011, "rows": 22, "kind": "seq_gap"},
        {"first_seq": 12001, "last_seq": 12001, "rows": 1, "kind": "seq_gap"},
        {"first_seq": 29999, "last_seq": 30000, "rows": 2, "kind": "hmac_mismatch"}]
    assert serial["small"]["segments"] == [{"first_seq": 1, "last_seq": 1, "rows": 1, "kind": "seq_gap"}]
    # and through the module with its own default chunking
    mod = h.run_module(alex_audit_verify, verify_args(pg_dsn, workers=workers))
    assert mod["tenants"]["big"]["segments"] == serial["big"]["segments"]
    assert mod["processes"] == workers


HOSTILE = ["tenant 'O\"Brien'; DROP TABLE x;--", "Ωmega\\\t\n", "", "😀 e\u0301"]


@pytest.mark.parametrize("tenant", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_are_harmless(pg_dsn, tenant):
    tables = audit_store.AuditTables(schema="Sch'ema; --", table='audit "logs"; DROP TABLE x',
                                     anchor_table="ánchors\u2028", quarantine_table="q;uarantine",
                                     rotation_table='rot"ations\'; --')
    conn = h.setup_tables(pg_dsn, tables)
    h.load(conn, h.rows_for(tenant, 20) + h.rows_for("other", 3), tables)
    h.tamper(conn, tenant, [4], tables)
    res = h.run_module(alex_audit_verify, verify_args(
        pg_dsn, tenants=[tenant, "other", "nobody'); --"], schema=tables.schema, table=tables.table,
        anchor_table=tables.anchor_table, quarantine_table=tables.quarantine_table,
        rotation_table=tables.rotation_table))
    assert res["tenants"][tenant]["segments"] == [{"first_seq": 4, "last_seq": 4, "rows": 1, "kind": "hmac_mismatch"}]
    assert res["tenants"]["other"]["verified"] is True
    assert res["tenants"]["nobody'); --"]["rows"] == 0
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (tables.schema,))
        assert cur.fetchone()[0] == 4


def test_bad_input_fails_cleanly(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 3))
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn, table="no_such_table"))
    assert res["failed"] and "table(s) not found: public.no_such_table" in res["msg"]
    bad = pg_dsn.replace("postgresql://", "postgresql://nobody:s3cr3t-pw@") if "@" not in pg_dsn else pg_dsn
    res = h.run_module(alex_audit_verify, verify_args("host=127.0.0.1 port=1 user=x password=s3cr3t-pw dbname=y"))
    assert res["failed"] and "cannot connect" in res["msg"] and "s3cr3t-pw" not in str(res)
    assert bad
    res = h.run_module(alex_audit_verify, verify_args(pg_dsn, key_mismatch_fraction=0))
    assert res["failed"] and "key_mismatch_fraction" in res["msg"]
