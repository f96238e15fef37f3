"""The AWX workflow of extensions/awx/controller, run through ansible-runner the way AWX runs it, against a lab.

No AWX server here, so `awx_runner.Controller` does what AWX does for each job of the workflow "Alexandria EE - audit
chain retirement with approval", reading everything from the configuration-as-code files: each node's job template
becomes an ansible-runner private data directory (project, inventory script, env/extravars, env/envvars with what
the credentials inject, their files, env/cmdline with --check/--diff, env/settings) and `ansible_runner.run` runs it;
the job's status is the runner's, and its artifacts are the `artifact_data` of its `playbook_on_stats` event, which
the next nodes get as extra variables (every ancestor's, a child's overriding its parents', the workflow's survey
answers winning over them), tagged !unsafe as AWX writes them. An approval node is "approved" by the test, which may
change the deployment meanwhile.

Proven here: the rehearsal's plan hash flows to the retirement through the runner's artifact data, and the
retirement retires exactly that plan; a deployment that changed while the approval waited is refused
(plan_refused) with the tables unchanged; a retirement without a rehearsal artifact for its host is refused clearly.
"""
import json

import pytest

from alexlab.testing import LabHandle

import awx_runner
from test_run_records_lab import REFUSED, audit_state

pytestmark = pytest.mark.lab

WORKFLOW = "Alexandria EE - audit chain retirement with approval"
RETIRE = "Alexandria EE - audit chain retire (approved plan)"
HOST = "lab"
ANSWERS = {"audit_chain_incident_id": "INC-77", "audit_chain_signoff": "CR-2026-0077", "audit_chain_confirm": "true"}


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    root = tmp_path_factory.mktemp("awx")
    lab = LabHandle.up(root / "lab")
    try:
        lab.cli("seed-audit", "--tenants", "2", "--rows", "150")
        lab.cli("break", "audit-tamper", "--tenant", "seed-001", "--seq", "40-41")
        hosts, vault, inputs = awx_runner.lab_site(lab, HOST)
        controller = awx_runner.Controller(root / "controller", hosts, vault, inputs)
        controller.lab, controller.evidence = lab, root / "controller" / "evidence" / HOST
        yield controller
    finally:
        lab.down()


def chain_verified(lab):
    status, body = lab.api("POST", "/admin/v1/audit/verify")
    assert status == 200, body
    return body["verified"], body["broken_tenants"]


def stats_event_on_disk(job):
    """The runner's own record of the job's playbook_on_stats event (artifacts/<ident>/job_events/)."""
    [path] = [p for p in (job.private_data_dir / "artifacts").glob("*/job_events/*.json")
              if json.loads(p.read_text()).get("event") == "playbook_on_stats"]
    return json.loads(path.read_text())


def test_retire_without_a_rehearsal_artifact_for_its_host_is_refused(controller):
    before = audit_state(controller.lab)
    cases = [
        ({}, ["no rehearsal artifact was given"]),
        ({"alexandria_ee": {"other-deployment": {"scenario": "audit_chain_failure", "check_mode": True,
                                                 "result": "planned", "plan_hash": "a" * 64}}},
         ["has no entry for host lab (it has: other-deployment)"]),
        ({"alexandria_ee": {HOST: {"scenario": "quota_exceeded", "check_mode": False, "result": "remediated",
                                   "plan_hash": "a" * 64}}},
         ["is from scenario quota_exceeded, not audit_chain_failure", "is not from a check-mode rehearsal"]),
    ]
    for artifacts, expected in cases:
        # As the workflow's retire node would get them from its ancestors, with the workflow's survey answers.
        job = controller.launch(RETIRE, artifacts=artifacts, workflow_vars=ANSWERS)
        assert job.status == "failed" and job.rc != 0, job.tail()
        for words in expected:
            assert words in job.failure(), job.failure()
        assert "Refused before any change (alex_expected_plan_hash_from=rehearsal)" in job.failure()
        summary = job.host(HOST)
        assert summary["result"] == "plan_refused" and summary["check_mode"] is False
        assert job.count("changed", HOST) == 0
        assert audit_state(controller.lab) == before
        assert not controller.evidence.exists()  # refused before the capture


