"""The Kubernetes facade, through kubectl (the runbook's own commands, verbatim) and the official client."""
import base64
import json
import subprocess
import time

import kubernetes
import pytest

from alexlab.common import proc_alive

pytestmark = pytest.mark.lab


def rollout_restart(lab):
    """kubectl rollout restart, at most once a second (kubectl refuses a second restart within the same second)."""
    time.sleep(1.1)
    lab.kubectl("rollout", "restart", "deployment/alexandria-ee", "-n", "alexandria")


NS = "alexandria"
SELECTOR = "app.kubernetes.io/instance=alexandria-ee"


def pod_name(lab):
    return lab.pod()["metadata"]["name"]


def test_runbook_get_pods_and_describe(lab):
    out = lab.kubectl("get", "pods", "-n", NS, "-l", SELECTOR).stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert out[1].split()[:3] == [pod_name(lab), "2/2", "Running"]
    described = lab.kubectl("describe", "pods", "-n", NS, "-l", SELECTOR).stdout
    for words in ("Containers:", "  api:", "  orchestrator:", "memory:  128Mi", "Ready:          True",
                  "Controlled By:  ReplicaSet/alexandria-ee-", "Started container orchestrator"):
        assert words in described, words


def test_runbook_logs_events_and_secret(lab):
    pod = pod_name(lab)
    logs = lab.kubectl("logs", "-n", NS, pod, "-c", "orchestrator", "--tail=50").stdout
    assert "serving grpc.health.v1.Health on unix:///run/alexandria/orchestrator.sock" in logs
    api_logs = lab.kubectl("logs", "-n", NS, pod, "-c", "api", "--tail=50").stdout
    assert "license ok" in api_logs
    assert len(lab.kubectl("logs", "-n", NS, pod, "-c", "api", "--tail=1").stdout.splitlines()) == 1
    events = lab.kubectl("get", "events", "-n", NS, "--sort-by=.lastTimestamp").stdout.splitlines()
    assert events[0].split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    assert any("Started container api" in line for line in events)
    dsn = base64.b64decode(lab.kubectl("get", "secret", "-n", NS, "alexandria-ee", "-o",
                                       "jsonpath={.data.database-dsn}").stdout).decode()
    assert dsn == lab.info["dsn"]
    # The runbook's capture step, verbatim but for the tenant: psql with the DSN from the Secret.
    lab.cli("seed-audit", "--tenants", "1", "--rows", "3", "--prefix", "cap")
    csv = subprocess.run(["psql", dsn, "-c", "COPY (SELECT * FROM audit_logs WHERE tenant_id = 'cap-001' "
                          "ORDER BY seq) TO STDOUT CSV HEADER"], capture_output=True, text=True, check=True).stdout
    assert csv.splitlines()[0].startswith("tenant_id,seq,occurred_at") and len(csv.splitlines()) == 4


def test_python_client_reads_pod_status_logs_and_events(lab):
    core = lab.core()
    pods = core.list_namespaced_pod(NS, label_selector=SELECTOR).items
    assert len(pods) == 1
    pod = pods[0]
    assert pod.status.phase == "Running"
    statuses = dict((s.name, s) for s in pod.status.container_statuses)
    assert set(statuses) == {"api", "orchestrator"}
    assert statuses["orchestrator"].state.running.started_at is not None
    assert all(s.ready for s in statuses.values())
    limits = dict((c.name, c.resources.limits["memory"]) for c in pod.spec.containers)
    assert limits["orchestrator"] == "128Mi"
    text = core.read_namespaced_pod_log(pod.metadata.name, NS, container="orchestrator", tail_lines=1)
    assert len(text.splitlines()) == 1
    with pytest.raises(kubernetes.client.ApiException) as err:
        core.read_namespaced_pod_log(pod.metadata.name, NS, container="orchestrator", previous=True)
    assert err.value.status == 400 and "previous terminated container" in err.value.body
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=%s" % pod.metadata.name).items
    assert events and all(e.last_timestamp and e.involved_object.name == pod.metadata.name for e in events)
    assert {"Scheduled", "Created", "Started"} <= set(e.reason for e in events)


def test_delete_pod_recreates_it_with_new_processes(lab):
    old_name, old_pids = pod_name(lab), lab.info["pids"]
    lab.kubectl("delete", "pod", "-n", NS, old_name)
    pod = lab.client.wait_new_pod(old_name, 60)
    lab.client.wait_ready(60)
    assert pod["metadata"]["name"].startswith("alexandria-ee-")
    assert lab.kubectl("get", "pod", "-n", NS, old_name, check=False).returncode != 0
    new_pids = lab.info["pids"]
    for name in ("api", "orchestrator"):
        assert not proc_alive(old_pids[name])
        assert new_pids[name]["pid"] != old_pids[name]["pid"] and proc_alive(new_pids[name])
    statuses = lab.client.container_status("api", pod=lab.pod())
    assert statuses["restartCount"] == 0


