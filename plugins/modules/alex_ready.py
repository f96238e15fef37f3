#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: alex_ready
short_description: Probe the Alexandria EE API's /ready and /license endpoints
version_added: 0.1.0
description:
  - Runbook Scenario 1 step 1 and its verification. Sends C(GET /ready) and C(GET /license) to O(base_url) and
    reports whether the API serves, the HTTP status, the reason the API gives for not serving (the 503 body) or
    the connection failure in words, the latency, and whether C(/license) answers valid JSON.
  - Without O(base_url) the requests go through the Kubernetes API server's service proxy with the Kubernetes
    options (C(/api/v1/namespaces/<namespace>/services/<service>:<service_port>/proxy/ready)), so no
    port-forward is needed. A Service with no Ready endpoint (the API pod is not Ready) is a result
    (RV(ready=false), RV(status=503), the words in RV(reason)); a missing Service, RBAC refusing
    C(services/proxy) and refused Kubernetes credentials fail the module with one line each.
  - Connection refused, DNS and TLS failures, timeouts, redirects, non-JSON and oversized (more than 1 MiB)
    bodies are results, not errors. The module fails only when O(wait=true) and the API did not become ready
    within O(wait_timeout).
  - >-
    C(/ready) counts as ready only when it answers C(200) with the API's JSON C({"status": "ready"}).
  - With O(wait=true) it probes every O(wait_sleep) seconds until C(/ready) answers C(200) and C(/license)
    answers valid JSON, for verification after a fix.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
  - alexandria.ee.api.SERVICE_PROXY
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
options:
  validate_certs:
    description:
      - Whether to verify TLS certificates, of the API at O(base_url), or of the Kubernetes API server on the
        service proxy route.
      - Unset, the API's certificate is verified and the Kubernetes API server's follows the kubeconfig.
      - Can also be set with E(K8S_AUTH_VERIFY_SSL).
  retries:
    description:
      - How many times to retry C(/ready) when no HTTP answer came back (connection refused, DNS, TLS, timeout).
        An HTTP answer, even a 503, is never retried. From 0 to 10.
    type: int
    default: 2
  retry_delay:
    description:
      - Seconds before the first retry; each further retry waits twice as long. From 0 to 60.
    type: float
    default: 0.5
  wait:
    description:
      - Block until C(/ready) answers C(200) and C(/license) answers valid JSON; fail after O(wait_timeout).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait when O(wait=true); more than 0, at most 86400.
    type: float
    default: 120
  wait_sleep:
    description:
      - Seconds between probes when O(wait=true); more than 0, at most 86400.
    type: float
    default: 2
notes:
  - Only reads. C(/ready) and C(/license) need no token.
  - Through the service proxy a pod that is not Ready is not reached at all, so the API's own C(/ready) reason is
    not seen; RV(reason) then names the Service and says it has no ready endpoint.
seealso:
  - module: alexandria.ee.alex_triage
'''

EXAMPLES = r'''
- name: Probe the API through a port-forward
  alexandria.ee.alex_ready:
    base_url: http://localhost:8080
  register: probe

- name: Probe the API without a port-forward, through the Kubernetes service proxy
  alexandria.ee.alex_ready:
    kubeconfig: ~/.kube/config
    namespace: alexandria
    release: alexandria-ee
  register: probe

- name: Wait up to two minutes for the API to serve again after a fix
  alexandria.ee.alex_ready:
    base_url: https://alexandria.example.com
    ca_path: /etc/pki/alexandria-ca.pem
    wait: true
    wait_timeout: 120
'''

RETURN = r'''
ready:
  description: >-
    Whether C(/ready) answered C(200) with C({"status": "ready"}).
  returned: always
  type: bool
  sample: false
status:
  description: HTTP status of C(/ready), or null when no HTTP answer came back.
  returned: always
  type: int
  sample: 503
reason:
  description:
    - >-
      Why the API does not serve, null when ready. The C(reason) of the 503 body, the failing checks, the start
      of a non-JSON body, or the transport failure in words (C(connection refused), C(timed out),
      C(DNS failure: the host name does not resolve), C(TLS failure: ...) with the certificate error, C(response body larger than ...)).
  returned: always
  type: str
  sample: "orchestrator.sock: no such file or directory"
checks:
  description: The C(checks) object of the C(/ready) body, when it had one.
  returned: always
  type: dict
  sample: {"orchestrator": "orchestrator.sock: no such file or directory", "license": "ok", "database": "ok"}
latency_ms:
  description: Milliseconds the last C(/ready) request took.
  returned: always
  type: float
  sample: 3.2
license:
  description: The C(/license) answer.
  returned: always
  type: dict
  contains:
    valid_json:
      description: Whether C(/license) answered C(200) with a JSON object.
      type: bool
      sample: true
    status:
      description: HTTP status, or null when no HTTP answer came back (or C(/ready) could not be reached).
      type: int
      sample: 200
    body:
      description: The decoded JSON object (license claims and usage; no secret), or null.
      type: dict
      sample: {"valid": true, "reason": null, "tier": "enterprise", "max_seats": 25, "current_seats": 3}
    error:
      description: Why C(valid_json) is false, or null.
      type: str
      sample: null
attempts:
  description: Requests made to C(/ready) in the last probe (1 plus the retries used).
  returned: always
  type: int
  sample: 1
probes:
  description: Probes made while waiting.
  returned: when O(wait=true)
  type: int
  sample: 4
waited_s:
  description: Seconds spent waiting.
  returned: when O(wait=true)
  type: float
  sample: 6.1
url:
  description:
    - The base URL probed, without any credentials it contained; on the service proxy route the Kubernetes API
      server's URL with the proxy path.
  returned: always
  type: str
  sample: http://localhost:8080
api_route:
  description: How the API was reached, V(base_url) or V(service_proxy) (the Kubernetes API server's service proxy).
  returned: always
  type: str
  sample: service_proxy
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils.api_client import (
    REQUESTS_IMPORT_ERROR,
    ApiClient,
    ApiError,
    api_route_argument_spec,
)
from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks, readiness


def argument_spec():
    spec = api_route_argument_spec()
    spec.update(
        retries=dict(type=arg_checks.count(0, 10), default=2),
        retry_delay=dict(type=arg_checks.seconds(zero=True, maximum=60), default=0.5),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type=arg_checks.seconds(), default=120.0),
        wait_sleep=dict(type=arg_checks.seconds(), default=2.0),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    problem = params["base_url"] and readiness.screen_base_url(params["base_url"], module.no_log_values)
    if problem:
        module.fail_json(msg=problem, url=readiness.safe_url(params["base_url"]))
    try:
        client = ApiClient.from_params(params)
    except ApiError as exc:
        module.fail_json(msg=str(exc), exception=REQUESTS_IMPORT_ERROR)
    try:
        url = readiness.safe_url(client.url())
        if params["wait"]:
            result = readiness.wait_until_ready(client, params["wait_timeout"], params["wait_sleep"],
                                                retries=params["retries"], retry_delay=params["retry_delay"])
        else:
            result = readiness.probe(client, retries=params["retries"], retry_delay=params["retry_delay"])
    except ApiError as exc:  # only fatal ones: the service proxy refused, or no Kubernetes configuration
        module.fail_json(msg=str(exc), api_route=client.route_name)
    result.update(changed=False, url=url, api_route=client.route_name)
    if params["wait"] and not (result["ready"] and result["license"]["valid_json"]):
        why = result["reason"] if not result["ready"] else "/license: %s" % result["license"]["error"]
        module.fail_json(msg="%s did not become ready within %ss: %s" % (url, params["wait_timeout"], why), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
