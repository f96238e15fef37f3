"""The pure parts of k8s_workload: Secret values and rollout status (the calls are tested against the lab)."""
import base64
import datetime

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import k8s_workload as kw
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError


def test_names_follow_the_contract():
    assert kw.license_secret_name("alexandria-ee") == "alexandria-ee-license"
    assert kw.license_secret_name("alexandria-ee", "custom") == "custom"
    assert kw.deployment_name("alexandria-ee") == "alexandria-ee"


def test_secret_value_round_trip():
    data = kw.encode_values({"license.blob": "ALXLIC1.a.b", "other": "é"})
    secret = {"data": data}
    assert kw.secret_value(secret, "license.blob") == "ALXLIC1.a.b"
    assert kw.secret_value(secret, "other") == "é"
    assert kw.secret_value(secret, "absent") is None
    assert kw.secret_value(None, "license.blob") is None
    assert base64.b64decode(data["license.blob"]) == b"ALXLIC1.a.b"


def test_secret_value_not_base64_is_a_clear_error_without_the_value():
    with pytest.raises(K8sError) as err:
        kw.secret_value({"data": {"license.blob": "%%%not-base64%%%"}}, "license.blob")
    assert "not-base64" not in str(err.value)


def test_restart_stamp_is_rfc3339_utc():
    stamp = kw.restart_stamp(datetime.datetime(2026, 11, 27, 10, 52, tzinfo=datetime.timezone(datetime.timedelta(hours=1))))
    assert stamp == "2026-11-27T09:52:00Z"


def dep(generation=2, observed=2, replicas=1, updated=1, total=1, available=1, conditions=None):
    return {"metadata": {"name": "alexandria-ee", "generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                       "availableReplicas": available, "conditions": conditions or []}}


@pytest.mark.parametrize("d, done, words", [
    (dep(), True, "rolled out"),
    (dep(generation=3, observed=2), False, "observed"),
    (dep(updated=0), False, "0 of 1 new replicas"),
    (dep(total=2), False, "1 old replicas are pending termination"),
    (dep(available=0), False, "0 of 1 updated replicas are available"),
])
def test_rollout_state(d, done, words):
    got, detail = kw.rollout_state(d)
    assert got is done
    assert words in detail


def test_rollout_progress_deadline_fails():
    cond = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out"}]
    with pytest.raises(K8sError) as err:
        kw.rollout_state(dep(available=0, conditions=cond))
    assert "progress deadline" in str(err.value)
