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
  - With O(tenants), captures several tenants in one run, from one snapshot, into the directory O(dest), one file
    per tenant named C(capture-<tenant id made safe>-<sha1 of the id, 10 digits>.csv), each with its manifest.
    Up to O(workers) database sessions copy at the same time (tenants spread over them; a single long range is cut
    in two), and each file holds exactly the bytes of one COPY of its rows.
  - The CSV is written to a temporary file beside O(dest) and renamed, mode C(0600). A JSON manifest is written
    beside it (O(manifest)) with the tenant, the selection, the seq ranges queried, the segments (selection
    C(segments)), the row count, the byte count and SHA-256 of the file, the database identity and the time.
  - Rows, segments and the file come from one consistent snapshot.
  - Idempotent. When O(dest) and its manifest already match what the database prints now for the same
    selection, nothing is written and C(changed) is C(false).
  - An existing capture that differs is never overwritten unless O(force=true). It is evidence. With O(tenants),
    one such capture refuses the whole run before anything is written.
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
      - Exactly one of O(tenant) and O(tenants) is required.
    type: str
  tenants:
    description:
      - Several tenant ids to capture in one run (duplicates are ignored). O(dest) is then a directory.
      - Mutually exclusive with O(tenant) and O(manifest).
    type: list
    elements: str
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
      - Path of the CSV file to write (O(tenant)); its directory must exist.
      - With O(tenants), the existing directory the captures are written to.
    type: path
    required: true
  manifest:
    description:
      - Path of the JSON manifest. Default is the CSV file's path followed by C(.manifest.json).
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

- name: Capture the broken rows of every broken tenant at once, from one snapshot
  alexandria.ee.alex_audit_export:
    tenants: "{{ scope.broken }}"
    dest: /var/tmp/incident
  register: captures
- name: Capture every row of the tenant, as the runbook's example does
  alexandria.ee.alex_audit_export:
    tenant: acme
    selection: all
    dest: /var/tmp/incident/audit_chain_all_acme.csv
'''

RETURN = r'''
tenant:
  description: The tenant id captured.
  returned: with O(tenant)
  type: str
  sample: acme
tenants:
  description: The tenant ids captured, in order, without duplicates.
  returned: with O(tenants)
  type: list
  elements: str
  sample: [acme, globex]
dest:
  description: Path of the CSV file (O(tenant)) or of the directory (O(tenants)).
  returned: success
  type: str
  sample: /var/tmp/incident/audit_chain_affected_acme_20260301.csv
captures:
  description:
    - One entry per tenant, in the order of O(tenants), with the keys a single capture returns at the top level
      (C(tenant), C(dest), C(manifest), C(rows), C(sha256), C(bytes), C(seq_ranges), C(segments), C(capture),
      C(msg)) and its own C(changed).
  returned: with O(tenants)
  type: list
  elements: dict
  sample: [{tenant: acme, dest: /var/tmp/incident/capture-acme-2c5e3f1a9b.csv, rows: 3, changed: true}]
manifest:
  description: Path of the manifest.
  returned: with O(tenant)
  type: str
  sample: /var/tmp/incident/audit_chain_affected_acme_20260301.csv.manifest.json
rows:
  description: Rows in the capture (in check mode, rows that would be written); with O(tenants), the total.
  returned: success
  type: int
  sample: 3
sha256:
  description: SHA-256 of the CSV file (null in check mode when nothing is written).
  returned: with O(tenant)
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
bytes:
  description: Size of the CSV file (null in check mode when nothing is written).
  returned: with O(tenant)
  type: int
  sample: 1450
seq_ranges:
  description: The seq ranges captured, C([[first, last], ...]).
  returned: with O(tenant)
  type: list
  elements: list
  sample: [[5, 7]]
segments:
  description: The broken segments found (O(selection=segments) only, else null).
  returned: with O(tenant)
  type: list
  elements: dict
  sample: [{first_seq: 5, last_seq: 7, rows: 3, kind: hmac_mismatch}]
