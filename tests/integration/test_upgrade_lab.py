"""playbooks/upgrade.yml against the lab, with the stand-in helm (tests/integration/helm_standin.py; no helm binary
can be had here): `alexlab up` writes Helm revision 1 (chart 1.4.0); chart 1.5.1 is a good upgrade, 1.5.0 one whose
orchestrator crash-loops (helm --wait fails it).

- a good upgrade in four steps: --check plans it (the exact command and the plan hash) and changes nothing (Secrets,
  audit tables, checkpoint files byte-identical), the real run held to that hash upgrades (revision 1 -> 2, the audit
  chain verified against the checkpoint taken before, a verified backup), then check and real run again find nothing
  to do;
- a bad chart version: the upgrade fails, the automatic rollback brings revision 1's chart back (/ready 200), the
  record says rolled back; with a rollback that fails, the run stops and says so with the command; with
  upgrade_rollback_on_failure=false the run stops with the rollback command, which works; a helm that fails before
  writing a revision leaves nothing to roll back;
- the checks before stop the run before anything: health not healthy (a lab fault), a license expiring sooner than
  upgrade_min_license_days, no helm binary or the gate closed (the exact command), not a Helm release, a missing
  values file or a --set value that is not path=value; a values-only upgrade at the deployed version is planned.
"""
import datetime
import hashlib
import json
import pathlib
import subprocess

import pytest

from alexlab.testing import LabHandle

import audit_helpers as h
import playbooks
from helm_standin import calls, make_helm_standin

pytestmark = pytest.mark.lab

GOOD, BAD, INSTALLED = "1.5.1", "1.5.0", "1.4.0"


@pytest.fixture
def lab(tmp_path):
    handle = LabHandle.up(tmp_path / "lab")
    try:
        handle.cli("seed-audit", "--tenants", "2", "--rows", "200")
        yield handle
    finally:
        handle.down()


def player(lab, tmp_path, helm):
    """run(*args, **variables) of playbooks/upgrade.yml against the lab as inventory host `lab`."""
    run = playbooks.lab_player(lab, tmp_path)
    backups = tmp_path / "backups"

    def upgrade(*args, **variables):
        variables = dict(dict(upgrade_helm_binary=helm, upgrade_backup_dir=str(backups)), **variables)
        return run("upgrade", *args, **variables)
    upgrade.backups = backups
    return upgrade


def state_of(lab):
    """Secrets (resourceVersions), the audit tables (md5 of every row) and the checkpoint files (bytes)."""
    secrets = json.loads(lab.kubectl("get", "secrets", "-A", "-o", "json").stdout)["items"]
    versions = sorted((s["metadata"]["namespace"], s["metadata"]["name"], s["metadata"]["resourceVersion"])
                      for s in secrets)
    conn = h.connect(lab.info["dsn"])
    tables = h.table_state(conn)
    conn.close()
    files = dict((str(p), p.read_bytes()) for p in sorted(pathlib.Path(lab.info["checkpoint_dir"]).rglob("*"))
                 if p.is_file())
    return versions, tables, files


