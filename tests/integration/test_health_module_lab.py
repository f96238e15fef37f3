"""alex_health probing a lab deployment itself, in one module run: the same evidence as the five read-only modules
the health role ran before (alex_ready, alex_triage, alex_license query, alex_seats query, alex_audit_verify
incremental), with no Kubernetes request more; a fault state, an unreachable deployment, a refused admin token and
RBAC refusing pods/log each named; results passed in are not probed again; nothing is written."""
import json
import pathlib
import time

import pytest
import requests

from alexlab.testing import LabHandle
from ansible_collections.alexandria.ee.plugins.modules import (alex_audit_verify, alex_health, alex_license, alex_ready,
                                                               alex_seats, alex_triage)

import audit_helpers as h

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    handle = LabHandle.up(tmp_path_factory.mktemp("healthmod"))
    try:
        handle.cli("seed-audit", "--tenants", "2", "--rows", "200")
        handle.cli("seed-users", "--inactive", "2", "--inactive-days", "120")
        yield handle
    finally:
        handle.down()


@pytest.fixture
def healed(lab):
    yield lab
    lab.cli("heal")
    # /ready answers 200 again; the pod's Ready condition (the Service's endpoint) follows its readiness probe.
    proxy = "/api/v1/namespaces/%s/services/%s:80/proxy/ready" % (lab.info["namespace"], lab.info["release"])
    deadline = time.monotonic() + 60
    while lab.kubectl("get", "--raw", proxy, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the Service has no ready endpoint 60 s after heal"
        time.sleep(0.5)


def api_args(lab, **extra):
    info = lab.info
    return dict(dict(base_url=info["api_url"], kubeconfig=info["kubeconfig"], namespace=info["namespace"],
                     release=info["release"], timeout=5), **extra)


def health_args(lab, **extra):
    """The options the health role passes for one of the lab's deployments (its inventory variables)."""
    info = lab.info
    args = dict(api_args(lab), inventory_host="lab", admin_token=info["admin_token"], dsn=info["dsn"],
                hmac_key=info["hmac_key"], checkpoint_dir=info["checkpoint_dir"], checkpoint_key=info["checkpoint_key"],
                checkpoint_secret=info["checkpoint_secret"], checkpoint_namespace=info["checkpoint_namespace"],
                workers=1)
    args.update(extra)
    return args


def k8s_requests(lab):
    """{(method, resource, subresource): count} the lab's Kubernetes facade served so far (its /metrics)."""
    resp = requests.get(lab.info["k8s_url"] + "/metrics", headers={"Authorization": "Bearer " + lab.info["k8s_token"]},
                        verify=lab.info["k8s_ca"], timeout=30)
    counts = {}
    for line in resp.text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels, value = line[len("apiserver_request_total{"):].rsplit("} ", 1)
            fields = dict(part.split("=", 1) for part in labels.split(","))
            counts[tuple(fields[k].strip('"') for k in ("method", "resource", "subresource"))] = int(value)
    return counts


def served_during(lab, func):
    """(func(), the Kubernetes requests the facade served meanwhile)."""
    before = k8s_requests(lab)
    out = func()
    after = k8s_requests(lab)
    return out, dict((k, v - before.get(k, 0)) for k, v in after.items() if v != before.get(k, 0))


def health(lab, check_mode=False, **extra):
    return h.run_module(alex_health, health_args(lab, **extra), check_mode=check_mode)


def modules_one_by_one(lab, triage=False):
    """What the health role ran before, one module at a time (the same options)."""
    info = lab.info
    out = dict(
        ready=h.run_module(alex_ready, api_args(lab, retries=0)),
        license=h.run_module(alex_license, api_args(lab, state="query")),
        seats=h.run_module(alex_seats, dict(base_url=info["api_url"], admin_token=info["admin_token"], timeout=5)),
        audit=h.run_module(alex_audit_verify, dict(
            dsn=info["dsn"], hmac_key=info["hmac_key"], kubeconfig=info["kubeconfig"], namespace=info["namespace"],
            release=info["release"], mode="incremental", update_checkpoints=False, max_rows=2000000,
            checkpoint_dir=info["checkpoint_dir"], checkpoint_key=info["checkpoint_key"],
            checkpoint_secret=info["checkpoint_secret"], checkpoint_namespace=info["checkpoint_namespace"],
            workers=1)),
    )
    if triage:
        out["triage"] = h.run_module(alex_triage, dict(kubeconfig=info["kubeconfig"], namespace=info["namespace"],
                                                       release=info["release"]))
    return out


def comparable(name, result):
    """A probe's result without what differs from one run to the next (timings, the invocation, warnings)."""
    drop = {"invocation", "warnings", "latency_ms", "elapsed_seconds", "deprecations"}
    out = dict((k, v) for k, v in result.items() if k not in drop)
    if name == "audit" and "checkpoints" in out:
        out["checkpoints"] = dict(out["checkpoints"], check_mode=None)
    if name == "license":
        out.pop("expires_in_days")
    if name == "seats":
        out["inactive_users"] = [dict(u, idle_days=None) for u in out["inactive_users"]]
    if name == "triage":
        out = dict(causes=[c["code"] for c in out["causes"]], pods=[p["name"] for p in out["pods"]],
                   license_secret=out["license_secret"], k8s_requests=out["k8s_requests"])
    return out


def checkpoint_files(lab):
    return sorted((str(p), p.read_bytes()) for p in pathlib.Path(lab.info["checkpoint_dir"]).rglob("*") if p.is_file())


def test_healthy_one_run_gathers_what_the_five_modules_did(lab):
    files = checkpoint_files(lab)
    rehearsal, rehearsal_requests = served_during(lab, lambda: health(lab, check_mode=True))
    real, real_requests = served_during(lab, lambda: health(lab))
    separate, separate_requests = served_during(lab, lambda: modules_one_by_one(lab))
    assert checkpoint_files(lab) == files
    for result in (rehearsal, real):
        assert result["changed"] is False and result["scenario"] == "healthy" and result["next_command"] == ""
        assert result["problems"] == [] and result["api"]["ready"] is True and result["audit"]["verified"] is True
        assert result["quota"]["max_seats"] == 25 and result["quota"]["inactive_users"] == 2
        assert "triage" not in result["probes"]  # /ready answered 200
        assert sorted(result["probes"]) == ["audit", "license", "ready", "seats"]
        for name, probe in result["probes"].items():
            assert comparable(name, probe) == comparable(name, separate[name]), name
    # No Kubernetes request more than the modules one by one (here: the checkpoint Secret, read by S3).
    assert rehearsal_requests == real_requests == separate_requests, (real_requests, separate_requests)
    for secret in (lab.info["admin_token"], lab.info["hmac_key"], lab.info["checkpoint_key"]):
        assert secret not in json.dumps(real)


def test_a_fault_state_is_named_with_triage_evidence_and_no_extra_request(healed):
    lab = healed
    lab.cli("break", "orchestrator-crash")
    result, requests_made = served_during(lab, lambda: health(lab, check_mode=True))
    separate, separate_requests = served_during(lab, lambda: modules_one_by_one(lab, triage=True))
    assert result["scenario"] == "api_not_serving"
    assert "alexandria.ee.api_not_serving -e alex_target=lab -e api_not_serving_allow_restart=true" in \
        result["next_command"]
    assert result["api"]["causes"][0]["code"] == "orchestrator_socket_missing"
    assert result["api"]["causes"][0]["evidence"], result["api"]["causes"]
    assert comparable("triage", result["probes"]["triage"]) == comparable("triage", separate["triage"])
    assert result["probes"]["triage"]["logs"], "the log tails triage read are kept as evidence"
    assert result["quota"]["checked"] and result["audit"]["verified"] is True
    assert requests_made == separate_requests, (requests_made, separate_requests)


def test_the_service_proxy_route_without_base_url(lab):
    result = health(lab, base_url="")
    assert result["scenario"] == "healthy", result["problems"]
    assert result["probes"]["ready"]["api_route"] == "service_proxy"
    assert result["probes"]["license"]["api_route"] == "service_proxy"
    assert "seats" not in result["probes"]  # the admin API only at base_url, as the role always did


def test_an_unreachable_deployment_is_one_line_per_probe(tmp_path):
    secret = "HmacKey-5ecret-not-in-output"
    result = h.run_module(alex_health, dict(
        inventory_host="dead", base_url="http://127.0.0.1:9", kubeconfig=str(tmp_path / "missing-kubeconfig"),
        dsn="host=127.0.0.1 port=9 dbname=x user=x connect_timeout=2", hmac_key=secret, admin_token="AdminTok-5ecret",
        timeout=2))
    assert result["scenario"] == "unreachable" and "alexandria.ee.api_not_serving -e alex_target=dead" in \
        result["next_command"] and result["next_command"].endswith("--check")
    labels = [p.split(": ", 1)[0] for p in result["problems"]]
    assert labels == ["api", "kubernetes", "license", "admin api", "audit chain"], result["problems"]
    assert "connection refused" in result["problems"][0]
    assert "kubeconfig" in result["problems"][1]
    assert secret not in json.dumps(result) and "AdminTok-5ecret" not in json.dumps(result)


def test_a_wrong_admin_token_costs_one_line(lab):
    result = health(lab, admin_token="wrong-token")
    assert result["scenario"] == "healthy"
    [line] = result["problems"]
    assert line.startswith("admin api: ") and "401" in line
    assert result["quota"]["checked"] and "inactive_users" not in result["quota"]
    assert result["audit"]["verified"] is True


def test_rbac_refusing_pods_log_costs_triage_one_line(healed):
    lab = healed
    lab.cli("break", "orchestrator-crash")
    lab.cli("break", "rbac-deny", "--resource", "pods/log", "--verb", "get")
    result = health(lab)
    assert result["scenario"] == "api_not_serving"
    [line] = [p for p in result["problems"] if p.startswith("kubernetes: ")]
    assert "RBAC forbids reading the log" in line and "403" in line
    assert result["probes"]["triage"]["failed"] is True
    assert result["quota"]["checked"] and result["audit"]["verified"] is True


def test_results_passed_in_are_not_probed_again(lab, tmp_path):
    first = health(lab)
    given = dict((name, first["probes"][name]) for name in ("ready", "license", "seats", "audit"))
    # Connection options that reach nothing: any probe run would fail and be a line in problems.
    again = h.run_module(alex_health, dict(
        given, triage={}, inventory_host="lab", base_url="http://127.0.0.1:9",
        kubeconfig=str(tmp_path / "missing-kubeconfig"), dsn="host=127.0.0.1 port=9 dbname=x user=x", hmac_key="k" * 32,
        admin_token="unused"))
    assert again["probes"] == {} and again["problems"] == []
    for key in ("scenario", "next_command", "api", "quota", "audit", "summary"):
        assert again[key] == first[key], key
    # Only /ready given, and not ready: triage and the others run (and here fail, one line each).
    partial = h.run_module(alex_health, dict(
        ready=dict(first["probes"]["ready"], ready=False, status=503, reason="test"), inventory_host="lab",
        base_url="http://127.0.0.1:9", kubeconfig=str(tmp_path / "missing-kubeconfig"), check_audit=False))
    assert sorted(partial["probes"]) == ["license", "triage"]
    assert partial["probes"]["triage"]["failed"] is True
