#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_plan
short_description: Hash a scenario's plan, and refuse to go on when it is not the approved one
version_added: 0.1.0
description:
  - A check-mode rehearsal (C(--check --diff)) prints the plan of a scenario playbook and publishes its hash. An
    approver signs off on that hash; the real run passes it as O(expected_hash), and this module fails before any
    change when the plan the real run computed hashes differently - the deployment changed since the rehearsal, or
    the run was started with other variables.
  - The hash is the SHA-256 of the plan's canonical JSON (keys sorted, no whitespace), so the same plan always
    gives the same hash.
  - Runs on the controller (an action plugin with the same arguments, checks and results), so a scenario's plan
    check costs no module process; arguments that are not plain JSON data, or that fail their checks, go to the
    module itself.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
options:
  plan:
    description:
      - The plan, any JSON value (a list of intended changes, for example).
    type: raw
    required: true
  expected_hash:
    description:
      - The approved plan hash. Empty means no approval is required.
    type: str
    default: ""
seealso:
  - module: alexandria.ee.alex_run_report
'''

EXAMPLES = r'''
- name: Refuse unless the plan is the approved one
  alexandria.ee.alex_plan:
    plan:
      - action: restart
        pods: [alexandria-ee-7c9f-abcde]
    expected_hash: "{{ alex_expected_plan_hash | default('') }}"
  register: plan
'''

RETURN = r'''
plan_hash:
  description: SHA-256 of the plan's canonical JSON.
  returned: always
  type: str
  sample: 3f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0
matches:
  description: Whether O(expected_hash) was given and equals RV(plan_hash); null when none was given.
  returned: always
  type: bool
plan:
  description: The plan as hashed.
  returned: always
  type: raw
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import run_record


def argument_spec():
    return dict(plan=dict(type=arg_checks.data(), required=True),
                expected_hash=dict(type=arg_checks.text(256, "a plan hash"), default=""))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
    )
    result, refusal = run_record.check_plan(module.params["plan"], module.params["expected_hash"])
    if refusal:
        module.fail_json(msg=refusal, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
