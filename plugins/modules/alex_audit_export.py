#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_export
short_description: Capture a tenant's audit rows as CSV evidence with a manifest that proves it complete
version_added: 0.1.0
description:
  - The runbook's capture step of scenario 3 (audit chain verification failure). Streams the rows of one tenant
    (all of them, a seq range, or exactly the rows of the broken segments) with
    C(COPY (...) TO STDOUT WITH (FORMAT csv, HEADER true)) into O(dest) on the host running the module, ordered
    by seq, all eight columns.
  - The CSV is written to a temporary file beside O(dest) and renamed, mode C(0600). A JSON manifest is written
    beside it (O(manifest)) with the tenant, the selection, the seq ranges queried, the segments (selection
    C(segments)), the row count, the byte count and SHA-256 of the file, the database identity and the time.
  - Rows, segments and the file come from one consistent snapshot.
  - Idempotent. When O(dest) and its manifest already match what the database prints now for the same
    selection, nothing is written and C(changed) is C(false).
  - An existing capture that differs is never overwritten unless O(force=true). It is evidence.
  - M(alexandria.ee.alex_audit_retire) only retires rows a capture manifest holds and that still match it.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.audit.KEY
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
attributes:
  check_mode:
    support: full
    details:
      - Reports the number of rows it would write, and whether it would write at all; writes nothing.
  diff_mode:
    support: none
