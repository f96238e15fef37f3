#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_verify
short_description: Verify the Alexandria EE audit chain and report the exact scope of any damage
version_added: 0.1.0
description:
  - Verifies the HMAC chain of the audit log of one tenant, a list of tenants or all tenants, as
    C(docs/contract.md) section 4 defines it, honouring the anchors earlier retirements wrote.
  - This is the runbook's "Determine scope" step of scenario 3 (audit chain verification failure). Every
    unverifiable seq is reported in segments C({first_seq, last_seq, rows, kind}); adjacent bad seqs of one kind
    form one segment.
  - Rows are streamed with C(COPY ... TO STDOUT) and checked 512 at a time, so memory stays flat whatever the
    chain's length; large chains are cut into seq ranges verified by several processes that read one exported
    snapshot, so the answer is consistent while the API keeps writing.
  - When every row of a tenant, or more than O(key_mismatch_fraction) of them, fails its HMAC while the links
    hold, the probable cause is C(key_mismatch). The rows were written with another key, they are not tampered.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.audit.KEY
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
options:
  tenants:
    description:
      - Tenant ids to verify. Default is every tenant with audit rows.
      - A listed tenant without rows is reported with O(tenants) C(rows=0) and a warning.
    type: list
    elements: str
  key_mismatch_fraction:
    description:
      - Fraction of a tenant's rows (of at least 2) failing their HMAC, with intact links, above which the probable
        cause is C(key_mismatch) rather than tampering. Every row failing is always C(key_mismatch).
    type: float
    default: 0.5
seealso:
  - module: alexandria.ee.alex_audit_export
  - module: alexandria.ee.alex_audit_retire
'''

EXAMPLES = r'''
- name: Determine the scope of an audit chain failure (all tenants)
  alexandria.ee.alex_audit_verify:
    dsn: "{{ alex_dsn }}"
    hmac_key: "{{ alex_audit_hmac_key }}"
  register: audit_scope

- name: One tenant, credentials from the release's Secret through the kubeconfig
  alexandria.ee.alex_audit_verify:
    namespace: alexandria
    release: alexandria-ee
    tenants: [acme]

- name: Fail when anything is broken
  ansible.builtin.assert:
    that: audit_scope.verified
    fail_msg: "{{ audit_scope.msg }}"
'''

RETURN = r'''
verified:
  description: Whether every verified tenant's chain verifies.
  returned: success
  type: bool
  sample: false
broken:
  description: Tenant ids whose chain does not verify.
  returned: success
  type: list
  elements: str
  sample: [acme]
tenants:
  description: Per tenant id, the verification result.
  returned: success
  type: dict
  sample:
    acme:
      rows: 1000
      valid_rows: 997
      verified: false
      probable_cause: direct_db_edit
      first_seq: 1
      last_seq: 1000
      invalid_anchors: []
      segments:
        - {first_seq: 5, last_seq: 7, rows: 3, kind: hmac_mismatch}
  contains:
    rows:
      description: Rows present.
      type: int
    valid_rows:
      description: Rows whose HMAC and link verify.
      type: int
    verified:
      description: Whether the tenant has no segment.
      type: bool
    probable_cause:
      description:
        - C(null) when verified; otherwise C(key_mismatch), C(direct_db_edit) (rows fail their HMAC),
          C(restore_gap) (rows missing) or C(replication_lag) (rows signed but not linking).
      type: str
    first_seq:
      description: Lowest seq present (null without rows).
      type: int
    last_seq:
      description: Highest seq present (null without rows).
      type: int
    invalid_anchors:
      description: resume_seq of anchors whose anchor_hmac does not verify (they are ignored).
      type: list
      elements: int
    segments:
      description:
        - Unverifiable seqs, in seq order. C(kind) is C(hmac_mismatch) (the row's own HMAC is wrong),
          C(link_broken) (its prev_hmac is not the previous row's row_hmac) or C(seq_gap) (seqs missing; C(rows)
          counts the missing seqs).
      type: list
      elements: dict
key_mismatch:
  description: Tenant ids whose probable cause is C(key_mismatch).
  returned: success
  type: list
  elements: str
  sample: []
scope:
  description: One line per broken tenant naming its segments, for people.
  returned: success
  type: list
  elements: str
  sample: ["tenant 'acme': hmac_mismatch seq 5-7 (3 rows); probable cause direct_db_edit"]
database:
  description: Identity of the database verified (name, cluster system identifier when readable, server version).
  returned: success
  type: dict
  sample: {database: alexandria, system_identifier: "7311111111111111111", server_version_num: 160002,
           server_version: "16.2"}
processes:
  description: Processes that verified (1 for small chains, up to O(workers)).
  returned: success
  type: int
  sample: 2
elapsed_seconds:
  description: Seconds the verification took.
  returned: success
  type: float
  sample: 1.2
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store


def argument_spec():
    spec = am.audit_argument_spec()
    spec.update(
        tenants=dict(type="list", elements=arg_checks.text(1024, "a tenant id")),
        key_mismatch_fraction=dict(type=arg_checks.fraction(), default=0.5, no_log=False),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    fraction = module.params["key_mismatch_fraction"]
    creds = am.resolve_credentials(module)
    tables = am.tables_from_params(module.params)
    workers = am.workers_from_params(module)
    tenants = module.params["tenants"]
    started = time.monotonic()
    conn = None
    try:
        conn = creds.connect()
        stats = {}
        with audit_store.SnapshotTransaction(conn, export=workers > 1) as txn:
            results, _valid, invalid = audit_store.scan_tenants(
                conn, tables, creds.key, tenants, workers, creds.connect, key_mismatch_fraction=fraction,
                snapshot=txn.snapshot, stats=stats)
            with conn.cursor() as cur:
                identity = audit_store.database_identity(cur)
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets))
    finally:
        if conn is not None:
            conn.close()
    public = dict((t, audit_store.public_result(r)) for t, r in results.items())
    broken = sorted(t for t, r in public.items() if not r["verified"])
    mismatch = sorted(t for t, r in public.items() if r["probable_cause"] == "key_mismatch")
    for tenant_id in sorted(t for t, r in public.items() if r["rows"] == 0):
        module.warn("tenant %r has no audit rows" % tenant_id)
    for anchor in invalid:
        module.warn("anchor of tenant %r at resume_seq %d does not verify and is ignored"
                    % (anchor["tenant_id"], anchor["resume_seq"]))
    for tenant_id in mismatch:
        module.warn(audit_store.key_mismatch_words(tenant_id, results[tenant_id]))
    scope = am.scope_words(public)
    if broken:
        msg = "audit chain broken: " + " | ".join(scope)
    else:
        msg = "audit chain verified: %d tenant(s), %d rows" % (len(public), sum(r["rows"] for r in public.values()))
    module.exit_json(changed=False, verified=not broken, broken=broken, tenants=public, key_mismatch=mismatch,
                     scope=scope, database=identity, processes=stats.get("processes", 1), elapsed_seconds=round(time.monotonic() - started, 3), msg=msg)


if __name__ == "__main__":
    main()
