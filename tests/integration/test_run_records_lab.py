"""Run records, plan hashes and many deployments, against two labs (`alexlab up --dir` twice).

Every scenario playbook ends with a run record (Markdown + JSON, one shape) and publishes
`alexandria_ee.<host>` with set_stats; a `--check` rehearsal publishes the plan's hash, and a real run given
another hash refuses before any change. The two labs are the inventory hosts `labA` and `labB` of one group,
each with the `alex_*` host variables `alexlab inventory` prints.

The tests share the two labs and run in file order: labB has the orchestrator fault for the first two tests,
then serves the audit-chain tests; labA serves the quota and license tests.
"""
import glob
import json
import os
import pathlib

import pytest

from alexlab.testing import LabHandle

import playbooks

pytestmark = pytest.mark.lab

WRONG_HASH = "0" * 64
REFUSED = "the plan is not the approved one"
SCENARIOS = {"api_not_serving", "quota_exceeded", "license_renewal", "audit_chain_failure", "audit_chain_rollback"}


class Deployments:
    """Two labs as one inventory group `alexandria`, a work directory, and the run records' directory."""

    def __init__(self, root):
        self.root = root
        self.labs = {}
        self.reports = root / "reports"
        self.inventory = root / "inventory.yml"

    def up(self):
        hosts = {}
        for name in ("labA", "labB"):
            handle = LabHandle.up(self.root / name)
            self.labs[name] = handle
            printed = json.loads(handle.cli("inventory", "--host", name).stdout)
            hosts.update(printed["all"]["children"]["alexandria"]["hosts"])
        self.inventory.write_text(json.dumps({"all": {"children": {"alexandria": {"hosts": hosts}}}}, indent=1))
        os.chmod(self.inventory, 0o600)

    def down(self):
        for handle in self.labs.values():
            handle.down()


@pytest.fixture(scope="module")
def deployments(tmp_path_factory):
    deps = Deployments(tmp_path_factory.mktemp("deployments"))
    try:
        deps.up()
        yield deps
    finally:
        deps.down()


def playbook(deps, name, *args, **variables):
    """`ansible-playbook -i <both labs> alexandria.ee.<name> -e alex_target=alexandria -f 2 ...` in deps.root."""
    variables = dict(dict(alex_target="alexandria", alex_report_dir=str(deps.reports)), **variables)
    return playbooks.run_playbook(name, deps.root, "-f", "2", *args, inventory=deps.inventory, variables=variables)


def pod_names(handle):
    return sorted(p.metadata.name for p in handle.core().list_namespaced_pod(
        "alexandria", label_selector="app.kubernetes.io/instance=alexandria-ee").items)


def active_users(handle):
    status, body = handle.api("GET", "/admin/v1/users?status=active")
    assert status == 200, body
    return sorted(u["username"] for u in body["users"])


def audit_state(handle):
    """Everything retiring would change: the rows (with their row versions), the quarantine and the anchors."""
    return handle.sql("SELECT (SELECT md5(string_agg(t::text || ctid::text || xmin::text, ',' ORDER BY tenant_id, seq))"
                      " FROM audit_logs t), (SELECT count(*) FROM audit_quarantine),"
                      " (SELECT count(*) FROM audit_chain_anchors)")[0]


# ------------------------------------------------------------------------------- many deployments

