"""alex_audit_retire against a real PostgreSQL: plans, refusals, the one transaction, idempotence."""
import io

import pytest
from psycopg2 import sql

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_retire
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_export
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_retire
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

import audit_helpers as h


def names(tables):
    return dict(schema=tables.schema, table=tables.table, anchor_table=tables.anchor_table,
                quarantine_table=tables.quarantine_table)


def prepare(dsn, tmp_path, tenant, tables=None, selection="segments", tag="x"):
    """Capture and back up as the runbook says; returns the retire arguments."""
    tables = tables or audit_store.AuditTables()
    capture = str(tmp_path / ("capture-%s.csv" % tag))
    backup = str(tmp_path / ("backup-%s.dump" % tag))
    res = h.run_module(alex_audit_export, dict(dsn=dsn, hmac_key=h.KEY, tenant=tenant, dest=capture,
                                               selection=selection, **names(tables)))
    assert not res.get("failed"), res
    res = h.run_module(alex_audit_backup, dict(dsn=dsn, dest=backup, **names(tables)))
    assert not res.get("failed"), res
    return dict(dsn=dsn, hmac_key=h.KEY, tenant=tenant, capture=capture, backup=backup,
                compliance_signoff="CR-2026-0042", **names(tables))


def verify(dsn, tables=None, **extra):
    return h.run_module(alex_audit_verify, dict(dsn=dsn, hmac_key=h.KEY, **dict(names(tables or audit_store.AuditTables()), **extra)))


def quarantine_lines(conn, tenant, tables=None):
    tables = tables or audit_store.AuditTables()
    buf = io.BytesIO()
    with conn.cursor() as cur:
        q = cur.mogrify(sql.SQL("COPY (SELECT {} FROM {} WHERE tenant_id = %s ORDER BY seq) TO STDOUT").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in audit_store.ROW_COLUMNS), tables.quarantine), (tenant,))
        cur.copy_expert(q.decode(), buf)
        cur.execute(sql.SQL("SELECT seq, kind, anchor_resume_seq FROM {} WHERE tenant_id = %s ORDER BY seq").format(
            tables.quarantine), (tenant,))
        kinds = cur.fetchall()
    conn.rollback()
    return buf.getvalue().splitlines(), kinds


def four_runs(args, expect_rows):
    check = h.run_module(alex_audit_retire, args, check_mode=True, diff=True)
    assert check["changed"] is True and check["missing"] == [] and not check.get("failed"), check
    assert check["plan"]["rows"] == expect_rows
    real = h.run_module(alex_audit_retire, args)
    assert real["changed"] is True and not real.get("failed"), real
    assert real["msg"].startswith("audit chain anchor reset")
    assert real["anchors"] == check["anchors"], "check mode must show the exact anchors written"
    again_check = h.run_module(alex_audit_retire, args, check_mode=True)
    again = h.run_module(alex_audit_retire, args)
    assert again_check["changed"] is False and again["changed"] is False
    return check, real


FAULTS = {
    "tamper": (lambda c: h.tamper(c, "acme", [10, 11, 12]), [(10, 12, "hmac_mismatch")], 3),
    "delete": (lambda c: h.delete(c, "acme", range(20, 26)), [(20, 25, "seq_gap")], 0),
    "two-faults": (lambda c: (h.tamper(c, "acme", [5]), h.delete(c, "acme", [40, 41])),
                   [(5, 5, "hmac_mismatch"), (40, 41, "seq_gap")], 1),
    "tail": (lambda c: h.tamper(c, "acme", [59, 60]), [(59, 60, "hmac_mismatch")], 2),
    "head-gap-then-edit": (lambda c: (h.delete(c, "acme", [1, 2]), h.tamper(c, "acme", [3])),
                           [(1, 2, "seq_gap"), (3, 3, "hmac_mismatch")], 1),
}