def test_rollout_restart_and_status(lab):
    apps = lab.apps()
    before = apps.read_namespaced_deployment("alexandria-ee", NS)
    old_name = pod_name(lab)
    rollout_restart(lab)
    out = lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=60s").stdout
    assert 'deployment "alexandria-ee" successfully rolled out' in out
    after = apps.read_namespaced_deployment("alexandria-ee", NS)
    assert after.metadata.generation == before.metadata.generation + 1
    assert after.status.observed_generation == after.metadata.generation
    assert after.status.updated_replicas == 1 and after.status.available_replicas == 1
    assert "kubectl.kubernetes.io/restartedAt" in after.spec.template.metadata.annotations
    assert pod_name(lab) != old_name
    assert lab.api("GET", "/ready", auth=False)[0] == 200


def test_secrets_create_patch_apply_and_resource_versions(lab):
    core = lab.core()
    lab.kubectl("create", "secret", "generic", "lab-a", "-n", NS, "--from-literal=k=v1")
    first = core.read_namespaced_secret("lab-a", NS)
    assert base64.b64decode(first.data["k"]) == b"v1"
    lab.kubectl("patch", "secret", "lab-a", "-n", NS, "-p", '{"stringData": {"k": "v2"}}')
    second = core.read_namespaced_secret("lab-a", NS)
    assert base64.b64decode(second.data["k"]) == b"v2"
    manifest = lab.kubectl("create", "secret", "generic", "lab-a", "-n", NS, "--from-literal=k=v3",
                           "--dry-run=client", "-o", "yaml").stdout
    lab.kubectl("apply", "-f", "-", input_text=manifest)
    third = core.read_namespaced_secret("lab-a", NS)
    assert base64.b64decode(third.data["k"]) == b"v3"
    created = core.create_namespaced_secret(NS, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="lab-b"), string_data={"x": "1"}))
    created.data = {"x": base64.b64encode(b"2").decode()}
    replaced = core.replace_namespaced_secret("lab-b", NS, created)
    patched = core.patch_namespaced_secret("lab-b", NS, {"data": {"x": base64.b64encode(b"3").decode()}})
    versions = [int(o.metadata.resource_version) for o in (first, second, third, created, replaced, patched)]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    with pytest.raises(kubernetes.client.ApiException) as err:
        core.replace_namespaced_secret("lab-b", NS, created)  # stale resourceVersion
    assert err.value.status == 409
    with pytest.raises(kubernetes.client.ApiException) as err:
        core.create_namespaced_secret(NS, created)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"
    core.delete_namespaced_secret("lab-b", NS)
    lab.kubectl("delete", "secret", "lab-a", "-n", NS)
    assert lab.kubectl("get", "secret", "lab-a", "-n", NS, check=False).returncode == 1


def test_refused_requests_answer_kubernetes_status(lab):
    core = lab.core()
    for call, status in ((lambda: core.read_namespaced_config_map("x", NS), 404),
                         (lambda: core.read_namespaced_secret("x", "other-namespace"), 404),
                         (lambda: core.create_namespaced_pod(NS, kubernetes.client.V1Pod(
                             metadata=kubernetes.client.V1ObjectMeta(name="x"))), 405),
                         (lambda: core.delete_collection_namespaced_pod(NS), 405)):
        with pytest.raises(kubernetes.client.ApiException) as err:
            call()
        body = json.loads(err.value.body)
        assert err.value.status == status and body["kind"] == "Status" and body["code"] == status
    missing = lab.kubectl("get", "configmaps", "-n", NS, check=False)
    assert missing.returncode != 0 and "doesn't have a resource type" in missing.stderr
    assert lab.kubectl("exec", "-n", NS, pod_name(lab), "-c", "api", "--", "true", check=False).returncode != 0
    assert lab.api("GET", "/ready", auth=False)[0] == 200  # the facade and the lab survived


