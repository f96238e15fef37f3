"""Runbook Scenario 1 against the lab: the modules and `ansible-playbook alexandria.ee.api_not_serving`.

Each test starts its own lab (`alexlab up --dir`), injects a real fault with `alexlab break`, and runs the
modules in-process or the playbook as the operator would. The playbook's summary is read from set_stats
through a small test callback (tests/integration/callback_plugins/alex_stats_json.py).

The lab's orchestrator faults are injected like a chaos tool's: they persist across pod restarts until
`alexlab heal`. So a restart alone cannot clear them; the remediation tests lift the fault once the playbook
has deleted the pod (a transient crash or hang, which is what a restart fixes) and check that the playbook's
restart, wait and verification then bring the API back.
"""
import json
import pathlib
import socket
import subprocess
import sys
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alexandria.ee.plugins.module_utils import triage
from ansible_collections.alexandria.ee.plugins.modules import alex_pod_restart, alex_ready, alex_triage

import playbooks
from helm_standin import calls as helm_calls, make_helm_standin

pytestmark = pytest.mark.lab

BIN = pathlib.Path(sys.executable).parent


class Lab:
    def __init__(self, directory):
        self.dir = directory
        self.info = json.loads((directory / "lab.json").read_text())
        self.api_url = self.info["api_url"]
        self.kubeconfig = self.info["kubeconfig"]
        self.namespace = self.info["namespace"]
        self.release = self.info["release"]

    def cli(self, *args, check=True, timeout=120):
        proc = subprocess.run([str(BIN / "alexlab")] + list(args) + ["--dir", str(self.dir)], capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("alexlab %s failed: %s" % (" ".join(args), proc.stderr))
        return proc

    def break_(self, fault, *args):
        return self.cli("break", fault, *args)

    def heal(self, *args):
        return self.cli("heal", *args)

    def core(self):
        import kubernetes
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=self.kubeconfig, client_configuration=config)
        return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))

    def apps(self):
        import kubernetes
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=self.kubeconfig, client_configuration=config)
        return kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(config))

    def pod_names(self):
        pods = self.core().list_namespaced_pod(self.namespace,
                                               label_selector="app.kubernetes.io/instance=%s" % self.release)
        return [p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp]

    def wait_orchestrator_running_for(self, seconds, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self.core().list_namespaced_pod(self.namespace,
                                                   label_selector="app.kubernetes.io/instance=%s" % self.release)
            for pod in pods.items:
                for status in pod.status.container_statuses or []:
                    running = status.state.running if status.state else None
                    if status.name == "orchestrator" and status.ready and running and running.started_at:
                        if time.time() - running.started_at.timestamp() >= seconds:
                            return
            time.sleep(0.5)
        raise AssertionError("the orchestrator did not stay up for %ss" % seconds)

    def k8s_args(self, **extra):
        return dict(dict(kubeconfig=self.kubeconfig, namespace=self.namespace, release=self.release), **extra)


@pytest.fixture
def lab(tmp_path, pg_dsn):
    """A lab of its own (API, orchestrator, Kubernetes facade) on a fresh database of the session's PostgreSQL."""
    directory = tmp_path / "lab"
    proc = subprocess.run([str(BIN / "alexlab"), "up", "--dir", str(directory), "--dsn", pg_dsn],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    the_lab = Lab(directory)
    yield the_lab
    subprocess.run([str(BIN / "alexlab"), "down", "--dir", str(directory)], capture_output=True, timeout=120,
                   check=False)


def run_module(module, args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


class Run(playbooks.Run):
    @property
    def summary(self):
        """The role's own set_stats summary."""
        return self.custom.get("api_not_serving")


def playbook_command(lab, tmp_path, check=False, **extra):
    """argv, env and stats path of `ansible-playbook alexandria.ee.api_not_serving` against the lab."""
    variables = dict(api_not_serving_base_url=lab.api_url, api_not_serving_kubeconfig=lab.kubeconfig,
                     api_not_serving_namespace=lab.namespace, api_not_serving_release=lab.release)
    variables.update(extra)
    return playbooks.playbook_command("api_not_serving", tmp_path, variables=variables, check=check)


def playbook(lab, tmp_path, check=False, **extra):
    argv, env, stats = playbook_command(lab, tmp_path, check=check, **extra)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path), check=False)
    return Run(proc, stats)


def assert_healthy_and_unchanged(run):
    assert run.rc == 0, run.out
    assert run.summary["cause"] == "healthy"
    assert run.summary["causes"] == ["healthy"]
    assert run.summary["result"] == "healthy"
    assert run.summary["ready_after"] is True and run.summary["license_valid_json_after"] is True
    assert run.summary["actions"] == []
    assert run.changed_tasks == []
    assert run.hosts["localhost"]["changed"] == 0


# -------------------------------------------------------------------------------- the modules

def test_ready_and_triage_on_a_healthy_lab(lab, capsys):
    probe = run_module(alex_ready, dict(base_url=lab.api_url), capsys)
    assert probe["ready"] is True and probe["status"] == 200 and probe["reason"] is None
    assert probe["license"]["valid_json"] is True and probe["license"]["body"]["valid"] is True
    result = run_module(alex_triage, lab.k8s_args(probe=probe), capsys)
    assert result["changed"] is False
    assert [c["code"] for c in result["causes"]] == ["healthy"]
    assert result["license_secret"] == dict(name="alexandria-ee-license", key="license.blob", exists=True,
                                            key_present=True, error=None)
    (pod,) = result["pods"]
    assert [c["name"] for c in pod["containers"]] == ["api", "orchestrator"]
    assert pod["containers"][1]["memory_limit"] == "128Mi"
    assert result["logs"][pod["name"]]["api"]["current"]
    # 1 pod list + 1 event list + 1 Helm history list + 1 secret + 2 current logs (nothing restarted yet)
    assert result["k8s_requests"] == 6
    assert result["helm_release"]["installed"] is True and result["helm_release"]["note"] is None
    assert "license.blob" not in json.dumps(result["logs"])  # no Secret value anywhere
    assert lab.info["license_blob"] not in json.dumps(result)


def test_request_count_does_not_grow_with_the_log(lab, capsys):
    first = run_module(alex_triage, lab.k8s_args(tail_lines=20), capsys)
    # Grow the api log by two thousand access lines (the API logs every request but a 200 /ready).
    import requests
    for dummy in range(2000):
        requests.get(lab.api_url + "/license", timeout=5)
    second = run_module(alex_triage, lab.k8s_args(tail_lines=20), capsys)
    assert second["k8s_requests"] == first["k8s_requests"] == 6
    (pod,) = second["pods"]
    assert len(first["logs"][pod["name"]]["api"]["current"].splitlines()) < 20
    assert len(second["logs"][pod["name"]]["api"]["current"].splitlines()) == 20


def test_triage_checks_the_restart_permissions_only_when_a_restart_is_the_fix(lab, capsys):
    # Healthy: nothing to restart, so no permission checks and no restart_preflight.
    healthy = run_module(alex_triage, lab.k8s_args(restart_preflight=True), capsys, check_mode=True)
    assert "restart_preflight" not in healthy and healthy["k8s_requests"] == 6
    lab.break_("orchestrator-crash")
    pods = lab.pod_names()
    # As the role does: triage gets the failed /ready probe.
    probe = run_module(alex_ready, dict(base_url=lab.api_url, retries=0), capsys)
    assert probe["ready"] is False
    # A real run leaves the checks to alex_pod_restart.
    real = run_module(alex_triage, lab.k8s_args(restart_preflight=True, probe=probe), capsys)
    assert real["causes"][0]["code"] == "orchestrator_socket_missing", real["causes"]
    assert "restart_preflight" not in real
    planned = run_module(alex_triage, lab.k8s_args(restart_preflight=True, probe=probe), capsys, check_mode=True)
    assert planned["restart_preflight"] == dict(pods=pods, missing_permissions=[], checked=True)
    # One SelfSubjectAccessReview per pod to delete, and one for listing the pods.
    assert planned["k8s_requests"] == real["k8s_requests"] + len(pods) + 1
    assert lab.pod_names() == pods


def test_triage_checks_the_restart_permissions_while_its_own_probe_waits(lab, capsys):
    # A hung orchestrator: /ready answers only at its deadline, and the permission checks are made meanwhile
    # (the causes without the probe already call for a restart); the causes with the probe agree, so they stand.
    lab.break_("orchestrator-hang")
    pods = lab.pod_names()
    args = lab.k8s_args(base_url=lab.api_url, probe_api=True, probe_retries=0, restart_preflight=True)
    real = run_module(alex_triage, args, capsys)
    planned = run_module(alex_triage, args, capsys, check_mode=True)
    for result in (real, planned):
        assert result["probe"]["status"] == 503 and triage.DEADLINE_EXCEEDED in result["probe"]["reason"]
        assert result["causes"][0]["code"] == "orchestrator_deadline_exceeded", result["causes"]
    assert "restart_preflight" not in real
    assert planned["restart_preflight"] == dict(pods=pods, missing_permissions=[], checked=True)
    assert not planned.get("warnings")
    # One SelfSubjectAccessReview per pod to delete, and one for listing the pods: asked once.
    assert planned["k8s_requests"] == real["k8s_requests"] + len(pods) + 1
    assert lab.pod_names() == pods


# alex_ready's result keys (without changed), as alex_triage returns its own probe under `probe`.
PROBE_KEYS = {"ready", "status", "reason", "checks", "latency_ms", "license", "attempts", "url", "api_route"}


def test_triage_probes_the_api_itself_on_a_healthy_lab(lab, capsys):
    ready = run_module(alex_ready, dict(base_url=lab.api_url, retries=1), capsys)
    result = run_module(alex_triage, lab.k8s_args(base_url=lab.api_url, probe_api=True, probe_retries=1), capsys)
    assert result["changed"] is False and not result.get("failed")
    probe = result["probe"]
    answer = {k: v for k, v in ready.items() if k not in ("changed", "invocation")}
    assert set(probe) == PROBE_KEYS == set(answer)
    # The same answer alex_ready gets, but for the time it took.
    assert dict(probe, latency_ms=0) == dict(answer, latency_ms=0)
    assert probe["ready"] is True and probe["status"] == 200 and probe["reason"] is None and probe["attempts"] == 1
    assert probe["license"]["valid_json"] is True and probe["license"]["body"]["valid"] is True
    assert probe["url"] == lab.api_url and probe["api_route"] == "base_url"
    assert [c["code"] for c in result["causes"]] == ["healthy"]
    assert result["k8s_requests"] == 6  # pods, events, Helm history, license Secret, 2 logs: the probe went to base_url, not through the Kubernetes API
    assert lab.info["license_blob"] not in json.dumps(result)
    # A probe passed in is used as given: no second probe, none returned.
    passed = run_module(alex_triage, lab.k8s_args(probe=ready), capsys)
    assert "probe" not in passed and [c["code"] for c in passed["causes"]] == ["healthy"]


def test_triage_probes_through_the_service_proxy_without_base_url(lab, capsys, monkeypatch):
    monkeypatch.delenv("ALEX_BASE_URL", raising=False)
    result = run_module(alex_triage, lab.k8s_args(probe_api=True), capsys)
    probe = result["probe"]
    assert set(probe) == PROBE_KEYS
    assert probe["api_route"] == "service_proxy" and probe["ready"] is True and probe["status"] == 200
    assert probe["url"].endswith("/api/v1/namespaces/%s/services/%s:80/proxy" % (lab.namespace, lab.release))
    assert [c["code"] for c in result["causes"]] == ["healthy"]


def test_triage_probe_keeps_the_hung_orchestrators_answer(lab, capsys):
    """The API answers /ready only after its orchestrator deadline: that 503 is the evidence, probed while
    the Kubernetes reads run, and triage classifies with it as with alex_ready's probe passed in."""
    lab.break_("orchestrator-hang")
    result = run_module(alex_triage, lab.k8s_args(base_url=lab.api_url, probe_api=True, probe_retries=1), capsys)
    probe = result["probe"]
    assert probe["ready"] is False and probe["status"] == 503, probe
    assert triage.DEADLINE_EXCEEDED in probe["reason"], probe
    assert probe["license"]["valid_json"] is True
    first = result["causes"][0]
    assert first["code"] == "orchestrator_deadline_exceeded", result["causes"]
    assert [line for line in first["evidence"] if line.startswith("probe /ready HTTP 503")
            and triage.DEADLINE_EXCEEDED in line], first["evidence"]
    # The same decision as from alex_ready's probe passed in.
    passed = run_module(alex_triage, lab.k8s_args(probe=probe), capsys)
    assert [c["code"] for c in passed["causes"]] == [c["code"] for c in result["causes"]]


def test_triage_probe_survives_an_unreachable_kubernetes_api(lab, tmp_path, capsys):
    kubeconfig = tmp_path / "kubeconfig-closed"
    kubeconfig.write_text(pathlib.Path(lab.kubeconfig).read_text().replace(
        lab.info["k8s_url"], "http://127.0.0.1:%d" % closed_port()))
    result = run_module(alex_triage, lab.k8s_args(kubeconfig=str(kubeconfig), base_url=lab.api_url, probe_api=True),
                        capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("Kubernetes API unreachable while listing pods"), result["msg"]
    assert set(result["probe"]) == PROBE_KEYS
    assert result["probe"]["ready"] is True and result["probe"]["status"] == 200
    lab.break_("orchestrator-hang")
    result = run_module(alex_triage, lab.k8s_args(kubeconfig=str(kubeconfig), base_url=lab.api_url, probe_api=True),
                        capsys)
    assert result["failed"] is True and result["probe"]["status"] == 503
    assert triage.DEADLINE_EXCEEDED in result["probe"]["reason"]


def test_triage_takes_a_probe_or_probes_not_both(lab, capsys):
    probe = run_module(alex_ready, dict(base_url=lab.api_url), capsys)
    result = run_module(alex_triage, lab.k8s_args(base_url=lab.api_url, probe_api=True, probe=probe), capsys)
    assert result["failed"] is True
    assert result["msg"] == "give either probe (a result of alexandria.ee.alex_ready) or probe_api=true, not both"


def test_pod_restart_check_mode_deletes_nothing(lab, capsys):
    before = lab.pod_names()
    result = run_module(alex_pod_restart, lab.k8s_args(), capsys, check_mode=True)
    assert result["changed"] is True and result["deleted"] == before
    assert lab.pod_names() == before


def test_pod_restart_refuses_a_stranger(lab, capsys):
    result = run_module(alex_pod_restart, lab.k8s_args(pods=["kube-dns-123"]), capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("not pods of release alexandria-ee in namespace alexandria")
    assert len(lab.pod_names()) == 1


def test_pod_restart_replaces_the_pod(lab, capsys):
    (before,) = lab.pod_names()
    result = run_module(alex_pod_restart, lab.k8s_args(wait_timeout=120), capsys)
    assert result["changed"] is True and result["deleted"] == [before]
    (after,) = result["replacements"]
    assert after != before and lab.pod_names() == [after]
    assert run_module(alex_ready, dict(base_url=lab.api_url), capsys)["ready"] is True


@pytest.mark.parametrize("fault,code,needle", [
    ("orchestrator-crash", "orchestrator_socket_missing", triage.SOCKET_MISSING),
    ("orchestrator-hang", "orchestrator_deadline_exceeded", triage.DEADLINE_EXCEEDED),
    ("oom", "oom_killed", "OOMKilled"),
    ("license-corrupt", "license_signature_failed", triage.LICENSE_SIGNATURE),
    ("license-missing", "license_secret_missing", triage.LICENSE_INVALID),
    ("license-expired", "license_blob_invalid", triage.LICENSE_INVALID),
])
def test_triage_names_each_lab_fault(lab, capsys, fault, code, needle):
    lab.break_(fault)
    probe = run_module(alex_ready, dict(base_url=lab.api_url, retries=0), capsys)
    if fault != "oom":  # an OOM loop serves between kills: the probe may catch it ready
        assert probe["ready"] is False
    result = run_module(alex_triage, lab.k8s_args(probe=probe), capsys)
    first = result["causes"][0]
    assert first["code"] == code, result["causes"]
    assert [line for line in first["evidence"] if needle in line], first["evidence"]
    # 1 pod list, 1 event list, 1 Helm history list, 1 secret, 2 logs + 2 previous logs at most
    assert result["k8s_requests"] <= 8


# -------------------------------------------------------------------------------- the playbook

def test_healthy_lab_changes_nothing_twice(lab, tmp_path):
    assert_healthy_and_unchanged(playbook(lab, tmp_path))
    assert_healthy_and_unchanged(playbook(lab, tmp_path))


def test_check_mode_on_a_healthy_lab(lab, tmp_path):
    run = playbook(lab, tmp_path, check=True)
    assert run.rc == 0, run.out
    assert run.summary["cause"] == "healthy" and run.summary["check_mode"] is True
    assert run.changed_tasks == []


@pytest.mark.parametrize("fault,code,needle,action,gate", [
    ("orchestrator-crash", "orchestrator_socket_missing", triage.SOCKET_MISSING, "restart",
     "api_not_serving_allow_restart=true"),
    ("orchestrator-hang", "orchestrator_deadline_exceeded", triage.DEADLINE_EXCEEDED, "restart",
     "api_not_serving_allow_restart=true"),
    ("oom", "oom_killed", "OOMKilled", "helm_upgrade", "api_not_serving_allow_helm_upgrade=true"),
    ("license-corrupt", "license_signature_failed", triage.LICENSE_SIGNATURE, "license_playbook",
     "playbooks/license_renewal.yml"),
    ("license-missing", "license_secret_missing", triage.LICENSE_INVALID, "license_playbook",
     "playbooks/license_renewal.yml"),
])
def test_playbook_names_the_cause_and_stops_at_the_gate(lab, tmp_path, fault, code, needle, action, gate):
    lab.break_(fault)
    pods_before = lab.pod_names()

    # --check: everything read-only, the plan printed, no gate fails.
    planned = playbook(lab, tmp_path, check=True)
    assert planned.rc == 0, planned.out
    assert planned.summary["cause"] == code
    assert planned.summary["check_mode"] is True
    assert [a["action"] for a in planned.summary["actions"]] == [action]
    assert planned.summary["actions"][0]["done"] is False

    # A real run without the gate variable: the diagnosis, then a stop that names what to set.
    run = playbook(lab, tmp_path)
    assert run.rc != 0
    assert run.summary["cause"] == code, run.summary
    assert run.summary["causes"][0] == code
    assert [line for line in run.summary["evidence"] if needle in line], run.summary["evidence"]
    if fault != "oom":  # an OOM loop serves between kills
        assert run.summary["ready_before"] is False
    assert run.summary["actions"][0]["action"] == action and run.summary["actions"][0]["done"] is False
    assert gate in run.failure(), run.failure()
    assert run.changed_tasks == []
    assert lab.pod_names() == pods_before  # nothing was deleted

    # Healed, the same playbook finds the API serving and changes nothing.
    lab.heal()
    extra = {}
    if fault == "oom":
        # The orchestrator keeps its OOMKilled lastState: it counts as recovered once it has run 3 s.
        lab.wait_orchestrator_running_for(3)
        extra["api_not_serving_stable_seconds"] = 3
    assert_healthy_and_unchanged(playbook(lab, tmp_path, **extra))


@pytest.mark.parametrize("fault", ["orchestrator-crash", "orchestrator-hang"])
def test_playbook_restarts_the_pod_and_proves_recovery(lab, tmp_path, fault):
    lab.break_(fault)
    (before,) = lab.pod_names()
    argv, env, stats = playbook_command(lab, tmp_path, api_not_serving_allow_restart=True)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=str(tmp_path))
    try:
        # The fault is transient from here on: lift it once the playbook has deleted the pod.
        deadline = time.monotonic() + 120
        while before in lab.pod_names() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        lab.heal("--no-wait")
        out = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    proc.stdout = out
    proc.stderr = ""
    run = Run(proc, stats)
    assert run.rc == 0, run.out
    summary = run.summary
    assert summary["cause"] in ("orchestrator_socket_missing", "orchestrator_deadline_exceeded")
    assert summary["result"] == "remediated"
    (action,) = summary["actions"]
    assert action["action"] == "restart" and action["done"] is True and action["pods"] == [before]
    (after,) = action["replacements"]
    assert after != before and lab.pod_names() == [after]
    assert summary["ready_after"] is True and summary["license_valid_json_after"] is True
    assert run.changed_tasks == ["alexandria.ee.api_not_serving : Restart the pod(s) and wait for ready replacements"]

    # A second run on the recovered lab changes nothing.
    assert_healthy_and_unchanged(playbook(lab, tmp_path))


def test_restart_that_does_not_help_fails_clearly(lab, tmp_path):
    lab.break_("orchestrator-crash")
    (before,) = lab.pod_names()
    run = playbook(lab, tmp_path, api_not_serving_allow_restart=True, api_not_serving_restart_timeout=8)
    assert run.rc != 0
    assert run.summary["result"] == "failed"
    (action,) = run.summary["actions"]
    assert action["action"] == "restart" and action["pods"] == [before] and action["done"] is False
    assert "no ready replacement within 8" in action["error"]
    assert "Restart failed: deleted %s; no ready replacement within 8" % before in run.failure()
    assert "helm rollback alexandria-ee -n alexandria" in run.failure()


def test_oom_produces_the_exact_helm_change(lab, tmp_path):
    lab.break_("oom")
    run = playbook(lab, tmp_path, api_not_serving_allow_helm_upgrade=True,
                   api_not_serving_helm_binary=str(tmp_path / "no-such-helm"))
    assert run.rc != 0
    assert run.summary["cause"] == "oom_killed"
    (action,) = run.summary["actions"]
    assert action["action"] == "helm_upgrade" and action["done"] is False
    assert action["from"] == "128Mi" and action["to"] == "256Mi"
    assert action["value_path"] == "resources.orchestrator.limits.memory"
    assert action["values"] == {"resources": {"orchestrator": {"limits": {"memory": "256Mi"}}}}
    assert action["values_yaml"] == "resources:\n  orchestrator:\n    limits:\n      memory: 256Mi\n"
    assert action["command"] == ("%s upgrade alexandria-ee alexandria/alexandria-ee --namespace alexandria "
                                 "--version 1.4.0 --reuse-values --set resources.orchestrator.limits.memory=256Mi --wait "
                                 "--timeout 5m" % (tmp_path / "no-such-helm"))
    assert action["helm_available"] is False
    assert "no helm binary" in run.failure() and action["command"] in run.failure()

    # An explicit limit and a site values file go into the change as given.
    values = tmp_path / "site-values.yaml"
    values.write_text("replicaCount: 1\n")
    run = playbook(lab, tmp_path, api_not_serving_memory_limit="1Gi", api_not_serving_helm_values_file=str(values))
    (action,) = run.summary["actions"]
    assert action["to"] == "1Gi"
    assert action["command"] == ("helm upgrade alexandria-ee alexandria/alexandria-ee --namespace alexandria "
                                 "--version 1.4.0 --reuse-values --values %s --set resources.orchestrator.limits.memory=1Gi "
                                 "--wait --timeout 5m" % values)
    assert "set api_not_serving_allow_helm_upgrade=true" in run.failure()


def test_oom_helm_upgrade_path_with_a_standin_helm(lab, tmp_path):
    """The gated path that runs helm: a stand-in records the argv and applies the value as the chart would."""
    lab.break_("oom")
    helm = make_helm_standin(tmp_path, lab)
    run = playbook(lab, tmp_path, api_not_serving_allow_helm_upgrade=True, api_not_serving_helm_binary=helm)
    assert run.rc == 0, run.out
    assert run.summary["cause"] == "oom_killed" and run.summary["result"] == "remediated"
    (action,) = run.summary["actions"]
    assert action["done"] is True and action["helm_available"] is True
    assert helm_calls(helm) == [["version", "--short"],
                                ["upgrade", "alexandria-ee", "alexandria/alexandria-ee", "--namespace", "alexandria",
                                 "--version", "1.4.0", "--reuse-values", "--set",
                                 "resources.orchestrator.limits.memory=256Mi", "--wait",
                                 "--timeout", "5m"]]
    assert run.summary["ready_after"] is True
    (orchestrator,) = [c for c in lab.apps().read_namespaced_deployment(lab.release, lab.namespace).spec.template.spec
                       .containers if c.name == "orchestrator"]
    assert orchestrator.resources.limits["memory"] == "256Mi"
    # The raised limit holds the orchestrator's working set: still serving, nothing to change.
    assert_healthy_and_unchanged(playbook(lab, tmp_path, api_not_serving_helm_binary=helm))


# -------------------------------------------------------------------------------- clear failures

def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_kubernetes_api_unreachable(lab, tmp_path):
    kubeconfig = tmp_path / "kubeconfig-closed"
    kubeconfig.write_text(pathlib.Path(lab.kubeconfig).read_text().replace(
        lab.info["k8s_url"], "http://127.0.0.1:%d" % closed_port()))
    run = playbook(lab, tmp_path, api_not_serving_kubeconfig=str(kubeconfig))
    assert run.rc != 0
    assert run.summary["result"] == "triage_failed"
    assert run.summary["error"].startswith("Kubernetes API unreachable while listing pods")
    assert "Connection refused" in run.summary["error"]
    assert run.summary["ready_before"] is True
    assert "Triage failed: Kubernetes API unreachable" in run.failure()


def test_wrong_namespace(lab, tmp_path):
    run = playbook(lab, tmp_path, api_not_serving_namespace="alexandria-typo")
    assert run.rc != 0
    assert run.summary["error"] == "namespace alexandria-typo does not exist: check namespace"


def test_no_pods_match_the_release(lab, tmp_path):
    run = playbook(lab, tmp_path, api_not_serving_release="alexandria-other")
    assert run.rc != 0
    assert run.summary["error"].startswith("no pods match app.kubernetes.io/instance=alexandria-other in namespace "
                                           "alexandria: check release")


def test_rbac_forbidden(lab, tmp_path):
    lab.break_("rbac-deny", "--resource", "pods", "--verb", "list")
    run = playbook(lab, tmp_path)
    assert run.rc != 0
    assert run.summary["error"].startswith("Kubernetes RBAC forbids listing pods app.kubernetes.io/instance="
                                           "alexandria-ee in namespace alexandria (403)")


def test_rbac_forbidden_logs(lab, capsys):
    lab.break_("rbac-deny", "--resource", "pods/log", "--verb", "get")
    result = run_module(alex_triage, lab.k8s_args(), capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("Kubernetes RBAC forbids reading the log of pod ")
    assert "(403)" in result["msg"]


def test_rbac_forbidden_secret_is_a_warning_not_a_failure(lab, capsys):
    lab.break_("rbac-deny", "--resource", "secrets", "--verb", "get")
    result = run_module(alex_triage, lab.k8s_args(), capsys)
    assert not result.get("failed")
    assert result["license_secret"]["exists"] is None
    assert "Kubernetes RBAC forbids reading secret alexandria-ee-license" in result["license_secret"]["error"]
    assert [c["code"] for c in result["causes"]] == ["healthy"]
