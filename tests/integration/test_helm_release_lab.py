"""The release's Helm history against the lab: alex_helm_release, and what Scenario 1 makes of it.

The lab keeps the history as Helm 3 does (`alexlab up` writes revision 1, `alexlab break bad-upgrade` revision
2 of chart 1.5.0, whose orchestrator crash-loops); the stand-in helm (helm_standin.py) upgrades and rolls back
as Helm would.
"""
import base64
import datetime
import json

import pytest
import requests
from alexlab import helm_release

from ansible_collections.alexandria.ee.plugins.modules import alex_helm_release, alex_ready, alex_triage

from helm_standin import calls as helm_calls, make_helm_standin
# The lab fixture of Scenario 1's tests: a lab of its own for each test.
from test_api_not_serving_lab import lab  # pylint: disable=unused-import
from test_api_not_serving_lab import assert_healthy_and_unchanged, playbook, run_module

pytestmark = pytest.mark.lab


def test_helm_release_reads_the_history(lab, capsys):
    result = run_module(alex_helm_release, lab.k8s_args(), capsys)
    assert result["changed"] is False and result["installed"] is True
    assert result["k8s_requests"] == 1 and result["selector"] == "owner=helm,name=alexandria-ee"
    (revision,) = result["revisions"]
    assert revision["revision"] == 1 and revision["status"] == "deployed"
    assert revision["chart"] == "alexandria-ee-1.4.0" and revision["app_version"] == "1.4.0"
    assert revision["secret"] == "sh.helm.release.v1.alexandria-ee.v1"
    assert result["current"] == revision and result["previous"] is None and result["problems"] == []

    lab.break_("bad-upgrade")
    result = run_module(alex_helm_release, lab.k8s_args(), capsys, check_mode=True)
    assert [(r["revision"], r["status"], r["chart"]) for r in result["revisions"]] == [
        (1, "superseded", "alexandria-ee-1.4.0"), (2, "deployed", "alexandria-ee-1.5.0")]
    assert result["current"]["revision"] == 2 and result["current"]["description"] == "Upgrade complete"
    assert result["previous"]["revision"] == 1
    assert result["summary"].endswith("rollback target revision 1")


def test_helm_release_not_a_helm_release(lab, capsys):
    result = run_module(alex_helm_release, lab.k8s_args(release="alexandria-other"), capsys)
    assert result["installed"] is False and result["revisions"] == [] and result["current"] is None
    assert result["summary"] == ("alexandria-other is not a Helm release: no history Secret (labels "
                                 "owner=helm,name=alexandria-other)")


def test_helm_release_corrupt_secret_is_a_warning(lab, capsys):
    core = lab.core()
    name = "sh.helm.release.v1.alexandria-ee.v1"
    core.patch_namespaced_secret(name, lab.namespace, {"data": {"release": base64.b64encode(
        b"H4sI" + b"A" * 40).decode("ascii")}})
    result = run_module(alex_helm_release, lab.k8s_args(), capsys)
    assert result["installed"] is True and result["revisions"] == [] and result["current"] is None
    (line,) = result["problems"]
    assert line.startswith("Helm history Secret %s: data.release is not valid gzip (" % name)
    assert line in str(result["warnings"])


