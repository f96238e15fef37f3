#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_health
short_description: Name the runbook scenario a deployment is in, and the exact command to run next
version_added: 0.2.0
description:
  - The whole per-deployment step of C(playbooks/health.yml), in one process. It probes the deployment itself,
    with the same code as the read-only modules - S1, C(/ready) and C(/license) (M(alexandria.ee.alex_ready), no
    retry) and, only when C(/ready) does not answer C(200), the triage causes with their evidence
    (M(alexandria.ee.alex_triage)); S2, seats and tenants used and allowed, headroom and expiry
    (M(alexandria.ee.alex_license) C(state=query)) and, with O(admin_token) and O(base_url), the inactive users
    (M(alexandria.ee.alex_seats) C(state=query)); S3, the audit chain (M(alexandria.ee.alex_audit_verify),
    incremental against the checkpoints, which it never advances, else in full up to O(max_rows) rows).
  - The probes run at the same time (threads), so a C(/ready) that takes the API's own deadline to answer overlaps
    the others; triage starts when that answer is known. The Kubernetes requests are the modules' own, no more.
  - It then returns the scenario (C(healthy), C(api_not_serving), C(quota_exceeded), C(license_renewal),
    C(audit_chain_failure) or C(unreachable)), the exact C(ansible-playbook) command to run next with its C(-e)
    values, and one line per probe that could not answer.
  - A probe whose result is passed in (O(ready), O(triage), O(license), O(seats), O(audit), for example registered
    from the module it stands for) is not run again; passing all five only classifies.
  - A probe that failed is a line in RV(problems), never a failure of this module, so one bad deployment never
    stops the report of the others.
  - Precedence when several things are wrong - not serving, then a broken audit chain, then exhausted quota, then a
    license that is invalid or expires within O(license_warn_days).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
  - alexandria.ee.api.SERVICE_PROXY
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.audit.KEY
  - alexandria.ee.audit.CHECKPOINT
options:
  inventory_host:
    description: The inventory host of the deployment (the next command targets it with C(-e alex_target=<host>)).
    type: str
    required: true
  inventories:
    description: Inventory sources the next command passes with C(-i) (C(ansible_inventory_sources)).
    type: list
    elements: str
    default: []
  validate_certs:
    description:
      - Whether to verify TLS certificates, of the API at O(base_url), and of the Kubernetes API server (service
        proxy, triage, Secrets).
      - Unset, the API's certificate is verified and the Kubernetes API server's follows the kubeconfig.
      - Can also be set with E(K8S_AUTH_VERIFY_SSL).
  admin_token:
    description:
      - Bearer token for the admin API, only to count the inactive users (S2). Never logged. Can also be set with
        E(ALEX_ADMIN_TOKEN). Without it, or without O(base_url), that probe is not run.
    type: str
  inactive_days:
    description: Days without activity that make a user inactive (their seats could be freed); from 0 to 36500.
    type: int
    default: 90
  license_secret:
    description: Name of the license Secret triage checks (its keys only). Defaults to C(<release>-license).
    type: str
  license_secret_key:
    description: Key of the license blob in the license Secret.
    type: str
    default: license.blob
  check_audit:
    description: Check the audit chain (S3).
    type: bool
    default: true
  max_rows:
    description:
      - Refuse, before reading any row, an audit check that would read more than this many rows (no checkpoints
        yet, or many new rows); the deployment is then reported with the audit chain not checked. C(0) means no
        bound.
    type: int
    default: 2000000
  ready:
    description: The registered result of M(alexandria.ee.alex_ready); given, C(/ready) is not probed again.
    type: dict
  triage:
    description:
      - The registered result of M(alexandria.ee.alex_triage); given (an empty dict when it was not run), triage
        is not run again.
    type: dict
  license:
    description: The registered result of M(alexandria.ee.alex_license) with C(state=query); given, not run again.
    type: dict
  seats:
    description: The registered result of M(alexandria.ee.alex_seats) with C(state=query); given, not run again.
    type: dict
  audit:
    description: The registered result of M(alexandria.ee.alex_audit_verify); given, not run again.
    type: dict
  license_warn_days:
    description: A valid license expiring within this many days puts the deployment in C(license_renewal).
    type: int
    default: 30
  min_headroom:
    description: Free seats or tenants below this are C(quota_exceeded).
    type: int
    default: 1
notes:
  - Only reads. The audit checkpoints are read, never written, whatever O(mode) says.
  - The audit chain is verified in one process unless O(workers) is set (the probes already run in threads).
  - Needs the C(kubernetes) library only for what reads Kubernetes (triage, a Secret, the service proxy), and
    C(psycopg2) for S3.