def history(lab):
    """[(revision, status)] of the release, from the labels of its Helm history Secrets."""
    secrets = json.loads(lab.kubectl("get", "secrets", "-n", lab.info["namespace"], "-l",
                                     "owner=helm,name=%s" % lab.info["release"], "-o", "json").stdout)["items"]
    return sorted((int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"]) for s in secrets)


def upgrades(helm):
    return [argv for argv in calls(helm) if argv[:1] in (["upgrade"], ["rollback"])]


def ready(lab):
    code, _body = lab.api("GET", "/ready", auth=False)
    return code


def command(helm, version, *extra):
    return " ".join([helm, "upgrade", "alexandria-ee", "alexandria/alexandria-ee", "--namespace", "alexandria",
                     "--version", version, "--reuse-values"] + list(extra) + ["--wait", "--timeout", "10m"])


def secrets_of(lab):
    info = lab.info
    return [info[k] for k in ("admin_token", "hmac_key", "checkpoint_key", "dsn") if info.get(k)]


def test_a_good_upgrade_in_four_steps(lab, tmp_path):
    helm = make_helm_standin(tmp_path, lab)
    upgrade = player(lab, tmp_path, helm)
    before = state_of(lab)

    # 1. Check mode: the plan and its hash, nothing changed, no helm upgrade.
    rehearsal = upgrade("--check", upgrade_chart_version=GOOD, upgrade_allow=True)
    assert rehearsal.rc == 0, rehearsal.out[-4000:]
    entry = rehearsal.host("lab")
    assert entry["scenario"] == "upgrade" and entry["result"] == "planned" and entry["check_mode"] is True
    (plan,) = rehearsal.record("lab")["plan"]
    assert plan == {"action": "helm_upgrade", "namespace": "alexandria", "release": "alexandria-ee",
                    "chart": "alexandria/alexandria-ee", "from_revision": 1, "from_chart": "alexandria-ee-" + INSTALLED,
                    "from_chart_version": INSTALLED, "to_chart_version": GOOD, "values_files": [], "set": [],
                    "reuse_values": True, "rollback_on_failure": True, "command": command(helm, GOOD)}
    assert entry["plan_hash"] in rehearsal.out and command(helm, GOOD) in rehearsal.out
    assert upgrades(helm) == [] and state_of(lab) == before
    assert not upgrade.backups.exists()

    # 2. The real run, held to the rehearsed plan.
    real = upgrade(upgrade_chart_version=GOOD, upgrade_allow=True, alex_expected_plan_hash=entry["plan_hash"])
    assert real.rc == 0, real.out[-4000:]
    summary = real.custom["upgrade"]
    assert real.host("lab")["result"] == "upgraded" and real.host("lab")["plan_hash"] == entry["plan_hash"]
    assert (summary["revision_before"], summary["chart_version_before"]) == (1, INSTALLED)
    assert (summary["revision_after"], summary["chart_version_after"]) == (2, GOOD)
    assert summary["upgraded"] is True and summary["rolled_back"] is False and summary["rollback"] is None
    assert upgrades(helm) == [command(helm, GOOD).split(" ")[1:]]
    assert history(lab) == [(1, "superseded"), (2, "deployed")]
    assert ready(lab) == 200
    # The checkpoint taken before, and the check after read every tenant from exactly that checkpoint.
    checks, checkpoint = summary["after_checks"], summary["checkpoint"]
    assert checkpoint["verified"] is True and sorted(checkpoint["last_seq"]) == ["seed-001", "seed-002"]
    assert checks["audit_verified"] is True and checks["problems"] == []
    assert checks["audit_modes"] == {"seed-001": "incremental", "seed-002": "incremental"}
    assert checks["audit_from_checkpoint"] == checkpoint["last_seq"] == {"seed-001": 200, "seed-002": 200}
    assert checks["ready"] is True and checks["license_valid"] is True
    # The verified backup of the audit tables.
    backup = summary["backup"]
    assert backup["verified"] is True and pathlib.Path(backup["dest"]).is_file()
    manifest = json.loads(pathlib.Path(backup["manifest"]).read_text())
    assert manifest["sha256"] == backup["sha256"]
    record = real.record("lab")
    assert record["scope"]["revision_before"] == 1 and record["scope"]["revision_after"] == 2
    assert [a["action"] for a in record["actions"]] == ["take_checkpoint", "take_backup", "helm_upgrade"]
    assert all(a["done"] for a in record["actions"])

    # 3. Check mode again: at the version already, nothing to do.
    again = upgrade("--check", upgrade_chart_version=GOOD, upgrade_allow=True)
    assert again.rc == 0, again.out[-4000:]
    assert again.host("lab")["result"] == "unchanged" and again.record("lab")["plan"] == []
    # 4. The real run again: nothing to do, nothing changed.
    settled = state_of(lab)
    last = upgrade(upgrade_chart_version=GOOD, upgrade_allow=True)
    assert last.rc == 0, last.out[-4000:]
    assert last.host("lab")["result"] == "unchanged" and last.hosts["lab"]["changed"] == 0
    assert last.custom["upgrade"]["revision_after"] == 2
    assert len(upgrades(helm)) == 1 and state_of(lab) == settled
    # No secret of the lab in the output or the records.
    texts = [r.out for r in (rehearsal, real, again, last)]
    texts += [pathlib.Path(r.host("lab")[k]).read_text() for r in (rehearsal, real, again, last)
              for k in ("record_json", "record_markdown")]
    for secret in secrets_of(lab):
        assert not any(secret in text for text in texts)


def test_a_bad_chart_version_is_rolled_back(lab, tmp_path):
    helm = make_helm_standin(tmp_path, lab)
    upgrade = player(lab, tmp_path, helm)
    run = upgrade(upgrade_chart_version=BAD, upgrade_allow=True)
    assert run.rc != 0
    summary = run.custom["upgrade"]
    assert run.host("lab")["result"] == "rolled_back" and summary["rolled_back"] is True
    rollback = summary["rollback"]
    assert rollback["ok"] is True and rollback["rc"] == 0 and rollback["ready_after"] is True
    assert rollback["to_revision"] == 1 and rollback["revision_after"] == 3
    assert rollback["chart_version_after"] == INSTALLED
    assert (summary["revision_before"], summary["revision_after"], summary["chart_version_after"]) == (1, 3, INSTALLED)
    assert upgrades(helm) == [command(helm, BAD).split(" ")[1:],
                              ["rollback", "alexandria-ee", "1", "--namespace", "alexandria", "--wait", "--timeout",
                               "10m"]]
    assert history(lab) == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    assert ready(lab) == 200
    assert "UPGRADE FAILED" in run.failure() and "Rolled back to revision 1" in run.failure()
    record = run.record("lab")
    assert record["result"] == "rolled_back" and record["scope"]["rolled_back"] is True
    assert [a["action"] for a in record["actions"]] == ["take_checkpoint", "take_backup", "helm_rollback"]


def test_a_failed_rollback_stops_the_run_and_says_so(lab, tmp_path):
    for name in ("broken", "helm"):
        (tmp_path / name).mkdir()
    broken = make_helm_standin(tmp_path / "broken", lab, rollback_error="timed out waiting for the condition")
    run = player(lab, tmp_path, broken)(upgrade_chart_version=BAD, upgrade_allow=True)
    assert run.rc != 0
    summary = run.custom["upgrade"]
    assert run.host("lab")["result"] == "rollback_failed" and summary["rolled_back"] is False
    rollback_cmd = "%s rollback alexandria-ee 1 --namespace alexandria --wait --timeout 10m" % broken
    assert summary["rollback"]["ok"] is False and summary["rollback"]["rc"] == 1
    assert "timed out waiting for the condition" in summary["rollback"]["error"]
    assert "The rollback FAILED" in run.failure() and rollback_cmd in run.failure()
    assert run.host("lab")["next_command"] == rollback_cmd
    assert ready(lab) != 200

    # The command the run names brings it back (with a helm whose rollback works).
    helm = make_helm_standin(tmp_path / "helm", lab)
    proc = subprocess.run([helm] + rollback_cmd.split(" ")[1:], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert ready(lab) == 200

    # Without the automatic rollback: the run stops with the command, and leaves the failed revision.
    run = player(lab, tmp_path, helm)(upgrade_chart_version=BAD, upgrade_allow=True,
                                      upgrade_rollback_on_failure=False)
    assert run.rc != 0
    summary = run.custom["upgrade"]
    assert run.host("lab")["result"] == "upgrade_failed" and summary["rolled_back"] is False
    assert summary["rollback"] is None
    rollback_cmd = "%s rollback alexandria-ee 3 --namespace alexandria --wait --timeout 10m" % helm
    assert "Not rolled back (upgrade_rollback_on_failure=false)" in run.failure() and rollback_cmd in run.failure()
    assert run.host("lab")["next_command"] == rollback_cmd
    assert history(lab)[-1] == (4, "failed") and ready(lab) != 200
    assert [argv[0] for argv in upgrades(helm)] == ["rollback", "upgrade"]


def test_the_checks_before_stop_the_run_before_anything(lab, tmp_path):
    (tmp_path / "refusing").mkdir()
    helm = make_helm_standin(tmp_path, lab)
    upgrade = player(lab, tmp_path, helm)
    before = state_of(lab)

    # No helm binary: the gate names the exact command.
    missing = str(tmp_path / "no-such-helm")
    run = upgrade(upgrade_chart_version=GOOD, upgrade_allow=True, upgrade_helm_binary=missing)
    assert run.rc != 0 and run.host("lab")["result"] == "gated"
    assert "no helm binary" in run.failure() and command(missing, GOOD) in run.failure()
    assert run.custom["upgrade"]["helm_available"] is False
    # The gate closed.
    run = upgrade(upgrade_chart_version=GOOD)
    assert run.rc != 0 and run.host("lab")["result"] == "gated"
    assert "set upgrade_allow=true" in run.failure() and command(helm, GOOD) in run.failure()

    # A values-only upgrade at the deployed version is planned (values files by SHA-256, --set as given); a missing
    # values file and a --set value that is not path=value are refused.
    values = tmp_path / "site-values.yaml"
    values.write_text("resources:\n  api:\n    limits:\n      memory: 1Gi\n")
    memory = "resources.orchestrator.limits.memory=256Mi"
    run = upgrade("--check", upgrade_chart_version=INSTALLED, upgrade_values_files=[str(values)],
                  upgrade_set_values=[memory])
    assert run.rc == 0 and run.host("lab")["result"] == "planned", run.out[-3000:]
    (plan,) = run.record("lab")["plan"]
    assert plan["values_files"] == [{"path": str(values), "sha256": hashlib.sha256(values.read_bytes()).hexdigest()}]
    assert plan["set"] == [memory] and plan["from_chart_version"] == plan["to_chart_version"] == INSTALLED
    assert plan["command"] == command(helm, INSTALLED, "--values", str(values), "--set", memory)
    run = upgrade("--check", upgrade_chart_version=GOOD, upgrade_values_files=[str(tmp_path / "missing.yaml")],
                  upgrade_set_values=["no-equals-sign"])
    assert run.rc != 0 and run.host("lab")["result"] == "refused"
    assert "not: no-equals-sign" in run.failure()
    run = upgrade("--check", upgrade_chart_version=GOOD, upgrade_values_files=[str(tmp_path / "missing.yaml")])
    assert run.rc != 0 and "No such values file: %s" % (tmp_path / "missing.yaml") in run.failure()

    # A license expiring sooner than the minimum: the lab's (365 days), a day or two short of it.
    code, served = lab.api("GET", "/license", auth=False)
    expires = datetime.datetime.strptime(served["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    minimum = (expires - datetime.datetime.now(datetime.timezone.utc)).days + 2
    assert code == 200 and minimum > 30
    run = upgrade(upgrade_chart_version=GOOD, upgrade_allow=True, upgrade_min_license_days=minimum)
    assert run.rc != 0 and run.host("lab")["result"] == "refused"
    assert "less than upgrade_min_license_days=%d" % minimum in run.failure()
    assert "alexandria.ee.license_renewal" in run.failure()
    assert upgrades(helm) == [] and not upgrade.backups.exists() and state_of(lab) == before

    # A helm that fails before writing a revision: nothing to roll back, the run says so.
    refusing = make_helm_standin(tmp_path / "refusing", lab,
                                 upgrade_error="another operation (install/upgrade/rollback) is in progress")
    run = upgrade(upgrade_chart_version=GOOD, upgrade_allow=True, upgrade_helm_binary=refusing,
                  upgrade_backup_dir=str(tmp_path / "refusing" / "backups"))
    assert run.rc != 0 and run.host("lab")["result"] == "upgrade_failed"
    assert "before Helm wrote a revision: non-zero return code: Error: another operation" in run.failure()
    assert "Nothing to roll back: revision 1 (alexandria-ee-1.4.0) is still the newest" in run.failure()
    assert [argv[0] for argv in upgrades(refusing)] == ["upgrade"] and history(lab) == [(1, "deployed")]
    assert run.custom["upgrade"]["rollback"] is None and run.custom["upgrade"]["rolled_back"] is False

    # Health not passing (a lab fault): stopped, naming what health saw and its next command.
    lab.cli("break", "seats-exhausted")
    broken = state_of(lab)
    run = upgrade(upgrade_chart_version=GOOD, upgrade_allow=True)
    assert run.rc != 0 and run.host("lab")["result"] == "refused"
    assert "The health checks of this deployment say quota_exceeded" in run.failure()
    assert "alexandria.ee.quota_exceeded" in run.failure()
    assert run.custom["upgrade"]["health"]["scenario"] == "quota_exceeded"

    assert upgrades(helm) == [] and not upgrade.backups.exists() and state_of(lab) == broken

    # Not a Helm release: no history Secret.
    lab.kubectl("delete", "secrets", "-n", lab.info["namespace"], "-l", "owner=helm,name=%s" % lab.info["release"])
    run = upgrade(upgrade_chart_version=GOOD, upgrade_allow=True)
    assert run.rc != 0 and run.host("lab")["result"] == "refused"
    assert "not a Helm release" in run.failure()
    assert upgrades(helm) == []
