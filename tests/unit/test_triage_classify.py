"""Runbook Scenario 1 classification (plugins/module_utils/triage.py) on recorded Kubernetes JSON.

Each fixture in fixtures/api_not_serving/ holds a v1.PodList, a v1.EventList, the log tails, the license
Secret's state and the /ready probe, as the service layer hands them to classify().
"""
import copy
import json
import pathlib

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import memory_quantity, triage

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "api_not_serving"


def load(name):
    return json.loads((FIXTURES / (name + ".json")).read_text())


def run(fx, probe="recorded", **changes):
    """classify() on a fixture; probe: "recorded" (the fixture's), False (none) or a probe dict."""
    if probe == "recorded":
        probe = fx["probe"]
    args = dict(pods=fx["podList"]["items"], events=fx["eventList"]["items"], logs=fx["logs"],
                license_secret=fx["licenseSecret"], probe=probe or None, release="alexandria-ee")
    args.update(changes)
    return triage.classify(**args)


def evidence_with(cause, text):
    return [line for line in cause["evidence"] if text in line]


@pytest.mark.parametrize("name,code,container,needle", [
    ("orchestrator_crash", "orchestrator_socket_missing", "orchestrator", triage.SOCKET_MISSING),
    ("orchestrator_hang", "orchestrator_deadline_exceeded", "orchestrator", triage.DEADLINE_EXCEEDED),
    ("license_corrupt", "license_blob_invalid", "api", triage.LICENSE_INVALID),
    ("license_signature", "license_signature_failed", "api", triage.LICENSE_SIGNATURE),
    ("license_missing", "license_secret_missing", "api", "not found (404)"),
    ("oom", "oom_killed", "orchestrator", "reason=OOMKilled exitCode=137"),
])
def test_first_cause_and_its_evidence(name, code, container, needle):
    result = run(load(name))
    first = result["causes"][0]
    assert first["code"] == code
    assert first["container"] == container
    assert evidence_with(first, needle), first["evidence"]
    assert first["next_step"] == triage.NEXT_STEPS[code]
    assert set(first) >= {"code", "container", "evidence", "next_step"}
    confidences = [c["confidence"] for c in result["causes"]]
    assert confidences == sorted(confidences, reverse=True)


def test_log_evidence_is_the_exact_line():
    fx = load("orchestrator_crash")
    first = run(fx)["causes"][0]
    line = ('2026-11-27T09:51:42.413Z ERROR readiness check failed check=orchestrator '
            'err="orchestrator.sock: no such file or directory"')
    assert "pod alexandria-ee-7c9d8f6b5-q4xkz container api log (current): " + line in first["evidence"]
    # Only the last three matching lines are quoted, and the rest is counted.
    assert len(evidence_with(first, "log (current): ")) == 3
    # The orchestrator's own state and its BackOff event corroborate it.
    assert evidence_with(first, "state: waiting (CrashLoopBackOff), restartCount=5, lastState.terminated: "
                                "reason=Error exitCode=2")
    assert evidence_with(first, "Warning BackOff Pod/alexandria-ee-7c9d8f6b5-q4xkz x19")
    assert evidence_with(first, "probe /ready HTTP 503: orchestrator.sock: no such file or directory")
    # The orchestrator's previous log says why it died.
    assert ("pod alexandria-ee-7c9d8f6b5-q4xkz container orchestrator log (previous): panic: runtime error: "
            "invalid memory address or nil pointer dereference") in first["evidence"]


def test_oom_ranks_above_its_symptom_and_proposes_a_limit():
    causes = run(load("oom"))["causes"]
    assert [c["code"] for c in causes] == ["oom_killed", "orchestrator_socket_missing"]
    oom = causes[0]
    assert oom["memory_limit"] == "256Mi"
    assert evidence_with(oom, "memory limit: 256Mi")
    assert evidence_with(oom, "OOMKilling Pod/alexandria-ee-6f7b9c8d4-m2v8r x3: Memory cgroup out of memory")
    assert evidence_with(causes[1], "(the OOM kill removed the socket)")
    assert memory_quantity.propose_memory_limit(oom["memory_limit"]) == "512Mi"


def test_oom_without_the_kill_recorded_in_the_state_still_shows_from_events():
    fx = load("oom")
    pod = fx["podList"]["items"][0]
    pod["status"]["containerStatuses"][1]["lastState"] = {"terminated": {"exitCode": 137, "reason": "Error"}}
    causes = run(fx, probe=False)["causes"]
    codes = [c["code"] for c in causes]
    assert "oom_killed" in codes
    oom = causes[codes.index("oom_killed")]
    assert evidence_with(oom, "OOMKilling")


