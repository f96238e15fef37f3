"""Scenario 3 against the lab (`alexlab up`): real faults, credentials from the lab's Secret through its
Kubernetes facade, the lab API writing during a retirement, and the playbook end to end."""
import json
import threading
import time

import pytest

from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_export
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_retire
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

from alexlab.testing import LabHandle

import audit_helpers as h
from test_audit_chain_playbook import playbook

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    handle = LabHandle.up(tmp_path_factory.mktemp("auditlab"))
    handle.cli("seed-audit", "--tenants", "3", "--rows", "3000")
    yield handle
    proc = handle.down()
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def healthy(lab):
    assert lab.client.ready()[0] == 200
    yield lab
    # Rows a test retired cannot be put back by `heal` (it says so and exits 1): that is expected here.
    proc = lab.cli("heal", check=False)
    assert proc.returncode == 0 or "retired or deleted since" in proc.stderr, proc.stderr
    lab.client.wait_ready(60)


def k8s(lab, **extra):
    """Only the Kubernetes options: DSN and HMAC key come from the release's Secret."""
    return dict(kubeconfig=lab.info["kubeconfig"], namespace=lab.info["namespace"], release=lab.info["release"],
                **extra)


def scope(lab, **extra):
    res = h.run_module(alex_audit_verify, k8s(lab, **extra))
    assert not res.get("failed"), res
    return res


def seed_tenants(res):
    return dict((t, r) for t, r in res["tenants"].items() if t.startswith("seed-"))


def test_each_lab_fault_is_scoped_exactly(healthy):
    lab = healthy
    assert all(r["verified"] for r in seed_tenants(scope(lab)).values())

    lab.cli("break", "audit-tamper", "--tenant", "seed-001", "--seq", "100-104")
    res = scope(lab)
    assert res["broken"] == ["seed-001"]
    assert res["tenants"]["seed-001"]["segments"] == [
        {"first_seq": 100, "last_seq": 104, "rows": 5, "kind": "hmac_mismatch"}]
    assert res["tenants"]["seed-001"]["probable_cause"] == "direct_db_edit"
    lab.cli("heal", "audit-tamper")

    lab.cli("break", "audit-delete", "--tenant", "seed-002", "--seq", "200-209")
    res = scope(lab)
    assert res["broken"] == ["seed-002"]
    assert res["tenants"]["seed-002"]["segments"] == [{"first_seq": 200, "last_seq": 209, "rows": 10, "kind": "seq_gap"}]
    lab.cli("heal", "audit-delete")

    # two faults in one tenant
    lab.cli("break", "audit-tamper", "--tenant", "seed-003", "--seq", "50-51")
    lab.cli("break", "audit-delete", "--tenant", "seed-003", "--seq", "900-905")
    res = scope(lab, tenants=["seed-003"])
    assert res["tenants"]["seed-003"]["segments"] == [
        {"first_seq": 50, "last_seq": 51, "rows": 2, "kind": "hmac_mismatch"},
        {"first_seq": 900, "last_seq": 905, "rows": 6, "kind": "seq_gap"}]
    lab.cli("heal")
    assert scope(lab)["verified"] is True


def test_key_mismatch_is_reported_and_never_retired(healthy, tmp_path):
    lab = healthy
    lab.cli("break", "audit-key-mismatch")
    res = scope(lab)
    for tenant, result in seed_tenants(res).items():
        assert result["probable_cause"] == "key_mismatch", tenant
        assert result["segments"] == [{"first_seq": 1, "last_seq": result["last_seq"], "rows": result["rows"],
                                       "kind": "hmac_mismatch"}]
    assert set(seed_tenants(res)) <= set(res["key_mismatch"])
    before = h.table_state(h.connect(lab.info["dsn"]))
    res = h.run_module(alex_audit_retire, k8s(lab, tenant="seed-001", compliance_signoff="CR-1",
                                              capture=str(tmp_path / "none.csv"), backup=str(tmp_path / "none.dump")))
    assert res["failed"] and res["probable_cause"] == "key_mismatch" and "key rotation" in res["msg"]
    assert h.table_state(h.connect(lab.info["dsn"])) == before


