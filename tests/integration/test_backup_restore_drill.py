"""The restore drill (playbook alexandria.ee.backup_restore) and the rollback's loss gate, run by ansible-playbook
against a real PostgreSQL: the exact loss per tenant against the checkpoints and the live database, the scratch
database gone afterwards, the live tables untouched, --check creating nothing, the scratch never the live one."""
import json
import pathlib

import psycopg2
import pytest

from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_scratch_db
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

import audit_helpers as h
import playbooks

CP_KEY = "drill-checkpoint-key-0123456789abcdef0123456789ab"
PASSWORD = "Dr1llPassw0rd-77ab"
HOSTILE = "t 'x'/..\\evil\t\\N"


def drill_databases(dsn):
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'alex_drill%' ORDER BY 1")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def database_count(dsn):
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database")
            return cur.fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def deployment(pg_dsn, tmp_path):
    """acme: backup at seq 480, checkpoint at 500, live at 520; globex: 30 rows everywhere (no loss); a hostile
    tenant id (COPY escapes in the dump) with its 5 rows after the checkpoint."""
    conn = h.setup_tables(pg_dsn)
    acme = h.rows_for("acme", 520)
    hostile = h.rows_for(HOSTILE, 12)
    h.load(conn, acme[:480] + h.rows_for("globex", 30) + hostile[:4])
    backup = tmp_path / "old.dump"
    taken = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=str(backup)))
    assert taken["changed"] is True, taken["msg"]
    h.load(conn, acme[480:500] + hostile[4:7])
    cp_dir = tmp_path / "checkpoints"
    cp_dir.mkdir(mode=0o700)
    checkpointed = h.run_module(alex_audit_verify, dict(dsn=pg_dsn, hmac_key=h.KEY, checkpoint_dir=str(cp_dir),
                                                        checkpoint_key=CP_KEY, update_checkpoints=True, workers=1))
    assert checkpointed["checkpoints"]["written"] == {"dir": sorted(["acme", "globex", HOSTILE])}
    h.load(conn, acme[500:] + hostile[7:])
    variables = {"alex_dsn": pg_dsn + " password=" + PASSWORD, "alex_audit_hmac_key": h.KEY,
                 "alex_checkpoint_dir": str(cp_dir), "alex_checkpoint_key": CP_KEY,
                 "alex_report_dir": str(tmp_path / "records"),
                 "backup_restore_dir": str(tmp_path / "drill-backups")}
    return conn, pg_dsn, str(backup), variables


EXPECTED_ACME = {"backup_last_seq": 480, "checkpoint_seq": 500, "live_last_seq": 520,
                 "lost_up_to_checkpoint": [{"first_seq": 481, "last_seq": 500, "rows": 20, "kind": "truncated"}],
                 "lost_after_checkpoint": {"first_seq": 501, "last_seq": 520, "rows": 20}, "rows_lost": 40}
EXPECTED_GLOBEX = {"backup_last_seq": 30, "checkpoint_seq": 30, "live_last_seq": 30, "lost_up_to_checkpoint": [],
                   "lost_after_checkpoint": None, "rows_lost": 0}
EXPECTED_HOSTILE = {"backup_last_seq": 4, "checkpoint_seq": 7, "live_last_seq": 12,
                    "lost_up_to_checkpoint": [{"first_seq": 5, "last_seq": 7, "rows": 3, "kind": "truncated"}],
                    "lost_after_checkpoint": {"first_seq": 8, "last_seq": 12, "rows": 5}, "rows_lost": 8}


def test_drill_reports_the_exact_loss_and_leaves_nothing_behind(deployment, pg_admin_dsn, tmp_path):
    conn, dsn, backup, variables = deployment
    state, versions = h.table_state(conn), h.row_versions(conn)

    run = playbooks.run_playbook("backup_restore", tmp_path, "-vvv",
                                 variables=dict(variables, backup_restore_backup=backup))
    assert run.rc == 0, run.out[-4000:]
    assert PASSWORD not in run.out and h.KEY not in run.out and CP_KEY not in run.out
    summary = run.custom["backup_restore"]
    loss = summary["loss"]
    assert loss["tenants"] == {"acme": EXPECTED_ACME, "globex": EXPECTED_GLOBEX, HOSTILE: EXPECTED_HOSTILE}
    assert loss["rows_lost"] == 48 and loss["tenants_losing"] == sorted(["acme", HOSTILE])
    assert loss["lines"][0] == ("tenant 'acme' would lose 40 rows: truncated seq 481-500 (20 rows) up to checkpoint "
                                "seq 500; seq 501-520 (20 rows) written after the checkpoint, held by the live "
                                "database now")
    # the prediction read from the dump, without restoring it, is the same
    assert summary["predicted_loss"] == loss
    assert summary["backup_chain_verified"] is True and summary["scratch_dropped"] is True
    assert summary["scratch_database"].startswith("alex_drill_")
    entry = run.host("localhost")
    assert entry["scenario"] == "backup_restore" and entry["result"] == "loss"
    assert [a["action"] for a in entry["actions"]] == ["restore_into_scratch_database", "drop_scratch_database"]
    record = run.record("localhost")
    assert record["details"]["backup_restore"]["loss"]["rows_lost"] == 48
    assert record["scope"]["tenants_losing"] == sorted(["acme", HOSTILE])

    assert drill_databases(pg_admin_dsn) == []
    assert h.table_state(conn) == state and h.row_versions(conn) == versions


