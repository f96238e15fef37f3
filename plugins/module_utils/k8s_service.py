# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Scenario 1 reads and does through the Kubernetes API, with a bounded number of requests.

Gathering for triage makes, whatever the log length: 1 pod list, 1 event list, 1 Secret read, and per
container of each pod 1 log read (tailLines + limitBytes), plus 1 more for the previous log of a container
that has restarted. Responses are read as raw JSON (the v1.Pod / v1.Event shapes triage.py classifies),
never the whole log. Failures raise K8sError in words.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time

from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import (
    ApiException,
    K8sError,
    describe_api_error,
)

try:
    from kubernetes.client import CoreV1Api
    from urllib3.exceptions import HTTPError as TransportError
except ImportError:
    CoreV1Api = None
    TransportError = OSError

try:
    from concurrent.futures import ThreadPoolExecutor
except ImportError:  # pragma: no cover - Python 2 is not supported by the modules anyway
    ThreadPoolExecutor = None

DEFAULT_TAIL_LINES = 50
DEFAULT_LIMIT_BYTES = 64 * 1024
LOG_WORKERS = 4


def selector_for(release):
    return "app.kubernetes.io/instance=%s" % release


class ReleaseService:
    """The release's pods, events, logs and license Secret, in a namespace, through one ApiClient."""

    def __init__(self, api_client, namespace, release, request_timeout=10.0):
        if CoreV1Api is None:
            raise K8sError("the Python library 'kubernetes' is required: pip install kubernetes")
        self.core = CoreV1Api(api_client)
        self.namespace = namespace
        self.release = release
        self.selector = selector_for(release)
        self.request_timeout = request_timeout
        self.requests = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ raw calls

    def _call(self, what, method, *args, **kwargs):
        with self._lock:
            self.requests += 1
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            return method(*args, _preload_content=False, **kwargs)
        except ApiException:
            raise
        except (TransportError, OSError) as exc:
            raise K8sError(describe_api_error(exc, what))

    def _json(self, what, method, *args, **kwargs):
        try:
            resp = self._call(what, method, *args, **kwargs)
        except ApiException as exc:
            raise K8sError(describe_api_error(exc, what))
        try:
            return json.loads(resp.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise K8sError("Kubernetes API answered something that is not JSON while %s" % what)

    # ------------------------------------------------------------ reads

    def list_pods(self):
        what = "listing pods %s in namespace %s" % (self.selector, self.namespace)
        body = self._json(what, self.core.list_namespaced_pod, self.namespace, label_selector=self.selector)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise K8sError("Kubernetes API answered a pod list without items while %s" % what)
        return sorted(items, key=lambda p: (p.get("metadata") or {}).get("name") or "")

    def require_pods(self):
        """The release's pods; K8sError naming the namespace or the selector when there are none."""
        pods = self.list_pods()
        if pods:
            return pods
        # Real clusters list an empty set in a namespace that does not exist: tell the two apart (one extra
        # request, on this failure path only).
        try:
            self._call("reading namespace %s" % self.namespace, self.core.read_namespace, self.namespace)
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                raise K8sError("namespace %s does not exist: check namespace" % self.namespace)
        raise K8sError("no pods match %s in namespace %s: check release (and namespace); is the Deployment "
                       "scaled to zero?" % (self.selector, self.namespace))

    def list_events(self):
        what = "listing events in namespace %s" % self.namespace
        body = self._json(what, self.core.list_namespaced_event, self.namespace)
        items = body.get("items") if isinstance(body, dict) else None
        return items if isinstance(items, list) else []

    def list_helm_history(self):
        """The release's Helm history Secrets (labels owner=helm,name=<release>), raw JSON: one list request."""
        selector = "owner=helm,name=%s" % self.release
        what = "listing the Helm history Secrets %s in namespace %s" % (selector, self.namespace)
        body = self._json(what, self.core.list_namespaced_secret, self.namespace, label_selector=selector)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise K8sError("Kubernetes API answered a Secret list without items while %s" % what)
        return items

    def secret_keys(self, name):
        """{"name", "exists", "keys"} of a Secret, without keeping any value; exists is None when forbidden."""
        what = "reading secret %s in namespace %s" % (name, self.namespace)
        try:
            resp = self._call(what, self.core.read_namespaced_secret, name, self.namespace)
        except ApiException as exc:
            status = getattr(exc, "status", None)
            if status == 404:
                return dict(name=name, exists=False, keys=[], error=None)
            if status == 403:
                return dict(name=name, exists=None, keys=[], error=describe_api_error(exc, what))
            raise K8sError(describe_api_error(exc, what))
        try:
            body = json.loads(resp.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise K8sError("Kubernetes API answered something that is not JSON while %s" % what)
        keys = sorted(set(body.get("data") or {}) | set(body.get("stringData") or {}))
        del body
        return dict(name=name, exists=True, keys=keys, error=None)

    def read_log(self, pod, container, previous=False, tail_lines=DEFAULT_TAIL_LINES, limit_bytes=DEFAULT_LIMIT_BYTES,
                 since_seconds=None):
        """The last tail_lines lines (at most limit_bytes, of the last since_seconds) of a container's log,
        or None with the reason."""
        what = "reading the %slog of pod %s container %s" % ("previous " if previous else "", pod, container)
        kwargs = dict(container=container, tail_lines=tail_lines, limit_bytes=limit_bytes)
        if previous:
            kwargs["previous"] = True
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        try:
            resp = self._call(what, self.core.read_namespaced_pod_log, pod, self.namespace, **kwargs)
        except ApiException as exc:
            status = getattr(exc, "status", None)
            if status in (400, 404) and previous:
                return None, "no previous container"
            if status == 400:
                # e.g. "container ... is waiting to start": no log yet, not a failure of triage
                return None, "no log yet (400)"
            raise K8sError(describe_api_error(exc, what))
        data = resp.data
        if len(data) > limit_bytes:
            data = data[-limit_bytes:]
        return data.decode("utf-8", "replace"), None

    # ------------------------------------------------------------ triage

    def gather(self, license_secret, license_secret_key, tail_lines=DEFAULT_TAIL_LINES,
               limit_bytes=DEFAULT_LIMIT_BYTES, helm_history=False):
        """Everything triage.classify() reads, in a fixed number of requests; K8sError on failures. With
        helm_history, also the Helm history Secrets (1 list request): helm_secrets, or helm_error when the list
        failed (a 403 must not stop the triage)."""
        pods = self.require_pods()
        events = self.list_events()
        helm = {}
        if helm_history:
            try:
                helm["helm_secrets"] = self.list_helm_history()
            except K8sError as exc:
                helm["helm_error"] = str(exc)
        secret = self.secret_keys(license_secret)
        license_state = dict(name=license_secret, key=license_secret_key, exists=secret["exists"],
                             key_present=(license_secret_key in secret["keys"]) if secret["exists"] else None,
                             error=secret["error"])
        jobs = []
        for pod in pods:
            name = (pod.get("metadata") or {}).get("name")
            statuses = {s.get("name"): s for s in ((pod.get("status") or {}).get("containerStatuses") or [])}
            for cont in (pod.get("spec") or {}).get("containers") or []:
                cname = cont.get("name")
                jobs.append((name, cname, False))
                if int((statuses.get(cname) or {}).get("restartCount") or 0) > 0:
                    jobs.append((name, cname, True))
        logs = {}

        def run(job):
            pod, container, previous = job
            return job, self.read_log(pod, container, previous, tail_lines, limit_bytes)

        if ThreadPoolExecutor is not None and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=min(LOG_WORKERS, len(jobs))) as pool:
                results = list(pool.map(run, jobs))
        else:
            results = [run(job) for job in jobs]
        for (pod, container, previous), (text, note) in results:
            entry = logs.setdefault(pod, {}).setdefault(container, {"current": None, "previous": None})
            entry["previous" if previous else "current"] = text
            if note:
                entry.setdefault("notes", []).append(("previous: " if previous else "current: ") + note)
        return dict(pods=pods, events=events, logs=logs, license_secret=license_state, **helm)

    # ------------------------------------------------------------ restart

    def delete_pod(self, name, grace_period_seconds=None):
        what = "deleting pod %s in namespace %s" % (name, self.namespace)
        kwargs = {}
        if grace_period_seconds is not None:
            kwargs["grace_period_seconds"] = grace_period_seconds
        try:
            self._call(what, self.core.delete_namespaced_pod, name, self.namespace, **kwargs)
        except ApiException as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise K8sError(describe_api_error(exc, what))
        return True

    def wait_for_replacements(self, deleted, known, wanted, timeout, sleep=1.0, clock=time.monotonic):
        """Poll the pod list until `wanted` pods that were not `known` before are Running with every container
        ready, and none of `deleted` is left. Returns (done, pods)."""
        deadline = clock() + timeout
        while True:
            pods = self.list_pods()
            names = set((p.get("metadata") or {}).get("name") for p in pods)
            fresh = [p for p in pods if (p.get("metadata") or {}).get("name") not in known]
            ready = [p for p in fresh if pod_is_ready(p)]
            if len(ready) >= wanted and not (names & set(deleted)):
                return True, pods
            if clock() >= deadline:
                return False, pods
            time.sleep(max(0.05, min(sleep, deadline - clock())))


def pod_is_ready(pod):
    """Running, not being deleted, and every container ready."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return (status.get("phase") == "Running" and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and bool(statuses) and all(s.get("ready") for s in statuses))