def test_api_not_serving_against_two_deployments_at_once(deployments):
    lab_b = deployments.labs["labB"]
    lab_b.cli("break", "orchestrator-crash")
    run = playbook(deployments, "api_not_serving")

    assert run.rc != 0  # labB stops at the restart gate; labA is fine
    assert sorted(run.custom["alexandria_ee"]) == ["labA", "labB"]
    healthy, broken = run.host("labA"), run.host("labB")
    assert healthy["result"] == "healthy" and healthy["causes"] == ["healthy"], healthy
    assert healthy["actions"] == [] and healthy["check_mode"] is False
    assert broken["causes"][0] == "orchestrator_socket_missing", broken
    assert broken["result"] == "gated"
    assert broken["scope"]["pods"] == pod_names(lab_b)
    assert run.hosts["labA"]["failures"] == 0 and run.hosts["labA"]["changed"] == 0
    assert run.hosts["labB"]["failures"] == 1
    assert "api_not_serving_allow_restart=true" in run.failure()

    records = dict((host, run.record(host)) for host in ("labA", "labB"))
    assert records["labA"]["deployment"]["host"] == "labA" and records["labB"]["deployment"]["host"] == "labB"
    assert records["labA"]["result"] == "healthy" and records["labB"]["result"] == "gated"
    assert records["labA"]["deployment"]["base_url"] == deployments.labs["labA"].info["api_url"]
    assert records["labB"]["deployment"]["base_url"] == lab_b.info["api_url"]
    assert records["labB"]["causes"][0] == "orchestrator_socket_missing"
    for host in ("labA", "labB"):
        assert pathlib.Path(run.host(host)["record_markdown"]).is_file()
    assert run.host("labA")["record_json"] != run.host("labB")["record_json"]


def test_api_not_serving_plan_hash(deployments):
    lab_b = deployments.labs["labB"]
    pods = pod_names(lab_b)

    rehearsal = playbook(deployments, "api_not_serving", "--check", "--diff", "--limit", "labB")
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    planned = rehearsal.host("labB")
    assert planned["check_mode"] is True and planned["result"] == "planned"
    record = rehearsal.record("labB")
    assert record["check_mode"] is True
    assert record["plan"] == [{"action": "restart_pods", "namespace": "alexandria", "release": "alexandria-ee",
                               "pods": pods}]
    assert record["plan_hash"] == planned["plan_hash"]
    assert '"plan_hash": "%s"' % planned["plan_hash"] in rehearsal.out  # printed by the rehearsal

    # The gate is open, but the approved hash is another: refused before anything is deleted.
    refused = playbook(deployments, "api_not_serving", "--limit", "labB", alex_expected_plan_hash=WRONG_HASH,
                       api_not_serving_allow_restart=True)
    assert refused.rc != 0
    assert REFUSED in refused.failure()
    assert refused.host("labB")["result"] == "plan_refused"
    assert refused.host("labB")["plan_hash"] == planned["plan_hash"]
    assert refused.hosts["labB"]["changed"] == 0
    assert pod_names(lab_b) == pods

    # The approved hash lets the run go on, to the restart gate here.
    approved = playbook(deployments, "api_not_serving", "--limit", "labB",
                        alex_expected_plan_hash=planned["plan_hash"])
    assert approved.host("labB")["result"] == "gated" and approved.host("labB")["plan_hash"] == planned["plan_hash"]
    assert REFUSED not in approved.failure() and "api_not_serving_allow_restart=true" in approved.failure()
    assert any("it is the approved one" in d["what"] for d in approved.record("labB")["decisions"])
    assert pod_names(lab_b) == pods
    lab_b.cli("heal")


# ------------------------------------------------------------------------------- scenario 2

def test_quota_exceeded_plan_hash(deployments):
    lab_a = deployments.labs["labA"]
    lab_a.cli("seed-users", "--active", "2", "--inactive", "4", "--inactive-days", "120", "--never-active", "1")
    lab_a.cli("break", "seats-exhausted")
    before = active_users(lab_a)
    gates = dict(quota_exceeded_free_seats=True, quota_exceeded_max_deactivate=5)

    rehearsal = playbook(deployments, "quota_exceeded", "--check", "--diff", "--limit", "labA", **gates)
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    planned = rehearsal.host("labA")
    assert planned["result"] == "planned" and planned["causes"] == ["seats_exhausted"]
    (step,) = rehearsal.record("labA")["plan"]
    assert step["action"] == "deactivate_users" and len(step["users"]) == 5
    assert set(u["username"] for u in step["users"]) <= set(before)
    assert active_users(lab_a) == before

    refused = playbook(deployments, "quota_exceeded", "--limit", "labA", alex_expected_plan_hash=WRONG_HASH, **gates)
    assert refused.rc != 0 and REFUSED in refused.failure()
    assert refused.host("labA")["result"] == "plan_refused"
    assert refused.host("labA")["plan_hash"] == planned["plan_hash"]
    assert active_users(lab_a) == before

    real = playbook(deployments, "quota_exceeded", "--limit", "labA", alex_expected_plan_hash=planned["plan_hash"],
                    **gates)
    assert real.rc == 0, real.out[-3000:]
    done = real.host("labA")
    assert done["result"] == "remediated" and done["plan_hash"] == planned["plan_hash"]
    assert [a["action"] for a in done["actions"]] == ["deactivate_users"] and done["actions"][0]["done"] is True
    after = active_users(lab_a)
    assert sorted(set(before) - set(after)) == sorted(u["username"] for u in step["users"])
    assert real.custom["quota_exceeded"]["seats_freed"] == 5  # the scenario's own key is still published


