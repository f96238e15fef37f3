"""Every fault: inject it, see the runbook's symptoms through kubectl, the kubernetes client, HTTP and SQL, heal it.

One lab for the module; each test leaves it healthy (the `healthy` fixture heals whatever is left).
"""
import base64
import gzip
import json

import psutil
import pytest

from alexlab.common import parse_quantity, proc_alive

pytestmark = pytest.mark.lab

NS = "alexandria"


def ready(lab):
    return lab.api("GET", "/ready", auth=False)


def api_log(lab, tail=200):
    return lab.kubectl("logs", "-n", NS, lab.pod()["metadata"]["name"], "-c", "api", "--tail=%d" % tail).stdout


def events(lab):
    return lab.core().list_namespaced_event(NS).items


def assert_healthy(lab):
    lab.client.wait_ready(60)
    code, body = ready(lab)
    assert code == 200 and body["status"] == "ready"
    assert lab.api("GET", "/license", auth=False)[1]["valid"] is True
    assert json.loads(lab.cli("status", "--json").stdout)["faults"] == []


def test_orchestrator_crash(healthy):
    lab = healthy
    lab.cli("break", "orchestrator-crash")
    code, body = ready(lab)
    assert code == 503 and body["status"] == "not_ready"
    assert body["reason"] == body["checks"]["orchestrator"] == "orchestrator.sock: no such file or directory"
    assert "orchestrator.sock: no such file or directory" in api_log(lab)

    def crash_looping():
        status = lab.client.container_status("orchestrator")
        waiting = status["state"].get("waiting", {})
        return waiting.get("reason") == "CrashLoopBackOff" and status["restartCount"] >= 2 and status
    status = lab.client.wait_for("CrashLoopBackOff", crash_looping, 30)
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert status["lastState"]["terminated"]["reason"] == "Error"
    pod = lab.pod()["metadata"]["name"]
    assert "panic: runtime error" in lab.kubectl("logs", "-n", NS, pod, "-c", "orchestrator", "--previous").stdout
    row = lab.kubectl("get", "pods", "-n", NS, "-l", "app.kubernetes.io/instance=alexandria-ee").stdout
    assert "1/2" in row or "0/2" in row
    assert any(e.reason == "BackOff" and "orchestrator" in e.message for e in events(lab))
    lab.cli("heal", "orchestrator-crash")
    assert_healthy(lab)


def test_orchestrator_hang(healthy):
    lab = healthy
    pid = lab.info["pids"]["orchestrator"]
    lab.cli("break", "orchestrator-hang")
    code, body = ready(lab)
    assert code == 503 and body["checks"]["orchestrator"] == "context deadline exceeded"
    assert body["reason"] == "context deadline exceeded"
    assert "context deadline exceeded" in api_log(lab)
    assert proc_alive(pid)  # hung, not dead
    code, body = lab.api("POST", "/api/v1/tenants", {"id": "during-hang", "name": "x"})
    assert code == 503 and body["detail"] == "context deadline exceeded"
    lab.cli("heal", "orchestrator-hang")
    assert_healthy(lab)
    assert lab.info["pids"]["orchestrator"] == pid


def helm_history(lab):
    """(revision, status label, chart, app version, description) of each history Secret, read as Helm's driver
    stores it: the Secret's data is base64 of (base64 of gzip of JSON)."""
    rows = []
    for secret in lab.core().list_namespaced_secret(NS, label_selector="owner=helm,name=alexandria-ee").items:
        assert secret.type == "helm.sh/release.v1"
        assert secret.metadata.name == "sh.helm.release.v1.alexandria-ee.v" + secret.metadata.labels["version"]
        raw = base64.b64decode(base64.b64decode(secret.data["release"]))
        assert raw[:2] == b"\x1f\x8b"
        release = json.loads(gzip.decompress(raw))
        assert release["info"]["status"] == secret.metadata.labels["status"]
        assert release["name"] == "alexandria-ee" and release["namespace"] == NS
        rows.append((release["version"], release["info"]["status"], release["chart"]["metadata"]["version"],
                     release["chart"]["metadata"]["appVersion"], release["info"]["description"]))
    return sorted(rows)


def images(lab):
    return lab.kubectl("get", "deployment", "alexandria-ee", "-n", NS, "-o",
                       "jsonpath={.spec.template.spec.containers[*].image}").stdout.split()


