"""Fleet health classification (health_logic): recorded module results in, scenario and next command out."""
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import health_logic as hl

READY = {"ready": True, "status": 200, "reason": None, "api_route": "base_url",
         "license": {"status": 200, "body": {"valid": True}}}
NOT_READY = {"ready": False, "status": 503, "reason": "orchestrator.sock: no such file or directory"}
NO_ANSWER = {"ready": False, "status": None, "reason": "GET /ready: connection refused"}
LICENSE = {"valid": True, "reason": None, "current_seats": 10, "max_seats": 25, "seats_headroom": 15,
           "current_tenants": 2, "max_tenants": 5, "tenants_headroom": 3, "exhausted": [], "expires_in_days": 200.5}
AUDIT_OK = {"verified": True, "broken": [], "scope": [], "rows_read": 12,
            "tenants": {"a": {"mode": "incremental", "probable_cause": None}}, "checkpoints": {"missing": []}}
FAILED = {"failed": True, "msg": "cannot load Kubernetes configuration: missing"}


def triage(*codes):
    return {"causes": [{"code": c, "evidence": ["line %d" % i], "next_step": "do"} for i, c in enumerate(codes)]}


def classify(ready=None, tri=None, lic=None, seats=None, audit=None, **kw):
    return hl.classify("prod-eu", ["inv.yml"], ready or READY, tri or {"skipped": True}, lic or LICENSE, seats or {},
                       audit or AUDIT_OK, incident_date="20261128", **kw)


def test_healthy():
    out = classify()
    assert out["scenario"] == "healthy" and out["next_command"] == "" and out["problems"] == []
    assert out["summary"].startswith("healthy - /ready 200; seats 10/25, tenants 2/5; license valid, 200 day(s) left")


@pytest.mark.parametrize("codes,scenario,extra", [
    (("orchestrator_socket_missing",), "api_not_serving", " -e api_not_serving_allow_restart=true"),
    (("orchestrator_deadline_exceeded",), "api_not_serving", " -e api_not_serving_allow_restart=true"),
    (("oom_killed", "orchestrator_socket_missing"), "api_not_serving", " -e api_not_serving_allow_helm_upgrade=true"),
    (("unknown",), "api_not_serving", ""),
    (("recent_upgrade", "orchestrator_socket_missing"), "api_not_serving",
     " -e api_not_serving_allow_rollback=true"),
    (("license_signature_failed",), "license_renewal",
     " -e 'license_renewal_blob_file=<path of the blob from the issuer>'"),
])
def test_not_serving(codes, scenario, extra):
    out = classify(ready=NOT_READY, tri=triage(*codes))
    assert out["scenario"] == scenario
    playbook = "api_not_serving" if scenario == "api_not_serving" else "license_renewal"
    assert out["next_command"] == "ansible-playbook -i inv.yml alexandria.ee.%s -e alex_target=prod-eu%s" % (
        playbook, extra)
    assert out["api"]["causes"][0]["evidence"] == ["line 0"]


def test_unreachable_needs_every_probe_to_fail():
    out = classify(ready=NO_ANSWER, tri=FAILED, lic=FAILED, audit=FAILED)
    assert out["scenario"] == "unreachable"
    assert out["next_command"].endswith("alexandria.ee.api_not_serving -e alex_target=prod-eu --check")
    assert out["problems"][0] == "api: GET /ready: connection refused"
    assert "kubernetes: cannot load Kubernetes configuration: missing" in out["problems"]
    # The API down but the database and the license read: not unreachable, the API is not serving.
    assert classify(ready=NO_ANSWER, tri=FAILED, lic=LICENSE, audit=FAILED)["scenario"] == "api_not_serving"


def test_audit_before_quota_before_expiry():
    broken = dict(AUDIT_OK, verified=False, broken=["a"], scope=["tenant 'a': truncated seq 5-9 (5 missing)"])
    exhausted = dict(LICENSE, current_seats=25, seats_headroom=0, exhausted=["seats"])
    out = classify(lic=exhausted, audit=broken)
    assert out["scenario"] == "audit_chain_failure"
    assert out["next_command"].endswith("-e audit_chain_incident_id=audit-chain-prod-eu-20261128")
    quota = classify(lic=exhausted, seats={"users_total": 30, "inactive_users": [{"id": 1}, {"id": 2}]})
    assert quota["scenario"] == "quota_exceeded"
    assert quota["next_command"].endswith("-e quota_exceeded_free_seats=true -e quota_exceeded_max_deactivate=2")
    upgrade = classify(lic=dict(LICENSE, current_tenants=5, tenants_headroom=0, exhausted=["tenants"]))
    assert upgrade["next_command"].endswith("-e 'quota_exceeded_license_blob_file=<path of the upgraded blob from "
                                            "the issuer>'")
    low = classify(lic=dict(LICENSE, seats_headroom=1), min_headroom=2)
    assert low["scenario"] == "quota_exceeded" and low["quota"]["short"] == ["seats"]
    expiring = classify(lic=dict(LICENSE, expires_in_days=12.0))
    assert expiring["scenario"] == "license_renewal" and expiring["quota"]["expiring"]
    assert classify(lic=dict(LICENSE, expires_in_days=12.0), warn_days=7)["scenario"] == "healthy"


def test_a_failed_probe_is_one_line_and_the_rest_is_reported():
    out = classify(seats={"failed": True, "msg": "the admin API refused the token (401 unauthorized)"},
                   audit={"failed": True, "msg": "this verification would read about 5000000 rows, more than "
                                                 "max_rows=2000000: run the audit chain watch"})
    assert out["scenario"] == "healthy"
    assert out["problems"] == ["admin api: the admin API refused the token (401 unauthorized)",
                               "audit chain: this verification would read about 5000000 rows, more than "
                               "max_rows=2000000: run the audit chain watch"]
    assert out["audit"] == {"checked": False} and out["quota"]["checked"]
    assert "audit chain not checked" in out["summary"]


def test_hostile_host_names_are_quoted():
    out = hl.classify("a b;rm -rf /", [], NOT_READY, triage("orchestrator_socket_missing"), LICENSE, {}, AUDIT_OK)
    assert out["next_command"] == ("ansible-playbook alexandria.ee.api_not_serving -e 'alex_target=a b;rm -rf /' "
                                   "-e api_not_serving_allow_restart=true")


def test_fleet_report_orders_worst_first_and_renders():
    summaries = dict((h, dict(classify(), host=h)) for h in ("b-ok", "a-ok"))
    summaries["z-down"] = dict(classify(ready=NO_ANSWER, tri=FAILED, lic=FAILED, audit=FAILED), host="z-down")
    report = hl.fleet(summaries, "2026-11-28T09:00:00Z")
    assert [h["host"] for h in report["hosts"]] == ["z-down", "a-ok", "b-ok"]
    assert report["by_scenario"]["healthy"] == ["a-ok", "b-ok"] and report["by_scenario"]["unreachable"] == ["z-down"]
    markdown = hl.render_markdown(report)
    assert "| unreachable | 1: z-down |" in markdown and "| healthy | 2: a-ok, b-ok |" in markdown
    assert "## What could not be checked" in markdown and "- z-down - api: GET /ready: connection refused" in markdown