def test_license_missing_folds_the_api_log_into_the_secret_cause():
    causes = run(load("license_missing"))["causes"]
    assert [c["code"] for c in causes] == ["license_secret_missing"]
    assert evidence_with(causes[0], "secret alexandria-ee-license: not found (404)")
    assert evidence_with(causes[0], "license blob invalid: missing")


def test_license_key_missing_counts_as_secret_missing():
    fx = load("license_corrupt")
    secret = dict(fx["licenseSecret"], key_present=False)
    first = run(fx, license_secret=secret)["causes"][0]
    assert first["code"] == "license_secret_missing"
    assert evidence_with(first, "exists but has no key license.blob")


def test_license_secret_unknown_does_not_invent_a_cause():
    fx = load("orchestrator_hang")
    secret = dict(fx["licenseSecret"], exists=None, key_present=None)
    assert [c["code"] for c in run(fx, license_secret=secret)["causes"]] == ["orchestrator_deadline_exceeded"]


def test_hang_evidence_names_the_running_orchestrator():
    first = run(load("orchestrator_hang"))["causes"][0]
    assert evidence_with(first, 'err="rpc error: code = DeadlineExceeded desc = context deadline exceeded"')
    assert evidence_with(first, "container orchestrator state: running, ready=True, restartCount=0 (process up")
    assert evidence_with(first, "container orchestrator log (current): 2026-11-27T09:47:04.900Z INFO  acquiring "
                                "scheduler lock")


def test_healthy_with_history_in_the_log():
    result = run(load("healthy"))
    assert [c["code"] for c in result["causes"]] == ["healthy"]
    healthy = result["causes"][0]
    assert healthy["container"] is None
    assert evidence_with(healthy, "probe /ready HTTP 200")
    assert evidence_with(healthy, "earlier signal, not current: oom_killed")


def test_an_oom_loop_that_serves_between_kills_is_not_healthy():
    fx = load("healthy")  # orchestrator OOMKilled at 09:44:50, running and ready since 09:44:58
    just_after = triage.parse_time("2026-11-27T09:45:30Z")
    result = run(fx, now=just_after)
    first = result["causes"][0]
    assert first["code"] == "oom_killed"
    assert evidence_with(first, "ready, but only for 32s since the OOM kill (less than 120s)")
    # Stable for longer than the window: history.
    later = triage.parse_time("2026-11-27T09:47:30Z")
    assert run(fx, now=later)["causes"][0]["code"] == "healthy"
    assert run(fx, now=just_after, stable_seconds=10)["causes"][0]["code"] == "healthy"


def test_probe_ready_before_the_readiness_of_a_container_catches_up():
    fx = load("healthy")
    pod = copy.deepcopy(fx["podList"]["items"][0])
    pod["status"]["containerStatuses"][0]["ready"] = False
    pod["status"]["containerStatuses"][1]["lastState"] = {}
    logs = {pod["metadata"]["name"]: {"api": {"current": "INFO ready\n"}}}
    first = run(fx, pods=[pod], logs=logs)["causes"][0]
    assert first["code"] == "healthy"
    assert evidence_with(first, "api running ready=False restartCount=0")


def test_just_recovered_old_log_lines_and_lagging_readiness_are_history():
    fx = load("orchestrator_crash")  # the api log still holds the socket errors
    pod = copy.deepcopy(fx["podList"]["items"][0])
    orch = pod["status"]["containerStatuses"][1]
    orch["state"] = {"running": {"startedAt": "2026-11-27T09:52:10Z"}}
    orch["ready"] = False  # not probed yet since it came back
    first = run(fx, pods=[pod], probe={"ready": True, "status": 200, "reason": None})["causes"][0]
    assert first["code"] == "healthy"
    assert evidence_with(first, "earlier signal, not current: orchestrator_socket_missing")


def test_serving_but_the_state_shows_a_current_cause():
    # /ready 200, yet the license Secret is gone (the next restart will not load a license) ...
    fx = load("license_missing")
    assert run(fx, probe={"ready": True, "status": 200, "reason": None})["causes"][0]["code"] == \
        "license_secret_missing"
    # ... or the orchestrator crash-loops (another replica answered the probe).
    fx = load("orchestrator_crash")
    assert run(fx, probe={"ready": True, "status": 200, "reason": None})["causes"][0]["code"] == \
        "orchestrator_socket_missing"