def test_bad_upgrade(healthy):
    lab = healthy
    assert helm_history(lab) == [(1, "deployed", "1.4.0", "1.4.0", "Install complete")]
    assert images(lab) == ["alexandria/api:1.4.0", "alexandria/orchestrator:1.4.0"]
    lab.cli("break", "bad-upgrade")
    assert helm_history(lab) == [(1, "superseded", "1.4.0", "1.4.0", "Install complete"),
                                 (2, "deployed", "1.5.0", "1.5.0", "Upgrade complete")]
    assert images(lab) == ["alexandria/api:1.5.0", "alexandria/orchestrator:1.5.0"]
    code, body = ready(lab)
    assert code == 503 and body["reason"] == "orchestrator.sock: no such file or directory"

    def crash_looping():
        status = lab.client.container_status("orchestrator")
        return status["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" and status
    status = lab.client.wait_for("CrashLoopBackOff", crash_looping, 30)
    assert status["lastState"]["terminated"]["exitCode"] == 2
    previous = lab.kubectl("logs", "-n", NS, lab.pod()["metadata"]["name"], "-c", "orchestrator", "--previous").stdout
    assert "job state format 'v2' is not supported" in previous and "panic: runtime error" in previous
    assert "already active" in lab.cli("break", "bad-upgrade", check=False).stderr
    lab.cli("heal", "bad-upgrade")
    assert helm_history(lab) == [(1, "deployed", "1.4.0", "1.4.0", "Install complete")]
    assert images(lab) == ["alexandria/api:1.4.0", "alexandria/orchestrator:1.4.0"]
    assert_healthy(lab)


def test_oom_is_fixed_by_raising_the_limit(healthy):
    lab = healthy
    lab.cli("break", "oom")
    status = lab.client.container_status("orchestrator")
    terminated = status["lastState"]["terminated"]
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    assert status["restartCount"] >= 1
    oom_events = [e for e in events(lab) if e.reason == "OOMKilling"]
    assert oom_events and "exceeded its memory limit 128Mi" in oom_events[0].message
    listed = lab.kubectl("get", "events", "-n", NS, "--sort-by=.lastTimestamp").stdout
    assert "OOMKilling" in listed
    # The runbook's fix: raise resources.orchestrator.limits.memory (as a Helm upgrade would patch the Deployment).
    lab.kubectl("patch", "deployment", "alexandria-ee", "-n", NS, "-p", json.dumps({"spec": {"template": {"spec": {
        "containers": [{"name": "orchestrator", "resources": {"limits": {"memory": "384Mi"}}}]}}}}))
    lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=90s")
    lab.client.wait_for("the orchestrator to hold its working set",
                        lambda: "job index cache 160 MiB" in lab.logs("orchestrator"), 30)
    rss = psutil.Process(lab.info["pids"]["orchestrator"]["pid"]).memory_info().rss
    assert rss > parse_quantity("128Mi")  # more than the old limit, and it stays up
    assert ready(lab)[0] == 200
    assert lab.client.container_status("orchestrator")["restartCount"] == 0
    lab.cli("heal", "oom")
    lab.kubectl("patch", "deployment", "alexandria-ee", "-n", NS, "-p", json.dumps({"spec": {"template": {"spec": {
        "containers": [{"name": "orchestrator", "resources": {"limits": {"memory": "128Mi"}}}]}}}}))
    lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=90s")
    assert_healthy(lab)


@pytest.mark.parametrize("fault, reason, words", [
    ("license-corrupt", "bad_signature", "license signature verification failed"),
    ("license-missing", "missing", "license blob invalid: missing"),
    ("license-expired", "expired", "license blob invalid: expired"),
])
def test_license_faults(healthy, fault, reason, words):
    lab = healthy
    lab.cli("break", fault)
    code, body = ready(lab)
    assert code == 503 and body["checks"]["license"] == words and body["checks"]["orchestrator"] == "ok"
    code, lic = lab.api("GET", "/license", auth=False)
    assert code == 200 and lic["valid"] is False and lic["reason"] == reason
    assert lic["max_seats"] == 0 and lic["max_tenants"] == 0
    assert words in api_log(lab)
    secret = lab.kubectl("get", "secret", "-n", NS, "alexandria-ee-license", "-o", "jsonpath={.data.license\\.blob}",
                         check=False)
    if fault == "license-missing":
        assert secret.returncode == 1 and "NotFound" in secret.stderr
    else:
        assert base64.b64decode(secret.stdout).decode() != lab.info["license_blob"]
    lab.client.wait_for("the readiness probe to fail",
                        lambda: lab.client.container_status("api")["ready"] is False, 20)
    assert "1/2" in lab.kubectl("get", "pods", "-n", NS).stdout
    assert lab.apps().read_namespaced_deployment("alexandria-ee", NS).status.available_replicas == 0
    lab.cli("heal", fault)
    assert_healthy(lab)


def test_seats_exhausted(healthy):
    lab = healthy
    lab.cli("seed-users", "--active", "2", "--inactive", "3", "--inactive-days", "60")
    lab.cli("break", "seats-exhausted")
    lic = lab.api("GET", "/license", auth=False)[1]
    assert lic["current_seats"] == lic["max_seats"] == 25
    tenant = lab.sql("SELECT id FROM tenants ORDER BY id LIMIT 1")[0][0]
    code, body = lab.api("POST", "/api/v1/users", {"username": "one-more", "tenant_id": tenant})
    assert code == 402 and body == {"error": "quota_exceeded", "quota": "seats", "current": 25, "max": 25}
    inactive = lab.sql("SELECT id FROM users WHERE last_active_at < now() - interval '60 days' ORDER BY id")
    assert len(inactive) == 3
    # The runbook's way out: deactivate inactive users through the admin API, and a seat is free again.
    assert lab.api("POST", "/admin/v1/users/%d/deactivate" % inactive[0][0])[1]["changed"] is True
    assert lab.api("POST", "/api/v1/users", {"username": "one-more", "tenant_id": tenant})[0] == 201
    lab.cli("heal", "seats-exhausted")
    lic = lab.api("GET", "/license", auth=False)[1]
    assert lic["current_seats"] < lic["max_seats"]
    assert_healthy(lab)


def test_tenants_exhausted(healthy):
    lab = healthy
    lab.cli("break", "tenants-exhausted")
    lic = lab.api("GET", "/license", auth=False)[1]
    assert lic["current_tenants"] == lic["max_tenants"] == 5
    code, body = lab.api("POST", "/api/v1/tenants", {"id": "one-more", "name": "x"})
    assert code == 402 and body == {"error": "quota_exceeded", "quota": "tenants", "current": 5, "max": 5}
    assert len(lab.api("GET", "/admin/v1/tenants")[1]["tenants"]) == 5
    lab.cli("heal", "tenants-exhausted")
    assert lab.api("GET", "/license", auth=False)[1]["current_tenants"] < 5
    assert_healthy(lab)


@pytest.fixture
def chains(healthy):
    healthy.cli("seed-audit", "--tenants", "2", "--rows", "500", "--prefix", "chain")
    yield healthy
    healthy.sql("DELETE FROM audit_logs WHERE tenant_id LIKE 'chain-%%'", fetch=False)
    healthy.sql("DELETE FROM tenants WHERE id LIKE 'chain-%%'", fetch=False)


def verified(lab):
    code, report = lab.api("POST", "/admin/v1/audit/verify")
    assert code == 200
    return report


def test_audit_tamper(chains):
    lab = chains
    before = lab.sql("SELECT payload::text, row_hmac FROM audit_logs WHERE tenant_id = 'chain-001' AND seq = 100")
    lab.cli("break", "audit-tamper", "--tenant", "chain-001", "--seq", "100-120")
    rows = lab.sql("SELECT seq FROM audit_logs WHERE tenant_id = 'chain-001' AND payload ? 'tampered' ORDER BY seq")
    assert [r[0] for r in rows] == list(range(100, 121))
    logs = api_log(lab)
    assert 'HMAC mismatch: tenant="chain-001" seq=100-120 rows=21' in logs
    assert 'audit chain broken: tenant="chain-001" seq=100-120 kind=hmac_mismatch' in logs
    report = verified(lab)
    assert report["broken_tenants"] == ["chain-001"]
    tenant = [t for t in report["tenants"] if t["tenant_id"] == "chain-001"][0]
    assert tenant["segments"] == [{"first_seq": 100, "last_seq": 120, "rows": 21, "kind": "hmac_mismatch"}]
    assert tenant["probable_cause"] == "direct_db_edit"
    # The tip still verifies: writes go on (the contract refuses only when the tip is broken).
    assert lab.api("POST", "/api/v1/tenants/chain-001/audit", {"actor": "a", "action": "b"})[0] == 201
    lab.cli("heal", "audit-tamper")
    assert lab.sql("SELECT payload::text, row_hmac FROM audit_logs WHERE tenant_id = 'chain-001' AND seq = 100") == \
        before
    assert verified(lab)["verified"] is True
    assert_healthy(lab)


def test_audit_tamper_at_the_tip_refuses_writes(chains):
    lab = chains
    lab.cli("break", "audit-tamper", "--tenant", "chain-002", "--seq", "500", "--no-verify")
    code, body = lab.api("POST", "/api/v1/tenants/chain-002/audit", {"actor": "a", "action": "b"})
    assert (code, body) == (409, {"error": "audit chain broken", "tenant_id": "chain-002", "seq": 500})
    assert 'audit chain broken: tenant="chain-002" seq=500-500 kind=hmac_mismatch: write refused' in api_log(lab)
    lab.cli("heal", "audit-tamper")
    assert lab.api("POST", "/api/v1/tenants/chain-002/audit", {"actor": "a", "action": "b"})[0] == 201


def test_audit_delete(chains):
    lab = chains
    lab.cli("break", "audit-delete", "--tenant", "chain-002", "--seq", "200-249")
    assert lab.sql("SELECT count(*) FROM audit_logs WHERE tenant_id = 'chain-002'") == [(450,)]
    assert 'audit chain broken: tenant="chain-002" seq=200-249 kind=seq_gap rows=50 ' \
           'probable_cause=restore_gap' in api_log(lab)
    tenant = [t for t in verified(lab)["tenants"] if t["tenant_id"] == "chain-002"][0]
    assert tenant["segments"] == [{"first_seq": 200, "last_seq": 249, "rows": 50, "kind": "seq_gap"}]
    lab.cli("heal", "audit-delete")
    assert lab.sql("SELECT count(*) FROM audit_logs WHERE tenant_id = 'chain-002'") == [(500,)]
    assert verified(lab)["verified"] is True
    assert_healthy(lab)


def test_audit_key_mismatch(chains):
    lab = chains
    old_key = lab.kubectl("get", "secret", "-n", NS, "alexandria-ee", "-o", "jsonpath={.data.audit-hmac-key}").stdout
    lab.cli("break", "audit-key-mismatch")
    new_key = lab.kubectl("get", "secret", "-n", NS, "alexandria-ee", "-o", "jsonpath={.data.audit-hmac-key}").stdout
    assert new_key != old_key and base64.b64decode(old_key).decode() == lab.info["hmac_key"]
    logs = api_log(lab, tail=500)
    assert 'HMAC mismatch: tenant="chain-001" seq=1-500 rows=500' in logs
    assert "probable_cause=key_mismatch" in logs
    assert ready(lab)[0] == 200  # the API serves; the chain does not verify
    code, body = lab.api("POST", "/api/v1/tenants/chain-001/audit", {"actor": "a", "action": "b"})
    assert code == 409 and body["error"] == "audit chain broken"
    lab.cli("heal", "audit-key-mismatch")
    assert lab.kubectl("get", "secret", "-n", NS, "alexandria-ee", "-o",
                       "jsonpath={.data.audit-hmac-key}").stdout == old_key
    assert lab.api("POST", "/api/v1/tenants/chain-001/audit", {"actor": "a", "action": "b"})[0] == 201
    assert verified(lab)["verified"] is True
    assert_healthy(lab)


def test_heal_without_a_fault_heals_everything(healthy):
    lab = healthy
    lab.cli("break", "orchestrator-hang")
    lab.cli("break", "rbac-deny", "--resource", "secrets")
    assert json.loads(lab.cli("status", "--json").stdout)["faults"] == ["orchestrator-hang", "rbac-deny"]
    out = lab.cli("heal").stdout
    assert "rbac-deny" in out and "orchestrator-hang" in out
    assert "nothing to heal" in lab.cli("heal", "oom").stdout
    assert_healthy(lab)
