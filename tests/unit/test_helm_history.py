"""Reading a Helm release's history from its Secrets (plugins/module_utils/helm_history.py) on recorded JSON.

The fixtures in fixtures/helm_history/ are Secret lists recorded from the lab (`alexlab up`, `alexlab break
bad-upgrade`, the stand-in helm's failed upgrade and rollback), as the Kubernetes API returns them.
"""
import base64
import copy
import gzip
import json
import pathlib

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import helm_history

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "helm_history"


def secrets(name):
    return json.loads((FIXTURES / (name + ".json")).read_text())["items"]


def with_release_data(secret, payload_bytes):
    """The Secret with data.release replaced: payload_bytes is what Helm's driver would have written (before the
    Kubernetes base64)."""
    changed = copy.deepcopy(secret)
    changed["data"]["release"] = base64.b64encode(payload_bytes).decode("ascii")
    return changed


def helm_payload(release_json):
    return base64.b64encode(gzip.compress(json.dumps(release_json).encode("utf-8")))


def test_installed_release_has_one_deployed_revision():
    found = helm_history.history(secrets("installed"))
    assert found["installed"] is True and found["problems"] == []
    (revision,) = found["revisions"]
    assert revision == dict(revision=1, status="deployed", chart="alexandria-ee-1.4.0", chart_name="alexandria-ee",
                            chart_version="1.4.0", app_version="1.4.0",
                            first_deployed=revision["first_deployed"], last_deployed=revision["first_deployed"],
                            description="Install complete", secret="sh.helm.release.v1.alexandria-ee.v1")
    assert revision["first_deployed"].endswith("Z")
    assert found["current"] == revision and found["previous"] is None


def test_bad_upgrade_current_and_rollback_target():
    found = helm_history.history(list(reversed(secrets("bad_upgrade"))))
    assert [(r["revision"], r["status"], r["chart"]) for r in found["revisions"]] == [
        (1, "superseded", "alexandria-ee-1.4.0"), (2, "deployed", "alexandria-ee-1.5.0")]
    assert found["current"]["revision"] == 2 and found["current"]["app_version"] == "1.5.0"
    assert found["current"]["description"] == "Upgrade complete"
    assert found["previous"]["revision"] == 1
    assert helm_history.summary("alexandria-ee", found).startswith(
        "alexandria-ee: revision 2 (deployed, chart alexandria-ee-1.5.0, app version 1.5.0, deployed 20")
    assert helm_history.summary("alexandria-ee", found).endswith("; rollback target revision 1")


def test_failed_upgrade_and_rollback_history():
    found = helm_history.history(secrets("upgrade_failed_then_rollback"))
    assert [(r["revision"], r["status"], r["description"]) for r in found["revisions"]] == [
        (1, "superseded", "Install complete"), (2, "superseded", "Upgrade complete"),
        (3, "failed", 'Upgrade "alexandria-ee" failed: context deadline exceeded'), (4, "deployed", "Rollback to 2")]
    assert found["current"]["revision"] == 4
    # A failed revision is never a rollback target.
    assert found["previous"]["revision"] == 2


def test_newest_failed_keeps_the_deployed_one_current():
    history = secrets("upgrade_failed_then_rollback")[:3]
    revived = helm_history.decode_release(history[1])
    revived["info"]["status"] = "deployed"
    history[1] = with_release_data(history[1], helm_payload(revived))
    found = helm_history.history(history)
    assert found["current"]["revision"] == 2
    assert found["previous"]["revision"] == 2  # rolling back re-renders the last good revision


def test_no_history_is_not_a_helm_release():
    found = helm_history.history([])
    assert found == dict(installed=False, revisions=[], current=None, previous=None, problems=[])
    assert helm_history.summary("alexandria-ee", found) == (
        "alexandria-ee is not a Helm release: no history Secret (labels owner=helm,name=alexandria-ee)")


def test_plain_json_payload_is_read_as_helm_does():
    installed = secrets("installed")[0]
    plain = base64.b64encode(json.dumps(helm_history.decode_release(installed)).encode("utf-8"))
    found = helm_history.history([with_release_data(installed, plain)])
    assert found["problems"] == [] and found["current"]["chart"] == "alexandria-ee-1.4.0"


@pytest.mark.parametrize("label,payload,words", [
    ("not gzip", base64.b64encode(b"PK\x03\x04 a zip, not a release"),
     "data.release is not gzip (nor plain JSON): starts with bytes 504b0304"),
    ("corrupt gzip", base64.b64encode(b"\x1f\x8b\x08\x00garbage-after-the-magic"), "data.release is not valid gzip ("),
    ("gzip of not JSON", base64.b64encode(gzip.compress(b"{not json")), "the release is not JSON ("),
    ("not base64 inside", b"%%% not base64 %%%", "(Helm's base64 inside the Kubernetes base64) is not base64"),
    ("JSON list", base64.b64encode(gzip.compress(b"[1, 2]")), "the release is JSON but not an object"),
    ("missing fields", helm_payload({"version": 2, "info": {}}),
     "the release has no info.status, chart.metadata.name, chart.metadata.version"),
    ("bad version", helm_payload({"version": "two", "info": {"status": "deployed"},
                                  "chart": {"metadata": {"name": "c", "version": "1"}}}),
     "version 'two' is not a revision number"),
])
def test_unreadable_secret_is_one_line_naming_it(label, payload, words):
    good, bad = secrets("bad_upgrade")
    found = helm_history.history([good, with_release_data(bad, payload)])
    (line,) = found["problems"]
    assert line.startswith("Helm history Secret sh.helm.release.v1.alexandria-ee.v2: "), label
    assert words in line and "\n" not in line
    # The readable revision still counts; the unreadable one is not a target.
    assert [r["revision"] for r in found["revisions"]] == [1]
    assert found["installed"] is True and found["current"]["revision"] == 1 and found["previous"] is None
    assert helm_history.summary("alexandria-ee", found).endswith("; 1 history Secret(s) unreadable")


def test_kubernetes_layer_not_base64():
    bad = copy.deepcopy(secrets("installed")[0])
    bad["data"]["release"] = "***"
    found = helm_history.history([bad])
    assert found["problems"] == ["Helm history Secret sh.helm.release.v1.alexandria-ee.v1: data.release is not base64"]
    assert helm_history.summary("alexandria-ee", found) == (
        "alexandria-ee: no readable Helm history (1 Secret(s) unreadable)")


def test_missing_data_and_other_secret_types():
    empty = copy.deepcopy(secrets("installed")[0])
    empty["data"] = {}
    other = dict(copy.deepcopy(secrets("installed")[0]), type="Opaque")
    found = helm_history.history([empty, other, "not a dict"])
    assert found["problems"] == ["Helm history Secret sh.helm.release.v1.alexandria-ee.v1: data.release is empty"]


def test_zip_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(helm_history, "MAX_RELEASE_BYTES", 1024)
    big = helm_payload({"version": 1, "pad": "x" * 4096})
    (line,) = helm_history.history([with_release_data(secrets("installed")[0], big)])["problems"]
    assert line.endswith("the release is larger than 0 MiB decompressed")


def test_no_values_or_manifest_are_kept():
    found = helm_history.history(secrets("bad_upgrade"))
    text = json.dumps(found)
    assert "config" not in text and "manifest" not in text and "templates" not in text
