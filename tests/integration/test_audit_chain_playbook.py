"""The playbooks alexandria.ee.audit_chain_failure and audit_chain_rollback, run by ansible-playbook
against a real PostgreSQL: gates, --check, the real run, the second run, secrets under -vvv, rollback."""
import glob
import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

import audit_helpers as h
import playbooks

BIN = os.path.dirname(sys.executable)
PASSWORD = "S3cretPassw0rd-9d1f7c"
HOSTILE = "../x'; DROP TABLE audit_logs;--\"ü"


def playbook(name, extra, *args, check=False):
    env = playbooks.ansible_env(ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_LOCALHOST_WARNING="false",
                                ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    argv = [os.path.join(BIN, "ansible-playbook"), "alexandria.ee." + name, "-e", "@" + extra] + list(args)
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
    return proc, (int(recap.group(2)), int(recap.group(3))) if recap else (None, None)


def files(directory):
    out = {}
    for path in glob.glob(os.path.join(directory, "**", "*"), recursive=True):
        if os.path.isfile(path):
            out[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


@pytest.fixture
def incident(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 300) + h.rows_for("globex", 120) + h.rows_for("clean", 20)
           + h.rows_for(HOSTILE, 30))
    h.tamper(conn, "acme", [10, 11, 200])
    h.delete(conn, "globex", range(40, 46))
    h.tamper(conn, HOSTILE, [7])
    extra = tmp_path / "vars.json"
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    extra.write_text(json.dumps({"audit_chain_dsn": pg_dsn + " password=" + PASSWORD, "audit_chain_hmac_key": h.KEY,
                                 "audit_chain_evidence_dir": str(evidence), "audit_chain_incident_id": "inc-42",
                                 "alex_report_dir": str(tmp_path / "records")}))
    return conn, str(extra), str(evidence / "inc-42")


def test_gates_check_real_second_run_and_rollback(incident):
    conn, extra, evidence = incident
    broken = h.table_state(conn)

    # 1. pre-checks only: scope, capture and report; the gate names both missing variables
    proc, (changed, failed) = playbook("audit_chain_failure", extra)
    assert failed == 1 and proc.returncode != 0
    assert "Missing - audit_chain_signoff (the reference of the written compliance sign-off); audit_chain_confirm=true" \
        in proc.stdout
    assert h.table_state(conn) == broken
    slug = dict((t, "%s-%s" % (safe, hashlib.sha1(t.encode()).hexdigest()[:10]))
                for t, safe in (("acme", "acme"), ("globex", "globex"), (HOSTILE, ".._x_DROP_TABLE_audit_logs_--_")))
    assert sorted(os.path.relpath(p, evidence) for p in files(evidence)) == sorted(
        ["capture-%s.csv" % s for s in slug.values()] + ["capture-%s.csv.manifest.json" % s for s in slug.values()]
        + ["incident-report.json", "incident-report.md"])
    assert json.load(open(os.path.join(evidence, "incident-report.json")))["status"] == "captured_awaiting_signoff"
    proc, (changed, failed) = playbook("audit_chain_failure", extra, "-e", "audit_chain_signoff=CR-7")
    assert failed == 1 and "Missing - audit_chain_confirm=true" in proc.stdout and "audit_chain_signoff (" not in \
        proc.stdout.split("Missing - ")[1].split(".")[0]

    # 2. --check with both gates open: the whole playbook runs, nothing changes anywhere
    before_files = files(evidence)
    versions = h.row_versions(conn)
    gates = ("-e", "audit_chain_signoff=CR-2026-0042", "-e", "audit_chain_confirm=true")
    proc, (changed, failed) = playbook("audit_chain_failure", extra, *gates, check=True)
    assert proc.returncode == 0 and failed == 0, proc.stdout[-3000:]
    assert "RetireUnverifiableAuditRows" in proc.stdout and "would_retire (check mode)" in proc.stdout
    assert h.table_state(conn) == broken and h.row_versions(conn) == versions
    assert files(evidence) == before_files

    # 3. the real run, at -vvv: retire, verify; neither the password nor the HMAC key is printed
    proc, (changed, failed) = playbook("audit_chain_failure", extra, *gates, "-vvv")
    assert proc.returncode == 0 and failed == 0, proc.stdout[-3000:]
    output = proc.stdout + proc.stderr
    assert PASSWORD not in output and h.KEY not in output
    assert "audit chain anchor reset" in output
    retired = h.table_state(conn)
    assert retired["quarantine"][0] == 4 and retired["anchors"][0] == 4
    report = json.load(open(os.path.join(evidence, "incident-report.json")))
    assert report["status"] == "retired" and report["signoff"] == "CR-2026-0042"
    acme = next(t for t in report["tenants"] if t["tenant_id"] == "acme")
    assert acme["affected_row_ranges"] == [[10, 11], [200, 200]]
    assert acme["suspected_cause"]["code"] == "direct_db_edit"
    assert [a["resume_seq"] for a in acme["retired"]["anchors"]] == [12, 201]
    assert acme["capture"]["sha256"] == hashlib.sha256(open(acme["capture"]["file"], "rb").read()).hexdigest()
    backup = report["backup"]
    assert backup["sha256"] == hashlib.sha256(open(backup["file"], "rb").read()).hexdigest()
    assert all(a["backup_sha256"] == backup["sha256"] for a in acme["retired"]["anchors"])
    globex = next(t for t in report["tenants"] if t["tenant_id"] == "globex")
    assert globex["suspected_cause"]["code"] == "restore_gap" and globex["missing_seq_ranges"] == [[40, 45]]
    assert report["verification_after"]["verified"] is True
    md = open(os.path.join(evidence, "incident-report.md")).read()
    assert "Suspected cause" in md and backup["sha256"] in md and "CR-2026-0042" in md

    # 4. a second real run (and a --check run) find nothing to do
    versions = h.row_versions(conn)
    proc, (changed, failed) = playbook("audit_chain_failure", extra, *gates)
    assert proc.returncode == 0 and changed == 0, proc.stdout[-3000:]
    proc, (changed, failed) = playbook("audit_chain_failure", extra, *gates, check=True)
    assert proc.returncode == 0 and changed == 0
    assert h.table_state(conn) == retired and h.row_versions(conn) == versions

    # 5. rollback: gated, --check changes nothing, the real run restores the broken chain exactly, then no-op
    proc, (changed, failed) = playbook("audit_chain_rollback", extra, "-e", "audit_chain_backup=" + backup["file"])
    assert failed == 1 and "Missing - audit_chain_confirm_rollback=true" in proc.stdout
    confirm = ("-e", "audit_chain_backup=" + backup["file"], "-e", "audit_chain_confirm_rollback=true")
    proc, (changed, failed) = playbook("audit_chain_rollback", extra, *confirm, check=True)
    assert proc.returncode == 0 and h.table_state(conn) == retired
    proc, (changed, failed) = playbook("audit_chain_rollback", extra, *confirm, "-vvv")
    assert proc.returncode == 0 and changed == 1, proc.stdout[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr and h.KEY not in proc.stdout + proc.stderr
    assert h.table_state(conn) == broken
    assert '"verified": false' in proc.stdout
    proc, (changed, failed) = playbook("audit_chain_rollback", extra, *confirm)
    assert proc.returncode == 0 and changed == 0


def test_key_mismatch_stops_with_a_report_and_changes_nothing(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 50, key=h.OTHER_KEY) + h.rows_for("fine", 5, key=h.OTHER_KEY))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"audit_chain_dsn": pg_dsn, "audit_chain_hmac_key": h.KEY,
                                 "audit_chain_evidence_dir": str(tmp_path), "audit_chain_incident_id": "km",
                                 "alex_report_dir": str(tmp_path / "records"),
                                 "audit_chain_signoff": "CR-1", "audit_chain_confirm": True}))
    before = h.table_state(conn)
    proc, (changed, failed) = playbook("audit_chain_failure", str(extra))
    assert failed == 1 and "probable_cause key_mismatch" in proc.stdout and "key-rotation.md" in proc.stdout
    assert h.table_state(conn) == before
    report = json.load(open(tmp_path / "km" / "incident-report.json"))
    assert report["status"] == "refused_key_mismatch"
    assert all(t["suspected_cause"]["code"] == "key_mismatch" for t in report["tenants"])
    assert not glob.glob(str(tmp_path / "km" / "*.dump")) and not glob.glob(str(tmp_path / "km" / "capture-*"))
