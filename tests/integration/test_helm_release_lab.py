"""The release's Helm history against the lab: alex_helm_release, and what Scenario 1 makes of it.

The lab keeps the history as Helm 3 does (`alexlab up` writes revision 1, `alexlab break bad-upgrade` revision
2 of chart 1.5.0, whose orchestrator crash-loops); the stand-in helm (helm_standin.py) upgrades and rolls back
as Helm would.
"""
import base64

import pytest

from ansible_collections.alexandria.ee.plugins.modules import alex_helm_release

from test_api_not_serving_lab import lab, run_module  # noqa: F401  (lab is a fixture)

pytestmark = pytest.mark.lab


def test_helm_release_reads_the_history(lab, capsys):  # noqa: F811
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


def test_helm_release_not_a_helm_release(lab, capsys):  # noqa: F811
    result = run_module(alex_helm_release, lab.k8s_args(release="alexandria-other"), capsys)
    assert result["installed"] is False and result["revisions"] == [] and result["current"] is None
    assert result["summary"] == ("alexandria-other is not a Helm release: no history Secret (labels "
                                 "owner=helm,name=alexandria-other)")


def test_helm_release_corrupt_secret_is_a_warning(lab, capsys):  # noqa: F811
    core = lab.core()
    name = "sh.helm.release.v1.alexandria-ee.v1"
    core.patch_namespaced_secret(name, lab.namespace, {"data": {"release": base64.b64encode(
        b"H4sI" + b"A" * 40).decode("ascii")}})
    result = run_module(alex_helm_release, lab.k8s_args(), capsys)
    assert result["installed"] is True and result["revisions"] == [] and result["current"] is None
    (line,) = result["problems"]
    assert line.startswith("Helm history Secret %s: data.release is not valid gzip (" % name)
    assert line in str(result["warnings"])


def test_helm_release_rbac_forbidden(lab, capsys):  # noqa: F811
    lab.break_("rbac-deny", "--resource", "secrets", "--verb", "list")
    result = run_module(alex_helm_release, lab.k8s_args(), capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("Kubernetes RBAC forbids listing the Helm history Secrets owner=helm,"
                                    "name=alexandria-ee in namespace alexandria (403)")