def test_a_socket_left_behind_by_a_killed_orchestrator_is_the_same_cause():
    fx = load("orchestrator_crash")
    logs = copy.deepcopy(fx["logs"])
    logs["alexandria-ee-7c9d8f6b5-q4xkz"]["api"]["current"] = (
        "ERROR orchestrator health check failed: dial unix /run/alexandria/orchestrator.sock: connection refused\n")
    probe = {"ready": False, "status": 503, "reason": "orchestrator.sock: connection refused"}
    first = run(fx, logs=logs, probe=probe)["causes"][0]
    assert first["code"] == "orchestrator_socket_missing"
    assert evidence_with(first, "orchestrator.sock: connection refused")


@pytest.mark.parametrize("text", ["2026-11-27T09:52:00Z", "2026-11-27T09:52:00.123456Z", "1999-12-31T23:59:59+02:00",
                                  "2024-02-29T00:00:00-05:30", "1970-01-01T00:00:00Z"])
def test_parse_time_matches_datetime(text):
    import datetime
    expected = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    assert triage.parse_time(text) == pytest.approx(expected)


def test_parse_time_rejects_garbage():
    assert triage.parse_time("yesterday") is None and triage.parse_time(None) is None


def test_healthy_without_a_probe_rests_on_pod_readiness():
    assert run(load("healthy"), probe=False)["causes"][0]["code"] == "healthy"


def test_ready_pods_but_probe_failing_is_not_healthy():
    fx = load("healthy")
    probe = {"ready": False, "status": 503, "reason": "orchestrator.sock: no such file or directory"}
    first = run(fx, probe=probe)["causes"][0]
    assert first["code"] == "orchestrator_socket_missing"


def test_nothing_matches_is_unknown_with_states_and_events():
    result = run(load("image_pull"))
    assert [c["code"] for c in result["causes"]] == ["unknown"]
    unknown = result["causes"][0]
    assert evidence_with(unknown, "api waiting (ImagePullBackOff) ready=False")
    assert evidence_with(unknown, "probe /ready HTTP None: GET /ready: connection refused")
    assert evidence_with(unknown, 'Failed Pod/alexandria-ee-84d5b7c9f-p0ll1 x4: Failed to pull image')


def test_no_pods_is_unknown():
    causes = triage.classify([], [], {}, None, probe=None)["causes"]
    assert causes[0]["code"] == "unknown"
    assert "no pods" in causes[0]["evidence"]


def test_the_most_recent_signal_wins_between_two_in_the_log():
    fx = load("orchestrator_hang")
    logs = copy.deepcopy(fx["logs"])
    entry = logs["alexandria-ee-7c9d8f6b5-h7t4n"]["api"]
    # An older socket error (a crash fixed earlier), then the current hang.
    entry["current"] = ("t1 ERROR err=\"orchestrator.sock: no such file or directory\"\n"
                        "t2 ERROR err=\"context deadline exceeded\"\n")
    codes = [c["code"] for c in run(fx, logs=logs, probe=False)["causes"]]
    assert codes == ["orchestrator_deadline_exceeded", "orchestrator_socket_missing"]
    entry["current"] = ("t1 ERROR err=\"context deadline exceeded\"\n"
                        "t2 ERROR err=\"orchestrator.sock: no such file or directory\"\n")
    codes = [c["code"] for c in run(fx, logs=logs, probe=False)["causes"]]
    assert codes[0] == "orchestrator_socket_missing"


def test_the_probe_reason_outweighs_log_order():
    fx = load("orchestrator_hang")
    logs = copy.deepcopy(fx["logs"])
    logs["alexandria-ee-7c9d8f6b5-h7t4n"]["api"]["current"] = (
        "t1 ERROR err=\"context deadline exceeded\"\nt2 ERROR err=\"license blob invalid: expired\"\n")
    first = run(fx, logs=logs)["causes"][0]
    assert first["code"] == "orchestrator_deadline_exceeded"


def test_crash_loop_without_log_lines_still_points_at_the_orchestrator():
    fx = load("orchestrator_crash")
    logs = copy.deepcopy(fx["logs"])
    logs["alexandria-ee-7c9d8f6b5-q4xkz"]["api"]["current"] = ""
    first = run(fx, logs=logs, probe=False)["causes"][0]
    assert first["code"] == "orchestrator_socket_missing"
    assert first["confidence"] == triage.SCORE_CRASHLOOP_ONLY
    assert evidence_with(first, "waiting (CrashLoopBackOff)")


