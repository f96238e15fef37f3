"""The EDA rulebook: recorded Alertmanager alerts launch the matching playbook, diagnosis-only, per deployment.

Real ansible-rulebook (with its Java rules engine), the collection's alertmanager source over real HTTP,
and the real api_not_serving playbook against a lab.
"""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from alexlab.testing import LabHandle

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
RULEBOOK = REPO / "extensions" / "eda" / "rulebooks" / "alexandria_alerts.yml"
ALERTS = pathlib.Path(__file__).resolve().parent / "data" / "alertmanager"

pytestmark = pytest.mark.lab


def _java_home():
    java = shutil.which("java")
    return str(pathlib.Path(os.path.realpath(java)).parent.parent) if java else None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port, name):
    body = (ALERTS / name).read_bytes()
    req = urllib.request.Request("http://127.0.0.1:%d/alerts" % port, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def _recaps(log_path):
    """Hosts of each playbook run, in order. ansible-rulebook logs a failed run's output a second time after
    a 'run_playbook - ERROR -' line; a recap that follows such a line is that copy, not another run."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    parts = text.split("PLAY RECAP")
    hosts = []
    for before, block in zip(parts, parts[1:]):
        if "run_playbook - ERROR -" in before:
            continue
        hosts.append(sorted(set(re.findall(r"^(deploy-[a-z])\s+:", block.split("\n\n")[0], re.M))))
    return hosts


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    handle = LabHandle.up(tmp_path_factory.mktemp("eda-lab"))
    yield handle
    handle.down()


@pytest.mark.skipif(_java_home() is None, reason="ansible-rulebook's rules engine needs a Java runtime")
def test_alerts_launch_diagnosis_only_runs_throttled_per_deployment(lab, tmp_path):
    # Two inventory hosts; both point at the lab so that each alert's run can be seen to stay on its own host.
    one = json.loads(lab.cli("inventory", "--host", "deploy-a").stdout)
    host_vars = one["all"]["children"]["alexandria"]["hosts"]["deploy-a"]
    # The inventory even allows restarts: the rulebook's extra vars must still keep the run diagnosis-only.
    host_vars["api_not_serving_allow_restart"] = True
    inventory = {"all": {"hosts": {"deploy-a": host_vars, "deploy-b": dict(host_vars)}}}
    inv = tmp_path / "inventory.yml"
    inv.write_text(json.dumps(inventory))
    os.chmod(inv, 0o600)
    port = _free_port()
    (tmp_path / "vars.yml").write_text("alex_eda_port: %d\n" % port)
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""), JAVA_HOME=_java_home(),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".venv" / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    lab.cli("break", "orchestrator-crash")
    pod_before = lab.pod()["metadata"]["name"]
    log_path = tmp_path / "rulebook.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / "ansible-rulebook"), "--rulebook", str(RULEBOOK), "-i", str(inv),
                                 "--vars", str(tmp_path / "vars.yml"), "-v"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path))
    try:
        def listening():
            assert proc.poll() is None, log_path.read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0
        _wait_for(listening, 90, "the alertmanager source to listen")

        # Firing API-down alert for deploy-a, plus one with no deployment label (dropped, not run everywhere).
        status, answer = _post(port, "api_down_deploy_a_and_unlabelled.json")
        assert (status, answer) == (202, {"accepted": 1, "dropped": 1})
        _wait_for(lambda: len(_recaps(log_path)) >= 1, 180, "the first playbook run")
        # The same alert again within the throttle window, and a resolved one: no new run.
        assert _post(port, "api_down_deploy_a.json")[1]["accepted"] == 1
        assert _post(port, "api_down_deploy_a_resolved.json")[1]["accepted"] == 1
        # The same alert for the other deployment is its own throttle group: a second run, on deploy-b only.
        assert _post(port, "api_down_deploy_b.json")[1]["accepted"] == 1
        _wait_for(lambda: len(_recaps(log_path)) >= 2, 180, "the second playbook run")
        time.sleep(5)  # room for any run that should not happen
        recaps = _recaps(log_path)
        assert recaps == [["deploy-a"], ["deploy-b"]], log_path.read_text()[-3000:]
        # An alert that names no scenario runs the read-only fleet health for its deployment, which names it.
        assert _post(port, "unknown_alert_deploy_b.json")[1]["accepted"] == 1
        _wait_for(lambda: len(_recaps(log_path)) >= 3, 180, "the fleet health run")
        assert _recaps(log_path)[2] == ["deploy-b"]
        text = log_path.read_text()
        assert "alexandria.ee.health : Which scenario, and the exact command to run next" in text
        assert "api_not_serving - /ready 503; causes orchestrator_socket_missing" in text
        # Each run named the cause and stopped at the restart gate; the pod was never deleted.
        assert text.count("orchestrator_socket_missing") >= 2
        assert "api_not_serving_allow_restart" in text
        assert "changed=0" in text and "changed=1" not in text
        assert lab.pod()["metadata"]["name"] == pod_before
    finally:
        lab.cli("heal")
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
