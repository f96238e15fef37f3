"""recent_upgrade (plugins/module_utils/upgrade_cause.py) on JSON recorded from the lab after `alexlab break
bad-upgrade`: the pods, events, logs and probe triage reads, and the release's Helm history Secrets."""
import base64
import copy
import gzip
import json
import pathlib

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import helm_history, triage, upgrade_cause

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "helm_history"
FX = json.loads((FIXTURES / "bad_upgrade_triage.json").read_text())
NOW = triage.parse_time(FX["recordedAt"])


def classify(fx=FX, probe="recorded"):
    return triage.classify(fx["podList"]["items"], fx["eventList"]["items"], fx["logs"], fx["licenseSecret"],
                           probe=fx["probe"] if probe == "recorded" else probe, release="alexandria-ee", now=NOW)


def history(secrets=None):
    return helm_history.history(FX["helmSecretList"]["items"] if secrets is None else secrets)


def decide(found=None, causes=None, window=30, now=NOW, fx=FX):
    causes = classify(fx)["causes"] if causes is None else causes
    return upgrade_cause.with_upgrade_cause(causes, history() if found is None else found, fx["podList"]["items"],
                                            fx["eventList"]["items"], now, window, "alexandria-ee", "alexandria")


def rewritten(secret, **info):
    """The history Secret with fields of the release's info changed, encoded as Helm's driver does."""
    release = helm_history.decode_release(secret)
    release["info"].update(info)
    changed = copy.deepcopy(secret)
    payload = base64.b64encode(gzip.compress(json.dumps(release).encode("utf-8")))
    changed["data"]["release"] = base64.b64encode(payload).decode("ascii")
    return changed


def test_bad_upgrade_is_named_next_to_the_symptom():
    causes, note = decide()
    assert [c["code"] for c in causes][:2] == ["recent_upgrade", "orchestrator_socket_missing"]
    upgrade = causes[0]
    assert upgrade["revision"] == 2 and upgrade["chart"] == "alexandria-ee-1.5.0" and upgrade["app_version"] == "1.5.0"
    assert upgrade["previous_revision"] == 1 and upgrade["previous_chart"] == "alexandria-ee-1.4.0"
    assert upgrade["previous_app_version"] == "1.4.0"
    deployed = history()["current"]["last_deployed"]
    assert upgrade["deployed_at"] == deployed
    assert 0 <= upgrade["first_symptom_after_seconds"] < 60 and upgrade["window_minutes"] == 30
    assert upgrade["evidence"][0] == (
        "helm revision 2 of alexandria-ee: chart alexandria-ee-1.5.0, app version 1.5.0, status deployed, deployed "
        "%s (Upgrade complete; Secret sh.helm.release.v1.alexandria-ee.v2)" % deployed)
    assert upgrade["evidence"][1].startswith("first symptom 0m")
    assert "event " in upgrade["evidence"][1] and "on pod alexandria-ee-" in upgrade["evidence"][1]
    assert upgrade["evidence"][2].startswith("previous revision 1: chart alexandria-ee-1.4.0, app version 1.4.0, "
                                             "status superseded, deployed ")
    assert upgrade["next_step"].startswith("Runbook Scenario 1, Rollback (upgrade.md)")
    assert ("helm rollback alexandria-ee 1 --namespace alexandria --wait --timeout 5m" in upgrade["next_step"])
    assert "api_not_serving_allow_rollback=true" in upgrade["next_step"]
    assert note.startswith("revision 2 deployed %s; the first symptom came 0m" % deployed)
    # The symptom cause keeps its own evidence and next step.
    assert causes[1] == classify()["causes"][0]


def test_an_upgrade_long_before_the_outage_is_not_the_cause():
    old, new = FX["helmSecretList"]["items"]
    stamp = "2026-01-01T00:00:00.000000Z"
    found = history([old, rewritten(new, last_deployed=stamp)])
    causes, note = decide(found)
    assert "recent_upgrade" not in [c["code"] for c in causes]
    assert causes == classify()["causes"]
    assert note.startswith("revision 2 deployed %s; the first symptom came " % stamp)
    assert note.endswith("after it (window 30 min): too long before the outage to name it the cause")