@pytest.mark.parametrize("lock_verify", ["incremental", "full"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_retired_exactly(pg_dsn, tmp_path, fault, lock_verify):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 60) + h.rows_for("other", 10))
    other_before = verify(pg_dsn, tenants=["other"])
    break_it, expected, moved = FAULTS[fault]
    break_it(conn)
    scope = verify(pg_dsn)["tenants"]["acme"]["segments"]
    assert [(s["first_seq"], s["last_seq"], s["kind"]) for s in scope] == expected
    args = dict(prepare(pg_dsn, tmp_path, "acme"), lock_verify=lock_verify)
    before = h.table_state(conn)
    check, real = four_runs(args, moved)
    assert "seq" in check["diff"]["before"] and "anchor resume_seq" in check["diff"]["after"]
    assert real["verify_under_lock"] == lock_verify
    after = verify(pg_dsn)
    assert after["verified"] is True and after["tenants"]["other"] == other_before["tenants"]["other"]
    assert h.table_state(conn) != before
    lines, kinds = quarantine_lines(conn, "acme")
    assert len(lines) == moved == real["moved"]
    # every anchor verifies under the contract's formula and commits to exactly its quarantined rows
    for anchor in real["anchors"]:
        assert ac.anchor_hmac(h.KEY, anchor) == anchor["anchor_hmac"]
        mine = [line for line, k in zip(lines, kinds) if k[2] == anchor["resume_seq"]]
        assert ac.retired_digest(mine) == anchor["retired_sha256"] and anchor["retired_rows"] == len(mine)
        assert anchor["signoff"] == "CR-2026-0042" and anchor["resume_seq"] == anchor["retired_last_seq"] + 1
    assert set(k[1] for k in kinds) <= {"hmac_mismatch", "link_broken"}


def test_link_broken_row_is_retired(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    rows = h.rows_for("acme", 20)
    forged = dict(rows[7], actor="mallory")
    message = ac.row_message("acme", 8, forged["occurred_at"], "mallory", forged["action"], forged["payload"],
                             forged["prev_hmac"])
    forged["row_hmac"] = ac.row_hmac(h.KEY, message)
    rows[7] = forged
    h.load(conn, rows)
    args = prepare(pg_dsn, tmp_path, "acme")
    _check, real = four_runs(args, 1)
    assert real["plan"]["runs"][0]["reason"] == "link_broken"
    assert verify(pg_dsn)["verified"] is True


def test_refusals_name_everything_missing(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 30))
    h.tamper(conn, "acme", [7])
    before = h.table_state(conn)
    base = dict(dsn=pg_dsn, hmac_key=h.KEY, tenant="acme")
    res = h.run_module(alex_audit_retire, base)
    assert res["failed"] and "compliance_signoff" in res["msg"] and "capture (" in res["msg"] \
        and "backup (" in res["msg"]
    assert res["plan"]["rows"] == 1 and len(res["missing"]) == 3
    res = h.run_module(alex_audit_retire, dict(base, compliance_signoff="   "), check_mode=True)
    assert res["changed"] is True and len(res["missing"]) == 3 and res["anchors"][0]["anchor_hmac"] is None
    full = prepare(pg_dsn, tmp_path, "acme")
    # a capture of other rows than the ones to retire
    wide = prepare(pg_dsn, tmp_path, "acme", selection="all", tag="all")
    res = h.run_module(alex_audit_retire, dict(full, capture=wide["capture"]))
    assert res["failed"] and "holds seq ranges 1-30 but the rows to retire are 7" in res["msg"]
    # too old a backup
    res = h.run_module(alex_audit_retire, dict(full, max_backup_age="0s"))
    assert res["failed"] and "older than max_backup_age" in res["msg"]
    # a capture file changed after the fact
    with open(full["capture"], "ab") as handle:
        handle.write(b"\n")
    res = h.run_module(alex_audit_retire, full)
    assert res["failed"] and "does not match its manifest's sha256" in res["msg"]
    assert h.table_state(conn) == before
    # superset accepted when asked for
    res = h.run_module(alex_audit_retire, dict(full, capture=wide["capture"], capture_match="superset"))
    assert res["changed"] is True and not res.get("failed"), res


def test_database_drift_after_the_capture_is_refused_under_the_lock(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 30))
    h.tamper(conn, "acme", [7])
    args = prepare(pg_dsn, tmp_path, "acme")
    # the captured bad row is edited again: same segments, other bytes
    with conn.cursor() as cur:
        cur.execute("UPDATE audit_logs SET actor = 'someone else' WHERE tenant_id = 'acme' AND seq = 7")
    conn.commit()
    before = h.table_state(conn)
    res = h.run_module(alex_audit_retire, args)
    assert res["failed"] and "changed in the database since the capture" in res["msg"]
    assert h.table_state(conn) == before
    # new damage after the capture: the plan changed, the capture no longer covers it
    h.tamper(conn, "acme", [20])
    before = h.table_state(conn)
    res = h.run_module(alex_audit_retire, args)
    assert res["failed"] and "rows to retire are 7, 20" in res["msg"]
    assert h.table_state(conn) == before


