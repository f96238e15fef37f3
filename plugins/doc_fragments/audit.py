# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Matches audit_argument_spec() in plugins/module_utils/audit_module.py (besides the postgres,
    # k8s_auth and k8s_auth.DEPLOYMENT fragments it also includes).
    DOCUMENTATION = r'''
options:
  secret_name:
    description:
      - Name of the release's main Secret, read when O(dsn) (and O(login_host), O(login_db)) or the HMAC key is not
        given. Defaults to the release name O(release).
    type: str
  dsn_secret_key:
    description:
      - Key of the database DSN in the main Secret.
    type: str
    default: database-dsn
  schema:
    description:
      - Schema of the audit tables. Quoted as an identifier.
    type: str
    default: public
  table:
    description:
      - Name of the audit rows table. Quoted as an identifier.
    type: str
    default: audit_logs
  anchor_table:
    description:
      - Name of the chain anchors table. Quoted as an identifier.
    type: str
    default: audit_chain_anchors
  quarantine_table:
    description:
      - Name of the table retired rows are moved to. Quoted as an identifier.
    type: str
    default: audit_quarantine
  rotation_table:
    description:
      - Name of the table of key rotation records (C(docs/contract.md) section 4, "Key epochs"). Quoted as an
        identifier. A deployment without this table has never rotated its audit key.
    type: str
    default: audit_key_rotations
notes:
  - The DSN (and the HMAC key) come from the options or from the release's main Secret; the collection reads the
    Secret with the C(kubernetes) Python library and does not depend on C(kubernetes.core). Values read from the
    Secret are masked in all output.
'''

    # Matches audit_argument_spec(key=True): the HMAC key and the verification processes.
    KEY = r'''
options:
  hmac_key:
    description:
      - The audit HMAC key, used as the UTF-8 bytes of this string. Never logged.
      - Can also be set with E(ALEX_AUDIT_HMAC_KEY).
      - When neither this option nor the environment variable is set, or both are empty, the key is read from the
        release's main Secret (O(secret_name), key O(hmac_secret_key)) with the Kubernetes options, and used as the
        raw bytes stored there.
    type: str
  hmac_secret_key:
    description:
      - Key of the audit HMAC key in the main Secret, the key of the rows written before any rotation.
    type: str
    default: audit-hmac-key
  hmac_keyring:
    description:
      - The audit keyring (JSON of C(docs/contract.md) section 4, "Key epochs"), every key with its id and status.
        Each key epoch is verified with its own key. Never logged.
      - When neither this nor O(hmac_key) is given, the keyring is read from the release's main Secret (key
        O(hmac_keyring_secret_key)); a Secret without a keyring means the single key O(hmac_secret_key).
    type: str
  hmac_keyring_secret_key:
    description:
      - Key of the audit keyring in the main Secret.
    type: str
    default: audit-hmac-keyring
  workers:
    description:
      - Processes that verify chunks of the chain at the same time, all reading one exported snapshot.
      - Defaults to the number of CPUs of the host running the module, at most 4. Small chains (under
        20000 rows) are verified in one process whatever this says.
      - From 1 to 64.
    type: int
'''

    # Matches checkpoint_argument_spec(update=False) in plugins/module_utils/audit_module.py: the stores, read only
    # (with CHECKPOINT_UPDATE, checkpoint_argument_spec()).
    CHECKPOINT = r'''
options:
  checkpoint_dir:
    description:
      - Directory on the controller holding the checkpoints, one file per deployment and tenant (mode C(0600),
        replaced atomically). The directory must exist. See C(docs/contract.md) section 4, "Checkpoints".
    type: path
  checkpoint_secret:
    description:
      - Name of a Kubernetes Secret holding the checkpoints, one data key per deployment and tenant, in
        O(checkpoint_namespace). Read and written with the Kubernetes options. With O(checkpoint_dir) as well,
        each store is the other's witness.
    type: str
  checkpoint_namespace:
    description:
      - Namespace of O(checkpoint_secret). Required with it, and must not be the product's O(namespace).
    type: str
  checkpoint_key:
    description:
      - The key checkpoints are signed with (HMAC-SHA256), the UTF-8 bytes of this string, at least 32 bytes (for
        example 64 hex digits). Not the audit HMAC key. Never logged.
      - Can also be set with E(ALEX_CHECKPOINT_KEY). Required when a checkpoint store is set.
    type: str
  mode:
    description:
      - V(incremental) reads only the rows from each tenant's checkpoint on (the checkpointed row included); a
        tenant without a usable checkpoint, or whose checkpointed row or anchors changed, is read in full.
      - V(full) reads every row, and still compares each tenant with its checkpoint.
      - Without a checkpoint store every tenant is read in full.
    type: str
    default: incremental
    choices: [full, incremental]
  checkpoint_witness:
    description:
      - Run records (JSON) of earlier runs of the watch playbook (scenario C(audit_chain_watch)) of this deployment.
        The newest real run's C(details.checkpoints) is a second witness - a store holding an older checkpoint than it
        saw, or none at all, is reported as C(checkpoint_invalid). Check-mode records and other deployments' are
        ignored; a record that cannot be read is a warning.
    type: list
    elements: path
    default: []
'''

    # With CHECKPOINT, matches checkpoint_argument_spec() in plugins/module_utils/audit_module.py: the update.
    CHECKPOINT_UPDATE = r'''
options:
  update_checkpoints:
    description:
      - After the verification, write a new checkpoint for every tenant that verified (never in check mode). A
        checkpoint never moves backwards. Needs a checkpoint store and O(checkpoint_key).
    type: bool
    default: false
'''