options:
  tenant:
    description:
      - The tenant id whose rows are captured.
    type: str
    required: true
  selection:
    description:
      - C(segments) captures exactly the rows of the tenant's broken segments (C(hmac_mismatch) and C(link_broken);
        a C(seq_gap) has no rows), as M(alexandria.ee.alex_audit_verify) finds them now. This needs the HMAC key.
      - C(range) captures the rows with O(first_seq) <= seq <= O(last_seq).
      - C(all) captures every row of the tenant (the runbook's example).
    type: str
    choices: [segments, range, all]
    default: segments
  first_seq:
    description:
      - First seq of O(selection=range).
    type: int
  last_seq:
    description:
      - Last seq of O(selection=range).
    type: int
  dest:
    description:
      - Path of the CSV file to write. Its directory must exist.
    type: path
    required: true
  manifest:
    description:
      - Path of the JSON manifest. Default is O(dest) followed by C(.manifest.json).
    type: path
  force:
    description:
      - Overwrite an existing O(dest) or O(manifest) that does not match the database.
    type: bool
    default: false
seealso:
  - module: alexandria.ee.alex_audit_verify
  - module: alexandria.ee.alex_audit_retire
'''

EXAMPLES = r'''
- name: Capture exactly the broken rows of tenant acme before anything else happens
  alexandria.ee.alex_audit_export:
    dsn: "{{ alex_dsn }}"
    hmac_key: "{{ alex_audit_hmac_key }}"
    tenant: acme
    selection: segments
    dest: /var/tmp/incident/audit_chain_affected_acme_20260301.csv
  register: capture

- name: Capture every row of the tenant, as the runbook's example does
  alexandria.ee.alex_audit_export:
    tenant: acme
    selection: all
    dest: /var/tmp/incident/audit_chain_all_acme.csv
'''

RETURN = r'''
tenant:
  description: The tenant id captured.
  returned: always
  type: str
  sample: acme
dest:
  description: Path of the CSV file.
  returned: success
  type: str
  sample: /var/tmp/incident/audit_chain_affected_acme_20260301.csv
manifest:
  description: Path of the manifest.
  returned: success
  type: str
  sample: /var/tmp/incident/audit_chain_affected_acme_20260301.csv.manifest.json
rows:
  description: Rows in the capture (in check mode, rows that would be written).
  returned: success
  type: int
  sample: 3
sha256:
  description: SHA-256 of the CSV file (null in check mode when nothing is written).
  returned: success
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
bytes:
  description: Size of the CSV file (null in check mode when nothing is written).
  returned: success
  type: int
  sample: 1450
seq_ranges:
  description: The seq ranges captured, C([[first, last], ...]).
  returned: success
  type: list
  elements: list
  sample: [[5, 7]]
segments:
  description: The broken segments found (O(selection=segments) only, else null).
  returned: success
  type: list
  elements: dict
  sample: [{first_seq: 5, last_seq: 7, rows: 3, kind: hmac_mismatch}]
capture:
  description: The manifest's content (what was written, or what is there when unchanged; null in check mode).
  returned: success
  type: dict
  sample: {format: alexandria.ee/audit-capture/v1, tenant_id: acme, rows: 3, sha256: 9f86d0...}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store


def _unchanged(cur, tables, tenant, selection, ranges, segments, identity, dest, manifest_path):
    """The existing manifest when dest and manifest match what the database prints now, else None."""
    if not (os.path.isfile(dest) and os.path.isfile(manifest_path)):
        return None
    try:
        old = audit_store.read_json(manifest_path)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(old, dict) or old.get("format") != audit_store.CAPTURE_FORMAT:
        return None
    same = (old.get("tenant_id") == tenant and old.get("selection") == selection
            and old.get("seq_ranges") == ranges and old.get("segments") == segments
            and old.get("tables") == tables.describe() and audit_store.same_database(old.get("database"), identity)
            and old.get("file") == os.path.basename(dest))
    if not same:
        return None
    digest, size = audit_store.sha256_file(dest)
    if digest != old.get("sha256") or size != old.get("bytes"):
        return None
    now_digest, _size, _rows = audit_store.capture_digest(cur, tables, tenant, ranges)
    return old if now_digest == digest else None


def main():
    spec = am.audit_argument_spec()
    spec.update(
        tenant=dict(type="str", required=True),
        selection=dict(type="str", default="segments", choices=["segments", "range", "all"]),
        first_seq=dict(type="int"),
        last_seq=dict(type="int"),
        dest=dict(type="path", required=True),
        manifest=dict(type="path"),
        force=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[("selection", "range", ("first_seq", "last_seq"))])
    p = module.params
    tenant, selection, dest = p["tenant"], p["selection"], p["dest"]
    manifest_path = p["manifest"] or dest + ".manifest.json"
    if selection == "range" and p["last_seq"] < p["first_seq"]:
        module.fail_json(msg="last_seq (%d) is before first_seq (%d)" % (p["last_seq"], p["first_seq"]))
    if not module.check_mode and not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        module.fail_json(msg="the directory of dest %s does not exist" % dest)
    creds = am.resolve_credentials(module, need_key=selection == "segments")
    tables = am.tables_from_params(p)
    workers = am.workers_from_params(module)
    conn = None
    result = dict(changed=False, tenant=tenant, dest=dest, manifest=manifest_path, capture=None, segments=None)
    try:
        conn = creds.connect()
        with audit_store.SnapshotTransaction(conn, export=workers > 1) as txn:
            with conn.cursor() as cur:
                audit_store.check_tables(cur, tables, ("logs",))
                identity = audit_store.database_identity(cur)
            segments = None
            if selection == "segments":
                results, _valid, _invalid = audit_store.scan_tenants(conn, tables, creds.key, [tenant], workers,
                                                                     creds.connect, snapshot=txn.snapshot)
                segments = results[tenant]["segments"]
                ranges = audit_store.row_ranges(segments)
            elif selection == "range":
                ranges = [[p["first_seq"], p["last_seq"]]]
            else:
                with conn.cursor() as cur:
                    bounds = audit_store.tenant_bounds(cur, tables, tenant)
                ranges = [list(bounds)] if bounds else []
            result.update(seq_ranges=ranges, segments=segments)
            with conn.cursor() as cur:
                old = _unchanged(cur, tables, tenant, selection, ranges, segments, identity, dest,
                                 manifest_path)
                if old is not None:
                    result.update(rows=old["rows"], sha256=old["sha256"], bytes=old["bytes"], capture=old,
                                  msg="capture of tenant %r already matches the database (%d rows)"
                                  % (tenant, old["rows"]))
                    module.exit_json(**result)
                rows = audit_store.count_ranges(cur, tables, tenant, ranges)
                if module.check_mode:
                    result.update(changed=True, rows=rows, sha256=None, bytes=None,
                                  msg="would capture %d rows of tenant %r into %s" % (rows, tenant, dest))
                    module.exit_json(**result)
                if (os.path.exists(dest) or os.path.exists(manifest_path)) and not p["force"]:
                    module.fail_json(msg="%s or its manifest exists and does not match what the database holds now "
                                     "for this selection; refusing to overwrite evidence: choose another dest, or "
                                     "force=true" % dest, **result)
                tmp, digest, size, _writes = audit_store.write_capture(
                    cur, tables, tenant, ranges, dest, creds.connect if workers > 1 else None, txn.snapshot)
                os.rename(tmp, dest)
                manifest = audit_store.capture_manifest(tenant, tables, selection, ranges, segments, digest, size,
                                                        rows, identity, dest)
                audit_store.write_json_atomic(manifest_path, manifest)
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets), **result)
    finally:
        if conn is not None:
            conn.close()
    result.update(changed=True, rows=rows, sha256=digest, bytes=size, capture=manifest,
                  msg="captured %d rows of tenant %r into %s (sha256 %s)" % (rows, tenant, dest, digest))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