seealso:
  - module: alexandria.ee.alex_fleet_report
'''

EXAMPLES = r'''
- name: Which scenario, and what to run next (every probe in this one module run)
  alexandria.ee.alex_health:
    inventory_host: "{{ inventory_hostname }}"
    inventories: "{{ ansible_inventory_sources }}"
    base_url: http://localhost:8080
    kubeconfig: ~/.kube/config
    namespace: alexandria
    release: alexandria-ee
    checkpoint_dir: /var/lib/alexandria/checkpoints
    checkpoint_key: "{{ vault_checkpoint_key }}"
    workers: 1
  register: health_of_host

- name: Classify what other tasks registered (nothing is probed again)
  alexandria.ee.alex_health:
    inventory_host: "{{ inventory_hostname }}"
    ready: "{{ health_ready }}"
    triage: "{{ health_triage | default({}) }}"
    license: "{{ health_license }}"
    seats: "{{ health_seats | default({}) }}"
    audit: "{{ health_audit | default({}) }}"
  register: health_of_host
'''

RETURN = r'''
scenario:
  description: C(healthy), C(api_not_serving), C(quota_exceeded), C(license_renewal), C(audit_chain_failure) or
    C(unreachable).
  returned: success
  type: str
  sample: api_not_serving
next_command:
  description: The exact command to run next (shell-quoted), empty when healthy.
  returned: success
  type: str
  sample: ansible-playbook -i inventory.yml alexandria.ee.api_not_serving -e alex_target=prod-eu -e api_not_serving_allow_restart=true
api:
  description: S1 - C(ready), C(status), C(reason), C(route), C(license_endpoint), C(causes) (code, evidence, next_step).
  returned: success
  type: dict
quota:
  description: S2 - seats and tenants used and allowed, headroom, C(exhausted), C(short), C(expires_in_days), C(expiring).
  returned: success
  type: dict
audit:
  description: S3 - C(verified), C(broken), C(scope), C(tenants), C(rows_read), C(modes), C(checkpoints_missing).
  returned: success
  type: dict
problems:
  description: One line per probe that could not answer.
  returned: success
  type: list
  elements: str
summary:
  description: One line for people.
  returned: success
  type: str
probes:
  description:
    - The result of each probe this run made itself (not of those passed in), by name - C(ready), C(triage),
      C(license), C(seats), C(audit) - with the keys of the module it stands for, or C(failed) and C(msg); the
      evidence behind RV(api), RV(quota) and RV(audit) (triage's pods, events and log tails among them).
  returned: success
  type: dict
'''

import datetime
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks, health_gather, health_logic
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import api_argument_spec, api_route_argument_spec


def argument_spec():
    spec = api_route_argument_spec()
    spec.update(am.audit_argument_spec())
    spec.update(am.checkpoint_argument_spec(update=False))
    spec["admin_token"] = dict(api_argument_spec(admin=True)["admin_token"], required=False)
    spec.update((name, dict(type=arg_checks.data("dict", "a registered module result")))
                for name in health_gather.CHECKS)
    spec.update(
        inventory_host=dict(type=arg_checks.text(255, "an inventory host name"), required=True),
        inventories=dict(type="list", elements=arg_checks.text(arg_checks.MAX_PATH, "an inventory source"),
                         default=[]),
        inactive_days=dict(type=arg_checks.count(0, 36500), default=90),
        license_secret=dict(type=arg_checks.k8s_name(), no_log=False),
        license_secret_key=dict(type=arg_checks.k8s_key(), default="license.blob", no_log=False),
        check_audit=dict(type="bool", default=True),
        max_rows=dict(type=arg_checks.count(0, 10 ** 12), default=2000000),
        license_warn_days=dict(type=arg_checks.count(0, 3650), default=30),
        min_headroom=dict(type=arg_checks.count(0, arg_checks.MAX_COUNT), default=1),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    try:
        password = urlsplit(p["base_url"]).password if p["base_url"] else None
    except ValueError:
        password = None
    if password:
        module.no_log_values.add(password)
    given = dict((name, p[name]) for name in health_gather.CHECKS if p[name] is not None)
    probes, warnings = health_gather.gather(dict(p, workers=p["workers"] or 1), given, module.no_log_values,
                                            module.check_mode)
    for words in warnings:
        module.warn(words)
    found = dict(given, **probes)
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    result = health_logic.classify(p["inventory_host"], p["inventories"], *[found.get(name) or {} for name in (
        "ready", "triage", "license", "seats", "audit")], warn_days=p["license_warn_days"],
        min_headroom=p["min_headroom"], incident_date=today)
    module.exit_json(changed=False, msg=result["summary"], probes=probes, **result)


if __name__ == "__main__":
    main()
