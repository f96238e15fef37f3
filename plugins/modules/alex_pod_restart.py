#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: alex_pod_restart
short_description: Restart the Alexandria EE release's pods and wait for ready replacements
version_added: 0.1.0
description:
  - The remediation of runbook Scenario 1 for a crash-looping or hung orchestrator. Deletes the release's pods
    (those matching C(app.kubernetes.io/instance=<release>), or the ones named in O(pods)) and waits until as
    many replacement pods, created by the Deployment, are C(Running) with every container ready and the
    deleted pods are gone.
  - Only pods of the release can be deleted; naming any other pod fails before anything is deleted.
  - In check mode it lists the pods it would delete and deletes nothing.
  - Before deleting anything it asks the API server (C(SelfSubjectAccessReview), as C(kubectl auth can-i) does)
    whether the credential may delete each pod and list the release's pods; when one is missing it fails
    before any change, naming the verb, resource and namespace and the shipped Role that grants it.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
attributes:
  check_mode:
    support: full
    details:
      - Reports the pods it would delete in RV(deleted), with C(changed=true).
      - A permission the real run would miss is a warning (and in RV(missing_permissions)), not a failure.
  diff_mode:
    support: none
options:
  pods:
    description:
      - Names of the pods to delete. Default - every pod of the release.
    type: list
    elements: str
  wait:
    description:
      - Wait for ready replacements; fail when they are not ready within O(wait_timeout).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the replacements; more than 0, at most 86400.
    type: float
    default: 180
  wait_sleep:
    description:
      - Seconds between two looks at the pods while waiting; more than 0, at most 86400.
    type: float
    default: 1
  grace_period:
    description:
      - C(gracePeriodSeconds) of the deletion; default - the pod's own C(terminationGracePeriodSeconds).
      - From 0 to 86400.
    type: int
  request_timeout:
    description:
      - Seconds each Kubernetes API request may take; more than 0, at most 86400.
    type: float
    default: 10
requirements:
  - kubernetes (the official Python client)
notes:
  - RBAC needed in the namespace - C(list) and C(delete) pods (Role C(alexandria-ee-responder) in
    C(extensions/rbac/); check mode needs only C(list), Role C(alexandria-ee-observer)).
  - The same as C(kubectl delete pod -l app.kubernetes.io/instance=<release>) followed by
    C(kubectl wait --for=condition=Ready) on the new pods.
seealso:
  - module: alexandria.ee.alex_triage
'''

EXAMPLES = r'''
- name: Restart the pod whose orchestrator is crash-looping
  alexandria.ee.alex_pod_restart:
    namespace: alexandria
    release: alexandria-ee
    pods: ["{{ triage.pods[0].name }}"]
    wait_timeout: 180
'''

RETURN = r'''
deleted:
  description: The pods deleted (in check mode, the pods that would be deleted).
  returned: success
  type: list
  elements: str
  sample: ["alexandria-ee-6c9d7f-abcde"]
replacements:
  description: The release's pods that were not deleted and are ready, after waiting.
  returned: when O(wait=true) and not in check mode
  type: list
  elements: str
  sample: ["alexandria-ee-6c9d7f-xkq2p"]
pods:
  description: The release's pods at the end - name, phase, ready.
  returned: success
  type: list
  elements: dict
waited_s:
  description: Seconds spent waiting for the replacements.
  returned: when O(wait=true) and not in check mode
  type: float
  sample: 4.2
missing_permissions:
  description:
    - The permissions the real run needs and the credential lacks, each naming the verb, resource, namespace
      and the shipped Role that grants it. On failure (real run) or in check mode.
  returned: in check mode, and when a real run stops for a missing permission
  type: list
  elements: str
  sample: ['missing Kubernetes permission: delete pods "alexandria-ee-6c9d7f-abcde" in namespace alexandria
           (granted by Role alexandria-ee-responder in extensions/rbac/ in the alexandria.ee collection)']
k8s_requests:
  description: How many Kubernetes API requests were made (the permission checks included).
  returned: always
  type: int
  sample: 5
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks

from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import (
    K8sError,
    build_api_client,
    deployment_argument_spec,
    k8s_auth_argument_spec,
    missing_library_details,
)
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_preflight
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import ReleaseService, pod_is_ready


def _name(pod):
    return (pod.get("metadata") or {}).get("name")


def _brief(pods):
    return [dict(name=_name(p), phase=(p.get("status") or {}).get("phase"), ready=pod_is_ready(p),
                 deleting=bool((p.get("metadata") or {}).get("deletionTimestamp"))) for p in pods]


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(deployment_argument_spec())
    spec.update(
        pods=dict(type="list", elements=arg_checks.k8s_name()),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type=arg_checks.seconds(), default=180.0),
        wait_sleep=dict(type=arg_checks.seconds(), default=1.0),
        grace_period=dict(type=arg_checks.count(0, arg_checks.DAY)),
        request_timeout=dict(type=arg_checks.seconds(), default=10.0),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["pods"] is not None and not params["pods"]:
        module.fail_json(msg="pods is an empty list: name at least one pod, or leave it out for all the release's pods")

    service = None
    try:
        api_client = build_api_client(params)
        service = ReleaseService(api_client, params["namespace"], params["release"],
                                 request_timeout=params["request_timeout"])
        pods = service.require_pods()
        names = [_name(p) for p in pods]
        if params["pods"]:
            strangers = sorted(set(params["pods"]) - set(names))
            if strangers:
                module.fail_json(msg="not pods of release %s in namespace %s (%s): %s" % (
                    params["release"], params["namespace"], service.selector, ", ".join(strangers)),
                    release_pods=names, k8s_requests=service.requests)
            targets = [n for n in names if n in params["pods"]]
        else:
            targets = names
        asked, findings = k8s_preflight.enforce(
            module, api_client, k8s_preflight.pod_restart_needs(params["namespace"], targets, params["wait"]),
            "deleting pods %s" % ", ".join(targets), params["request_timeout"], release_pods=names,
            k8s_requests=service.requests)
        service.requests += asked
        if module.check_mode:
            module.exit_json(changed=True, deleted=targets, pods=_brief(pods), k8s_requests=service.requests,
                             missing_permissions=findings)
        deleted = [n for n in targets if service.delete_pod(n, params["grace_period"])]
        result = dict(changed=bool(deleted), deleted=deleted)
        if params["wait"]:
            start = time.monotonic()
            done, pods = service.wait_for_replacements(targets, names, len(targets), params["wait_timeout"],
                                                       params["wait_sleep"])
            result.update(waited_s=round(time.monotonic() - start, 2), pods=_brief(pods),
                          replacements=[_name(p) for p in pods if _name(p) not in names and pod_is_ready(p)],
                          k8s_requests=service.requests)
            if not done:
                module.fail_json(msg="deleted %s; no ready replacement within %ss: %s" % (
                    ", ".join(deleted) or "nothing", params["wait_timeout"],
                    "; ".join("%s %s ready=%s" % (p["name"], p["phase"], p["ready"]) for p in result["pods"])
                    or "no pods"), **result)
        else:
            result.update(pods=_brief(service.list_pods()), k8s_requests=service.requests)
        module.exit_json(**result)
    except K8sError as exc:
        extra = missing_library_details()
        module.fail_json(msg=str(exc), k8s_requests=service.requests if service else 0, **extra)


if __name__ == "__main__":
    main()
