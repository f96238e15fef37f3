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
  - The classification step of C(playbooks/health.yml). It takes what the read-only modules returned for one
    deployment - M(alexandria.ee.alex_ready), M(alexandria.ee.alex_triage), M(alexandria.ee.alex_license)
    (C(state=query)), M(alexandria.ee.alex_seats) (C(state=query)) and M(alexandria.ee.alex_audit_verify) - and
    returns the scenario (C(healthy), C(api_not_serving), C(quota_exceeded), C(license_renewal),
    C(audit_chain_failure) or C(unreachable)), the exact C(ansible-playbook) command to run next with its C(-e)
    values, and one line per probe that could not answer.
  - A probe that failed (registered with C(failed_when=false)) is a line in RV(problems), never a failure of this
    module, so one bad deployment never stops the report of the others.
  - Precedence when several things are wrong - not serving, then a broken audit chain, then exhausted quota, then a
    license that is invalid or expires within O(license_warn_days).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
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
  ready:
    description: The registered result of M(alexandria.ee.alex_ready).
    type: dict
    default: {}
  triage:
    description: The registered result of M(alexandria.ee.alex_triage) (empty or skipped when the API was ready).
    type: dict
    default: {}
  license:
    description: The registered result of M(alexandria.ee.alex_license) with C(state=query).
    type: dict
    default: {}
  seats:
    description: The registered result of M(alexandria.ee.alex_seats) with C(state=query) (empty without a token).
    type: dict
    default: {}
  audit:
    description: The registered result of M(alexandria.ee.alex_audit_verify) (empty or skipped when not checked).
    type: dict
    default: {}
  license_warn_days:
    description: A valid license expiring within this many days puts the deployment in C(license_renewal).
    type: int
    default: 30
  min_headroom:
    description: Free seats or tenants below this are C(quota_exceeded).
    type: int
    default: 1
seealso:
  - module: alexandria.ee.alex_fleet_report
'''

EXAMPLES = r'''
- name: Which scenario, and what to run next
  alexandria.ee.alex_health:
    inventory_host: "{{ inventory_hostname }}"
    inventories: "{{ ansible_inventory_sources }}"
    ready: "{{ health_ready }}"
    triage: "{{ health_triage }}"
    license: "{{ health_license }}"
    seats: "{{ health_seats }}"
    audit: "{{ health_audit }}"
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
'''

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks, health_logic


def argument_spec():
    results = dict((name, dict(type=arg_checks.data("dict", "a registered module result"), default={}))
                   for name in ("ready", "triage", "license", "seats", "audit"))
    results.update(
        inventory_host=dict(type=arg_checks.text(255, "an inventory host name"), required=True),
        inventories=dict(type="list", elements=arg_checks.text(arg_checks.MAX_PATH, "an inventory source"),
                         default=[]),
        license_warn_days=dict(type=arg_checks.count(0, 3650), default=30),
        min_headroom=dict(type=arg_checks.count(0, arg_checks.MAX_COUNT), default=1),
    )
    return results


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    result = health_logic.classify(p["inventory_host"], p["inventories"], p["ready"], p["triage"], p["license"], p["seats"],
                                   p["audit"], p["license_warn_days"], p["min_headroom"], today)
    module.exit_json(changed=False, msg=result["summary"], **result)


if __name__ == "__main__":
    main()
