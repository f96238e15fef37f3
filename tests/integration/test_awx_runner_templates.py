"""One job template per scenario playbook of extensions/awx/controller, run through ansible-runner as AWX runs it
(tests/integration/awx_runner.py), against one lab shared by the module.

Each job is what AWX would launch: the template's playbook, job type (a rehearsal's --check and --diff in
env/cmdline), extra variables and survey (defaults and answers, in env/extravars as AWX writes them), and its
credentials' injected environment and files. The assertions are on what AWX sees: the runner's status, the host's
counts in the playbook_on_stats event, the artifacts (set_stats) and no secret in the job's events. The tests run in
file order on the one lab; each heals the faults it injected.
"""
import json
import pathlib
import stat

import pytest

from alexlab.testing import LabHandle

import awx_runner
from test_run_records_lab import active_users, audit_state, pod_names

pytestmark = pytest.mark.lab

HOST = "lab"


@pytest.fixture(scope="module")
def awx(tmp_path_factory):
    root = tmp_path_factory.mktemp("awx-templates")
    lab = LabHandle.up(root / "lab")
    try:
        lab.cli("seed-audit", "--tenants", "2", "--rows", "100")
        hosts, vault, inputs = awx_runner.lab_site(lab, HOST)
        controller = awx_runner.Controller(root / "controller", hosts, vault, inputs)
        controller.lab = lab
        yield controller
    finally:
        lab.down()


@pytest.fixture
def lab(awx):
    """The module's lab, healthy before the test and healed after it."""
    assert awx.lab.client.ready()[0] == 200
    yield awx.lab
    awx.lab.cli("heal")
    awx.lab.client.wait_ready(60)


def launch(awx, template, expected_status, **kwargs):
    """Launch a job, check its status and that no secret of the lab (nor the vault's blob) is in its events."""
    job = awx.launch(template, **kwargs)
    assert job.status == expected_status, (template, job.status, job.failure(), job.tail())
    assert job.leaked(awx_runner.lab_secrets(awx.lab) + [awx.vault["vault_alexandria_license_blob"]]) == []
    return job


def fleet_report(job):
    return json.loads(pathlib.Path(job.artifacts["alexandria_ee_fleet"]["report_json"]).read_text())


def test_fleet_health_then_api_not_serving(awx, lab):
    healthy = launch(awx, "Alexandria EE - fleet health (rehearsal)", "successful")
    assert (healthy.private_data_dir / "env" / "cmdline").read_text() == "--check --diff"
    assert healthy.host(HOST) == dict(healthy.host(HOST), scenario="healthy", next_command="", check_mode=True)
    assert healthy.artifacts["alexandria_ee_fleet"]["by_scenario"]["healthy"] == [HOST]
    assert healthy.count("changed", HOST) == 0

    lab.cli("break", "orchestrator-crash")
    pods = pod_names(lab)
    health = launch(awx, "Alexandria EE - fleet health", "successful")  # read-only: it reports, it does not fail
    assert (health.private_data_dir / "env" / "cmdline").read_text() == ""
    assert health.host(HOST)["scenario"] == "api_not_serving" and health.host(HOST)["check_mode"] is False
    assert "alexandria.ee.api_not_serving -e alex_target=%s" % HOST in health.host(HOST)["next_command"]

    rehearsal = launch(awx, "Alexandria EE - API not serving (rehearsal)", "successful")
    planned = rehearsal.host(HOST)
    assert planned["scenario"] == "api_not_serving" and planned["result"] == "planned" and planned["check_mode"]
    assert planned["causes"][0] == "orchestrator_socket_missing"
    assert [a["done"] for a in planned["actions"]] == [False]
    # The real run with the rehearsal's plan approved and the survey's default gates: the plan is the approved
    # one, and the run stops at the restart gate, naming it.
    gated = launch(awx, "Alexandria EE - API not serving", "failed",
                   answers={"alex_expected_plan_hash": planned["plan_hash"]})
    assert gated.extra_vars["api_not_serving_allow_restart"] == "false"  # the survey's default
    stopped = gated.host(HOST)
    assert stopped["result"] == "gated" and stopped["plan_hash"] == planned["plan_hash"]
    assert "api_not_serving_allow_restart=true" in gated.failure()
    assert gated.count("changed", HOST) == 0 and pod_names(lab) == pods


