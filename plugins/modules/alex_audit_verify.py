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
  - After audit key rotations (M(alexandria.ee.alex_audit_key)) each key epoch is verified with its own key, found
    from the tenant's rotation records (C(docs/contract.md) section 4, "Key epochs"), with the keyring of the Secret
    or O(hmac_keyring). Rows of an epoch whose key is not in the keyring are C(unknown_key), an invalid rotation
    record is C(rotation_invalid), and rows signed with a compromised key that no checkpoint taken before the
    compromise vouches for are C(unattested) - none of them is C(hmac_mismatch).
  - With a checkpoint store (O(checkpoint_dir), O(checkpoint_secret)), each tenant is also compared with its last
    checkpoint, kept outside the product's database and signed with O(checkpoint_key). What the chain alone cannot
    show is then reported as segments too - C(truncated) (rows up to the checkpointed seq missing at the tail),
    C(rolled_back) (the row at the checkpointed seq has another row_hmac, for example an older backup restored and
    written to), C(tenant_missing) (a checkpointed tenant has no rows), C(checkpoint_invalid) (a checkpoint with a
    bad signature, of another deployment or tenant, or older than the other store's) - with the probable causes
    C(tail_truncation) and C(restore_rollback).
  - In O(mode=incremental) (the default) a tenant whose checkpointed row and anchors are unchanged is read from its
    checkpoint row on, so the cost follows the new rows. O(update_checkpoints=true) then advances the checkpoints of
    the tenants that verified. A tenant without a checkpoint is read in full and reported in RV(checkpoints.missing).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.audit.KEY
  - alexandria.ee.audit.CHECKPOINT
  - alexandria.ee.audit.CHECKPOINT_UPDATE
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
attributes:
  check_mode:
    support: full
    details:
      - The verification only reads. In check mode O(update_checkpoints) writes nothing and RV(checkpoints.written)
        says which tenants' checkpoints would be written.
  diff_mode:
    support: partial
    details:
      - With O(update_checkpoints), the diff shows each changed tenant's checkpointed seq before and after.
options:
  tenants:
    description:
      - Tenant ids to verify. Default is every tenant with audit rows, and with a checkpoint store also every tenant
        with a checkpoint.
      - A listed tenant without rows is reported with O(tenants) C(rows=0) and a warning.
    type: list
    elements: str
  max_rows:
    description:
      - Refuse, before reading any row, a verification that would read more than this many rows (estimated from
        each tenant's seq range, from its checkpoint on when incremental). C(0) means no bound. The fleet health
        check sets it so that a deployment without checkpoints is never read whole.
    type: int
    default: 0
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

- name: The scheduled watch - incremental, against signed checkpoints, advanced when clean
  alexandria.ee.alex_audit_verify:
    checkpoint_dir: /var/lib/alexandria-checkpoints
    checkpoint_secret: alexandria-audit-checkpoints
    checkpoint_namespace: alexandria-audit
    checkpoint_key: "{{ alex_checkpoint_key }}"
    update_checkpoints: true
  register: audit_watch

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
          C(restore_rollback) (the checkpointed row was replaced), C(tail_truncation) (rows or the tenant missing at
          the tail), C(restore_gap) (rows missing), C(replication_lag) (rows signed but not linking),
          C(checkpoint_invalid), C(rotation_record_invalid), C(unknown_key) or C(compromised_key) (only unattested
          rows).
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
        - Across key epochs also C(unknown_key), C(unattested) and C(rotation_invalid) (at the record's first_seq,
          C(rows) 0).
        - Against a checkpoint also C(truncated) (seqs up to the checkpointed one missing at the tail; C(rows)
          counts them), C(rolled_back) (from the first row written after the checkpointed one up to the checkpointed
          seq), C(tenant_missing) (the checkpointed range; C(rows) is the checkpointed row count) and
          C(checkpoint_invalid) (at the checkpoint's seq, or 0 when unreadable; C(rows) 0).
      type: list
      elements: dict
    mode:
      description: C(incremental) when read from its checkpoint on, otherwise C(full).
      type: str
    rows_read:
      description: Rows this run read for the tenant (the checkpoint row and the rows after it, when incremental).
      type: int
    epochs:
      description:
        - After a key rotation, the tenant's key epochs - C(first_seq), C(last_seq) (null for the current one),
          C(key_id) and its keyring C(status) (C(unknown) when not in the keyring).
      type: list
      elements: dict
    rotation_problems:
      description: Invalid rotation records - C(first_seq), C(new_key_id) and C(problems) (words).
      type: list
      elements: dict
    checkpoint:
      description:
        - With a checkpoint store, the tenant's checkpoint - C(status) (C(ok), C(missing), C(invalid)), C(stores) it
          was found in, C(missing_in), C(problems) (words), C(last_seq), C(last_row_hmac), C(rows), C(checked_at),
          and C(read_in_full_because) when an incremental run read the tenant in full.
      type: dict
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
rows_read:
  description: Rows read from the database, all tenants.
  returned: success
  type: int
  sample: 1001
checkpoints:
  description: With a checkpoint store, what happened to the checkpoints.
  returned: when a checkpoint store is set
  type: dict
  sample: {stores: ["checkpoint directory /var/lib/alexandria-checkpoints/alexandria.alexandria-ee.3f2a9c1d0e4b"],
           missing: [], problems: [], refused: [], written: {dir: [acme]}, check_mode: false}
  contains:
    stores:
      description: The stores read.
      type: list
      elements: str
    missing:
      description: Tenants without a checkpoint in any store (read in full).
      type: list
      elements: str
    problems:
      description: Entries of the stores that belong to no tenant of this deployment (they make RV(verified) false).
      type: list
      elements: str
    refused:
      description: Checkpoints not written because the stored one does not verify or is newer.
      type: list
      elements: str
    written:
      description: Per store kind (C(dir), C(secret)), the tenants whose checkpoint was written (would be, in check mode).
      type: dict
    check_mode:
      description: Whether nothing was written because of check mode.
      type: bool
    witness:
      description: The run record compared as a second witness (O(checkpoint_witness)), or null.
      type: str
elapsed_seconds:
  description: Seconds the verification took.
  returned: success
  type: float
  sample: 1.2
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_verify_run


def argument_spec():
    spec = am.audit_argument_spec()
    spec.update(am.checkpoint_argument_spec())
    spec.update(
        tenants=dict(type="list", elements=arg_checks.text(1024, "a tenant id")),
        key_mismatch_fraction=dict(type=arg_checks.fraction(), default=0.5, no_log=False),
        max_rows=dict(type=arg_checks.count(0, 10 ** 12), default=0),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.exit_json(**audit_verify_run.verify(module))


if __name__ == "__main__":
    main()
