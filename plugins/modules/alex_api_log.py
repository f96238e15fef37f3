#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: alex_api_log
short_description: Read the audit chain events the Alexandria EE API logged
version_added: 0.1.0
description:
  - The log checks of runbook scenario 3. Pre-check - "check API logs for C(audit chain broken) or
    C(HMAC mismatch) messages". Verification - "monitor the api logs for C(audit chain anchor reset)
    confirmation".
  - Reads the log of container O(container) of every pod of the release (C(app.kubernetes.io/instance=<release>))
    and returns the audit events in it, as the contract's log lines state them. These are C(HMAC mismatch),
    C(audit chain broken), C(audit chain anchor reset) and C(audit chain anchor invalid), each with its
    tenant (read back from the JSON string, so any tenant id matches exactly) and its seq range or resume seq.
  - With O(expect), it reads again every O(wait_sleep) seconds until each expected event has been logged, for
    at most O(wait_timeout) seconds. RV(missing) lists what was not logged. The module does not fail on missing
    events; assert on RV(found).
  - Read-only. The same as C(kubectl logs -l app.kubernetes.io/instance=<release> -c api --since=...).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
options:
  container:
    description:
      - The container whose log is read.
    type: str
    default: api
  since:
    description:
      - Only lines logged at or after this time (RFC 3339, for example C(2026-11-27T09:52:00Z)) count.
      - The Kubernetes API is asked for the lines of the last seconds since then (plus O(clock_skew)). Lines that
        carry their own time stamp are then filtered on it.
    type: str
  clock_skew:
    description:
      - Seconds added to the window asked from the Kubernetes API, for clocks of the controller and the cluster
        that differ. From 0 to 86400.
    type: int
    default: 60
  expect:
    description:
      - Events that must have been logged, each a O(expect[].kind) and a O(expect[].tenant).
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: The event kind.
        type: str
        required: true
        choices: [hmac_mismatch, chain_broken, anchor_reset, anchor_invalid]
      tenant:
        description: The tenant id.
        type: str
        required: true
  wait_timeout:
    description:
      - Seconds to wait for the O(expect) events; from 0 to 86400.
    type: float
    default: 30
  wait_sleep:
    description:
      - Seconds between two reads while waiting; more than 0, at most 86400.
    type: float
    default: 1
  previous:
    description:
      - Read the previous container's log too, where a container has restarted.
    type: bool
    default: false
  tail_lines:
    description:
      - Lines read at most per container log; from 1 to 10000000.
    type: int
    default: 10000
  limit_bytes:
    description:
      - Bytes read at most per container log; from 1 to 1073741824.
    type: int
    default: 8388608
  request_timeout:
    description:
      - Seconds each Kubernetes API request may take; more than 0, at most 86400.
    type: float
    default: 10
requirements:
  - kubernetes (the official Python client)
notes:
  - RBAC needed in the namespace - C(list) pods and C(get) C(pods/log).
seealso:
  - module: alexandria.ee.alex_audit_verify
  - module: alexandria.ee.alex_audit_retire
'''

EXAMPLES = r'''
- name: Pre-check - what the API logged about the audit chain since the alert fired
  alexandria.ee.alex_api_log:
    namespace: alexandria
    release: alexandria-ee
    since: "2026-11-27T09:00:00Z"
  register: api_audit_log

- name: Verification - the API confirms the anchor reset of every retired tenant
  alexandria.ee.alex_api_log:
    since: "{{ retire_started }}"
    expect:
      - {kind: anchor_reset, tenant: acme}
      - {kind: anchor_reset, tenant: globex}
    wait_timeout: 60
  register: anchor_log

- name: Gate - every anchor reset was confirmed
  ansible.builtin.assert:
    that: anchor_log.found
    fail_msg: "No 'audit chain anchor reset' in the API log for {{ anchor_log.missing | map(attribute='tenant') | list }}"
'''

RETURN = r'''
events:
  description:
    - The audit events logged (since O(since)), oldest first per log, with their time (UTC, null for a line
      without one), level, pod and the whole line.
    - Keys, where the line has them - C(kind), C(tenant), C(first_seq), C(last_seq), C(rows), C(segment_kind),
      C(probable_cause), C(resume_seq), C(retired_first_seq), C(retired_last_seq), C(signoff), C(note).
  returned: success
  type: list
  elements: dict
  sample:
    - kind: anchor_reset
      tenant: acme
      resume_seq: 121
      note: writes resume
      time: "2026-11-27T09:54:00.123000Z"
      level: INFO
      pod: alexandria-ee-6d4f9c7b8-x2kqp
      line: '2026-11-27T09:54:00.123Z INFO audit chain anchor reset: tenant="acme" resume_seq=121: writes resume'