def test_helm_release_rbac_forbidden(lab, capsys):
    lab.break_("rbac-deny", "--resource", "secrets", "--verb", "list")
    result = run_module(alex_helm_release, lab.k8s_args(), capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("Kubernetes RBAC forbids listing the Helm history Secrets owner=helm,"
                                    "name=alexandria-ee in namespace alexandria (403)")


# -------------------------------------------------------------------------------- triage and the rollback

def history(lab):
    """(revision, status, chart, description) of each revision, read with the lab's own decoder."""
    rows = []
    listed = lab.core().list_namespaced_secret(lab.namespace, label_selector="owner=helm,name=alexandria-ee",
                                               _preload_content=False)
    for secret in json.loads(listed.data)["items"]:
        record = helm_release.record_of(secret)
        rows.append((record["version"], record["info"]["status"], "%s-%s" % (
            record["chart"]["metadata"]["name"], record["chart"]["metadata"]["version"]), record["info"]["description"]))
    return sorted(rows)


def deployment_images(lab):
    dep = lab.apps().read_namespaced_deployment(lab.release, lab.namespace)
    return [c.image for c in dep.spec.template.spec.containers]


def rewrite_revision(lab, revision, **info):
    """Change fields of a revision's info as if Helm had written them (the Secret re-encoded as its driver does)."""
    name = helm_release.secret_name(lab.release, revision)
    secret = json.loads(lab.core().read_namespaced_secret(name, lab.namespace, _preload_content=False).data)
    record = helm_release.record_of(secret)
    record["info"].update(info)
    lab.core().replace_namespaced_secret(name, lab.namespace, helm_release.restamp(secret, record))


def set_release_data(lab, revision, helm_payload):
    """Replace what Helm's driver wrote in data.release (before the Kubernetes base64)."""
    lab.core().patch_namespaced_secret(helm_release.secret_name(lab.release, revision), lab.namespace, {
        "data": {"release": base64.b64encode(helm_payload).decode("ascii")}})


def triage_now(lab, capsys, **extra):
    probe = run_module(alex_ready, dict(base_url=lab.api_url, retries=0), capsys)
    assert probe["ready"] is False
    probe = dict((key, probe[key]) for key in ("ready", "status", "reason"))
    result = run_module(alex_triage, lab.k8s_args(probe=probe, **extra), capsys)
    assert not result.get("failed"), result
    return result


def rollback_command(lab, helm):
    return ("%s rollback alexandria-ee 1 --namespace alexandria --kubeconfig %s --wait --timeout 5m"
            % (helm, lab.kubeconfig))


def test_bad_upgrade_names_recent_upgrade_next_to_the_symptom(lab, capsys):
    lab.break_("bad-upgrade")
    result = triage_now(lab, capsys)
    codes = [c["code"] for c in result["causes"]]
    assert codes[:2] == ["recent_upgrade", "orchestrator_socket_missing"], result["causes"]
    upgrade = result["causes"][0]
    assert upgrade["revision"] == 2 and upgrade["chart"] == "alexandria-ee-1.5.0" and upgrade["app_version"] == "1.5.0"
    assert upgrade["previous_revision"] == 1 and upgrade["previous_chart"] == "alexandria-ee-1.4.0"
    assert upgrade["deployed_at"] == result["helm_release"]["current"]["last_deployed"]
    assert upgrade["evidence"][0].startswith("helm revision 2 of alexandria-ee: chart alexandria-ee-1.5.0, app version "
                                             "1.5.0, status deployed, deployed ")
    assert upgrade["evidence"][2].startswith("previous revision 1: chart alexandria-ee-1.4.0, app version 1.4.0, "
                                             "status superseded")
    assert "helm rollback alexandria-ee 1 --namespace alexandria --wait" in upgrade["next_step"]
    socket = result["causes"][1]
    assert [line for line in socket["evidence"] if "orchestrator.sock: no such file or directory" in line]
    assert result["helm_release"]["previous"]["revision"] == 1 and result["helm_release"]["problems"] == []
    assert result["helm_release"]["note"].startswith("revision 2 deployed ")


def test_rollback_check_gate_real_and_again(lab, tmp_path):
    lab.break_("bad-upgrade")
    helm = make_helm_standin(tmp_path, lab)
    before = history(lab)
    images = deployment_images(lab)
    assert images == ["alexandria/api:1.5.0", "alexandria/orchestrator:1.5.0"]

    # 1. Check mode: the exact command, nothing changed.
    run = playbook(lab, tmp_path, check=True, api_not_serving_allow_rollback=True, api_not_serving_helm_binary=helm)
    assert run.rc == 0, run.out
    summary = run.summary
    assert summary["cause"] == "recent_upgrade" and "orchestrator_socket_missing" in summary["causes"]
    assert summary["action"] == "rollback" and summary["result"] == "planned"
    (action,) = summary["actions"]
    assert action["command"] == rollback_command(lab, helm)
    assert action["from_revision"] == 2 and action["to_revision"] == 1 and action["target_exists"] is True
    assert action["to_chart"] == "alexandria-ee-1.4.0" and action["done"] is False and action["helm_available"]
    assert "Command: " + rollback_command(lab, helm) in run.out
    assert helm_calls(helm) == [["version", "--short"]]
    assert history(lab) == before and deployment_images(lab) == images
    assert run.changed_tasks == []

    # Without the gate: a stop that names it, nothing changed.
    run = playbook(lab, tmp_path, api_not_serving_helm_binary=helm)
    assert run.rc != 0
    assert "set api_not_serving_allow_rollback=true to run it here" in run.failure()
    assert rollback_command(lab, helm) in run.failure()
    assert history(lab) == before

    # 2. The gated real run rolls back: revision 3 = "Rollback to 1", and the API serves again.
    run = playbook(lab, tmp_path, api_not_serving_allow_rollback=True, api_not_serving_helm_binary=helm)
    assert run.rc == 0, run.out
    summary = run.summary
    assert summary["result"] == "remediated" and summary["ready_after"] is True
    assert summary["license_valid_json_after"] is True
    assert summary["revision_before"] == 2 and summary["revision_after"] == 3
    (action,) = summary["actions"]
    assert action["done"] is True and action["result"] == "done" and action["error"] is None
    assert action["revisions_before"] == [
        dict(revision=1, status="superseded", chart="alexandria-ee-1.4.0", app_version="1.4.0"),
        dict(revision=2, status="deployed", chart="alexandria-ee-1.5.0", app_version="1.5.0")]
    assert action["revisions_after"][-1] == dict(revision=3, status="deployed", chart="alexandria-ee-1.4.0",
                                                 app_version="1.4.0")
    assert helm_calls(helm)[-1] == rollback_command(lab, helm).split()[1:]
    assert history(lab) == [(1, "superseded", "alexandria-ee-1.4.0", "Install complete"),
                            (2, "superseded", "alexandria-ee-1.5.0", "Upgrade complete"),
                            (3, "deployed", "alexandria-ee-1.4.0", "Rollback to 1")]
    assert deployment_images(lab) == ["alexandria/api:1.4.0", "alexandria/orchestrator:1.4.0"]
    assert requests.get(lab.api_url + "/ready", timeout=5).status_code == 200
    record = run.record("localhost")
    assert record["details"]["api_not_serving"]["revision_after"] == 3
    assert any(a["action"] == "helm_rollback" and a["done"] for a in record["actions"])

    # 3 and 4. Check mode again and a real run again: serving, nothing to change, no second rollback.
    calls = len(helm_calls(helm))
    assert_healthy_and_unchanged(playbook(lab, tmp_path, check=True, api_not_serving_allow_rollback=True,
                                          api_not_serving_helm_binary=helm))
    assert_healthy_and_unchanged(playbook(lab, tmp_path, api_not_serving_allow_rollback=True,
                                          api_not_serving_helm_binary=helm))
    assert len(helm_calls(helm)) == calls and len(history(lab)) == 3


def test_corrupt_and_not_gzip_history_is_one_line_of_evidence(lab, capsys):
    lab.break_("bad-upgrade")
    name = "sh.helm.release.v1.alexandria-ee.v2"
    not_gzip = "data.release is not gzip (nor plain JSON): starts with bytes 74686973"
    for payload, words in ((b"this is not gzip", not_gzip), (b"\x1f\x8b\x08\x00broken", "data.release is not valid gzip (")):
        set_release_data(lab, 2, base64.b64encode(payload))
        result = triage_now(lab, capsys)
        assert "recent_upgrade" not in [c["code"] for c in result["causes"]]
        first = result["causes"][0]
        assert first["code"] == "orchestrator_socket_missing"
        (line,) = [e for e in first["evidence"] if e.startswith("helm history: ")]
        assert line.startswith("helm history: Helm history Secret %s: %s" % (name, words))
        assert result["helm_release"]["problems"] == [line[len("helm history: "):]]
        assert "Traceback" not in json.dumps(result)


def test_no_history_is_not_a_helm_release(lab, tmp_path):
    lab.core().delete_namespaced_secret("sh.helm.release.v1.alexandria-ee.v1", lab.namespace)
    lab.break_("orchestrator-crash")
    run = playbook(lab, tmp_path, check=True, api_not_serving_allow_rollback=True)
    assert run.rc == 0, run.out
    summary = run.summary
    assert summary["cause"] == "orchestrator_socket_missing" and "recent_upgrade" not in summary["causes"]
    assert summary["action"] == "restart"
    assert summary["helm"] == ("alexandria-ee is not a Helm release: no history Secret (labels "
                               "owner=helm,name=alexandria-ee)")
    assert summary["upgrade_check"].endswith("no upgrade to blame, no rollback to offer")
    assert "Helm: alexandria-ee is not a Helm release" in run.out


def test_an_upgrade_long_before_the_outage_is_not_the_cause(lab, tmp_path):
    lab.break_("bad-upgrade")
    rewrite_revision(lab, 2, last_deployed=helm_release.helm_time(
        datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)))
    run = playbook(lab, tmp_path, check=True, api_not_serving_allow_rollback=True)
    assert run.rc == 0, run.out
    assert run.summary["cause"] == "orchestrator_socket_missing" and "recent_upgrade" not in run.summary["causes"]
    assert run.summary["action"] == "restart"
    assert run.summary["upgrade_check"].startswith("revision 2 deployed ")
    assert run.summary["upgrade_check"].endswith("(window 30 min): too long before the outage to name it the cause")
    # With a window longer than the two hours, the same upgrade is named.
    run = playbook(lab, tmp_path, check=True, api_not_serving_upgrade_window=180)
    assert run.summary["cause"] == "recent_upgrade"