def test_retire_while_the_lab_api_writes(healthy, tmp_path):
    lab = healthy
    lab.cli("seed-audit", "--tenants", "1", "--rows", "30000", "--prefix", "busy")
    tenant = "busy-001"
    lab.cli("break", "audit-tamper", "--tenant", tenant, "--seq", "5000-5999")
    capture, backup = str(tmp_path / "capture.csv"), str(tmp_path / "pre.dump")
    assert h.run_module(alex_audit_export, k8s(lab, tenant=tenant, dest=capture))["rows"] == 1000
    assert h.run_module(alex_audit_backup, k8s(lab, dest=backup))["changed"]
    stop = threading.Event()
    answers = []

    def writer(target, n):
        while not stop.is_set():
            status, body = lab.api("POST", "/api/v1/tenants/%s/audit" % target,
                                   {"actor": "writer-%d" % n, "action": "concurrent.write", "payload": {"n": n}})
            answers.append((target, status, body, time.monotonic()))

    threads = [threading.Thread(target=writer, args=(t, i)) for i, t in enumerate([tenant, tenant, "seed-002"])]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    proc = h.run_module_process("alex_audit_retire", k8s(lab, tenant=tenant, capture=capture, backup=backup,
                                                         compliance_signoff="CR-2026-0099"),
                                args_path=str(tmp_path / "args.json"))
    out, err = proc.communicate(timeout=300)
    ended = time.monotonic()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    result = json.loads(out)
    assert proc.returncode == 0 and result["changed"] is True, (result, err)
    assert result["moved"] == 1000 and result["msg"].startswith("audit chain anchor reset")
    # no write failed, none was lost, some happened while the retirement ran
    assert [a for a in answers if a[1] != 201] == []
    assert any(started <= at <= ended for target, _s, _b, at in answers if target == tenant)
    mine = dict((b["seq"], b["row_hmac"]) for target, _s, b, _at in answers if target == tenant)
    rows = lab.sql("SELECT seq, row_hmac FROM audit_logs WHERE tenant_id = %s AND action = 'concurrent.write'",
                   (tenant,))
    assert dict(rows) == mine
    res = scope(lab, tenants=[tenant, "seed-002"])
    assert res["verified"] is True, res["scope"]
    assert res["tenants"][tenant]["rows"] == 30000 - 1000 + len(mine)


def test_playbook_against_the_lab(healthy, tmp_path):
    lab = healthy
    info = lab.info
    lab.cli("break", "audit-tamper", "--tenant", "seed-001", "--seq", "700-702")
    lab.cli("break", "audit-delete", "--tenant", "seed-002", "--seq", "10-12")
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"audit_chain_kubeconfig": info["kubeconfig"], "audit_chain_base_url": info["api_url"],
                                 "audit_chain_admin_token": info["admin_token"],
                                 "audit_chain_evidence_dir": str(tmp_path / "evidence"),
                                 "audit_chain_incident_id": "LAB-1", "alex_report_dir": str(tmp_path / "records")}))
    conn = h.connect(info["dsn"])
    broken = h.table_state(conn)
    proc, (changed, failed) = playbook("audit_chain_failure", str(extra))
    assert failed == 1 and "Missing - audit_chain_signoff" in proc.stdout
    gates = ("-e", "audit_chain_signoff=CR-LAB-1", "-e", "audit_chain_confirm=true")
    proc, (changed, failed) = playbook("audit_chain_failure", str(extra), *gates, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert h.table_state(conn) == broken
    proc, (changed, failed) = playbook("audit_chain_failure", str(extra), *gates, "-vvv")
    assert proc.returncode == 0, proc.stdout[-3000:]
    output = proc.stdout + proc.stderr
    for secret in (info["hmac_key"], info["admin_token"], info["k8s_token"]):
        assert secret not in output
    assert "audit chain anchor reset" in output
    report = json.load(open(tmp_path / "evidence" / "LAB-1" / "incident-report.json"))
    assert report["status"] == "retired" and report["verification_after"]["verified"] is True
    assert all(t["api_write_after"]["status"] == 201 for t in report["tenants"])
    proc, (changed, failed) = playbook("audit_chain_failure", str(extra), *gates)
    assert proc.returncode == 0 and changed == 0
    assert scope(lab)["verified"] is True
