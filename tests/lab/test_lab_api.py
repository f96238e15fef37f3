"""The lab's API against docs/contract.md section 2, and the audit chain it writes (section 4)."""
import concurrent.futures
import io
import re
import time

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac

pytestmark = pytest.mark.lab


def rollout_restart(lab):
    """kubectl rollout restart, at most once a second (kubectl refuses a second restart within the same second)."""
    time.sleep(1.1)
    lab.kubectl("rollout", "restart", "deployment/alexandria-ee", "-n", "alexandria")


TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
USER_KEYS = {"id", "username", "tenant_id", "status", "created_at", "last_active_at"}
TENANT_KEYS = {"id", "name", "created_at", "last_active_at", "users", "active_users", "audit_rows"}


def copy_lines(lab, tenant=None):
    conn = lab.client.connect()
    try:
        with conn.cursor() as cur:
            where = cur.mogrify(" WHERE tenant_id = %s", (tenant,)).decode() if tenant else ""
            buf = io.BytesIO()
            cur.copy_expert("COPY (SELECT tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac "
                            "FROM audit_logs%s ORDER BY tenant_id, seq) TO STDOUT" % where, buf)
        return buf.getvalue().splitlines()
    finally:
        conn.close()


def verify(lab, tenant=None):
    return ac.verify_copy_lines(lab.info["hmac_key"], copy_lines(lab, tenant))


def test_ready_and_license_shapes(lab):
    code, body = lab.api("GET", "/ready", auth=False)
    assert code == 200
    assert body == {"status": "ready", "checks": {"orchestrator": "ok", "license": "ok", "database": "ok"}}
    code, lic = lab.api("GET", "/license", auth=False)
    assert code == 200
    assert set(lic) == {"valid", "reason", "license_id", "customer", "tier", "issued_at", "expires_at", "max_seats",
                        "max_tenants", "current_seats", "current_tenants"}
    assert lic["valid"] is True and lic["reason"] is None and lic["tier"] == "enterprise"
    assert TIME.match(lic["issued_at"]) and TIME.match(lic["expires_at"])
    assert (lic["max_seats"], lic["max_tenants"]) == (25, 5)


@pytest.mark.parametrize("method, path", [("GET", "/admin/v1/users"), ("GET", "/admin/v1/tenants"),
                                          ("POST", "/api/v1/users"), ("POST", "/admin/v1/audit/verify")])
def test_admin_token_required(lab, method, path):
    assert lab.client._http(method, lab.info["api_url"] + path, {}) == (401, {"error": "unauthorized"})
    wrong = {"Authorization": "Bearer not-the-token"}
    assert lab.client._http(method, lab.info["api_url"] + path, {}, wrong) == (401, {"error": "unauthorized"})


def test_users_and_tenants(lab):
    code, body = lab.api("POST", "/api/v1/tenants", {"id": "acme", "name": "Acme"})
    assert code == 201 and set(body["tenant"]) == TENANT_KEYS and body["tenant"]["users"] == 0
    assert lab.api("POST", "/api/v1/tenants", {"id": "acme", "name": "Acme"}) == (409, {"error": "exists"})
    code, body = lab.api("POST", "/api/v1/users", {"username": "alice", "tenant_id": "acme"})
    assert code == 201 and set(body["user"]) == USER_KEYS
    alice = body["user"]
    assert alice["status"] == "active" and alice["last_active_at"] is None and TIME.match(alice["created_at"])
    assert lab.api("POST", "/api/v1/users", {"username": "alice", "tenant_id": "acme"}) == (409, {"error": "exists"})
    bob = lab.api("POST", "/api/v1/users", {"username": "bob", "tenant_id": "acme"})[1]["user"]
    code, body = lab.api("POST", "/api/v1/users/%d/activity" % alice["id"])
    assert code == 200 and TIME.match(body["user"]["last_active_at"])
    assert lab.api("POST", "/api/v1/users/999999/activity")[0] == 404
    code, body = lab.api("POST", "/admin/v1/users/%d/deactivate" % bob["id"])
    assert code == 200 and body["changed"] is True and body["user"]["status"] == "deactivated"
    code, body = lab.api("POST", "/admin/v1/users/%d/deactivate" % bob["id"])
    assert code == 200 and body["changed"] is False
    assert lab.api("POST", "/admin/v1/users/999999/deactivate") == (404, {"error": "not_found"})
    users = lab.api("GET", "/admin/v1/users")[1]["users"]
    assert [u["id"] for u in users] == sorted(u["id"] for u in users)
    active = lab.api("GET", "/admin/v1/users?status=active")[1]["users"]
    assert alice["id"] in [u["id"] for u in active] and bob["id"] not in [u["id"] for u in active]
    gone = lab.api("GET", "/admin/v1/users?status=deactivated")[1]["users"]
    assert [u["id"] for u in gone] == [bob["id"]]
    tenants = lab.api("GET", "/admin/v1/tenants")[1]["tenants"]
    acme = [t for t in tenants if t["id"] == "acme"][0]
    assert (acme["users"], acme["active_users"]) == (2, 1) and set(acme) == TENANT_KEYS
    lic = lab.api("GET", "/license", auth=False)[1]
    assert lic["current_seats"] == len(active) and lic["current_tenants"] == len(tenants)


