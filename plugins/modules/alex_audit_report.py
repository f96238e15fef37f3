#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_report
short_description: Write the incident report of an audit chain failure (Markdown and JSON)
version_added: 0.1.0
description:
  - The runbook's "File an incident report" step of scenario 3. Writes O(dest) followed by C(.md) for people and
    O(dest) followed by C(.json) for machines.
  - The report holds the tenants and seq ranges affected and the suspected cause inferred from the evidence, with
    its reasoning. A C(seq_gap) points to a restore from an older backup or a delete, a C(hmac_mismatch) to a
    direct database edit, a C(link_broken) to replication lag or a stale writer, and a whole log failing with
    intact links to a key mismatch.
  - It also names each capture file and its SHA-256, the backup and its SHA-256, the compliance sign-off, the
    anchors written, the disposition of the captured rows and the verification afterwards.
  - Built only from the results of M(alexandria.ee.alex_audit_verify), M(alexandria.ee.alex_audit_export),
    M(alexandria.ee.alex_audit_backup) and M(alexandria.ee.alex_audit_retire), never from their arguments, so it
    carries no secret.
  - Idempotent. When the report on disk says the same (apart from the time it was generated) nothing is written.
    Files are written through a temporary file and a rename, mode C(0600).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports whether the report would change; writes nothing.
  diff_mode:
    support: full
    details:
      - Shows the Markdown before and after.
options:
  dest:
    description:
      - Path of the report without extension. Its directory must exist.
    type: path
    required: true
  incident_id:
    description:
      - Identifier of the incident, written in the report.
    type: str
    required: true
  verify:
    description:
      - The registered result of M(alexandria.ee.alex_audit_verify) that determined the scope.
    type: dict
    required: true
  captures:
    description:
      - Registered results of M(alexandria.ee.alex_audit_export), one per tenant (a loop's C(results) works).
    type: list
    elements: dict
    default: []
  backup:
    description:
      - The registered result of M(alexandria.ee.alex_audit_backup).
    type: dict
  retires:
    description:
      - Registered results of M(alexandria.ee.alex_audit_retire), one per tenant (a loop's C(results) works).
    type: list
    elements: dict
    default: []
  verify_after:
    description:
      - The registered result of M(alexandria.ee.alex_audit_verify) after the retirement.
    type: dict
  api_checks:
    description:
      - What the API answered to the audit write after the retirement, per tenant id a list C([http_status, seq]).
    type: dict
  signoff:
    description:
      - The compliance sign-off reference.
    type: str
seealso:
  - module: alexandria.ee.alex_audit_retire
'''

EXAMPLES = r'''
- name: File the incident report
  alexandria.ee.alex_audit_report:
    dest: /var/tmp/incident/incident-report
    incident_id: audit-chain-20260301
    verify: "{{ scope }}"
    captures: "{{ captures.results }}"
    backup: "{{ backup }}"
    retires: "{{ retires.results }}"
    verify_after: "{{ scope_after }}"
    signoff: CR-2026-0042
'''

RETURN = r'''
markdown_path:
  description: Path of the Markdown report.
  returned: always
  type: str
  sample: /var/tmp/incident/incident-report.md
json_path:
  description: Path of the JSON report.
  returned: always
  type: str
  sample: /var/tmp/incident/incident-report.json
report:
  description: The report (the JSON file's content).
  returned: success
  type: dict
  sample: {format: alexandria.ee/audit-incident-report/v1, status: retired, tenants: [{tenant_id: acme}]}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_report
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files


def by_tenant(results):
    out = {}
    for res in results or []:
        if not isinstance(res, dict) or res.get("skipped"):
            continue
        tenant = res.get("tenant", res.get("item"))
        if isinstance(tenant, str):
            out[tenant] = res
    return out


def api_checks(raw):
    out = {}
    for tenant, value in (raw or {}).items():
        if isinstance(value, (list, tuple)):
            value = {"status": value[0] if value else None, "seq": value[1] if len(value) > 1 else None}
        if isinstance(value, dict):
            out[tenant] = {"status": value.get("status"), "seq": value.get("seq")}
    return out


def argument_spec():
    return dict(
        dest=dict(type=arg_checks.path("a report path without extension"), required=True),
        incident_id=dict(type=arg_checks.text(1024, "an incident id"), required=True),
        verify=dict(type=arg_checks.data("dict"), required=True),
        captures=dict(type="list", elements=arg_checks.data("dict"), default=[]),
        backup=dict(type=arg_checks.data("dict")),
        retires=dict(type="list", elements=arg_checks.data("dict"), default=[]),
        verify_after=dict(type=arg_checks.data("dict")),
        api_checks=dict(type=arg_checks.data("dict")),
        signoff=dict(type=arg_checks.text(4096, "a sign-off text")),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
    )
    p = module.params
    json_path = p["dest"] + ".json"
    md_path = p["dest"] + ".md"
    result = dict(changed=False, json_path=json_path, markdown_path=md_path)
    if not os.path.isdir(os.path.dirname(os.path.abspath(p["dest"]))) and not module.check_mode:
        module.fail_json(msg="the directory of dest %s does not exist" % p["dest"], **result)
    verify = p["verify"]
    if "tenants" not in verify or "broken" not in verify:
        module.fail_json(msg="verify must be the registered result of alexandria.ee.alex_audit_verify", **result)
    captures = by_tenant(p["captures"])
    tables = None
    for res in captures.values():
        tables = (res.get("capture") or {}).get("tables") or tables
    report = audit_report.build_report(
        p["incident_id"], verify, captures, p["backup"], by_tenant(p["retires"]), p["verify_after"], api_checks(p["api_checks"]),
        p["signoff"], audit_store.rfc3339(audit_store.utc_now()), tables)
    try:
        old = files.read_json(json_path)
    except (IOError, OSError, ValueError):
        old = None
    markdown = audit_report.render_markdown(report)
    if audit_report.same_report(old, report) and os.path.isfile(md_path):
        result.update(report=old, msg="the incident report %s is up to date" % md_path)
        module.exit_json(**result)
    if module._diff:
        try:
            with open(md_path, "r") as handle:
                before = handle.read()
        except (IOError, OSError):
            before = ""
        result["diff"] = {"before": before, "after": markdown, "before_header": md_path, "after_header": md_path}
    result.update(changed=True, report=report)
    if module.check_mode:
        result["msg"] = "would write the incident report %s" % md_path
        module.exit_json(**result)
    try:
        files.write_json_atomic(json_path, report)
        files.write_text_atomic(md_path, markdown)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write the incident report: %s" % exc, **result)
    result["msg"] = "incident report written to %s and %s" % (md_path, json_path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
