"""Scenario 3 against the lab (`alexlab up`): real faults, credentials from the lab's Secret through its
Kubernetes facade, the lab API writing during a retirement, and the playbook end to end."""
import datetime
import glob
import json
import threading
import time

import pytest

from ansible_collections.alexandria.ee.plugins.modules import alex_api_log
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


def test_empty_environment_credentials_mean_read_the_secret(healthy, monkeypatch):
    """AWX injects every field of a credential, empty ones as "": that must not be taken as the key or DSN."""
    monkeypatch.setenv("ALEX_AUDIT_HMAC_KEY", "")
    monkeypatch.setenv("ALEX_DSN", "")
    res = scope(healthy)
    assert res["verified"] is True and seed_tenants(res)


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
    # The runbook's last verification, from the API's own log, is in the run record.
    records = [json.load(open(p)) for p in glob.glob(str(tmp_path / "records" / "*.json"))]
    (retired,) = [r for r in records if r["result"] == "retired"]
    # The pre-check read the API's error lines too (the lab logs them at start and on every verification).
    (logged,) = [o["what"] for o in retired["observed"] if o["what"].startswith("the api log holds ")]
    assert "seed-001" in logged and "seed-002" in logged, logged
    (confirmed,) = [a for a in retired["actions"] if a["action"] == "api_log_anchor_reset"]
    assert confirmed["what"].startswith("the api log confirms the anchor reset of every retired tenant: ")
    assert 'audit chain anchor reset: tenant="seed-001"' in confirmed["what"]
    assert 'audit chain anchor reset: tenant="seed-002"' in confirmed["what"]
    proc, (changed, failed) = playbook("audit_chain_failure", str(extra), *gates)
    assert proc.returncode == 0 and changed == 0
    assert scope(lab)["verified"] is True


def utc_stamp(seconds_from_now=0):
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_api_log_reports_what_the_api_logged(healthy):
    """alex_api_log reads the runbook's log lines through the Kubernetes facade, since a time, exactly."""
    lab = healthy
    since = utc_stamp(-1)
    lab.cli("break", "audit-tamper", "--tenant", "seed-003", "--seq", "20-21")
    assert lab.api("POST", "/admin/v1/audit/verify")[0] == 200
    res = h.run_module(alex_api_log, k8s(lab, since=since, expect=[{"kind": "chain_broken", "tenant": "seed-003"}]))
    assert not res.get("failed") and res["found"] is True and res["missing"] == [], res
    broken = [e for e in res["events"] if e["kind"] == "chain_broken" and e["tenant"] == "seed-003"]
    assert broken and broken[0]["first_seq"] == 20 and broken[0]["last_seq"] == 21
    assert broken[0]["segment_kind"] == "hmac_mismatch" and broken[0]["pod"] in res["pods"]
    assert any(e["kind"] == "hmac_mismatch" and e["tenant"] == "seed-003" for e in res["events"])
    assert res["k8s_requests"] == 2  # one pod list, one log read

    # Nothing was logged about an anchor: found is false, the wait is bounded, nothing fails.
    res = h.run_module(alex_api_log, k8s(lab, since=since, wait_timeout=2, wait_sleep=0.5,
                                         expect=[{"kind": "anchor_reset", "tenant": "seed-003"}]))
    assert res["found"] is False and res["missing"] == [{"kind": "anchor_reset", "tenant": "seed-003"}]
    assert 1.5 <= res["waited_s"] <= 10 and "not logged: anchor_reset of tenant 'seed-003'" in res["msg"]

    # Lines before since are left out, by the facade (sinceSeconds) and by the module (the lines' own times).
    assert h.run_module(alex_api_log, k8s(lab, since=utc_stamp(3600)))["events"] == []
    pod = lab.pod()["metadata"]["name"]
    assert lab.kubectl("logs", pod, "-c", "api", "--since-time=" + utc_stamp(3600), "-n",
                       lab.info["namespace"]).stdout == ""
    assert "audit chain broken" in lab.kubectl("logs", pod, "-c", "api", "--since=10m", "-n",
                                               lab.info["namespace"]).stdout

    bad = h.run_module(alex_api_log, k8s(lab, since="yesterday"))
    assert bad["failed"] and "is not an RFC 3339 time" in bad["msg"]
    lab.cli("break", "rbac-deny", "--resource", "pods/log")
    try:
        denied = h.run_module(alex_api_log, k8s(lab))
        assert denied["failed"] and "403" in denied["msg"] and "Traceback" not in denied["msg"], denied
    finally:
        lab.cli("heal", "rbac-deny")
