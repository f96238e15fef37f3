"""alex_triage and alex_pod_restart argument handling, run in-process with patch_module_args.

Only what needs no cluster: bad arguments, a kubeconfig that does not exist, and a Kubernetes API nobody
listens on (a closed local port: a real connection refusal, not a mock). Everything that reads pods, events
and logs is tested against the lab (tests/integration/test_api_not_serving_lab.py).
"""
import json
import socket

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alexandria.ee.plugins.modules import alex_pod_restart, alex_triage


@pytest.fixture
def closed_host():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return "http://127.0.0.1:%d" % port


def run(module, args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("args,message", [
    (dict(namespace=""), "argument 'namespace' is of type str and we were unable to convert to a Kubernetes name"),
    (dict(release=""), "argument 'release' is of type str and we were unable to convert to a Kubernetes name"),
    (dict(tail_lines=0), "0 is out of range; give a whole number from 1 to 10000"),
    (dict(tail_lines=100000), "100000 is out of range; give a whole number from 1 to 10000"),
    (dict(limit_bytes=10), "10 is out of range; give a whole number from 1024 to 16777216"),
    (dict(request_timeout=0), "argument 'request_timeout' is of type int and we were unable to convert to a number "
                              "of seconds: 0 is out of range"),
    (dict(tail_lines="many"), "argument 'tail_lines' is of type"),
    (dict(probe="not a dict"), "argument 'probe' is of type"),
])
def test_triage_bad_arguments(args, message, closed_host, capsys):
    res = run(alex_triage, dict(args, host=closed_host), capsys)
    assert res["failed"] is True
    assert message in res["msg"]


def test_triage_kubernetes_api_unreachable(closed_host, capsys):
    res = run(alex_triage, dict(host=closed_host, namespace="alexandria", request_timeout=2), capsys)
    assert res["failed"] is True
    assert res["msg"].startswith("Kubernetes API unreachable while listing pods app.kubernetes.io/instance="
                                 "alexandria-ee in namespace alexandria")
    assert "Connection refused" in res["msg"]
    assert res["k8s_requests"] == 1
    assert "Traceback" not in json.dumps(res)


def test_triage_api_key_never_comes_back(closed_host, capsys):
    res = run(alex_triage, dict(host=closed_host, api_key="k8s-token-do-not-print", request_timeout=2), capsys)
    assert res["failed"] is True
    assert "k8s-token-do-not-print" not in json.dumps(res)


def test_triage_kubeconfig_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("K8S_AUTH_HOST", raising=False)
    res = run(alex_triage, dict(kubeconfig=str(tmp_path / "nope")), capsys)
    assert res["failed"] is True
    assert res["msg"].startswith("cannot load Kubernetes configuration")


def test_triage_is_read_only_in_check_mode_too(closed_host, capsys):
    # Check mode changes nothing about what triage does: it still asks the API, and fails the same way.
    res = run(alex_triage, dict(host=closed_host, request_timeout=2), capsys, check_mode=True)
    assert res["failed"] is True and res["msg"].startswith("Kubernetes API unreachable")


@pytest.mark.parametrize("args,message", [
    (dict(pods=[]), "pods is an empty list"),
    (dict(wait_timeout=0), "argument 'wait_timeout' is of type int and we were unable to convert to a number of "
                           "seconds: 0 is out of range"),
    (dict(grace_period=-1), "argument 'grace_period' is of type int and we were unable to convert to a whole number: "
                            "-1 is out of range; give a whole number from 0 to 86400"),
    (dict(namespace=""), "argument 'namespace' is of type str and we were unable to convert to a Kubernetes name"),
])
def test_restart_bad_arguments(args, message, closed_host, capsys):
    res = run(alex_pod_restart, dict(args, host=closed_host), capsys)
    assert res["failed"] is True
    assert res["msg"].startswith(message)


def test_restart_kubernetes_api_unreachable_deletes_nothing(closed_host, capsys):
    res = run(alex_pod_restart, dict(host=closed_host, request_timeout=2), capsys)
    assert res["failed"] is True
    assert res["msg"].startswith("Kubernetes API unreachable while listing pods")
    assert "deleted" not in res
