# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet health: which runbook scenario a deployment is in, and the exact next command. Pure, no Ansible imports.

Built only from what the read-only modules returned (alex_ready, alex_triage, alex_license query,
alex_seats query, alex_audit_verify), so it never sees a secret. A probe that failed is one line in
`problems`, never an exception: one bad deployment never stops the report of the others.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import shlex

REPORT_FORMAT = "alexandria.ee/fleet-health/v1"
SCENARIOS = ("healthy", "api_not_serving", "quota_exceeded", "license_renewal", "audit_chain_failure", "unreachable")
LICENSE_CAUSES = ("license_blob_invalid", "license_signature_failed", "license_secret_missing")
RESTART_CAUSES = ("orchestrator_socket_missing", "orchestrator_deadline_exceeded")
# The order rows appear in the report: the worst first.
ORDER = ("unreachable", "api_not_serving", "audit_chain_failure", "license_renewal", "quota_exceeded", "healthy")


# The key each probe's success carries (the role registers the probes with ignore_errors, so a failure also says
# failed=true).
SUCCESS_KEYS = {"ready": "ready", "triage": "causes", "license": "valid", "seats": "users_total", "audit": "verified"}


def _failed(result, probe):
    if not isinstance(result, dict) or result.get("skipped") or not result:
        return True
    return bool(result.get("failed")) or SUCCESS_KEYS[probe] not in result


def _msg(result):
    if not isinstance(result, dict):
        return "not run"
    if result.get("skipped"):
        return "skipped"
    return " ".join(str(result.get("msg") or "failed").split())[:400]


def command(playbook, host, inventories=(), extra=(), check=False):
    """`ansible-playbook [-i ...] alexandria.ee.<playbook> -e alex_target=<host> [-e k=v ...]`, shell-quoted."""
    argv = ["ansible-playbook"]
    for source in inventories or ():
        argv += ["-i", source]
    argv += ["alexandria.ee." + playbook, "-e", "alex_target=" + host]
    for name, value in extra:
        argv += ["-e", "%s=%s" % (name, value)]
    if check:
        argv.append("--check")
    return " ".join(shlex.quote(a) for a in argv)


def api_check(ready, triage):
    """S1: /ready, /license and the triage causes with their evidence."""
    out = {"checked": not _failed(ready, "ready"), "ready": None, "status": None, "reason": None, "causes": []}
    if out["checked"]:
        out.update(ready=bool(ready.get("ready")), status=ready.get("status"), reason=ready.get("reason"),
                   route=ready.get("api_route"))
        lic = ready.get("license") or {}
        out["license_endpoint"] = {"status": lic.get("status"), "valid": (lic.get("body") or {}).get("valid")} \
            if isinstance(lic, dict) and "status" in lic else None
    if not _failed(triage, "triage"):
        out["causes"] = [{"code": c.get("code"), "evidence": list(c.get("evidence") or [])[:5],
                          "next_step": c.get("next_step")}
                         for c in triage.get("causes") or [] if c.get("code") not in ("healthy",)]
    return out


def quota_check(license_result, seats, warn_days, min_headroom):
    """S2: seats and tenants used and allowed, headroom, exhausted quotas, days until the license expires."""
    if _failed(license_result, "license"):
        return {"checked": False}
    lic = license_result
    out = {"checked": True, "valid": lic.get("valid"), "reason": lic.get("reason"),
           "current_seats": lic.get("current_seats"), "max_seats": lic.get("max_seats"),
           "seats_headroom": lic.get("seats_headroom"), "current_tenants": lic.get("current_tenants"),
           "max_tenants": lic.get("max_tenants"), "tenants_headroom": lic.get("tenants_headroom"),
           "exhausted": list(lic.get("exhausted") or []), "expires_at": lic.get("expires_at"),
           "expires_in_days": lic.get("expires_in_days"), "warn_days": warn_days, "min_headroom": min_headroom}
    low = []
    for quota in ("seats", "tenants"):
        headroom = lic.get("%s_headroom" % quota)
        if quota in out["exhausted"] or (isinstance(headroom, int) and headroom < min_headroom):
            low.append(quota)
    out["short"] = low
    days = lic.get("expires_in_days")
    out["expiring"] = bool(lic.get("valid")) and isinstance(days, (int, float)) and days <= warn_days
    if not _failed(seats, "seats"):
        out["inactive_users"] = len(seats.get("inactive_users") or [])
    return out


def audit_check(audit):
    """S3: the audit chain (incremental against the checkpoints when they exist)."""
    if _failed(audit, "audit"):
        return {"checked": False}
    tenants = audit.get("tenants") or {}
    modes = sorted(set(r.get("mode", "full") for r in tenants.values()))
    return {"checked": True, "verified": bool(audit.get("verified")), "broken": list(audit.get("broken") or []),
            "scope": list(audit.get("scope") or []), "tenants": len(tenants), "rows_read": audit.get("rows_read"),
            "modes": modes, "checkpoints_missing": list((audit.get("checkpoints") or {}).get("missing") or []),
            "causes": sorted(set(r.get("probable_cause") for r in tenants.values() if r.get("probable_cause")))}


def problems_of(probes):
    """One line per probe that ran and could not answer: [(name, probe, result)] -> ["name: words"]."""
    return ["%s: %s" % (name, _msg(result)) for name, probe, result in probes
            if isinstance(result, dict) and result and not result.get("skipped") and _failed(result, probe)]