def test_deployment_changed_while_waiting_for_approval_is_refused(controller):
    lab = controller.lab
    changed = {}

    def approve_while_the_deployment_changes(artifacts):
        entry = artifacts["alexandria_ee"][HOST]
        assert entry["check_mode"] is True and entry["scenario"] == "audit_chain_failure"
        lab.cli("break", "audit-tamper", "--tenant", "seed-002", "--seq", "77")  # another row breaks meanwhile
        changed["state"] = audit_state(lab)
        return True

    ran = controller.workflow(WORKFLOW, ANSWERS, approve_while_the_deployment_changes)
    assert list(ran) == ["rehearse", "approve", "retire"]  # the retire node failed: no verify node
    rehearsal, retire = ran["rehearse"], ran["retire"]
    assert rehearsal.status == "successful", rehearsal.tail()
    assert rehearsal.extra_vars["audit_chain_confirm"] == "true"  # the survey's answer, as AWX passes it
    assert "--check --diff" in (rehearsal.private_data_dir / "env" / "cmdline").read_text()
    assert rehearsal.host(HOST)["result"] == "planned"
    assert retire.status == "failed" and REFUSED in retire.failure()
    refused = retire.host(HOST)
    assert refused["result"] == "plan_refused" and refused["plan_hash"] != rehearsal.host(HOST)["plan_hash"]
    tenants = [step["tenant"] for step in retire.record(HOST)["plan"]]
    assert tenants == ["seed-001", "seed-002"]  # the plan now holds the new damage, which nobody approved
    assert audit_state(lab) == changed["state"]  # rows, row versions, quarantine and anchors unchanged
    assert retire.count("changed", HOST) == 0
    assert not controller.evidence.exists()


def test_workflow_retires_exactly_the_approved_plan(controller):
    lab = controller.lab
    seen = {}

    def approve(artifacts):
        seen.update(artifacts["alexandria_ee"][HOST])
        return True

    ran = controller.workflow(WORKFLOW, ANSWERS, approve)
    assert list(ran) == ["rehearse", "approve", "retire", "verify"]
    rehearsal, retire, verify = ran["rehearse"], ran["retire"], ran["verify"]
    for job in (rehearsal, retire, verify):
        assert job.status == "successful" and job.rc == 0, job.tail()
    # The artifacts are the runner's: the artifact_data of the rehearsal's playbook_on_stats event.
    assert rehearsal.artifacts == stats_event_on_disk(rehearsal)["event_data"]["artifact_data"]
    assert rehearsal.host(HOST)["result"] == "planned" and seen["plan_hash"] == rehearsal.host(HOST)["plan_hash"]
    # ... which reached the retire node as an extra variable, in its env/extravars, tagged !unsafe as AWX does.
    assert retire.extra_vars["alexandria_ee"][HOST]["plan_hash"] == seen["plan_hash"]
    extravars = (retire.private_data_dir / "env" / "extravars").read_text()
    assert "!unsafe 'alexandria_ee':" in extravars and "!unsafe '%s'" % seen["plan_hash"] in extravars
    assert "alex_expected_plan_hash_from: rehearsal" in extravars  # the template's own: trusted, not tagged
    assert "--check" not in (retire.private_data_dir / "env" / "cmdline").read_text()
    done = retire.host(HOST)
    assert done["result"] == "retired" and done["check_mode"] is False and done["plan_hash"] == seen["plan_hash"]
    actions = [a["action"] for a in done["actions"]]
    steps = ["capture_rows", "backup_database", "retire_unverifiable_rows", "api_write_check"]
    assert [a for a in actions if a in steps] == steps, actions
    record = retire.record(HOST)
    assert any("it is the approved one (the rehearsal artifact alexandria_ee)" in d["what"]
               for d in record["decisions"])
    assert [(s["tenant"], [(g["first_seq"], g["last_seq"]) for g in s["segments"]]) for s in record["plan"]] == [
        ("seed-001", [(40, 41)]), ("seed-002", [(77, 77)])]
    assert (controller.evidence / "INC-77" / "incident-report.md").is_file()
    assert verify.host(HOST)["result"] == "verified" and verify.host(HOST)["check_mode"] is True
    assert chain_verified(lab) == (True, [])
    assert audit_state(lab)[1:] == (3, 2)  # 3 rows quarantined, one anchor per tenant
    for job in (rehearsal, retire, verify):
        assert job.leaked(awx_runner.lab_secrets(lab)) == []
        assert not [s for s in awx_runner.lab_secrets(lab) if s in json.dumps(job.extra_vars)]