def test_the_rollback_target_no_longer_exists(lab, tmp_path):
    lab.break_("bad-upgrade")
    # Revision 1 is pruned between triage and the rollback (a concurrent helm upgrade with --history-max).
    helm = make_helm_standin(tmp_path, lab, prune_revisions=[1])
    run = playbook(lab, tmp_path, api_not_serving_allow_rollback=True, api_not_serving_helm_binary=helm)
    assert run.rc != 0
    assert run.summary["cause"] == "recent_upgrade"
    (action,) = run.summary["actions"]
    assert action["target_exists"] is False and action["done"] is False
    assert ("revision 1 (the rollback target) is no longer in the Helm history of alexandria-ee (no Secret "
            "sh.helm.release.v1.alexandria-ee.v1" in run.failure())
    assert "Nothing was changed" in run.failure()
    assert helm_calls(helm) == [["version", "--short"]]
    assert history(lab) == [(2, "deployed", "alexandria-ee-1.5.0", "Upgrade complete")]
    # The next run sees no earlier revision at all: recent_upgrade without a target, a clear stop.
    run = playbook(lab, tmp_path, api_not_serving_allow_rollback=True, api_not_serving_helm_binary=helm)
    assert run.rc != 0
    assert run.summary["cause"] == "recent_upgrade" and run.summary["actions"][0]["to_revision"] is None
    assert "the release has no earlier deployed revision to roll back to. Nothing was changed: escalate" in run.failure()
    assert [c[0] for c in helm_calls(helm)] == ["version", "version"]