def test_quota_answers_402_at_the_limits(lab):
    lic = lab.api("GET", "/license", auth=False)[1]
    for index in range(lic["max_tenants"] - lic["current_tenants"]):
        assert lab.api("POST", "/api/v1/tenants", {"id": "q-%d" % index, "name": "q"})[0] == 201
    code, body = lab.api("POST", "/api/v1/tenants", {"id": "q-over", "name": "q"})
    assert code == 402
    assert body == {"error": "quota_exceeded", "quota": "tenants", "current": lic["max_tenants"],
                    "max": lic["max_tenants"]}
    lab.sql("DELETE FROM tenants WHERE id LIKE 'q-%%'", fetch=False)


def test_tenant_listing_needs_enterprise(lab):
    blob = lab.cli("license", "mint", "--seats", "25", "--tenants", "5", "--tier", "business").stdout.strip()
    original = lab.client.secret_value("alexandria-ee-license", "license.blob")
    try:
        lab.client.set_secret_value("alexandria-ee-license", "license.blob", blob.encode())
        rollout_restart(lab)
        lab.kubectl("rollout", "status", "deployment/alexandria-ee", "--timeout=60s")
        assert lab.api("GET", "/admin/v1/tenants") == (403, {"error": "tier_required", "required": "enterprise",
                                                             "tier": "business"})
    finally:
        lab.client.set_secret_value("alexandria-ee-license", "license.blob", original)
        rollout_restart(lab)
        lab.kubectl("rollout", "status", "deployment/alexandria-ee", "--timeout=60s")
    assert lab.api("GET", "/admin/v1/tenants")[0] == 200


def test_audit_writes_form_a_chain_postgres_prints(lab):
    lab.api("POST", "/api/v1/tenants", {"id": "tab\tten'ant", "name": "odd"})
    payloads = [{"doc": 42}, {"note": "line1\nline2\ttab \\ back", "a": "Ωmega 😀"}, [1, 2.50, None, True],
                {"nested": {"bb": 2, "a": 1}, "list": []}, "just a string", 1e3]
    for index, payload in enumerate(payloads, start=1):
        code, body = lab.api("POST", "/api/v1/tenants/tab%09ten'ant/audit",
                             {"actor": "eve\tthe\\admin", "action": "export\r\n", "payload": payload})
        assert code == 201, body
        assert body["tenant_id"] == "tab\tten'ant" and body["seq"] == index
        assert re.match("^[0-9a-f]{64}$", body["row_hmac"])
    result = verify(lab, "tab\tten'ant")["tab\tten'ant"]
    assert result["verified"] and result["rows"] == len(payloads)
    assert lab.api("POST", "/api/v1/tenants/nobody/audit", {"actor": "a", "action": "b"}) == (
        404, {"error": "not_found"})
    assert lab.api("POST", "/api/v1/tenants/acme/audit", {"actor": 1, "action": "b"})[0] == 400


def test_concurrent_writers_never_fork_a_chain(lab):
    lab.api("POST", "/api/v1/tenants", {"id": "busy", "name": "busy"})

    def write(index):
        body = {"actor": "w%d" % index, "action": "x", "payload": {"i": index}}
        return lab.api("POST", "/api/v1/tenants/busy/audit", body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(write, range(120)))
    assert all(code == 201 for code, _body in results)
    assert sorted(body["seq"] for _code, body in results) == list(range(1, 121))
    result = verify(lab, "busy")["busy"]
    assert result["verified"] and result["rows"] == 120


def test_seeded_chains_verify_and_the_api_continues_them(lab):
    out = lab.cli("seed-audit", "--tenants", "2", "--rows", "5000", "--prefix", "bulk").stdout
    assert "seeded 10000 rows for 2 tenants" in out
    results = verify(lab)
    assert results["bulk-001"]["verified"] and results["bulk-001"]["rows"] == 5000
    assert results["bulk-002"]["verified"]
    code, body = lab.api("POST", "/api/v1/tenants/bulk-001/audit", {"actor": "a", "action": "b", "payload": {}})
    assert code == 201 and body["seq"] == 5001
    lab.cli("seed-audit", "--tenants", "1", "--rows", "10", "--prefix", "bulk")
    assert verify(lab, "bulk-001")["bulk-001"]["rows"] == 5011 and verify(lab, "bulk-001")["bulk-001"]["verified"]
    code, report = lab.api("POST", "/admin/v1/audit/verify")
    assert code == 200 and report["verified"] is True and report["broken_tenants"] == []
    bulk = [t for t in report["tenants"] if t["tenant_id"] == "bulk-001"][0]
    assert bulk["rows"] == 5011 and bulk["segments"] == [] and bulk["probable_cause"] is None