def test_license_renewal_plan_hash(deployments):
    lab_a = deployments.labs["labA"]
    blob_file = deployments.root / "renewed.blob"
    blob_file.write_text(lab_a.cli("license", "mint", "--seats", "40", "--tenants", "8", "--tier",
                                   "enterprise").stdout.strip())
    os.chmod(blob_file, 0o600)
    variables = dict(license_renewal_blob_file=str(blob_file), license_renewal_wait_timeout=120)

    rehearsal = playbook(deployments, "license_renewal", "--check", "--diff", "--limit", "labA", **variables)
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    planned = rehearsal.host("labA")
    (step,) = rehearsal.record("labA")["plan"]
    assert step["action"] == "apply_license" and step["changes"]["seat_count"] == {"before": 25, "after": 40}
    assert blob_file.read_text() not in rehearsal.out + json.dumps(rehearsal.record("labA"))

    real = playbook(deployments, "license_renewal", "--limit", "labA", alex_expected_plan_hash=planned["plan_hash"],
                    **variables)
    assert real.rc == 0, real.out[-3000:]
    assert real.host("labA")["result"] == "applied" and real.host("labA")["plan_hash"] == planned["plan_hash"]
    assert lab_a.api("GET", "/license", auth=False)[1]["max_seats"] == 40


# ------------------------------------------------------------------------------- scenario 3