def test_check_mode_creates_nothing(deployment, pg_admin_dsn, tmp_path):
    conn, dsn, backup, variables = deployment
    state, versions = h.table_state(conn), h.row_versions(conn)
    databases = database_count(pg_admin_dsn)
    # keep_scratch: a scratch database created in check mode would still be there afterwards
    run = playbooks.run_playbook("backup_restore", tmp_path, check=True,
                                 variables=dict(variables, backup_restore_keep_scratch=True))
    assert run.rc == 0, run.out[-4000:]
    assert run.host("localhost")["result"] == "planned"
    assert [s["action"] for s in run.record("localhost")["plan"]] == [
        "take_backup", "restore_into_scratch_database", "verify_scratch_against_checkpoints", "drop_scratch_database"]
    assert not (tmp_path / "drill-backups").exists()
    # with a given backup, --check predicts the loss from the dump and still creates nothing
    given = dict(variables, backup_restore_backup=backup, backup_restore_keep_scratch=True)
    run = playbooks.run_playbook("backup_restore", tmp_path, check=True, variables=given)
    assert run.rc == 0, run.out[-4000:]
    summary = run.custom["backup_restore"]
    assert summary["loss"] is None and summary["predicted_loss"]["tenants"]["acme"] == EXPECTED_ACME
    assert database_count(pg_admin_dsn) == databases and drill_databases(pg_admin_dsn) == []
    assert h.table_state(conn) == state and h.row_versions(conn) == versions


def test_new_backup_kept_scratch_and_the_live_database_refused(deployment, pg_admin_dsn, tmp_path):
    conn, dsn, backup, variables = deployment
    state = h.table_state(conn)
    run = playbooks.run_playbook("backup_restore", tmp_path, variables=dict(
        variables, backup_restore_keep_scratch=True, backup_restore_scratch_db="alex_drill_kept"))
    assert run.rc == 0, run.out[-4000:]
    summary = run.custom["backup_restore"]
    assert summary["backup_taken"] is True and summary["scratch_kept"] is True
    assert summary["loss"]["rows_lost"] == 0 and run.host("localhost")["result"] == "no_loss"
    assert summary["loss"]["tenants"]["acme"]["backup_last_seq"] == 520
    assert drill_databases(pg_admin_dsn) == ["alex_drill_kept"]
    kept = h.connect(pg_dsn_for(dsn, "alex_drill_kept"))
    assert h.table_state(kept) == state
    kept.close()

    # a second drill into the kept database is refused (never into an existing database); nothing dropped
    again = playbooks.run_playbook("backup_restore", tmp_path, variables=dict(
        variables, backup_restore_backup=backup, backup_restore_scratch_db="alex_drill_kept"))
    assert again.rc != 0 and "exists already" in again.failure()
    assert drill_databases(pg_admin_dsn) == ["alex_drill_kept"]

    # the live database as the scratch target: stopped at the gate
    live_name = psycopg2.extensions.parse_dsn(dsn)["dbname"]
    refused = playbooks.run_playbook("backup_restore", tmp_path, variables=dict(
        variables, backup_restore_backup=backup, backup_restore_scratch_db=live_name))
    assert refused.rc != 0 and refused.host("localhost")["result"] == "gated"
    assert "is the live database" in refused.failure()
    assert h.table_state(conn) == state

    dropped = playbooks.run_playbook("backup_restore", tmp_path, variables=dict(
        variables, backup_restore_backup=backup, backup_restore_scratch_db="alex_drill_kept2"))
    assert dropped.rc == 0 and drill_databases(pg_admin_dsn) == ["alex_drill_kept"]
    res = h.run_module(alex_audit_scratch_db, dict(dsn=dsn, name="alex_drill_kept", state="absent"))
    assert res["changed"] is True and drill_databases(pg_admin_dsn) == []