capture:
  description: The manifest's content (what was written, or what is there when unchanged; null in check mode).
  returned: with O(tenant)
  type: dict
  sample: {format: alexandria.ee/audit-capture/v1, tenant_id: acme, rows: 3, sha256: 9f86d0...}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_capture
from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files


def _unchanged(cur, tables, tenant, selection, ranges, segments, identity, dest, manifest_path):
    """The existing manifest when dest and manifest match what the database prints now, else None."""
    if not (os.path.isfile(dest) and os.path.isfile(manifest_path)):
        return None
    try:
        old = files.read_json(manifest_path)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(old, dict) or old.get("format") != audit_ranges.CAPTURE_FORMAT:
        return None
    same = (old.get("tenant_id") == tenant and old.get("selection") == selection
            and old.get("seq_ranges") == ranges and old.get("segments") == segments
            and old.get("tables") == tables.describe() and audit_store.same_database(old.get("database"), identity)
            and old.get("file") == os.path.basename(dest))
    if not same:
        return None
    digest, size = audit_ranges.sha256_file(dest)
    if digest != old.get("sha256") or size != old.get("bytes"):
        return None
    now_digest, _size, _rows = audit_ranges.capture_digest(cur, tables, tenant, ranges)
    return old if now_digest == digest else None


def _plan(module, cur, tables, tenant, ranges, segments, identity, dest, manifest_path):
    """One capture's entry: unchanged (old manifest), or to write."""
    p = module.params
    entry = dict(changed=False, tenant=tenant, dest=dest, manifest=manifest_path, capture=None,
                 seq_ranges=ranges, segments=segments)
    old = _unchanged(cur, tables, tenant, p["selection"], ranges, segments, identity, dest, manifest_path)
    if old is not None:
        entry.update(rows=old["rows"], sha256=old["sha256"], bytes=old["bytes"], capture=old,
                     msg="capture of tenant %r already matches the database (%d rows)" % (tenant, old["rows"]))
        return entry
    entry.update(changed=True)
    if module.check_mode:
        rows = audit_ranges.count_ranges(cur, tables, tenant, ranges)
        entry.update(rows=rows, sha256=None, bytes=None,
                     msg="would capture %d rows of tenant %r into %s" % (rows, tenant, dest))
    return entry


def _tenant_ranges(module, conn, tables, creds, tenants, workers, snapshot):
    """{tenant: (ranges, segments)} for the selection, all in the current snapshot."""
    p = module.params
    found = {}
    if p["selection"] == "segments":
        results, _valid, _invalid = audit_store.scan_tenants(conn, tables, creds.key, tenants, workers,
                                                             creds.connect, snapshot=snapshot)
        for tenant in tenants:
            segments = results[tenant]["segments"]
            found[tenant] = (audit_ranges.row_ranges(segments), segments)
    elif p["selection"] == "range":
        for tenant in tenants:
            found[tenant] = ([[p["first_seq"], p["last_seq"]]], None)
    else:
        with conn.cursor() as cur:
            for tenant in tenants:
                bounds = audit_store.tenant_bounds(cur, tables, tenant)
                found[tenant] = ([list(bounds)] if bounds else [], None)
    return found


