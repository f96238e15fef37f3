#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: alex_helm_release
short_description: Read a Helm release's history from the cluster, without a helm binary
version_added: 0.1.0
description:
  - Reads the history Helm 3 keeps in the release's namespace - one Secret per revision, named
    C(sh.helm.release.v1.<release>.v<revision>), type C(helm.sh/release.v1), labels C(owner=helm) and
    C(name=<release>) - with one list request through the official Kubernetes client (no C(helm) binary).
  - Decodes each Secret's C(release) data (base64 of gzip of JSON, base64-encoded once more by Kubernetes) and
    returns per revision its status, chart, app version, deployed times and description; never the release's
    values or manifest.
  - A Secret that cannot be read (not base64, not gzip, not JSON, missing fields) is one line in RV(problems),
    not a failure. No history Secret at all means the release was not installed by Helm (RV(installed) false).
  - Fails with one message when the Kubernetes API is unreachable, refuses the credentials, or RBAC forbids
    listing Secrets (403).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
options:
  request_timeout:
    description:
      - Seconds the Kubernetes API request may take; more than 0, at most 86400.
    type: float
    default: 10
requirements:
  - kubernetes (the official Python client)
notes:
  - Only reads. RBAC needed in the namespace - C(list) Secrets (a list cannot be pinned to names; the label
    selector only filters what is returned).
seealso:
  - module: alexandria.ee.alex_triage
  - name: Helm storage drivers
    description: Where Helm 3 keeps a release's history.
    link: https://helm.sh/docs/topics/advanced/#storage-backends
'''

EXAMPLES = r'''
- name: Read the release's Helm history
  alexandria.ee.alex_helm_release:
    kubeconfig: ~/.kube/config
    namespace: alexandria
    release: alexandria-ee
  register: helm_release

- name: Show the revision a rollback would return to
  ansible.builtin.debug:
    msg: "{{ helm_release.summary }} -> helm rollback alexandria-ee {{ helm_release.previous.revision }}"
  when: helm_release.previous is not none
'''

RETURN = r'''
installed:
  description: Whether the release has a Helm history Secret at all (false - not a Helm release).
  returned: success
  type: bool
  sample: true
revisions:
  description: The readable revisions, oldest first.
  returned: success
  type: list
  elements: dict
  contains:
    revision:
      description: The revision number (the C(version) of Helm's release).
      type: int
      sample: 2
    status:
      description: Helm's status - C(deployed), C(superseded), C(failed), C(pending-upgrade), C(pending-rollback), ...
      type: str
      sample: deployed
    chart:
      description: C(<chart name>-<chart version>), as C(helm history) prints it.
      type: str
      sample: alexandria-ee-1.5.0
    chart_name:
      description: The chart's name.
      type: str
      sample: alexandria-ee
    chart_version:
      description: The chart's version.
      type: str
      sample: 1.5.0
    app_version:
      description: The chart's appVersion (null when the chart has none).
      type: str
      sample: 1.5.0
    first_deployed:
      description: When the release was first deployed (Helm's time, RFC 3339).
      type: str
      sample: "2026-11-27T09:52:00.123456Z"
    last_deployed:
      description: When this revision was deployed.
      type: str
      sample: "2026-11-28T14:02:10.654321Z"
    description:
      description: Helm's description - C(Install complete), C(Upgrade complete), C(Rollback to 1), ...
      type: str
      sample: Upgrade complete
    secret:
      description: The history Secret the revision was read from.
      type: str
      sample: sh.helm.release.v1.alexandria-ee.v2
current:
  description: The newest revision with status C(deployed), else the newest (same keys as RV(revisions)); null
    without a readable revision.
  returned: success
  type: dict
previous:
  description: The rollback target - the newest revision older than the newest one that was deployed (status
    C(superseded) or C(deployed)); null when there is none.
  returned: success
  type: dict
problems:
  description: One line per history Secret that cannot be read, naming it and what is wrong.
  returned: success
  type: list
  elements: str
  sample: ["Helm history Secret sh.helm.release.v1.alexandria-ee.v2: data.release is not gzip (nor plain JSON):
    starts with bytes 6e6f7420"]
summary:
  description: One line - C(<release> is not a Helm release ...) without history, else the current revision and the
    rollback target.
  returned: success
  type: str
  sample: "alexandria-ee: revision 2 (deployed, chart alexandria-ee-1.5.0, app version 1.5.0, deployed
    2026-11-28T14:02:10.654321Z); rollback target revision 1"
selector:
  description: The label selector of the history Secrets.
  returned: always
  type: str
  sample: owner=helm,name=alexandria-ee
k8s_requests:
  description: How many Kubernetes API requests the module made (1).
  returned: always
  type: int
  sample: 1
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks, helm_history
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import (
    K8sError,
    build_api_client,
    deployment_argument_spec,
    k8s_auth_argument_spec,
    missing_library_details,
)
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import ReleaseService


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(deployment_argument_spec())
    spec.update(request_timeout=dict(type=arg_checks.seconds(), default=10.0))
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    selector = helm_history.selector_for(params["release"])
    service = None
    try:
        service = ReleaseService(build_api_client(params), params["namespace"], params["release"],
                                 request_timeout=params["request_timeout"])
        secrets = service.list_helm_history()
    except K8sError as exc:
        extra = missing_library_details()
        module.fail_json(msg=str(exc), k8s_requests=service.requests if service else 0, selector=selector, **extra)
    found = helm_history.history(secrets)
    del secrets
    for line in found["problems"]:
        module.warn(line)
    module.exit_json(changed=False, summary=helm_history.summary(params["release"], found), selector=selector,
                     k8s_requests=service.requests, **found)


if __name__ == "__main__":
    main()
