"""The AWX workflow of extensions/awx/controller, run the way AWX runs it, with ansible-playbook against a lab.

No AWX server here, so `Controller` does what AWX does for each job of the workflow "Alexandria EE - audit chain
retirement with approval", reading everything from the configuration-as-code files:
- the node's job template gives the playbook (the project's playbooks/<name>.yml), `job_type: check` (--check),
  `diff_mode` (--diff) and its extra_vars;
- the extra variables are the template's, then the artifacts (set_stats) of the ancestor nodes, then the workflow's
  survey answers, which win (AWX's precedence); survey answers are strings ("true");
- the template's credentials become environment variables through their injectors (the custom type's templates
  rendered in a Jinja sandbox as AWX does; the built-in Kubernetes bearer token type's K8S_AUTH_*);
- the inventory holds only the non-secret host variables and the inventory variables of the configuration;
- an approval node is "approved" by the test, which may change the deployment meanwhile.

Proven here: the rehearsal's plan hash flows to the retirement, which retires exactly that plan; a deployment that
changed while the approval waited is refused (plan_refused) with the tables unchanged; a retirement without a
rehearsal artifact for its host is refused clearly.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from alexlab.testing import LabHandle

from ansible_yaml import from_yaml
import playbooks
from test_run_records_lab import REFUSED, audit_state

pytestmark = pytest.mark.lab

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
BIN = pathlib.Path(sys.executable).parent
CONFIG = REPO / "extensions" / "awx" / "controller"
WORKFLOW = "Alexandria EE - audit chain retirement with approval"
HOST = "lab"
ANSWERS = {"audit_chain_incident_id": "INC-77", "audit_chain_signoff": "CR-2026-0077", "audit_chain_confirm": "true"}


def load_config():
    merged = {}
    for path in sorted(CONFIG.glob("*.yml")):
        merged.update(from_yaml(path.read_text()))
    return json.loads(json.dumps(merged))  # plain str, as AWX stores it


class Controller:
    """The parts of AWX a workflow job needs, for one lab deployment (inventory host `lab`)."""

    def __init__(self, root, lab):
        self.root, self.lab, self.config = root, lab, load_config()
        self.templates = dict((t["name"], t) for t in self.config["controller_templates"])
        self.credentials = dict((c["name"], c) for c in self.config["controller_credentials"])
        self.types = dict((t["name"], t) for t in self.config["controller_credential_types"])
        info = lab.info
        # The vault of the configuration: what the credentials' vault_* placeholders stand for on this lab.
        self.vault = {"vault_prod_eu_admin_token": info["admin_token"], "vault_prod_eu_k8s_token": info["k8s_token"],
                      "vault_alexandria_checkpoint_key": info["checkpoint_key"]}
        printed = json.loads(lab.cli("inventory", "--host", HOST).stdout)["all"]["children"]["alexandria"]["hosts"]
        host = dict((k, v) for k, v in printed[HOST].items()
                    if k in ("alex_base_url", "alex_namespace", "alex_release", "alex_license_issuer_public_key"))
        inventory, = self.config["controller_inventories"]
        group_vars = dict(inventory["variables"], alex_report_dir=str(root / "run-records"),
                          audit_chain_evidence_dir=str(root / "evidence") + "/{{ inventory_hostname }}")
        self.evidence = root / "evidence" / HOST
        self.inventory = root / "inventory.json"
        self.inventory.write_text(json.dumps({"all": {"vars": group_vars, "children": {
            "alexandria": {"hosts": {HOST: host}}}}}))
        self.jobs = 0

    def credential_env(self, name):
        credential = self.credentials[name]
        if credential["credential_type"] == "OpenShift or Kubernetes API Bearer Token":
            # AWX's built-in injectors of this type; the host is this lab's instead of the example's.
            info = self.lab.info
            return {"K8S_AUTH_HOST": info["k8s_url"], "K8S_AUTH_API_KEY": self.render(credential["inputs"]["bearer_token"]),
                    "K8S_AUTH_VERIFY_SSL": "True", "K8S_AUTH_SSL_CA_CERT": info["k8s_ca"]}
        inputs = dict((k, self.render(v)) for k, v in credential["inputs"].items())
        sandbox = ImmutableSandboxedEnvironment()  # what AWX renders injectors with (missing inputs render empty)
        injectors = self.types[credential["credential_type"]]["injectors"]
        return dict((k, sandbox.from_string(v).render(**inputs)) for k, v in injectors.get("env", {}).items())

    def render(self, value):
        for name, secret in self.vault.items():
            value = value.replace("{{ %s }}" % name, secret)
        assert "{{" not in value, value
        return value

    def job(self, template_name, artifacts, answers):
        """One job of the template: what AWX would launch, as ansible-playbook. Returns a playbooks.Run."""
        template = self.templates[template_name]
        self.jobs += 1
        extra = dict(template.get("extra_vars") or {})
        extra.update(artifacts)
        extra.update(answers)
        vars_file = self.root / ("job-%d-extra-vars.json" % self.jobs)
        vars_file.write_text(json.dumps(extra))
        stats = self.root / ("job-%d-stats.json" % self.jobs)
        base = dict((k, v) for k, v in os.environ.items() if not k.startswith(("ALEX_", "K8S_AUTH_")))
        for name in template["credentials"]:
            base.update(self.credential_env(name))
        env = playbooks.ansible_env(stats, base=base)
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(REPO / template["playbook"]),
                "-e", "@" + str(vars_file)]
        argv += ["--check"] if template["job_type"] == "check" else []
        argv += ["--diff"] if template.get("diff_mode") else []
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=str(self.root),
                              check=False)
        run = playbooks.Run(proc, stats)
        run.extra_vars = extra
        return run

    def workflow(self, answers, approve):
        """Walk the workflow from its root as AWX does; `approve(artifacts)` answers the approval node."""
        workflow = dict((w["name"], w) for w in self.config["controller_workflows"])[WORKFLOW]
        nodes = dict((n["identifier"], n) for n in workflow["simplified_workflow_nodes"])
        queue, ran = [("rehearse", {})], {}
        while queue:
            identifier, artifacts = queue.pop(0)
            node = nodes[identifier]
            if "approval_node" in node:
                ok, child_artifacts = approve(artifacts), artifacts
                ran[identifier] = ok
            else:
                run = self.job(node["unified_job_template"], artifacts, answers)
                ok, child_artifacts = run.rc == 0, dict(artifacts, **run.custom)  # children override parents
                ran[identifier] = run
            for child in (node.get("success_nodes" if ok else "failure_nodes") or []) + (node.get("always_nodes") or []):
                queue.append((child, child_artifacts))
        return ran


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    root = tmp_path_factory.mktemp("awx")
    lab = LabHandle.up(root / "lab")
    try:
        lab.cli("seed-audit", "--tenants", "2", "--rows", "150")
        lab.cli("break", "audit-tamper", "--tenant", "seed-001", "--seq", "40-41")
        yield Controller(root, lab)
    finally:
        lab.down()


def chain_verified(lab):
    status, body = lab.api("POST", "/admin/v1/audit/verify")
    assert status == 200, body
    return body["verified"], body["broken_tenants"]


def test_retire_without_a_rehearsal_artifact_for_its_host_is_refused(controller):
    retire = "Alexandria EE - audit chain retire (approved plan)"
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
        run = controller.job(retire, artifacts, ANSWERS)
        assert run.rc != 0, run.out[-2000:]
        for words in expected:
            assert words in run.failure(), run.failure()
        assert "Refused before any change (alex_expected_plan_hash_from=rehearsal)" in run.failure()
        summary = run.host(HOST)
        assert summary["result"] == "plan_refused" and summary["check_mode"] is False
        assert run.hosts[HOST]["changed"] == 0
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

    ran = controller.workflow(ANSWERS, approve_while_the_deployment_changes)
    assert list(ran) == ["rehearse", "approve", "retire"]  # the retire node failed: no verify node
    rehearsal, retire = ran["rehearse"], ran["retire"]
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    assert rehearsal.extra_vars["audit_chain_confirm"] == "true"  # survey answers are strings
    assert rehearsal.host(HOST)["result"] == "planned"
    assert retire.rc != 0 and REFUSED in retire.failure()
    refused = retire.host(HOST)
    assert refused["result"] == "plan_refused" and refused["plan_hash"] != rehearsal.host(HOST)["plan_hash"]
    tenants = [step["tenant"] for step in retire.record(HOST)["plan"]]
    assert tenants == ["seed-001", "seed-002"]  # the plan now holds the new damage, which nobody approved
    assert audit_state(lab) == changed["state"]  # rows, row versions, quarantine and anchors unchanged
    assert retire.hosts[HOST]["changed"] == 0
    assert not controller.evidence.exists()


def test_workflow_retires_exactly_the_approved_plan(controller):
    lab = controller.lab
    seen = {}

    def approve(artifacts):
        seen.update(artifacts["alexandria_ee"][HOST])
        return True

    ran = controller.workflow(ANSWERS, approve)
    assert list(ran) == ["rehearse", "approve", "retire", "verify"]
    rehearsal, retire, verify = ran["rehearse"], ran["retire"], ran["verify"]
    for run in (rehearsal, retire, verify):
        assert run.rc == 0, run.out[-3000:]
    assert rehearsal.host(HOST)["result"] == "planned" and seen["plan_hash"] == rehearsal.host(HOST)["plan_hash"]
    assert retire.extra_vars["alexandria_ee"][HOST]["plan_hash"] == seen["plan_hash"]  # the artifact reached it
    assert retire.extra_vars["alex_expected_plan_hash_from"] == "rehearsal"
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
    secrets = (lab.info["admin_token"], lab.info["hmac_key"], lab.info["k8s_token"], lab.info["checkpoint_key"])
    for run in (rehearsal, retire, verify):
        assert not [s for s in secrets if s in json.dumps(run.extra_vars) + run.out]
