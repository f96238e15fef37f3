"""The lab's kubelet and controllers, daemonized by `alexlab up`.

It owns the Kubernetes facade and runs the pod's two containers as real processes: restarts
them with back-off (CrashLoopBackOff), counts restarts, keeps lastState and the previous run's
log, enforces each container's `resources.limits.memory` on its resident set (SIGKILL, exit 137,
`OOMKilled`), probes readiness, records events, and rolls the pod when the Deployment's pod
template changes (strategy Recreate: one API port). Children get SIGKILL if it dies.

Back-off is scaled down for a lab: 0, 1, 2, 4, then 5 s (Kubernetes: 10 s doubling to 5 min),
reset after a container ran 10 s.
"""
import argparse
import base64
import ctypes
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alexlab import helm_release, k8s_facade, kobjects, pki, rbac
from alexlab.common import (SOCKET_PATH, Layout, log_line, parse_quantity, proc_identity, read_json, rfc3339,
                            write_json)
from alexlab.store import Store

BACKOFF = (0, 1, 2, 4, 5)
RESET_AFTER = 10.0
FULL_TICK_SECONDS = 1.0
MODULES = {"api": "alexlab.api_server", "orchestrator": "alexlab.orchestrator"}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
NO_PROXY_TLS = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                           urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
LAB_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _die_with_parent():
    """Runs in the child before exec: SIGKILL when the supervisor's spawning thread dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class Container:
    def __init__(self, pod, spec):
        self.pod, self.spec, self.name = pod, spec, spec["name"]
        self.proc = self.ident = self.container_id = self.started_at = self.started_mono = None
        self.runs = self.restart_count = self.crashes = 0
        self.next_start = 0.0
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.oom = self.ready = False
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        self.limit = parse_quantity(limit) if limit else None

    def log_path(self, run):
        return os.path.join(self.pod.dir, "logs", self.name, "%d.log" % run)


class Pod:
    def __init__(self, obj, pod_hash, directory):
        self.obj, self.hash, self.dir = obj, pod_hash, directory
        self.name = obj["metadata"]["name"]
        self.containers = dict((c["name"], Container(self, c)) for c in obj["spec"]["containers"])
        self.stopped = threading.Event()
        self.conditions = {}
        self.ever_started = False


class Supervisor:
    def __init__(self, layout):
        self.layout = layout
        self.info = read_json(layout.lab_json)
        self.namespace, self.release = self.info["namespace"], self.info["release"]
        # The namespaces that exist: the product's, and one it does not use (the automation's checkpoints).
        self.namespaces = tuple(n for n in (self.namespace, self.info.get("checkpoint_namespace")) if n)
        self.k8s_token, self.k8s_user = self.info["k8s_token"], "alexlab-sre"
        self.access = rbac.Access.from_lab(self.info, self.k8s_user)
        self.store = Store()
        self.write_lock = threading.RLock()
        self.event_lock = threading.Lock()
        self._wake = threading.Event()
        self.stopping = threading.Event()
        self.pod = None
        self.event_names = {}
        self.last_pids = None
        self.ident = proc_identity(os.getpid())

    def log(self, level, message):
        log_line(level, message)

    def wake(self):
        self._wake.set()

    # -- objects -------------------------------------------------------------------------------

    def bootstrap(self):
        info, ns, rel = self.info, self.namespace, self.release
        put = self.store.put
        for name in self.namespaces:
            put("namespaces", kobjects.namespace_obj(name))
        main = {"database-dsn": info["dsn"], "audit-hmac-key": info["hmac_key"], "admin-token": info["admin_token"]}
        put("secrets", kobjects.secret_obj(ns, rel, main, kobjects.labels_for(rel)))
        put("secrets", kobjects.secret_obj(ns, rel + "-license", {"license.blob": info["license_blob"]},
                                           kobjects.labels_for(rel)))
        put("services", kobjects.service_obj(ns, rel))
        # Installed by Helm: revision 1 of the release's history, and the Deployment as its chart renders it.
        stamp = helm_release.helm_time()
        installed = helm_release.release_record(rel, ns, 1, helm_release.INSTALLED_CHART, {}, "deployed",
                                                "Install complete", stamp, stamp)
        history = helm_release.secret_obj(installed)
        history["metadata"] = kobjects.meta(ns, history["metadata"]["name"], history["metadata"]["labels"])
        put("secrets", history)
        put("deployments", helm_release.render(kobjects.deployment_obj(
            ns, rel, "127.0.0.1:%d" % info["api_port"], info["issuer_public_key"],
            pki.api_pair(self.layout) if info.get("api_tls") else None), installed))

    def event(self, obj, reason, message, kind="Normal", component="kubelet", field_path=None):
        ref = kobjects.involved(obj, field_path)
        key = (ref["uid"], reason, message, kind)
        with self.event_lock:
            name = self.event_names.get(key)
            existing = self.store.get("events", self.namespace, name) if name else None
            if existing:
                existing["count"] += 1
                existing["lastTimestamp"] = rfc3339()
                self.store.put("events", existing)
                return
            event = kobjects.event_obj(self.namespace, ref, reason, message, kind, component)
            self.event_names[key] = event["metadata"]["name"]
            self.store.put("events", event)
            events = self.store.list("events", self.namespace)
            if len(events) > 500:
                for old in sorted(events, key=lambda e: e["lastTimestamp"])[:len(events) - 500]:
                    self.store.delete("events", self.namespace, old["metadata"]["name"])

    def request_pod_deletion(self, name):
        with self.write_lock:
            obj = self.store.get("pods", self.namespace, name)
            if obj is None:
                raise k8s_facade.not_found("pods", name)
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = obj["spec"].get("terminationGracePeriodSeconds", 3)
                obj = self.store.put("pods", obj)
        self.wake()
        return obj

    def log_file(self, pod_name, container, previous):
        pod = self.pod
        if pod is None or pod.name != pod_name:
            return None, 'pods "%s" not found' % pod_name
        c = pod.containers[container]
        if c.runs == 0:
            reason = c.state.get("waiting", {}).get("reason", "ContainerCreating")
            return None, 'container "%s" in pod "%s" is waiting to start: %s' % (container, pod_name, reason)
        if previous:
            if c.runs < 2:
                return None, 'previous terminated container "%s" in pod "%s" not found' % (container, pod_name)
            return c.log_path(c.runs - 2), None
        return c.log_path(c.runs - 1), None

    # -- the reconcile loop --------------------------------------------------------------------

    def run(self):
        # Every 0.1 s the cheap checks of the containers (exited? over its memory limit? a restart due?); the full
        # reconcile (store reads and writes of the pod, ReplicaSets, Deployment) only when something happened -
        # a wake, a write to the store (the facade's, an event), one of those checks - and at least every
        # FULL_TICK_SECONDS. An idle lab then costs a few ms of CPU a second instead of a reconcile ten times.
        last_full, seen_rv = 0.0, None
        while not self.stopping.is_set():
            woken = self._wake.is_set()
            self._wake.clear()
            if woken or self.store.current_rv() != seen_rv or self.needs_reconcile() \
                    or time.monotonic() - last_full >= FULL_TICK_SECONDS:
                try:
                    self.tick()
                except Exception as exc:  # keep supervising; the log says what went wrong
                    self.log("error", "reconcile failed: %r" % exc)
                last_full, seen_rv = time.monotonic(), self.store.current_rv()
            self._wake.wait(0.1)
        if self.pod:
            self.terminate_pod("the lab is shutting down")

    def needs_reconcile(self):
        """Whether a container exited or is due to (re)start; enforces the memory limits on the way."""
        if self.pod is None:
            return True
        for c in self.pod.containers.values():
            if c.proc is None:
                if time.monotonic() >= c.next_start:
                    return True
            elif c.proc.poll() is not None:
                return True
            else:
                self.enforce_memory(c)
        return False

    def tick(self):
        dep = self.store.get("deployments", self.namespace, self.release)
        generation = dep["metadata"]["generation"]
        replicas = dep["spec"].get("replicas", 1)
        desired = kobjects.template_hash(dep["spec"]["template"])
        rs = self.ensure_replicaset(dep, desired)
        if self.pod:
            obj = self.store.get("pods", self.namespace, self.pod.name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                self.terminate_pod("deleted")
            elif self.pod.hash != desired or replicas == 0:
                self.terminate_pod("replaced by the Deployment's new pod template" if replicas else "scaled to 0")
        if self.pod is None and replicas > 0:
            self.create_pod(dep, rs)
        if self.pod:
            for container in self.pod.containers.values():
                self.run_container(container)
        self.publish(generation, desired)
        self.write_pids()

    def ensure_replicaset(self, dep, pod_hash):
        name = "%s-%s" % (self.release, pod_hash)
        rs = self.store.get("replicasets", self.namespace, name)
        if rs is not None:
            return rs
        revisions = [int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                     for r in self.store.list("replicasets", self.namespace)]
        revision = max(revisions or [0]) + 1
        rs = self.store.put("replicasets", kobjects.replicaset_obj(dep, pod_hash, revision))
        with self.write_lock:
            current = self.store.get("deployments", self.namespace, self.release)
            current["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(revision)
            self.store.put("deployments", current)
        return rs

    def create_pod(self, dep, rs):
        name = "%s-%s" % (rs["metadata"]["name"], kobjects.random_suffix())
        obj = self.store.put("pods", kobjects.pod_obj(rs, name))
        pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
        directory = self.layout.pod_dir(name)
        os.makedirs(os.path.join(directory, "run", "alexandria"), exist_ok=True)
        self.pod = Pod(obj, pod_hash, directory)
        self.event(dep, "ScalingReplicaSet", "Scaled up replica set %s to 1" % rs["metadata"]["name"],
                   component="deployment-controller")
        self.event(rs, "SuccessfulCreate", "Created pod: %s" % name, component="replicaset-controller")
        self.event(obj, "Scheduled", "Successfully assigned %s/%s to %s" % (self.namespace, name, kobjects.NODE),
                   component="default-scheduler")
        for container in self.pod.containers.values():
            threading.Thread(target=self.probe_loop, args=(self.pod, container), daemon=True).start()
        self.log("info", "pod %s created" % name)

    def terminate_pod(self, why):
        pod = self.pod
        running = [c for c in pod.containers.values() if c.proc is not None]
        for c in running:
            self.event(pod.obj, "Killing", "Stopping container %s" % c.name, field_path="spec.containers{%s}" % c.name)
            self._signal(c, signal.SIGTERM)
        deadline = time.monotonic() + pod.obj["spec"].get("terminationGracePeriodSeconds", 3)
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in running):
            time.sleep(0.05)
        for c in running:
            if c.proc.poll() is None:
                self._signal(c, signal.SIGKILL)
                c.proc.wait()
        pod.stopped.set()
        self.store.delete("pods", self.namespace, pod.name)
        shutil.rmtree(pod.dir, ignore_errors=True)
        self.pod = None
        self.log("info", "pod %s terminated: %s" % (pod.name, why))

    @staticmethod
    def _signal(container, sig):
        try:
            os.killpg(container.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def resolve_env(self, spec):
        env = {b"PATH": os.environb.get(b"PATH", b"/usr/bin:/bin"), b"LANG": b"C.UTF-8", b"PYTHONUNBUFFERED": b"1",
               b"PYTHONDONTWRITEBYTECODE": b"1", b"PYTHONPATH": LAB_PACKAGE_DIR.encode(), b"HOME": self.pod.dir.encode()}
        if spec["name"] == "orchestrator":  # where the chaos tool drops its faults; the API never sees it
            env[b"ALEXLAB_FAULTS_DIR"] = self.layout.faults.encode()
        for item in spec.get("env") or []:
            if "value" in item:
                env[item["name"].encode()] = str(item["value"]).encode("utf-8")
                continue
            ref = ((item.get("valueFrom") or {}).get("secretKeyRef")) or {}
            secret = self.store.get("secrets", self.namespace, ref.get("name"))
            value = ((secret or {}).get("data") or {}).get(ref.get("key"))
            if value is None:
                if ref.get("optional"):
                    continue
                if secret is None:
                    return None, 'secret "%s" not found' % ref.get("name")
                return None, "couldn't find key %s in Secret %s/%s" % (ref.get("key"), self.namespace, ref.get("name"))
            env[item["name"].encode()] = base64.b64decode(value)
        return env, None

    def run_container(self, c):
        if c.proc is not None:
            code = c.proc.poll()
            if code is None:
                self.enforce_memory(c)
                return
            self.on_exit(c, code)
        if c.proc is None and time.monotonic() >= c.next_start:
            self.start(c)

    def start(self, c):
        env, error = self.resolve_env(c.spec)
        ref = self.pod.obj
        field = "spec.containers{%s}" % c.name
        if error:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": error}}
            c.next_start = time.monotonic() + 2
            self.event(ref, "Failed", "Error: %s" % error, "Warning", field_path=field)
            return
        path = c.log_path(c.runs)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab") as log_file:
            c.proc = subprocess.Popen([sys.executable, "-m", MODULES[c.name]], cwd=self.pod.dir, env=env,
                                      stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=_die_with_parent, close_fds=True)
        if c.runs:
            c.restart_count += 1
        c.runs += 1
        c.ident = proc_identity(c.proc.pid)
        c.started_mono, c.started_at = time.monotonic(), rfc3339()
        c.oom = c.ready = False
        c.container_id = "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex
        c.state = {"running": {"startedAt": c.started_at}}
        self.pod.ever_started = True
        self.event(ref, "Pulled", 'Container image "%s" already present on machine' % c.spec["image"], field_path=field)
        self.event(ref, "Created", "Created container %s" % c.name, field_path=field)
        self.event(ref, "Started", "Started container %s" % c.name, field_path=field)

    def on_exit(self, c, code):
        exit_code = 128 - code if code < 0 else code
        reason = "OOMKilled" if c.oom else ("Completed" if exit_code == 0 else "Error")
        terminated = {"exitCode": exit_code, "reason": reason, "startedAt": c.started_at,
                      "finishedAt": rfc3339(), "containerID": c.container_id}
        if code < 0:
            terminated["signal"] = -code
        c.last_state = {"terminated": terminated}
        c.crashes = 1 if time.monotonic() - c.started_mono >= RESET_AFTER else c.crashes + 1
        delay = BACKOFF[min(c.crashes - 1, len(BACKOFF) - 1)]
        c.proc = c.ident = None
        c.ready = False
        c.next_start = time.monotonic() + delay
        pod = self.pod
        self.log("warning", "container %s of pod %s exited %d (%s); restart in %ds" % (
            c.name, pod.name, exit_code, reason, delay))
        if delay:
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off %ds restarting failed container=%s "
                                   "pod=%s_%s(%s)" % (delay, c.name, pod.name, self.namespace, pod.obj["metadata"]["uid"])}}
            self.event(pod.obj, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)" % (
                c.name, pod.name, self.namespace, pod.obj["metadata"]["uid"]), "Warning",
                field_path="spec.containers{%s}" % c.name)
        else:
            c.state = {"terminated": dict(terminated)}

    def enforce_memory(self, c):
        if not c.limit:
            return
        try:
            rss = psutil.Process(c.proc.pid).memory_info().rss
        except psutil.Error:
            return
        if rss <= c.limit:
            return
        c.oom = True
        self._signal(c, signal.SIGKILL)
        self.event(self.pod.obj, "OOMKilling", "Memory cgroup out of memory: Killed process %d (%s) anon-rss:%dkB; "
                   "container %s exceeded its memory limit %s" % (
                       c.proc.pid, c.name, rss // 1024, c.name, c.spec["resources"]["limits"]["memory"]),
                   "Warning", component="kernel-monitor", field_path="spec.containers{%s}" % c.name)

    # -- readiness probes ---------------------------------------------------------------------

    def probe_loop(self, pod, c):
        """Readiness, every periodSeconds; every 0.1 s while the container has not answered yet since it started."""
        period = (c.spec.get("readinessProbe") or {}).get("periodSeconds", 2)
        answered_run = None
        while not pod.stopped.is_set() and not self.stopping.is_set():
            run = c.runs
            if c.proc is None:
                ok, message, answered = False, None, False
            elif c.name == "api":
                ok, message, answered = self.probe_http()
            else:
                ok, message, answered = self.probe_grpc(pod)
            if run == c.runs and not pod.stopped.is_set():
                if answered:
                    answered_run = run
                if ok != c.ready:
                    c.ready = ok
                    self.wake()
                if message and c.proc is not None and time.monotonic() - c.started_mono > 2:
                    self.event(pod.obj, "Unhealthy", "Readiness probe failed: %s" % message, "Warning",
                               field_path="spec.containers{%s}" % c.name)
            pod.stopped.wait(period if answered_run == c.runs else 0.1)

    def probe_http(self):
        """(ready, failure message, whether the server answered at all)."""
        scheme = "https" if self.info.get("api_tls") else "http"
        url = "%s://127.0.0.1:%d/ready" % (scheme, self.info["api_port"])
        try:
            # An HTTPS probe checks no certificate, as the kubelet's does not.
            opener = NO_PROXY_TLS if scheme == "https" else NO_PROXY
            with opener.open(url, timeout=3) as resp:
                return resp.status == 200, None, True
        except urllib.error.HTTPError as exc:
            return False, "HTTP probe failed with statuscode: %d" % exc.code, True
        except (OSError, ValueError) as exc:
            return False, 'Get "%s://127.0.0.1:8080/ready": %s' % (scheme, getattr(exc, "reason", exc)), False

    @staticmethod
    def probe_grpc(pod):
        local = os.path.relpath(os.path.join(pod.dir, SOCKET_PATH.lstrip("/")))
        if not os.path.exists(local):
            return False, 'timeout: failed to connect service "unix://%s" within 1s' % SOCKET_PATH, False
        channel = grpc.insecure_channel("unix:" + local)
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return True, None, True
            return False, "service unhealthy (responded with %s)" % reply.status, True
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False, "timeout: health rpc did not complete within 1s", True
            return False, "error: health rpc failed: %s" % exc.code().name, False
        finally:
            channel.close()

    # -- status ---------------------------------------------------------------------------------

    def _condition(self, pod, kind, status):
        status = "True" if status else "False"
        if pod.conditions.get(kind, (None,))[0] != status:
            pod.conditions[kind] = (status, rfc3339())
        return {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": pod.conditions[kind][1]}

    def publish(self, generation, desired):
        pod = self.pod
        pod_ready = False
        if pod is not None:
            statuses = []
            for c in pod.containers.values():
                status = {"name": c.name, "image": c.spec["image"], "imageID": "docker.io/" + c.spec["image"],
                          "ready": bool(c.ready and c.proc is not None), "restartCount": c.restart_count,
                          "started": c.proc is not None, "state": c.state, "lastState": c.last_state}
                if c.container_id:
                    status["containerID"] = c.container_id
                statuses.append(status)
            pod_ready = all(s["ready"] for s in statuses)
            with self.write_lock:
                obj = self.store.get("pods", self.namespace, pod.name)
                if obj is not None and not obj["metadata"].get("deletionTimestamp"):
                    obj["status"].update({
                        "phase": "Running" if pod.ever_started else "Pending", "startTime": obj["metadata"]["creationTimestamp"],
                        "containerStatuses": statuses,
                        "conditions": [self._condition(pod, "PodScheduled", True), self._condition(pod, "Initialized", True),
                                       self._condition(pod, "ContainersReady", pod_ready),
                                       self._condition(pod, "Ready", pod_ready)]})
                    pod.obj = self.store.put("pods", obj)
        for rs in self.store.list("replicasets", self.namespace):
            mine = pod is not None and rs["metadata"]["labels"].get("pod-template-hash") == pod.hash
            current = rs["metadata"]["labels"].get("pod-template-hash") == desired
            rs["spec"]["replicas"] = 1 if current else 0
            rs["status"] = {"replicas": int(mine), "fullyLabeledReplicas": int(mine), "readyReplicas": int(mine and pod_ready),
                            "availableReplicas": int(mine and pod_ready), "observedGeneration": 1}
            self.store.put("replicasets", rs)
        with self.write_lock:
            dep = self.store.get("deployments", self.namespace, self.release)
            wanted = dep["spec"].get("replicas", 1)
            updated = int(pod is not None and pod.hash == desired)
            available = int(pod_ready)
            stamp = dep.get("status", {}).get("conditions", [])
            old = dict((c["type"], c) for c in stamp)
            done = updated == wanted and available == wanted

            def cond(kind, ok, reason, message):
                previous = old.get(kind)
                status = "True" if ok else "False"
                changed = previous is None or previous["status"] != status or previous["reason"] != reason
                now_text = rfc3339()
                return {"type": kind, "status": status, "reason": reason, "message": message,
                        "lastUpdateTime": now_text if changed else previous["lastUpdateTime"],
                        "lastTransitionTime": now_text if (previous is None or previous["status"] != status)
                        else previous["lastTransitionTime"]}

            rs_name = "%s-%s" % (self.release, desired)
            dep["status"] = {
                "observedGeneration": generation, "replicas": int(pod is not None), "updatedReplicas": updated,
                "readyReplicas": available, "availableReplicas": available,
                "conditions": [
                    cond("Available", available >= wanted,
                         "MinimumReplicasAvailable" if available >= wanted else "MinimumReplicasUnavailable",
                         "Deployment has minimum availability." if available >= wanted
                         else "Deployment does not have minimum availability."),
                    cond("Progressing", True, "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                         'ReplicaSet "%s" has %s.' % (rs_name, "successfully progressed" if done else "is progressing")),
                ]}
            if wanted - available > 0:
                dep["status"]["unavailableReplicas"] = wanted - available
            self.store.put("deployments", dep)

    def write_pids(self):
        pod = self.pod
        pids = {"supervisor": self.ident, "postgres": self.info["pids"].get("postgres"),
                "api": pod.containers["api"].ident if pod else None,
                "orchestrator": pod.containers["orchestrator"].ident if pod else None}
        current = (pids, pod.name if pod else None)
        if current == self.last_pids:
            return
        self.last_pids = current
        info = read_json(self.layout.lab_json)
        info.update(pids=pids, pod=pod.name if pod else None)
        write_json(self.layout.lab_json, info)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="alexlab-supervisor")
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    layout = Layout(args.dir)
    os.chdir(layout.dir)  # relative socket paths stay short (Unix sockets allow ~107 bytes)
    sup = Supervisor(layout)
    sup.log("info", "supervisor starting pid=%d dir=%s" % (os.getpid(), layout.dir))
    sup.bootstrap()
    try:
        _ca, cert, key = pki.ensure(layout)
        server = k8s_facade.make_server(sup, sup.info["k8s_port"], cert, key)
    except OSError as exc:
        sup.log("error", "cannot serve the Kubernetes facade on 127.0.0.1:%d: %s" % (sup.info["k8s_port"], exc.strerror))
        return 2

    def on_term(_signum, _frame):
        sup.stopping.set()
        sup.wake()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sup.log("info", "kubernetes facade on https://127.0.0.1:%d" % sup.info["k8s_port"])
    sup.run()
    server.shutdown()
    sup.log("info", "supervisor stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