def test_audit_chain_plan_hash_and_rollback(deployments):
    lab_b = deployments.labs["labB"]
    lab_b.cli("seed-audit", "--tenants", "2", "--rows", "200")
    lab_b.cli("break", "audit-tamper", "--tenant", "seed-001", "--seq", "100-101")
    lab_b.cli("break", "audit-delete", "--tenant", "seed-002", "--seq", "50-52")
    evidence = deployments.root / "evidence"
    variables = dict(audit_chain_evidence_dir=str(evidence), audit_chain_incident_id="INC-7",
                     audit_chain_signoff="CR-7", audit_chain_confirm=True)
    broken = audit_state(lab_b)

    rehearsal = playbook(deployments, "audit_chain_failure", "--check", "--diff", "--limit", "labB", **variables)
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    planned = rehearsal.host("labB")
    assert planned["result"] == "planned" and planned["causes"] == ["direct_db_edit", "restore_gap"]
    plan = rehearsal.record("labB")["plan"]
    assert [(s["tenant"], s["segments"], s["rows_to_quarantine"]) for s in plan] == [
        ("seed-001", [{"first_seq": 100, "last_seq": 101, "rows": 2, "kind": "hmac_mismatch"}], 2),
        ("seed-002", [{"first_seq": 50, "last_seq": 52, "rows": 3, "kind": "seq_gap"}], 0)]
    assert audit_state(lab_b) == broken

    refused = playbook(deployments, "audit_chain_failure", "--limit", "labB", alex_expected_plan_hash=WRONG_HASH,
                       **variables)
    assert refused.rc != 0 and REFUSED in refused.failure()
    assert refused.host("labB")["result"] == "plan_refused"
    assert refused.host("labB")["plan_hash"] == planned["plan_hash"]
    assert audit_state(lab_b) == broken
    assert not evidence.exists()  # refused before the capture, too

    real = playbook(deployments, "audit_chain_failure", "--limit", "labB",
                    alex_expected_plan_hash=planned["plan_hash"], **variables)
    assert real.rc == 0, real.out[-3000:]
    done = real.host("labB")
    assert done["result"] == "retired" and done["plan_hash"] == planned["plan_hash"]
    assert [a["action"] for a in done["actions"]] == [
        "capture_rows", "backup_database", "retire_unverifiable_rows", "api_write_check",
        "api_log_anchor_reset"]
    assert audit_state(lab_b)[1:] == (2, 2)
    record = real.record("labB")
    linked = record["details"]["audit_incident_report"]
    assert linked["markdown"] == str(evidence / "INC-7" / "incident-report.md") and linked["written"] is True
    assert json.loads(pathlib.Path(linked["json"]).read_text())["status"] == "retired"
    assert real.custom["audit_chain"]["result"] == "retired"  # the scenario's own key is still published

    backup = real.custom["audit_chain"]["backup"]
    rollback = dict(audit_chain_backup=backup, audit_chain_confirm_rollback=True)
    # the API write check wrote a row to each retired tenant after the backup: the restore would lose them
    unaccepted = playbook(deployments, "audit_chain_rollback", "--check", "--limit", "labB", **rollback)
    assert unaccepted.rc != 0 and unaccepted.host("labB")["result"] == "gated"
    assert "audit_chain_accept_loss=true" in unaccepted.failure()
    rollback["audit_chain_accept_loss"] = True
    rehearsal = playbook(deployments, "audit_chain_rollback", "--check", "--limit", "labB", **rollback)
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    assert rehearsal.host("labB")["result"] == "planned"
    (step,) = rehearsal.record("labB")["plan"]
    assert step["action"] == "restore_audit_tables" and step["backup"] == backup
    restored = playbook(deployments, "audit_chain_rollback", "--limit", "labB",
                        alex_expected_plan_hash=rehearsal.host("labB")["plan_hash"], **rollback)
    assert restored.rc == 0, restored.out[-3000:]
    assert restored.host("labB")["result"] == "restored"
    assert audit_state(lab_b)[1:] == (0, 0)
    accepted = restored.record("labB")["details"]["audit_chain_rollback"]["accepted_loss"]
    assert {"seed-001", "seed-002"} <= set(accepted["tenants_losing"])


def test_audit_chain_refuses_one_evidence_directory_for_two_deployments(deployments):
    shared = deployments.root / "shared-evidence"
    run = playbook(deployments, "audit_chain_failure", audit_chain_evidence_dir=str(shared),
                   audit_chain_incident_id="INC-8")
    assert run.rc != 0
    assert sorted(run.custom["alexandria_ee"]) == ["labA", "labB"]
    for host in ("labA", "labB"):
        assert run.host(host)["result"] == "failed"
        assert run.hosts[host]["failures"] == 1
    assert "would write their evidence to the same directory" in run.failure()
    assert not shared.exists()


# ------------------------------------------------------------------------------- the records

def test_every_scenario_left_records_of_one_shape(deployments):
    records = [json.loads(pathlib.Path(path).read_text()) for path in glob.glob(str(deployments.reports / "*.json"))]
    assert set(r["scenario"] for r in records) == SCENARIOS
    shapes = set(tuple(sorted(r)) for r in records)
    assert len(shapes) == 1, shapes
    assert set(shapes.pop()) >= {"observed", "decisions", "actions", "causes", "scope", "plan", "plan_hash",
                                 "details", "started_at", "finished_at", "check_mode", "result", "deployment"}
    assert any(r["check_mode"] for r in records) and any(not r["check_mode"] for r in records)
    for path in glob.glob(str(deployments.reports / "*.json")):
        assert os.path.isfile(path[:-len(".json")] + ".md")
    for record in records:
        for entry in record["observed"] + record["actions"]:
            assert entry["time"].endswith("Z"), entry
    for handle in deployments.labs.values():
        for secret in (handle.info["admin_token"], handle.info["hmac_key"], handle.info["k8s_token"]):
            assert not [p for p in glob.glob(str(deployments.reports / "*")) if secret in open(p).read()]