def test_the_window_is_the_variable():
    after = decide()[0][0]["first_symptom_after_seconds"]
    assert after >= 0
    causes, note = decide(window=0)
    assert causes == classify()["causes"] and note is None
    # An hour-old upgrade is named with a window of 120 minutes and not with the default.
    old, new = FX["helmSecretList"]["items"]
    deployed = triage.parse_time(history()["current"]["last_deployed"])
    found = history([old, rewritten(new, last_deployed="2026-11-28T00:00:00Z")])
    later = deployed - triage.parse_time("2026-11-28T00:00:00Z")
    assert later > 3600
    assert decide(found, window=int(later // 60) + 5)[0][0]["code"] == "recent_upgrade"
    assert decide(found, window=int(later // 60) - 5)[0][0]["code"] == "orchestrator_socket_missing"


def test_an_outage_before_the_upgrade_is_not_its_fault():
    old, new = FX["helmSecretList"]["items"]
    found = history([old, rewritten(new, last_deployed="2026-12-31T00:00:00Z")])
    causes, note = decide(found)
    assert causes[0]["code"] == "orchestrator_socket_missing"
    assert note.endswith("before it (window 30 min): the outage began before the upgrade")


def test_not_a_helm_release_offers_no_rollback():
    causes, note = decide(history([]))
    assert causes == classify()["causes"]
    assert note == ("alexandria-ee is not a Helm release: no history Secret (labels owner=helm,name=alexandria-ee): "
                    "no upgrade to blame, no rollback to offer")


def test_install_and_rollback_are_not_upgrades():
    old, new = FX["helmSecretList"]["items"]
    assert decide(history([rewritten(old, status="deployed")]))[1] == "revision 1 is the install, not an upgrade"
    causes, note = decide(history([old, rewritten(new, description="Rollback to 1")]))
    assert causes[0]["code"] == "orchestrator_socket_missing"
    assert note == "the newest revision 2 is a rollback (Rollback to 1), not an upgrade"


def test_no_earlier_deployed_revision_names_the_upgrade_without_a_target():
    old, new = FX["helmSecretList"]["items"]
    causes, _note = decide(history([rewritten(old, status="failed"), new]))
    upgrade = causes[0]
    assert upgrade["code"] == "recent_upgrade" and upgrade["previous_revision"] is None
    assert upgrade["evidence"][-1] == "no earlier revision that was deployed: nothing to roll back to"
    assert upgrade["next_step"].endswith("has no earlier deployed revision to roll back to: escalate")


@pytest.mark.parametrize("payload,words", [
    (base64.b64encode(b"not gzip at all"), "data.release is not gzip (nor plain JSON): starts with bytes 6e6f7420"),
    (base64.b64encode(b"\x1f\x8bcorrupt"), "data.release is not valid gzip ("),
])
def test_an_unreadable_history_secret_is_one_line_of_evidence(payload, words):
    old, new = FX["helmSecretList"]["items"]
    broken = copy.deepcopy(new)
    broken["data"]["release"] = base64.b64encode(payload).decode("ascii")
    causes, note = decide(history([old, broken]))
    assert causes[0]["code"] == "orchestrator_socket_missing"
    lines = [line for line in causes[0]["evidence"] if line.startswith("helm history: ")]
    (line,) = lines
    assert line.startswith("helm history: Helm history Secret sh.helm.release.v1.alexandria-ee.v2: " + words)
    assert note == "revision 1 is the install, not an upgrade"


def test_a_license_cause_stays_first():
    license_cause = dict(code="license_signature_failed", container="api", evidence=["x"], next_step="y",
                         confidence=95)
    causes, _note = decide(causes=[license_cause] + classify()["causes"])
    assert [c["code"] for c in causes][:3] == ["license_signature_failed", "recent_upgrade",
                                               "orchestrator_socket_missing"]


def test_serving_is_left_alone():
    healthy = [dict(code="healthy", container=None, evidence=[], next_step="None", confidence=100)]
    assert decide(causes=healthy) == (healthy, None)


def test_onset_without_signals_is_now():
    onset, words = upgrade_cause.symptom_onset([], [], NOW)
    assert onset == NOW and words.endswith("the outage is dated now")
    onset, words = upgrade_cause.symptom_onset(FX["podList"]["items"], FX["eventList"]["items"], NOW)
    assert onset <= NOW and words.startswith(("event ", "pod "))


def test_rollback_command():
    assert upgrade_cause.rollback_command("alexandria-ee", "alexandria", 1, "2m", "/usr/local/bin/helm") == [
        "/usr/local/bin/helm", "rollback", "alexandria-ee", "1", "--namespace", "alexandria", "--wait", "--timeout",
        "2m"]