def test_a_failed_rollback_is_reported_and_stops_the_run(lab, tmp_path):
    lab.break_("bad-upgrade")
    helm = make_helm_standin(tmp_path, lab, rollback_error="release alexandria-ee failed: timed out waiting for "
                                                           "the condition")
    run = playbook(lab, tmp_path, api_not_serving_allow_rollback=True, api_not_serving_helm_binary=helm)
    assert run.rc != 0
    summary = run.summary
    assert summary["result"] == "failed" and "ready_after" not in summary
    (action,) = summary["actions"]
    assert action["done"] is False and action["result"] == "failed"
    assert action["error"] == "Error: release alexandria-ee failed: timed out waiting for the condition"
    assert summary["revision_before"] == 2 and summary["revision_after"] == 2
    assert run.failure().startswith("helm rollback to revision 1 failed (exit 1): Error: release alexandria-ee "
                                    "failed: timed out waiting for the condition.")
    assert run.record("localhost")["result"] == "failed"
    assert len(history(lab)) == 2


def test_rollback_without_a_helm_binary_stops_with_the_command(lab, tmp_path):
    lab.break_("bad-upgrade")
    missing = str(tmp_path / "no-such-helm")
    run = playbook(lab, tmp_path, api_not_serving_allow_rollback=True, api_not_serving_helm_binary=missing)
    assert run.rc != 0
    (action,) = run.summary["actions"]
    assert action["helm_available"] is False and action["done"] is False
    assert action["command"] == rollback_command(lab, missing)
    assert "no helm binary (%s) here: run it where helm is installed" % missing in run.failure()
    assert action["command"] in run.failure()
    assert len(history(lab)) == 2