def test_key_mismatch_is_refused_and_points_to_key_rotation(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("rotated", 25, key=h.OTHER_KEY))
    args = prepare(pg_dsn, tmp_path, "rotated")
    before = h.table_state(conn)
    for check in (True, False):
        res = h.run_module(alex_audit_retire, args, check_mode=check)
        assert res["failed"] and res["probable_cause"] == "key_mismatch"
        assert "key rotation" in res["msg"] and "25 of 25 rows" in res["msg"]
    assert h.table_state(conn) == before
    # the right key: nothing is wrong at all
    res = h.run_module(alex_audit_retire, dict(args, hmac_key=h.OTHER_KEY))
    assert res["changed"] is False and "nothing to retire" in res["msg"]


def test_writes_after_a_tail_retirement_link_to_the_good_tip(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 15))
    h.tamper(conn, "acme", [15])
    _check, real = four_runs(prepare(pg_dsn, tmp_path, "acme"), 1)
    anchor = real["anchors"][0]
    assert anchor["resume_seq"] == 16
    # a contract writer: next seq after the anchor, prev_hmac from the anchor
    assert h.write_audit(conn, "acme", "after.retire") == 16
    assert verify(pg_dsn)["verified"] is True


@pytest.mark.parametrize("tenant", ["tenant 'O\"Brien'; DROP TABLE x;--", "Ωmega\\\t\n😀"], ids=["quotes", "unicode"])
def test_hostile_names(pg_dsn, tmp_path, tenant):
    tables = audit_store.AuditTables(schema="Sch'ema; --", table='audit "logs"; DROP TABLE x',
                                     anchor_table="ánchors; --", quarantine_table="q'uar\"antine")
    conn = h.setup_tables(pg_dsn, tables)
    h.load(conn, h.rows_for(tenant, 30) + h.rows_for("bystander", 5), tables)
    h.tamper(conn, tenant, [4, 5], tables)
    h.delete(conn, tenant, [20], tables)
    _check, real = four_runs(prepare(pg_dsn, tmp_path, tenant, tables), 2)
    assert [a["resume_seq"] for a in real["anchors"]] == [6, 21]
    assert verify(pg_dsn, tables)["verified"] is True
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (tables.schema,))
        assert cur.fetchone()[0] == 4  # the four audit tables, the rotation records included


def test_changes_between_the_first_look_and_the_lock_are_seen(pg_dsn, tmp_path):
    """The incremental check under the lock notices any row written since the first scan and verifies fully."""
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 40))
    h.tamper(conn, "acme", [7])
    args = prepare(pg_dsn, tmp_path, "acme")
    tables = audit_store.AuditTables()
    capture = files.read_json(args["capture"] + ".manifest.json")
    key = h.KEY.encode()
    work = h.connect(pg_dsn)
    first = audit_retire.retire_scan(work, tables, key, "acme")
    # new damage after the first look: found under the lock, and the capture no longer covers the plan
    h.tamper(conn, "acme", [20])
    before = h.table_state(conn)
    with pytest.raises(audit_retire.RetireRefused, match="rows to retire are 7, 20"):
        audit_retire.retire_apply(work, tables, key, "acme", first, capture, "b" * 64, "CR-1")
    assert h.table_state(conn) == before
    # a harmless rewrite (same values, new row version) only costs a full verification under the lock
    with conn.cursor() as cur:
        cur.execute("UPDATE audit_logs SET actor = actor WHERE tenant_id = 'acme' AND seq IN (3, 20)")
        cur.execute("UPDATE audit_logs SET payload = payload - 'edited' WHERE tenant_id = 'acme' AND seq = 20")
    conn.commit()
    first = audit_retire.retire_scan(work, tables, key, "acme")
    with conn.cursor() as cur:
        cur.execute("UPDATE audit_logs SET actor = actor WHERE tenant_id = 'acme' AND seq = 3")
    conn.commit()
    done = audit_retire.retire_apply(work, tables, key, "acme", first, capture, "b" * 64, "CR-1")
    assert done["changed"] and done["verify_under_lock"] == "full" and done["moved"] == 1
    # and with nothing written in between, the incremental check holds
    h.tamper(conn, "acme", [30])
    args2 = prepare(pg_dsn, tmp_path, "acme", tag="second")
    capture2 = files.read_json(args2["capture"] + ".manifest.json")
    first = audit_retire.retire_scan(work, tables, key, "acme")
    done = audit_retire.retire_apply(work, tables, key, "acme", first, capture2, "b" * 64, "CR-2")
    assert done["changed"] and done["verify_under_lock"] == "incremental"
    assert h.run_module(alex_audit_verify, dict(dsn=pg_dsn, hmac_key=h.KEY))["verified"] is True