def argument_spec():
    spec = am.audit_argument_spec()
    spec.update(
        tenant=dict(type=arg_checks.text(1024, "a tenant id")),
        tenants=dict(type="list", elements=arg_checks.text(1024, "a tenant id")),
        selection=dict(type="str", default="segments", choices=["segments", "range", "all"]),
        first_seq=dict(type=arg_checks.count(0, arg_checks.MAX_SEQ)),
        last_seq=dict(type=arg_checks.count(0, arg_checks.MAX_SEQ)),
        dest=dict(type=arg_checks.path("a file or directory path"), required=True),
        manifest=dict(type=arg_checks.path("a manifest file path")),
        force=dict(type="bool", default=False),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("selection", "range", ("first_seq", "last_seq"))],
                           required_one_of=[("tenant", "tenants")],
                           mutually_exclusive=[("tenant", "tenants"), ("tenants", "manifest")])
    p = module.params
    selection, dest = p["selection"], p["dest"]
    many = p["tenants"] is not None
    tenants = list(dict.fromkeys(p["tenants"])) if many else [p["tenant"]]
    if many and not tenants:
        module.fail_json(msg="tenants is empty: name at least one tenant id")
    if selection == "range" and p["last_seq"] < p["first_seq"]:
        module.fail_json(msg="last_seq (%d) is before first_seq (%d)" % (p["last_seq"], p["first_seq"]))
    directory = dest if many else os.path.dirname(os.path.abspath(dest))
    if not module.check_mode and not os.path.isdir(directory):
        module.fail_json(msg="%s %s does not exist: create it first"
                         % ("the directory dest" if many else "the directory of dest", directory))
    if many:
        paths = dict((t, os.path.join(dest, audit_capture.capture_file_name(t))) for t in tenants)
        manifests = dict((t, paths[t] + ".manifest.json") for t in tenants)
    else:
        paths = {tenants[0]: dest}
        manifests = {tenants[0]: p["manifest"] or dest + ".manifest.json"}
    creds = am.resolve_credentials(module, need_key=selection == "segments")
    tables = am.tables_from_params(p)
    workers = am.workers_from_params(module)
    conn = None
    result = dict(changed=False)
    if many:
        result.update(tenants=tenants, dest=dest, captures=[])
    else:
        result.update(tenant=tenants[0], dest=dest, manifest=manifests[tenants[0]], capture=None, segments=None)
    try:
        conn = creds.connect()
        with audit_store.SnapshotTransaction(conn, export=workers > 1) as txn:
            with conn.cursor() as cur:
                audit_store.check_tables(cur, tables, ("logs",))
                identity = audit_store.database_identity(cur)
            found = _tenant_ranges(module, conn, tables, creds, tenants, workers, txn.snapshot)
            with conn.cursor() as cur:
                entries = [_plan(module, cur, tables, t, found[t][0], found[t][1], identity, paths[t], manifests[t])
                           for t in tenants]
                todo = [e for e in entries if e["changed"] and not module.check_mode]
                clash = [e["dest"] for e in todo if os.path.exists(e["dest"]) or os.path.exists(e["manifest"])]
                if clash and not p["force"]:
                    shaped = _shape(result, entries, many)
                    shaped.update(changed=False, msg="%s or its manifest exists and does not match what the database "
                                  "holds now for this selection; refusing to overwrite evidence: choose another dest, "
                                  "or force=true" % ", ".join(clash))
                    module.fail_json(**shaped)
                written = audit_capture.write_captures(cur, tables, [(e["tenant"], e["seq_ranges"], e["dest"])
                                                                     for e in todo],
                                                       creds.connect if workers > 1 else None, txn.snapshot,
                                                       sessions=workers)
            for entry, (tmp, digest, size, rows) in zip(todo, written):
                os.rename(tmp, entry["dest"])
                manifest = audit_ranges.capture_manifest(entry["tenant"], tables, selection, entry["seq_ranges"],
                                                         entry["segments"], digest, size, rows, identity,
                                                         entry["dest"])
                files.write_json_atomic(entry["manifest"], manifest)
                entry.update(rows=rows, sha256=digest, bytes=size, capture=manifest,
                             msg="captured %d rows of tenant %r into %s (sha256 %s)"
                             % (rows, entry["tenant"], entry["dest"], digest))
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets), **result)
    finally:
        if conn is not None:
            conn.close()
    module.exit_json(**_shape(result, entries, many))


def _shape(result, entries, many):
    """The module result: one capture's keys at the top (tenant), or the list (tenants)."""
    out = dict(result)
    out["changed"] = any(e["changed"] for e in entries)
    if many:
        out["captures"] = entries
        out["rows"] = sum(e.get("rows") or 0 for e in entries)
        out["msg"] = "; ".join(e["msg"] for e in entries if "msg" in e)
    else:
        entry = dict(entries[0])
        entry.pop("changed")
        out.update(entry)
    return out


if __name__ == "__main__":
    main()