def test_quota_exceeded_rehearsal_then_the_approved_plan(awx, lab):
    lab.cli("seed-users", "--inactive", "3", "--inactive-days", "120")
    lab.cli("break", "seats-exhausted")
    active = active_users(lab)
    health = launch(awx, "Alexandria EE - fleet health (rehearsal)", "successful")
    assert health.host(HOST)["scenario"] == "quota_exceeded"
    assert "-e quota_exceeded_free_seats=true -e quota_exceeded_max_deactivate=3" in health.host(HOST)["next_command"]

    # AWX refuses a launch whose answers do not fit the survey, before any job runs.
    for answers in ({"quota_exceeded_max_deactivate": "3"}, {"quota_exceeded_free_seats": "yes"},
                    {"quota_exceeded_inactive_days": 0}):
        with pytest.raises(awx_runner.SurveyError):
            awx.launch("Alexandria EE - quota exceeded (rehearsal)", answers=answers)

    answers = {"quota_exceeded_free_seats": "true", "quota_exceeded_max_deactivate": 3}
    rehearsal = launch(awx, "Alexandria EE - quota exceeded (rehearsal)", "successful", answers=answers)
    planned = rehearsal.host(HOST)
    assert planned["result"] == "planned" and "seats_exhausted" in planned["causes"]
    assert active_users(lab) == active

    run = launch(awx, "Alexandria EE - quota exceeded", "successful",
                 answers=dict(answers, alex_expected_plan_hash=planned["plan_hash"]))
    done = run.host(HOST)
    assert done["result"] == "remediated" and done["plan_hash"] == planned["plan_hash"]
    [deactivate] = [a for a in done["actions"] if a["action"] == "deactivate_users"]
    assert deactivate["done"] is True
    assert len(active_users(lab)) == len(active) - 3
    assert run.count("changed", HOST) >= 1


def test_license_renewal_through_the_blob_credentials_file(awx, lab):
    blob = lab.cli("license", "mint", "--seats", "40", "--tenants", "8", "--tier", "enterprise").stdout.strip()
    awx.vault["vault_alexandria_license_blob"] = blob
    rehearsal = launch(awx, "Alexandria EE - license renewal (rehearsal)", "successful")
    # The credential's file injector wrote the blob into env/ (0600); its extra_vars injector gave the path with
    # -e @file in env/cmdline, never the blob itself.
    env_dir = rehearsal.private_data_dir / "env"
    cmdline = (env_dir / "cmdline").read_text()
    assert cmdline.startswith("--check --diff -e @%s/tmp" % env_dir), cmdline
    injected = awx_runner.yaml.safe_load(pathlib.Path(cmdline.split("@", 1)[1]).read_text())
    blob_file = pathlib.Path(injected["license_renewal_blob_file"])
    assert injected["quota_exceeded_license_blob_file"] == str(blob_file) and blob_file.parent == env_dir
    assert blob_file.read_text() == blob and stat.S_IMODE(blob_file.stat().st_mode) == 0o600
    assert blob not in (env_dir / "extravars").read_text() + cmdline
    planned = rehearsal.host(HOST)
    assert planned["scenario"] == "license_renewal" and planned["result"] == "planned"
    assert lab.api("GET", "/license", auth=False)[1]["max_seats"] == 25

    run = launch(awx, "Alexandria EE - license renewal", "successful",
                 answers={"alex_expected_plan_hash": planned["plan_hash"]})
    assert run.host(HOST)["result"] == "applied" and run.host(HOST)["plan_hash"] == planned["plan_hash"]
    assert lab.api("GET", "/license", auth=False)[1]["max_seats"] == 40


def test_audit_chain_failure_stops_at_an_empty_signoff(awx, lab):
    lab.cli("break", "audit-tamper", "--tenant", "seed-001", "--seq", "10-11")
    health = launch(awx, "Alexandria EE - fleet health (rehearsal)", "successful")
    assert health.host(HOST)["scenario"] == "audit_chain_failure"
    assert "alexandria.ee.audit_chain_failure -e alex_target=%s" % HOST in health.host(HOST)["next_command"]
    before = audit_state(lab)

    # With the sign-off and the confirmation, the rehearsal walks the whole destructive path in check mode.
    rehearsal = launch(awx, "Alexandria EE - audit chain failure (rehearsal)", "successful",
                       answers={"audit_chain_incident_id": "INC-5", "audit_chain_signoff": "CR-5",
                                "audit_chain_confirm": "true"})
    planned = rehearsal.host(HOST)
    assert planned["scenario"] == "audit_chain_failure" and planned["result"] == "planned", planned
    assert planned["scope"]["broken"] == ["seed-001"]

    # Confirmed, but the sign-off left at the survey's default (empty): AWX passes it as !unsafe '' - which
    # ansible-core 2.19 reads back as None - and the run must stop at the sign-off gate, nothing retired.
    gated = launch(awx, "Alexandria EE - audit chain failure", "failed",
                   answers={"audit_chain_incident_id": "INC-5", "audit_chain_confirm": "true"})
    assert gated.extra_vars["audit_chain_signoff"] == ""
    assert "!unsafe 'audit_chain_signoff': !unsafe ''" in (gated.private_data_dir / "env" / "extravars").read_text()
    assert gated.host(HOST)["result"] == "gated"
    assert "audit_chain_signoff" in gated.failure()
    assert audit_state(lab) == before


