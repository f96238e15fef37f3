"""Talk to a running lab through its public channels: the API, the Kubernetes facade, PostgreSQL."""
import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg2

from alexlab.common import LabError, Layout, proc_alive, read_json, rfc3339


class LabClient:
    def __init__(self, directory, require_running=True):
        self.layout = Layout(directory)
        self.info = read_json(self.layout.lab_json)
        if require_running and not self.running():
            raise LabError("no lab is running in %s (start one with: alexlab up --dir %s)" % (
                self.layout.dir, self.layout.dir))

    def running(self):
        return bool(self.info) and self.info.get("status") == "running" and \
            proc_alive((self.info.get("pids") or {}).get("supervisor"))

    @property
    def namespace(self):
        return self.info["namespace"]

    @property
    def release(self):
        return self.info["release"]

    # -- HTTP ----------------------------------------------------------------------------------

    def _http(self, method, url, body=None, headers=None, timeout=10.0):
        data = None
        headers = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        context = None
        if url.startswith("https:"):
            context = ssl.create_default_context(cafile=self.info["k8s_ca"])
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                 urllib.request.HTTPSHandler(context=context))
            with opener.open(request, timeout=timeout) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except (OSError, ValueError) as exc:
            return None, str(getattr(exc, "reason", exc))
        try:
            return status, json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def api(self, method, path, body=None, auth=True, timeout=10.0):
        headers = {"Authorization": "Bearer " + self.info["admin_token"]} if auth else {}
        return self._http(method, self.info["api_url"] + path, body, headers, timeout)

    def kube(self, method, path, body=None, content_type=None, timeout=10.0):
        headers = {"Authorization": "Bearer " + self.info["k8s_token"]}
        if content_type:
            headers["Content-Type"] = content_type
        return self._http(method, self.info["k8s_url"] + path, body, headers, timeout)

    def _kube_ok(self, method, path, body=None, content_type=None, ok=(200, 201)):
        status, reply = self.kube(method, path, body, content_type)
        if status not in ok:
            message = reply.get("message") if isinstance(reply, dict) else reply
            raise LabError("Kubernetes facade: %s %s answered %s: %s" % (method, path, status, message))
        return reply

    def kube_ok(self, method, path, body=None, content_type=None, ok=(200, 201)):
        """A request to the facade that must answer one of `ok`: its JSON, else LabError."""
        return self._kube_ok(method, path, body, content_type, ok)

    def ns_path(self, resource, name=None, group=""):
        base = "/apis/%s/v1" % group if group else "/api/v1"
        path = "%s/namespaces/%s/%s" % (base, self.namespace, resource)
        return path + "/" + urllib.parse.quote(name) if name else path

    # -- Kubernetes objects --------------------------------------------------------------------

    def secret_value(self, name, key):
        status, secret = self.kube("GET", self.ns_path("secrets", name))
        if status == 404:
            return None
        if status != 200:
            raise LabError("cannot read secret %s: HTTP %s" % (name, status))
        value = (secret.get("data") or {}).get(key)
        return base64.b64decode(value) if value is not None else None

    def set_secret_value(self, name, key, value):
        """Create the Secret or patch one key (bytes); resourceVersion moves like any write."""
        encoded = base64.b64encode(value).decode("ascii")
        status, _secret = self.kube("GET", self.ns_path("secrets", name))
        if status == 404:
            body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": name, "namespace": self.namespace,
                                 "labels": {"app.kubernetes.io/instance": self.release}},
                    "data": {key: encoded}}
            return self._kube_ok("POST", self.ns_path("secrets"), body)
        return self._kube_ok("PATCH", self.ns_path("secrets", name), {"data": {key: encoded}},
                             "application/merge-patch+json")

    def delete_secret(self, name):
        return self._kube_ok("DELETE", self.ns_path("secrets", name), ok=(200, 404))

    def deployment(self):
        return self._kube_ok("GET", self.ns_path("deployments", self.release, "apps"))

    def patch_deployment(self, body):
        return self._kube_ok("PATCH", self.ns_path("deployments", self.release, "apps"), body,
                             "application/strategic-merge-patch+json")

    def rollout_restart(self):
        """What `kubectl rollout restart` does: a new restartedAt annotation on the pod template."""
        stamp = rfc3339() + "-%d" % int(time.time() * 1000 % 1000)
        return self.patch_deployment({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": stamp}}}}})

    def pods(self):
        reply = self._kube_ok("GET", self.ns_path("pods") + "?labelSelector=" + urllib.parse.quote(
            "app.kubernetes.io/instance=" + self.release))
        return reply["items"]

    def pod(self):
        pods = [p for p in self.pods() if not p["metadata"].get("deletionTimestamp")]
        return pods[0] if pods else None

    def delete_pod(self, name):
        return self._kube_ok("DELETE", self.ns_path("pods", name))

    def container_status(self, name, pod=None):
        pod = pod or self.pod()
        for status in ((pod or {}).get("status") or {}).get("containerStatuses", []):
            if status["name"] == name:
                return status
        return None

    def logs(self, container, tail=None, previous=False, pod=None):
        pod_name = pod or (self.pod() or {}).get("metadata", {}).get("name")
        if not pod_name:
            return ""
        query = {"container": container}
        if tail is not None:
            query["tailLines"] = str(tail)
        if previous:
            query["previous"] = "true"
        status, text = self.kube("GET", self.ns_path("pods", pod_name) + "/log?" + urllib.parse.urlencode(query))
        return text if status == 200 and isinstance(text, str) else ""

    # -- waiting -------------------------------------------------------------------------------

    def ready(self, timeout=5.0):
        return self.api("GET", "/ready", auth=False, timeout=timeout)

    def wait_for(self, what, predicate, timeout=30.0, interval=0.2):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise LabError("timed out after %ds waiting for %s" % (timeout, what))

    def wait_ready(self, timeout=60.0):
        return self.wait_for("/ready to answer 200", lambda: self.ready()[0] == 200, timeout)

    def wait_new_pod(self, old_name, timeout=60.0):
        def fresh():
            pod = self.pod()
            return pod if pod and pod["metadata"]["name"] != old_name else None
        return self.wait_for("a new pod to replace %s" % old_name, fresh, timeout)

    # -- SQL -----------------------------------------------------------------------------------

    def connect(self):
        try:
            return psycopg2.connect(self.info["dsn"], options="-c TimeZone=UTC -c DateStyle=ISO,YMD",
                                    connect_timeout=5, application_name="alexlab")
        except psycopg2.Error as exc:
            raise LabError("cannot connect to the lab's PostgreSQL: %s" % str(exc).strip().splitlines()[0])