def test_seed_users_of_different_ages(lab):
    import json
    out = json.loads(lab.cli("seed-users", "--active", "2", "--inactive", "3", "--inactive-days", "45",
                             "--never-active", "1", "--tenant", "ages").stdout)
    assert (len(out["active"]), len(out["inactive"]), len(out["never_active"])) == (2, 3, 1)
    users = dict((u["id"], u) for u in lab.api("GET", "/admin/v1/users?status=active")[1]["users"])
    rows = lab.sql("SELECT id, now() - last_active_at > interval '45 days', last_active_at IS NULL "
                   "FROM users WHERE tenant_id = 'ages'")
    ages = dict((r[0], (r[1], r[2])) for r in rows)
    assert all(ages[i] == (False, False) for i in out["active"])
    assert all(ages[i] == (True, False) for i in out["inactive"])
    assert all(ages[i] == (None, True) for i in out["never_active"])
    assert all(users[i]["tenant_id"] == "ages" for i in out["active"] + out["inactive"])


def retire(lab, tenant, first, last, resume_prev):
    """What the retire operation commits: rows to quarantine, one signed anchor (contract section 4)."""
    key = lab.info["hmac_key"]
    moved = [line for line in copy_lines(lab, tenant) if first <= ac.split_copy_line(line)[1] <= last]
    anchor = {"tenant_id": tenant, "resume_seq": last + 1, "resume_prev_hmac": resume_prev,
              "retired_first_seq": first, "retired_last_seq": last, "retired_rows": len(moved),
              "retired_sha256": ac.retired_digest(moved), "capture_sha256": "a" * 64, "backup_sha256": "b" * 64,
              "signoff": "CR-LAB-1", "reason": "hmac_mismatch"}
    anchor["anchor_hmac"] = ac.anchor_hmac(key, anchor)
    conn = lab.client.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(ac.TENANT_LOCK_SQL, (tenant,))
            cur.execute("INSERT INTO audit_quarantine SELECT tenant_id, seq, occurred_at, actor, action, payload, "
                        "prev_hmac, row_hmac, 'hmac_mismatch', %s FROM audit_logs WHERE tenant_id = %s "
                        "AND seq BETWEEN %s AND %s", (last + 1, tenant, first, last))
            cur.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq BETWEEN %s AND %s", (tenant, first, last))
            columns = sorted(anchor)
            cur.execute("INSERT INTO audit_chain_anchors (%s) VALUES (%s)" % (
                ", ".join(columns), ", ".join(["%s"] * len(columns))), [anchor[c] for c in columns])
        conn.commit()
    finally:
        conn.close()
    return anchor


def test_anchors_resume_the_chain(lab):
    lab.cli("seed-audit", "--tenants", "1", "--rows", "10", "--prefix", "anchored")
    tenant = "anchored-001"
    hmacs = dict((ac.split_copy_line(line)[1], ac.split_copy_line(line)[4].decode()) for line in copy_lines(lab, tenant))
    retire(lab, tenant, 4, 6, resume_prev=lab.sql(
        "SELECT prev_hmac FROM audit_logs WHERE tenant_id = %s AND seq = 7", (tenant,))[0][0])
    retire(lab, tenant, 9, 10, resume_prev=hmacs[8])  # the tail: the next write links to seq 8
    code, report = lab.api("POST", "/admin/v1/audit/verify")
    assert code == 200 and tenant not in report["broken_tenants"]
    logs = lab.logs("api", tail=200)
    assert 'audit chain anchor reset: tenant="anchored-001" resume_seq=7 retired=4-6 rows=3' in logs
    code, body = lab.api("POST", "/api/v1/tenants/%s/audit" % tenant, {"actor": "a", "action": "after"})
    assert code == 201 and body["seq"] == 11
    assert lab.sql("SELECT prev_hmac FROM audit_logs WHERE tenant_id = %s AND seq = 11", (tenant,))[0][0] == hmacs[8]
    assert 'audit chain anchor reset: tenant="anchored-001" resume_seq=11: writes resume' in lab.logs("api", tail=20)
    anchors = [dict(zip(("tenant_id", "resume_seq", "resume_prev_hmac", "retired_first_seq", "retired_last_seq",
                         "retired_rows", "retired_sha256", "capture_sha256", "backup_sha256", "signoff", "reason",
                         "anchor_hmac"), row)) for row in lab.sql(
        "SELECT tenant_id, resume_seq, resume_prev_hmac, retired_first_seq, retired_last_seq, retired_rows, "
        "retired_sha256, capture_sha256, backup_sha256, signoff, reason, anchor_hmac FROM audit_chain_anchors")]
    valid, invalid = ac.check_anchors(lab.info["hmac_key"], anchors)
    assert invalid == []
    result = ac.verify_copy_lines(lab.info["hmac_key"], copy_lines(lab, tenant), valid)[tenant]
    assert result["verified"] and result["rows"] == 6
    assert lab.api("POST", "/api/v1/tenants/%s/audit" % tenant, {"actor": "a", "action": "next"})[1]["seq"] == 12