def test_audit_chain_watch_writes_the_checkpoints_the_fleet_health_reads(awx, lab):
    def checkpoint_secret():
        return lab.kubectl("get", "secret", "alexandria-ee-audit-checkpoints", "-n", "alexandria-audit",
                           "-o", "json", check=False)

    full = fleet_report(launch(awx, "Alexandria EE - fleet health (rehearsal)", "successful"))["hosts"][0]["audit"]
    rehearsal = launch(awx, "Alexandria EE - audit chain watch (rehearsal)", "successful")
    assert rehearsal.host(HOST)["result"] == "verified" and rehearsal.host(HOST)["check_mode"] is True
    assert checkpoint_secret().returncode != 0  # the rehearsal wrote no checkpoint

    watch = launch(awx, "Alexandria EE - audit chain watch", "successful")
    assert watch.host(HOST)["result"] == "verified"
    [advance] = [a for a in watch.host(HOST)["actions"] if a["action"] == "advance_checkpoints"]
    assert advance["done"] is True
    assert checkpoint_secret().returncode == 0  # in the inventory's Secret, not on the job's disk

    # The fleet health finds them through the same inventory variables, and reads only past them.
    incremental = fleet_report(launch(awx, "Alexandria EE - fleet health", "successful"))["hosts"][0]["audit"]
    assert full["verified"] is True and full["modes"] == ["full"] and full["rows_read"] == 200
    assert incremental["verified"] is True and incremental["modes"] == ["incremental"], incremental
    assert incremental["rows_read"] < full["rows_read"]


def test_restore_drill_then_the_rollback_rehearsal_of_its_backup(awx, lab):
    rehearsal = launch(awx, "Alexandria EE - restore drill (rehearsal)", "successful")
    assert rehearsal.host(HOST)["result"] == "planned" and rehearsal.host(HOST)["check_mode"] is True
    assert not pathlib.Path(rehearsal.host(HOST)["scope"]["backup"]).exists()

    drill = launch(awx, "Alexandria EE - restore drill", "successful")
    drilled = drill.host(HOST)
    assert drilled["result"] == "no_loss" and drilled["scope"]["rows_lost"] == 0
    backup = drilled["scope"]["backup"]
    assert pathlib.Path(backup).is_file()

    before = audit_state(lab)
    rollback = launch(awx, "Alexandria EE - audit chain rollback (rehearsal)", "successful",
                      answers={"audit_chain_backup": backup, "audit_chain_confirm_rollback": "true"})
    assert rollback.host(HOST)["scenario"] == "audit_chain_rollback"
    assert rollback.host(HOST)["result"] == "unchanged", rollback.host(HOST)  # the tables hold the backup
    assert audit_state(lab) == before


def test_upgrade_rehearsal_then_the_real_run_stops_at_the_gate(awx, lab):
    answers = {"upgrade_chart_version": "1.5.1"}
    rehearsal = launch(awx, "Alexandria EE - upgrade (rehearsal)", "successful", answers=answers)
    planned = rehearsal.host(HOST)
    assert planned["scenario"] == "upgrade" and planned["result"] == "planned" and planned["check_mode"] is True
    assert rehearsal.extra_vars["upgrade_rollback_on_failure"] == "true"  # the survey's default
    assert rehearsal.count("changed", HOST) >= 1  # what the checkpoint and backup would write, in check mode
    before = audit_state(lab)
    # The real run with the approved plan and the survey's default gate (and no helm in this execution
    # environment): the checks before pass, the plan is the approved one, the run stops at the gate, naming it.
    gated = launch(awx, "Alexandria EE - upgrade", "failed",
                   answers=dict(answers, alex_expected_plan_hash=planned["plan_hash"]))
    assert gated.extra_vars["upgrade_allow"] == "false"
    stopped = gated.host(HOST)
    assert stopped["result"] == "gated" and stopped["plan_hash"] == planned["plan_hash"]
    assert "set upgrade_allow=true" in gated.failure()
    assert "upgrade alexandria-ee alexandria/alexandria-ee --namespace alexandria --version 1.5.1" in gated.failure()
    assert gated.count("changed", HOST) == 0 and audit_state(lab) == before