def test_previous_log_of_a_restarted_api_counts():
    fx = load("license_signature")
    logs = copy.deepcopy(fx["logs"])
    api = logs["alexandria-ee-7c9d8f6b5-s1g9n"]["api"]
    api["previous"], api["current"] = api["current"], ""
    first = run(fx, logs=logs, probe=False)["causes"][0]
    assert first["code"] == "license_signature_failed"
    assert evidence_with(first, "container api log (previous): ")


def test_huge_lines_are_clipped_in_evidence():
    fx = load("license_corrupt")
    logs = copy.deepcopy(fx["logs"])
    logs["alexandria-ee-7c9d8f6b5-l1c3n"]["api"]["current"] = "license blob invalid: malformed " + "x" * 5000 + "\n"
    first = run(fx, logs=logs, probe=False)["causes"][0]
    assert all(len(line) < 700 for line in first["evidence"])


def test_events_sorted_by_last_timestamp_and_filtered_to_the_release():
    fx = load("orchestrator_crash")
    events = triage.sort_events(fx["eventList"]["items"], pod_names=["alexandria-ee-7c9d8f6b5-q4xkz"],
                                release="alexandria-ee")
    assert [e["reason"] for e in events] == ["Scheduled", "Unhealthy", "BackOff"]
    assert events[0]["last_timestamp"] == "2026-11-27T09:40:11.203114Z"  # eventTime when lastTimestamp is null
    assert all("other-app" not in e["object"] for e in events)
    fx = load("oom")
    events = triage.sort_events(fx["eventList"]["items"], pod_names=["alexandria-ee-6f7b9c8d4-m2v8r"],
                                release="alexandria-ee")
    assert events[0]["object"] == "Deployment/alexandria-ee"
    assert len(triage.sort_events(fx["eventList"]["items"] * 10, tail=20)) == 20


def test_pod_summary_reads_the_contract_fields():
    pod = load("oom")["podList"]["items"][0]
    summary = triage.pod_summary(pod)
    assert summary["phase"] == "Running"
    assert summary["ready"] is False
    orch = summary["containers"][1]
    assert orch == dict(name="orchestrator", ready=False, started=False, restart_count=3,
                        state="waiting (CrashLoopBackOff)", running_since=None, state_reason="CrashLoopBackOff",
                        last_terminated=dict(reason="OOMKilled", exit_code=137, finished_at="2026-11-27T09:50:31Z"),
                        memory_limit="256Mi")


def test_malformed_input_does_not_raise():
    weird = [{"metadata": None, "status": {"containerStatuses": [None, {"name": "api", "state": "x"}]}}, "junk"]
    result = triage.classify(weird, events=[None, {"involvedObject": None}], logs={"?": "not a dict"},
                             license_secret="nope", probe={"ready": False})
    assert result["causes"][0]["code"] == "unknown"


@pytest.mark.parametrize("text,expected", [
    ("256Mi", 256 * 2 ** 20), ("1Gi", 2 ** 30), ("1.5Gi", 3 * 2 ** 29), ("512M", 512 * 10 ** 6),
    ("1e9", 10 ** 9), ("134217728", 134217728), ("128974848000m", 128974848), ("2k", 2000),
])
def test_parse_quantity(text, expected):
    assert memory_quantity.parse_quantity(text) == expected


@pytest.mark.parametrize("bad", ["", "lots", "12Qi", "-1Gi", "0", None])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValueError):
        memory_quantity.parse_quantity(bad)


@pytest.mark.parametrize("current,factor,expected", [
    ("256Mi", 2, "512Mi"), ("1Gi", 2, "2Gi"), ("768Mi", 1.5, "1152Mi"), ("500M", 2, "954Mi"),
    ("100Ki", 2, "1Mi"), (None, 2, None),
])
def test_propose_memory_limit(current, factor, expected):
    assert memory_quantity.propose_memory_limit(current, factor) == expected


def test_propose_memory_limit_minimum_and_bad_factor():
    assert memory_quantity.propose_memory_limit("64Mi", 2, minimum="1Gi") == "1Gi"
    with pytest.raises(ValueError):
        memory_quantity.propose_memory_limit("64Mi", 1)


def test_triage_has_no_ansible_or_kubernetes_imports():
    source = pathlib.Path(triage.__file__).read_text()
    assert "import ansible" not in source and "from ansible" not in source
    assert "kubernetes" not in [line.split()[1] for line in source.splitlines() if line.startswith("import ")]
