# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The license Secret and the Deployment of a release (docs/contract.md section 1).

Read and replace the license Secret (optimistic concurrency on resourceVersion), patch the Deployment's
restart annotation the way ``kubectl rollout restart`` does, and wait for the rollout like
``kubectl rollout status``. Pods, events and logs are not handled here.

Objects are exchanged as plain dicts (the API's JSON), so this works the same with every version of
the ``kubernetes`` client. Secret values are never put in messages.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import json
import time

from ansible_collections.alexandria.ee.plugins.module_utils import k8s_client
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, describe_api_error

RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
DEFAULT_LICENSE_KEY = "license.blob"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


def license_secret_name(release, override=None):
    return override or "%s-license" % release


def deployment_name(release, override=None):
    return override or release


def secret_value(secret, key):
    """The text stored under key in a Secret dict (base64 in ``data``), or None when absent."""
    if not secret:
        return None
    data = secret.get("data") or {}
    if key in data and data[key] is not None:
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise K8sError("Secret key %r does not hold base64-encoded UTF-8 text" % key)
    string_data = secret.get("stringData") or {}
    return string_data.get(key)


def encode_values(values):
    """{key: text} as Secret ``data`` (base64 of the UTF-8 bytes)."""
    return dict((k, base64.b64encode(v.encode("utf-8")).decode("ascii")) for k, v in values.items())


def restart_stamp(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_annotation(deployment, key):
    """An annotation of a Deployment dict's pod template, or None."""
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(key)


def rollout_state(deployment):
    """(done, detail) for a Deployment dict, with the checks ``kubectl rollout status`` makes.

    Raises K8sError when the rollout exceeded its progress deadline.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    generation = meta.get("generation") or 0
    observed = status.get("observedGeneration") or 0
    if observed < generation:
        return False, "waiting for the Deployment spec update to be observed (generation %d, observed %d)" % (
            generation, observed)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise K8sError("Deployment %s exceeded its progress deadline: %s" % (
                meta.get("name"), cond.get("message") or "no message"))
    wanted = spec.get("replicas")
    wanted = 1 if wanted is None else wanted
    updated = status.get("updatedReplicas") or 0
    replicas = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if updated < wanted:
        return False, "%d of %d new replicas have been updated" % (updated, wanted)
    if replicas > updated:
        return False, "%d old replicas are pending termination" % (replicas - updated)
    if available < updated:
        return False, "%d of %d updated replicas are available" % (available, updated)
    return True, "rolled out: %d of %d replicas updated and available" % (available, wanted)


class Workload:
    """The license Secret and the Deployment of one release, through a kubernetes.client.ApiClient."""

    def __init__(self, api_client, namespace):
        """api_client comes from k8s_client.build_api_client(), which has loaded the library (lazily)."""
        import kubernetes  # pylint: disable=import-outside-toplevel
        self.namespace = namespace
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self._errors = (k8s_client.ApiException,) + tuple(k8s_client.transport_errors())

    def _call(self, what, func, *args, **kwargs):
        """Call func for raw JSON; returns the decoded dict, or None on 404 when missing_ok."""
        missing_ok = kwargs.pop("missing_ok", False)
        kwargs["_preload_content"] = False
        try:
            resp = func(*args, **kwargs)
            body = resp.data
        except self._errors as exc:  # ApiException, or a transport error (urllib3, OSError)
            if missing_ok and isinstance(exc, k8s_client.ApiException) and getattr(exc, "status", None) == 404:
                return None
            raise K8sError(describe_api_error(exc, what))
        try:
            return json.loads(body.decode("utf-8")) if body else {}
        except ValueError:
            raise K8sError("Kubernetes API answered non-JSON while %s" % what)

    def read_secret(self, name):
        """The Secret as a dict, or None when it does not exist."""
        return self._call("reading Secret %s/%s" % (self.namespace, name),
                          self.core.read_namespaced_secret, name, self.namespace, missing_ok=True)

    def write_secret_values(self, name, values, secret=None):
        """Set string values in the Secret (creating it when secret is None); other keys are kept.

        The replace carries the resourceVersion that was read, so a concurrent change fails with 409
        instead of being overwritten. Returns the stored Secret dict.
        """
        if secret is None:
            body = {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": self.namespace},
                "data": encode_values(values),
            }
            return self._call("creating Secret %s/%s" % (self.namespace, name),
                              self.core.create_namespaced_secret, self.namespace, body)
        body = json.loads(json.dumps(secret))
        body.setdefault("apiVersion", "v1")
        body.setdefault("kind", "Secret")
        body.pop("stringData", None)
        data = dict(body.get("data") or {})
        data.update(encode_values(values))
        body["data"] = data
        what = "replacing Secret %s/%s (resourceVersion %s)" % (
            self.namespace, name, (secret.get("metadata") or {}).get("resourceVersion"))
        return self._call(what, self.core.replace_namespaced_secret, name, self.namespace, body)

    def read_deployment(self, name):
        return self._call("reading Deployment %s/%s" % (self.namespace, name),
                          self.apps.read_namespaced_deployment, name, self.namespace)

    def restart_deployment(self, name, stamp=None, annotations=None):
        """Patch the pod template's restart annotation (what ``kubectl rollout restart`` writes), and any other
        pod template annotations given in the same patch."""
        wanted = dict(annotations or {})
        wanted[RESTART_ANNOTATION] = stamp or restart_stamp()
        body = {"spec": {"template": {"metadata": {"annotations": wanted}}}}
        return self._call("patching the restart annotation of Deployment %s/%s" % (self.namespace, name),
                          self.apps.patch_namespaced_deployment, name, self.namespace, body,
                          _content_type=STRATEGIC_MERGE)

    def wait_rollout(self, name, timeout, interval=1.0, clock=time.monotonic, sleep=time.sleep):
        """Poll the Deployment until rollout_state() says done; K8sError on timeout."""
        deadline = clock() + timeout
        while True:
            deployment = self.read_deployment(name)
            done, detail = rollout_state(deployment)
            if done:
                return deployment, detail
            if clock() >= deadline:
                raise K8sError("Deployment %s/%s did not roll out within %ss: %s" % (
                    self.namespace, name, timeout, detail))
            sleep(interval)