def test_rbac_deny_answers_403(lab):
    pod = pod_name(lab)
    lab.cli("break", "rbac-deny", "--resource", "pods/log", "--verb", "get")
    try:
        denied = lab.kubectl("logs", "-n", NS, pod, "-c", "api", check=False)
        assert denied.returncode == 1 and 'cannot get resource "pods/log"' in denied.stderr
        assert lab.kubectl("get", "pods", "-n", NS).returncode == 0  # only the logs are denied
        lab.cli("break", "rbac-deny", "--resource", "pods")
        with pytest.raises(kubernetes.client.ApiException) as err:
            lab.core().list_namespaced_pod(NS, label_selector=SELECTOR)
        body = json.loads(err.value.body)
        assert err.value.status == 403 and body["reason"] == "Forbidden" and body["kind"] == "Status"
        assert 'cannot list resource "pods"' in body["message"]
        denied = lab.kubectl("get", "pods", "-n", NS, check=False)
        assert denied.returncode == 1 and "Forbidden" in denied.stderr
        assert lab.kubectl("get", "secrets", "-n", NS).returncode == 0
    finally:
        lab.cli("heal", "rbac-deny")
    assert lab.core().list_namespaced_pod(NS, label_selector=SELECTOR).items
    assert lab.kubectl("logs", "-n", NS, pod, "-c", "api", "--tail=1").returncode == 0


def test_license_secret_rewrite_and_rollout_apply_a_new_license(lab):
    """The license playbook's path: write the Secret with the client, restart, the API reads the new blob."""
    blob = lab.cli("license", "mint", "--seats", "31", "--tenants", "6", "--tier", "enterprise").stdout.strip()
    core = lab.core()
    secret = core.read_namespaced_secret("alexandria-ee-license", NS)
    original = secret.data["license.blob"]
    secret.data["license.blob"] = base64.b64encode(blob.encode()).decode()
    core.replace_namespaced_secret("alexandria-ee-license", NS, secret)
    assert lab.api("GET", "/license", auth=False)[1]["max_seats"] == 25  # read at start only
    rollout_restart(lab)
    lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=60s")
    assert lab.api("GET", "/license", auth=False)[1]["max_seats"] == 31
    core.patch_namespaced_secret("alexandria-ee-license", NS, {"data": {"license.blob": original}})
    rollout_restart(lab)
    lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=60s")
    assert lab.api("GET", "/license", auth=False)[1]["max_seats"] == 25


def test_deployment_patch_changes_the_pod_spec_and_is_validated(lab):
    apps = lab.apps()
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "orchestrator", "resources": {"limits": {"memory": "192Mi"}}}]}}}}
    apps.patch_namespaced_deployment("alexandria-ee", NS, patch)
    lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=60s")
    limits = dict((c.name, c.resources.limits["memory"]) for c in lab.core().list_namespaced_pod(
        NS, label_selector=SELECTOR).items[0].spec.containers)
    assert limits["orchestrator"] == "192Mi"
    for bad in ({"spec": {"replicas": 3}},
                {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "x"}]}}}},
                {"spec": {"template": {"spec": {"containers": [
                    {"name": "orchestrator", "resources": {"limits": {"memory": "lots"}}}]}}}}):
        with pytest.raises(kubernetes.client.ApiException) as err:
            apps.patch_namespaced_deployment("alexandria-ee", NS, bad)
        assert err.value.status == 422
    patch["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "128Mi"
    apps.patch_namespaced_deployment("alexandria-ee", NS, patch)
    lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=60s")
    assert lab.api("GET", "/ready", auth=False)[0] == 200


def test_scale_to_zero_and_back(lab):
    old = lab.info["pids"]["api"]
    lab.kubectl("scale", "deployment/alexandria-ee", "-n", NS, "--replicas=0")
    lab.client.wait_for("the pod to go", lambda: lab.client.pods() == [], 30)
    assert lab.api("GET", "/ready", auth=False)[0] is None  # nothing listens any more
    assert not proc_alive(old)
    lab.kubectl("scale", "deployment/alexandria-ee", "-n", NS, "--replicas=1")
    lab.kubectl("rollout", "status", "deployment/alexandria-ee", "-n", NS, "--timeout=60s")
    assert lab.api("GET", "/ready", auth=False)[0] == 200


def metric(text, resource, sub=""):
    wanted = 'apiserver_request_total{method="GET",resource="%s",subresource="%s"} ' % (resource, sub)
    return sum(int(line[len(wanted):]) for line in text.splitlines() if line.startswith(wanted))


def test_metrics_count_the_requests_served(lab):
    pod = pod_name(lab)
    before = lab.kubectl("get", "--raw", "/metrics").stdout
    assert "# TYPE apiserver_request_total counter" in before
    lab.kubectl("get", "pods", "-n", NS, "-l", SELECTOR)
    lab.kubectl("logs", "-n", NS, pod, "-c", "api", "--tail=1")
    after = lab.kubectl("get", "--raw", "/metrics").stdout
    assert metric(after, "pods") - metric(before, "pods") >= 1
    assert metric(after, "pods", "log") - metric(before, "pods", "log") == 1