def classify(host, inventories, ready, triage, license_result, seats, audit, warn_days=30, min_headroom=1,
             incident_date="today"):
    """{scenario, next_command, api, quota, audit, problems, summary} for one deployment."""
    api = api_check(ready, triage)
    quota = quota_check(license_result, seats, warn_days, min_headroom)
    chain = audit_check(audit)
    problems = problems_of([("api", "ready", ready), ("kubernetes", "triage", triage),
                            ("license", "license", license_result), ("admin api", "seats", seats),
                            ("audit chain", "audit", audit)])
    if api["checked"] and api["status"] is None:
        problems.insert(0, "api: %s" % (api["reason"] or "no answer"))
    codes = [c["code"] for c in api["causes"]]
    no_answer = api["checked"] is False or api["status"] is None
    extra = []
    check = False
    if no_answer and _failed(triage, "triage") and not quota["checked"] and not chain["checked"]:
        scenario, playbook, check = "unreachable", "api_not_serving", True
    elif api["ready"] is False or no_answer:
        top = codes[0] if codes else None
        if top in LICENSE_CAUSES or (not codes and quota.get("valid") is False):
            scenario, playbook = "license_renewal", "license_renewal"
            extra = [("license_renewal_blob_file", "<path of the blob from the issuer>")]
        else:
            scenario, playbook = "api_not_serving", "api_not_serving"
            if top == "recent_upgrade":
                # Triage puts it first, next to the symptom it explains: the runbook's step is the rollback.
                extra = [("api_not_serving_allow_rollback", "true")]
            elif top in RESTART_CAUSES:
                extra = [("api_not_serving_allow_restart", "true")]
            elif top == "oom_killed":
                extra = [("api_not_serving_allow_helm_upgrade", "true")]
    elif chain["checked"] and not chain["verified"]:
        scenario, playbook = "audit_chain_failure", "audit_chain_failure"
        extra = [("audit_chain_incident_id", "audit-chain-%s-%s" % (host, incident_date))]
    elif quota["checked"] and quota["short"]:
        scenario, playbook = "quota_exceeded", "quota_exceeded"
        if "seats" in quota["short"] and quota.get("inactive_users"):
            extra = [("quota_exceeded_free_seats", "true"),
                     ("quota_exceeded_max_deactivate", str(quota["inactive_users"]))]
        else:
            extra = [("quota_exceeded_license_blob_file", "<path of the upgraded blob from the issuer>")]
    elif quota["checked"] and (quota["valid"] is False or quota["expiring"]):
        scenario, playbook = "license_renewal", "license_renewal"
        extra = [("license_renewal_blob_file", "<path of the renewed blob from the issuer>")]
    else:
        scenario, playbook = "healthy", None
    next_command = command(playbook, host, inventories, extra, check) if playbook else ""
    return {"host": host, "scenario": scenario, "next_command": next_command, "api": api, "quota": quota,
            "audit": chain, "problems": problems, "summary": summary_line(scenario, api, quota, chain)}


def summary_line(scenario, api, quota, chain):
    parts = []
    if api["checked"]:
        parts.append("/ready %s" % (api["status"] if api["status"] is not None else "no answer"))
    else:
        parts.append("API unreachable")
    if api["causes"]:
        parts.append("causes " + ", ".join(c["code"] for c in api["causes"]))
    if quota["checked"]:
        parts.append("seats %s/%s, tenants %s/%s" % (quota["current_seats"], quota["max_seats"],
                                                     quota["current_tenants"], quota["max_tenants"]))
        if quota.get("expires_in_days") is not None:
            state = "valid" if quota["valid"] else "invalid (%s)" % quota["reason"]
            parts.append("license %s, %s day(s) left" % (state, int(quota["expires_in_days"])))
    if chain["checked"]:
        parts.append("audit chain %s (%s tenant(s), %s row(s) read)" % (
            "verified" if chain["verified"] else "broken: " + "; ".join(chain["scope"]), chain["tenants"],
            chain["rows_read"]))
    else:
        parts.append("audit chain not checked")
    return "%s - %s" % (scenario, "; ".join(parts))


def fleet(summaries, generated_at):
    """The fleet report: every deployment, worst first, and the deployments by state."""
    hosts = sorted(summaries.values(), key=lambda s: (ORDER.index(s["scenario"]), s["host"]))
    by_state = dict((name, [s["host"] for s in hosts if s["scenario"] == name]) for name in SCENARIOS)
    return {"format": REPORT_FORMAT, "generated_at": generated_at, "deployments": len(hosts),
            "by_scenario": by_state, "hosts": hosts}


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report):
    lines = ["# Alexandria EE fleet health", "", "- Generated: %s" % report["generated_at"],
             "- Deployments: %d" % report["deployments"], ""]
    lines += ["| state | deployments |", "| --- | --- |"]
    for name in ORDER:
        members = report["by_scenario"].get(name) or []
        listed = (": " + ", ".join(_cell(m) for m in members)) if members else ""
        lines.append("| %s | %d%s |" % (name, len(members), listed))
    lines += ["", "| deployment | scenario | summary | next command |", "| --- | --- | --- | --- |"]
    for host in report["hosts"]:
        lines.append("| %s | **%s** | %s | %s |" % (_cell(host["host"]), host["scenario"], _cell(host["summary"]),
                                                    ("`%s`" % _cell(host["next_command"])) if host["next_command"]
                                                    else "-"))
    failing = [h for h in report["hosts"] if h["problems"]]
    if failing:
        lines += ["", "## What could not be checked", ""]
        for host in failing:
            for problem in host["problems"]:
                lines.append("- %s - %s" % (_cell(host["host"]), _cell(problem)))
    return "\n".join(lines) + "\n"
