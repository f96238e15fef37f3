#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_run_report
short_description: Write the run record of a scenario playbook (Markdown and JSON)
version_added: 0.1.0
description:
  - Every scenario playbook ends with this module. It writes one record of the run, with the same shape for every
    scenario - what the run saw (O(observed)), decided (O(decisions)) and did (O(actions)), with times, the causes,
    the scope, the plan and the plan's hash - so the SRE can paste it into the incident ticket.
  - Two files per run in O(dest_dir), named C(<scenario>-<host>-<started_at>.md) and C(.json), written through a
    temporary file and a rename with mode C(0600). A record belongs to one run, so a new run writes new files and
    never rewrites an older record. A run that starts in the same second as an earlier one of the same scenario on
    the same host gets C(-2) (C(-3), ...) after the time.
  - Only what the caller passes is written. The scenario roles pass module results and names, never secrets.
  - With the local connection (every shipped playbook) and no become, the target's filesystem is the controller's,
    so an action plugin writes the record there with the same arguments, checks, function and results, and no
    module process; with another connection or become, or arguments that are not plain JSON data or fail their
    checks, the module itself runs.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module returns the record and the paths it would write, and writes nothing. The scenario
        roles run it with C(check_mode=false) so a rehearsal leaves a record too, marked C(check_mode=true).
  diff_mode:
    support: none
    details:
      - Each run writes new files; there is no earlier version to compare with.
options:
  dest_dir:
    description:
      - Directory for the records. Created (mode C(0700)) when missing.
    type: path
    required: true
  scenario:
    description:
      - The scenario playbook this run belongs to.
    type: str
    required: true
    choices: [api_not_serving, quota_exceeded, license_renewal, audit_chain_failure, audit_chain_rollback,
              audit_chain_watch, backup_restore, key_rotation, upgrade]
  deployment:
    description:
      - Which deployment, for example C(host), C(namespace), C(release).
    type: dict
    default: {}
  rehearsal:
    description:
      - Whether the run was a check-mode rehearsal (pass C(ansible_check_mode)).
    type: bool
    default: false
  result:
    description:
      - The run's outcome in one word or code, for example C(healthy), C(remediated), C(gated), C(failed).
    type: str
    required: true
  started_at:
    description:
      - When the run started, RFC 3339 UTC.
    type: str
    required: true
  causes:
    description:
      - Cause codes or cause dicts (with C(code)) the run found.
    type: list
    elements: raw
    default: []
  scope:
    description:
      - What is affected.
    type: raw
    default: {}
  observed:
    description:
      - What the run saw, each entry a dict (C(time), C(what), anything else) or a string.
    type: list
    elements: raw
    default: []
  decisions:
    description:
      - What it decided and why.
    type: list
    elements: raw
    default: []
  actions:
    description:
      - What it did (or, in a rehearsal, would do).
    type: list
    elements: raw
    default: []
  plan:
    description:
      - The plan of changes the run carries out; its hash is what M(alexandria.ee.alex_plan) checks.
    type: raw
    default: []
  details:
    description:
      - Scenario-specific extras, for example the path of the audit incident report.
    type: dict
    default: {}
seealso:
  - module: alexandria.ee.alex_plan
'''

EXAMPLES = r'''
- name: Leave the run record
  alexandria.ee.alex_run_report:
    dest_dir: "{{ playbook_dir }}/reports"
    scenario: api_not_serving
    deployment:
      host: "{{ inventory_hostname }}"
      namespace: alexandria
      release: alexandria-ee
    rehearsal: "{{ ansible_check_mode }}"
    result: remediated
    started_at: "2026-11-27T03:12:09Z"
    causes: [orchestrator_socket_missing]
    observed:
      - time: "2026-11-27T03:12:10Z"
        what: /ready answered 503
    actions:
      - time: "2026-11-27T03:12:30Z"
        what: restarted pod alexandria-ee-7c9f-abcde
  check_mode: false
'''

RETURN = r'''
record:
  description: The record as written to the JSON file.
  returned: always
  type: dict
  contains:
    format:
      description: C(alexandria.ee/run-record/v1).
      type: str
    plan_hash:
      description: SHA-256 of the plan's canonical JSON.
      type: str
json_path:
  description: Path of the JSON record.
  returned: always
  type: str
markdown_path:
  description: Path of the Markdown record.
  returned: always
  type: str
plan_hash:
  description: SHA-256 of the plan's canonical JSON (also in RV(record.plan_hash)).
  returned: always
  type: str
  sample: 9f2c0e3c1b4e6f7a8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c
'''


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import run_record


def argument_spec():
    return dict(
        dest_dir=dict(type=arg_checks.path("a directory path"), required=True),
        scenario=dict(type="str", required=True, choices=list(run_record.SCENARIOS)),
        deployment=dict(type=arg_checks.data("dict"), default={}),
        rehearsal=dict(type="bool", default=False),
        result=dict(type=arg_checks.text(4096, "a result word"), required=True),
        started_at=dict(type=arg_checks.text(64, "an RFC 3339 time"), required=True),
        causes=dict(type="list", elements=arg_checks.data(), default=[]),
        scope=dict(type=arg_checks.data(), default={}),
        observed=dict(type="list", elements=arg_checks.data(), default=[]),
        decisions=dict(type="list", elements=arg_checks.data(), default=[]),
        actions=dict(type="list", elements=arg_checks.data(), default=[]),
        plan=dict(type=arg_checks.data(), default=[]),
        details=dict(type=arg_checks.data("dict"), default={}),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
    )
    result, error = run_record.report(module.params, module.check_mode)
    if error:
        module.fail_json(msg=error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
