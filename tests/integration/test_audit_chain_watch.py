"""The playbook alexandria.ee.audit_chain_watch run by ansible-playbook against a real PostgreSQL (directory store):
--check writes nothing, a real run writes the checkpoints, a second run changes nothing, a cut tail fails the job
with its exact range, keys never show at -vvv; the scenario playbook names the loss and stops at its gate."""
import json
import os

import audit_helpers as h
import playbooks
from test_audit_checkpoints import CP_KEY, tree_state

PASSWORD = "WatchPassw0rd-77ab"


def run(tmp_path, variables, *args, check=False, name="audit_chain_watch"):
    return playbooks.run_playbook(name, tmp_path, *args, variables=variables, check=check)


def test_watch_four_steps_then_a_cut_tail(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 300) + h.rows_for("globex", 50))
    cp_dir = tmp_path / "checkpoints"
    cp_dir.mkdir(mode=0o700)
    variables = {"audit_chain_dsn": pg_dsn + " password=" + PASSWORD, "audit_chain_hmac_key": h.KEY,
                 "audit_chain_checkpoint_dir": str(cp_dir), "audit_chain_checkpoint_key": CP_KEY,
                 "alex_report_dir": str(tmp_path / "records")}

    rehearsal = run(tmp_path, variables, check=True)
    assert rehearsal.rc == 0, rehearsal.out
    assert tree_state(cp_dir) == {}
    assert rehearsal.host("localhost")["result"] == "verified" and rehearsal.host("localhost")["check_mode"]

    first = run(tmp_path, variables)
    assert first.rc == 0, first.out
    assert first.hosts["localhost"]["changed"] == 1
    written = tree_state(cp_dir)
    assert len([n for n in written if n.endswith(".json")]) == 2
    record = first.record("localhost")
    assert record["details"]["checkpoints"]["acme"]["last_seq"] == 300
    assert record["details"]["checkpoints"]["acme"]["advanced"] is True

    again_check = run(tmp_path, variables, check=True)
    assert again_check.rc == 0 and again_check.hosts["localhost"]["changed"] == 0, again_check.out
    again = run(tmp_path, variables, "-vvv")
    assert again.rc == 0 and again.hosts["localhost"]["changed"] == 0, again.out
    assert tree_state(cp_dir) == written
    assert again.record("localhost")["details"]["rows_read"] == 2
    for secret in (CP_KEY, h.KEY, PASSWORD):
        assert secret not in again.out

    h.delete(conn, "acme", range(296, 301))
    caught = run(tmp_path, variables, "-vvv")
    assert caught.rc != 0
    assert "truncated seq 296-300 (5 missing)" in caught.failure()
    host = caught.host("localhost")
    assert host["result"] == "broken" and host["causes"] == ["tail_truncation"]
    assert host["scope"]["segments"]["acme"] == [{"first_seq": 296, "last_seq": 300, "rows": 5, "kind": "truncated"}]
    assert tree_state(cp_dir) == written, "the broken tenant's checkpoint moved"
    for secret in (CP_KEY, h.KEY, PASSWORD):
        assert secret not in caught.out

    # The scenario playbook scopes it in full, files the report and stops: nothing in the table to retire.
    scenario_vars = dict(variables, audit_chain_evidence_dir=str(tmp_path / "evidence"),
                         audit_chain_incident_id="cut-tail", audit_chain_signoff="CR-1", audit_chain_confirm=True,
                         audit_chain_check_api_log=False)
    before = h.table_state(conn)
    incident = run(tmp_path, scenario_vars, name="audit_chain_failure")
    assert incident.rc != 0
    assert "tenant acme truncated seq 296-300 (5 rows)" in incident.failure()
    assert incident.host("localhost")["result"] == "lost_against_checkpoint"
    assert h.table_state(conn) == before
    with open(os.path.join(tmp_path, "evidence", "cut-tail", "incident-report.json")) as handle:
        report = json.load(handle)
    [acme] = [t for t in report["tenants"] if t["tenant_id"] == "acme"]
    assert acme["status"] == "lost_against_checkpoint"
    assert acme["suspected_cause"]["code"] == "tail_truncation"
    assert any("missing at the tail" in line for line in acme["suspected_cause"]["reasoning"])


def test_watch_without_a_store_stops_at_its_gate(pg_dsn, tmp_path):
    h.setup_tables(pg_dsn)
    out = run(tmp_path, {"audit_chain_dsn": pg_dsn, "audit_chain_hmac_key": h.KEY,
                         "alex_report_dir": str(tmp_path / "records")})
    assert out.rc != 0 and "needs a checkpoint store" not in out.failure()
    assert "set audit_chain_checkpoint_dir" in out.failure()
    assert out.host("localhost")["result"] == "gated"


def test_last_run_record_witnesses_a_replayed_or_deleted_checkpoint(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 100))
    cp_dir = tmp_path / "checkpoints"
    cp_dir.mkdir(mode=0o700)
    variables = {"audit_chain_dsn": pg_dsn, "audit_chain_hmac_key": h.KEY, "audit_chain_checkpoint_dir": str(cp_dir),
                 "audit_chain_checkpoint_key": CP_KEY, "alex_report_dir": str(tmp_path / "records")}
    assert run(tmp_path, variables).rc == 0
    [sub] = os.listdir(cp_dir)
    [name] = [n for n in os.listdir(cp_dir / sub) if n.endswith(".json")]
    old = (cp_dir / sub / name).read_bytes()
    for _write in range(4):
        h.write_audit(conn, "acme", "more")
    advanced = run(tmp_path, variables)
    assert advanced.rc == 0 and advanced.record("localhost")["details"]["checkpoints"]["acme"]["last_seq"] == 104
    # A rehearsal leaves a record too; it is no witness of a write and must not confuse the next run.
    assert run(tmp_path, variables, check=True).rc == 0
    (cp_dir / sub / name).write_bytes(old)
    replayed = run(tmp_path, variables)
    assert replayed.rc != 0
    assert "older or diverging checkpoint than the last watch run record" in replayed.failure()
    assert (cp_dir / sub / name).read_bytes() == old
    (cp_dir / sub / name).unlink()
    deleted = run(tmp_path, variables)
    assert deleted.rc != 0 and "the checkpoints were deleted" in deleted.failure()
    # A failed run's record carries what the witness saw: the replay is not laundered by the runs that failed.
    (cp_dir / sub / name).write_bytes(old)
    for _round in range(2):
        again = run(tmp_path, variables)
        assert again.rc != 0 and "older or diverging checkpoint" in again.failure()
        assert again.record("localhost")["details"]["checkpoints"]["acme"]["witnessed_last_seq"] == 104