found:
  description: Whether every O(expect) event was logged (true when O(expect) is empty).
  returned: success
  type: bool
  sample: true
missing:
  description: The O(expect) events that were not logged.
  returned: success
  type: list
  elements: dict
  sample: [{kind: anchor_reset, tenant: globex}]
pods:
  description: The pods whose logs were read.
  returned: success
  type: list
  elements: str
  sample: [alexandria-ee-6d4f9c7b8-x2kqp]
waited_s:
  description: Seconds spent waiting for O(expect) events.
  returned: success
  type: float
  sample: 1.02
k8s_requests:
  description: Kubernetes API requests made.
  returned: always
  type: int
  sample: 2
'''

import datetime
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import api_log, arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import (
    K8sError,
    build_api_client,
    deployment_argument_spec,
    k8s_auth_argument_spec,
    missing_library_details,
)
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import ReleaseService


def _read_events(service, params, since):
    """(events of every pod's log, pod names)."""
    since_seconds = None
    if since is not None:
        age = (datetime.datetime.now(api_log.UTC) - since).total_seconds()
        since_seconds = max(1, int(age) + 1 + params["clock_skew"])
    events = []
    names = []
    for pod in service.require_pods():
        name = (pod.get("metadata") or {}).get("name")
        names.append(name)
        texts = []
        if params["previous"]:
            text, _reason = service.read_log(name, params["container"], previous=True,
                                             tail_lines=params["tail_lines"], limit_bytes=params["limit_bytes"])
            texts.append(text)
        text, _reason = service.read_log(name, params["container"], tail_lines=params["tail_lines"],
                                         limit_bytes=params["limit_bytes"], since_seconds=since_seconds)
        texts.append(text)
        for text in texts:
            for event in api_log.audit_events(text or "", since):
                event["pod"] = name
                events.append(event)
    return events, names


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(deployment_argument_spec())
    spec.update(
        container=dict(type=arg_checks.k8s_name(label=True), default="api"),
        since=dict(type=arg_checks.text(64, "an RFC 3339 time")),
        clock_skew=dict(type=arg_checks.count(0, arg_checks.DAY), default=60),
        # Checked as records, not suboptions: see arg_checks.record.
        expect=dict(type="list", default=[], elements=arg_checks.record(
            dict(kind=arg_checks.choice(list(api_log.EVENT_KINDS), "an event kind"),
                 tenant=arg_checks.text(1024, "a tenant id")),
            "a mapping with kind and tenant")),
        wait_timeout=dict(type=arg_checks.seconds(zero=True), default=30.0),
        wait_sleep=dict(type=arg_checks.seconds(), default=1.0),
        previous=dict(type="bool", default=False),
        tail_lines=dict(type=arg_checks.count(1, 10 ** 7), default=10000),
        limit_bytes=dict(type=arg_checks.count(1, 2 ** 30), default=8 * 1024 * 1024),
        request_timeout=dict(type=arg_checks.seconds(), default=10.0),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    since = None
    if params["since"]:
        try:
            since = api_log.parse_time(params["since"])
        except ValueError:
            module.fail_json(msg="since %r is not an RFC 3339 time such as 2026-11-27T09:52:00Z" % params["since"])

    service = None
    try:
        service = ReleaseService(build_api_client(params), params["namespace"], params["release"],
                                 request_timeout=params["request_timeout"])
        start = time.monotonic()
        while True:
            events, pods = _read_events(service, params, since)
            missing = api_log.missing_events(events, params["expect"])
            if not missing or time.monotonic() - start + params["wait_sleep"] > params["wait_timeout"]:
                break
            time.sleep(params["wait_sleep"])
        words = "; ".join("%s of tenant %r" % (m["kind"], m["tenant"]) for m in missing)
        module.exit_json(changed=False, events=events, found=not missing, missing=missing, pods=pods,
                         waited_s=round(time.monotonic() - start, 2), k8s_requests=service.requests,
                         msg=("%d audit event(s) in the %s log of %d pod(s)" % (len(events), params["container"],
                                                                                len(pods)))
                         + ("; not logged: %s" % words if missing else ""))
    except K8sError as exc:
        extra = missing_library_details()
        module.fail_json(msg=str(exc), k8s_requests=service.requests if service else 0, **extra)


if __name__ == "__main__":
    main()
