#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_fleet_report
short_description: Write the fleet health report - every deployment, its scenario and the next command
version_added: 0.2.0
description:
  - The last step of C(playbooks/health.yml), run once for the whole run. Writes one report in O(dest_dir), named
    C(fleet-health-<time>.md) and C(.json), through a temporary file and a rename, mode C(0600) - a table of the
    deployments by state, then one row per deployment (worst first) with its summary and next command, then one
    line per probe that could not answer.
  - Only what the caller passes is written; M(alexandria.ee.alex_health) results hold no secret.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module returns the report and the paths it would write, and writes nothing. The health
        role runs it with C(check_mode=false), so a rehearsal leaves its report too (it changes nothing in a
        deployment).
  diff_mode:
    support: none
    details:
      - Each run writes new files; there is no earlier version to compare with.
options:
  dest_dir:
    description: Directory of the report (created, mode C(0700), when missing).
    type: path
    required: true
  hosts:
    description: Per inventory host, the result of M(alexandria.ee.alex_health).
    type: dict
    required: true
'''

EXAMPLES = r'''
- name: One report for the whole fleet
  alexandria.ee.alex_fleet_report:
    dest_dir: ./alexandria-reports
    hosts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'health_of_host'))) }}"
  run_once: true
'''

RETURN = r'''
report:
  description: The report (C(format), C(generated_at), C(deployments), C(by_scenario), C(hosts)).
  returned: always
  type: dict
json_path:
  description: Path of the JSON report.
  returned: always
  type: str
markdown_path:
  description: Path of the Markdown report.
  returned: always
  type: str
'''

import datetime
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks, files, health_logic

KEYS = ("host", "scenario", "next_command", "api", "quota", "audit", "problems", "summary")


def argument_spec():
    return dict(dest_dir=dict(type=arg_checks.path("a report directory"), required=True),
                hosts=dict(type=arg_checks.data("dict", "alex_health results by host"), required=True))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    summaries = {}
    for host, value in p["hosts"].items():
        if not isinstance(value, dict) or value.get("scenario") not in health_logic.SCENARIOS:
            module.fail_json(msg="hosts[%r] is not an alex_health result (no known scenario)" % host)
        summaries[host] = dict((k, value.get(k)) for k in KEYS)
        summaries[host]["host"] = host
    now = datetime.datetime.now(datetime.timezone.utc)
    report = health_logic.fleet(summaries, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    base = os.path.join(p["dest_dir"], "fleet-health-%s" % now.strftime("%Y%m%dT%H%M%S%fZ"))
    result = dict(changed=not module.check_mode, report=report, json_path=base + ".json", markdown_path=base + ".md")
    if module.check_mode:
        module.exit_json(**result)
    try:
        files.ensure_dir(p["dest_dir"])
        files.write_text_atomic(base + ".md", health_logic.render_markdown(report))
        files.write_json_atomic(base + ".json", report)
    except (OSError, IOError) as exc:
        module.fail_json(msg="cannot write the fleet report in %s: %s; choose a writable dest_dir" % (
            p["dest_dir"], exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