def pg_dsn_for(dsn, dbname):
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = dbname
    return psycopg2.extensions.make_dsn(**params)


def test_rollback_refuses_a_loss_without_the_gate_and_records_the_loss_it_accepted(deployment, tmp_path):
    conn, dsn, backup, variables = deployment
    state = h.table_state(conn)
    rollback = dict(variables, audit_chain_backup=backup, audit_chain_confirm_rollback=True)
    refused = playbooks.run_playbook("audit_chain_rollback", tmp_path, variables=rollback)
    assert refused.rc != 0 and refused.host("localhost")["result"] == "gated"
    assert "would lose 48 rows" in refused.failure() and "audit_chain_accept_loss=true" in refused.failure()
    assert h.table_state(conn) == state

    rehearsal = playbooks.run_playbook("audit_chain_rollback", tmp_path, check=True,
                                       variables=dict(rollback, audit_chain_accept_loss=True))
    assert rehearsal.rc == 0, rehearsal.out[-4000:]
    assert rehearsal.host("localhost")["result"] == "planned" and h.table_state(conn) == state

    restored = playbooks.run_playbook("audit_chain_rollback", tmp_path,
                                      variables=dict(rollback, audit_chain_accept_loss=True))
    assert restored.rc == 0, restored.out[-4000:]
    assert restored.host("localhost")["result"] == "restored"
    summary = restored.record("localhost")["details"]["audit_chain_rollback"]
    assert summary["accepted_loss"]["tenants"]["acme"] == EXPECTED_ACME
    assert summary["accepted_loss"]["tenants"][HOSTILE] == EXPECTED_HOSTILE
    assert summary["checkpoints_ahead"] == sorted(["acme", HOSTILE])
    assert "reports truncated until they are reset" in summary["next_steps"][0]
    decisions = restored.record("localhost")["decisions"]
    assert any(d.get("accepted_loss") == sorted(["acme", HOSTILE]) for d in decisions)
    # the checkpoint is now ahead of the restored rows: exactly what the record says
    after = h.run_module(alex_audit_verify, dict(dsn=dsn, hmac_key=h.KEY, workers=1, checkpoint_key=CP_KEY,
                                                 checkpoint_dir=variables["alex_checkpoint_dir"]))
    assert after["tenants"]["acme"]["segments"] == EXPECTED_ACME["lost_up_to_checkpoint"]
    assert json.dumps(summary).count(CP_KEY) == 0


def test_scratch_module_never_drops_what_it_did_not_create_and_cleans_up_a_failed_restore(
        deployment, pg_admin_dsn, tmp_path):
    conn, dsn, backup, variables = deployment
    admin = psycopg2.connect(pg_admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE alex_drill_not_ours")
    try:
        for check in (True, False):
            res = h.run_module(alex_audit_scratch_db, dict(dsn=dsn, name="alex_drill_not_ours", state="absent"),
                               check_mode=check)
            assert res.get("failed") and "not a restore drill's scratch database" in res["msg"], res
        assert drill_databases(pg_admin_dsn) == ["alex_drill_not_ours"]
        res = h.run_module(alex_audit_scratch_db, dict(dsn=dsn, name="alex_drill_not_ours", backup=backup))
        assert res.get("failed") and "exists already" in res["msg"]
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE alex_drill_not_ours")
        admin.close()

    # a manifest whose fingerprints the restored rows do not match: the restore fails and drops what it created
    manifest = json.loads(pathlib.Path(backup + ".manifest.json").read_text())
    manifest["table_rows"]["public.audit_logs"]["rows"] += 1
    bad = tmp_path / "bad.dump"
    bad.write_bytes(pathlib.Path(backup).read_bytes())
    (tmp_path / "bad.dump.manifest.json").write_text(json.dumps(manifest))
    res = h.run_module(alex_audit_scratch_db, dict(dsn=dsn, name="alex_drill_bad", backup=str(bad)))
    assert res.get("failed") and "do not match the backup manifest" in res["msg"], res
    assert drill_databases(pg_admin_dsn) == []
    # the live database's name is refused for both states
    live_name = psycopg2.extensions.parse_dsn(dsn)["dbname"]
    for state in ("present", "absent"):
        res = h.run_module(alex_audit_scratch_db, dict(dsn=dsn, name=live_name, state=state, backup=backup))
        assert res.get("failed") and "is the live database" in res["msg"]
