#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_backup
short_description: Take, verify and restore the PostgreSQL backup that guards an audit chain retirement
version_added: 0.1.0
description:
  - O(state=present) takes the runbook's "Postgres backup taken immediately before the operation" of scenario 3,
    a C(pg_dump --format=custom) of the whole database, on a snapshot the module exported so that the row count
    and fingerprint it records for each audit table describe exactly the dumped rows.
  - The dump is written to a temporary file beside O(dest) and renamed (mode C(0600)) only after it was read
    back. C(pg_restore --list) must show the archive header and a C(TABLE DATA) entry for every audit table.
    An exit code alone is never trusted.
  - A JSON manifest beside it records the SHA-256 and size of the file, the database identity, the time, the
    C(pg_dump) used and the audit tables' row counts and fingerprints.
    M(alexandria.ee.alex_audit_retire) requires such a manifest for the same database, younger than its
    C(max_backup_age).
  - O(state=restored) is the runbook's Rollback. It checks the file against its manifest and reads it back, then
    replaces the rows of the audit tables the backup holds (the three, and the key rotation records where the
    deployment has them) with the dump's in one transaction. Audit writers wait on the
    table lock, they do not fail. The restored rows must match the manifest's counts and fingerprints before it
    commits; otherwise nothing changes. Rows written after the backup are lost, as the runbook says.
  - C(pg_dump) refuses a server newer than itself. Without O(pg_dump_path) the module looks in C(PATH),
    C(/usr/lib/postgresql/*/bin), C(/usr/pgsql-*/bin), Homebrew's and the C(pgserver) Python package's
    C(pginstall/bin), and takes the closest major version not older than the server's.
    The database password reaches the client programs only through their environment, never their arguments.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.postgres
  - alexandria.ee.audit
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
attributes:
  check_mode:
    support: full
    details:
      - O(state=present) reports the C(pg_dump) it would use and writes nothing.
      - O(state=restored) verifies the backup and reports whether the tables differ from it; changes nothing.
  diff_mode:
    support: none
options:
  state:
    description:
      - C(present) takes a new backup into O(dest); C(restored) restores the audit tables from the backup in O(dest).
    type: str
    choices: [present, restored]
    default: present
  dest:
    description:
      - Path of the custom-format dump. Its directory must exist.
    type: path
    required: true
  manifest:
    description:
      - Path of the JSON manifest. Default is O(dest) followed by C(.manifest.json).
    type: path
  force:
    description:
      - With O(state=present), replace an existing O(dest). Without it an existing backup is never overwritten.
    type: bool
    default: false
  pg_dump_path:
    description:
      - The C(pg_dump) to use; must not be older than the server. Default is found as described above.
    type: path
  pg_restore_path:
    description:
      - The C(pg_restore) to use. Default is the one beside the C(pg_dump) used.
    type: path
  lock_timeout:
    description:
      - With O(state=restored), how long to wait for the audit tables' lock (PostgreSQL interval text).
    type: str
    default: 30s
  live_tenants:
    description:
      - With O(state=restored), the RV(alexandria.ee.alex_audit_verify#module:tenants) of a verification of the live
        database (with a checkpoint store, each tenant's checkpoint). The module then also reads the dump's audit rows
        and returns RV(tenants) - what restoring this backup would lose is computed from both (the rollback's loss
        check). Also in check mode; reads only.
    type: dict
  dump_scope:
    description:
      - With O(state=present), what C(pg_dump) dumps - the whole V(database), or only the three V(audit_tables)
        (what the retirement and the rollback touch, and all that the shipped role C(alexandria_audit_reader) may
        read; C(extensions/sql/alexandria_audit_roles.sql)).
    type: str
    default: database
    choices: [database, audit_tables]
notes:
  - Before anything else the module checks that the database role has the table privileges the operation needs
    (C(SELECT) on the audit tables to back up; C(SELECT), C(TRUNCATE) and C(INSERT) on all three to restore) and
    names the missing ones and the shipped role that grants them; in check mode that is a warning.
requirements:
  - PostgreSQL client programs C(pg_dump) and C(pg_restore) on the host running the module
seealso:
  - module: alexandria.ee.alex_audit_retire
'''

EXAMPLES = r'''
- name: Back up the database right before the retirement
  alexandria.ee.alex_audit_backup:
    dsn: "{{ alex_dsn }}"
    dest: /var/tmp/incident/pre-retire-20260301T1200Z.dump
  register: backup

- name: Roll back - restore the audit tables from the pre-operation backup
  alexandria.ee.alex_audit_backup:
    dsn: "{{ alex_dsn }}"
    state: restored
    dest: /var/tmp/incident/pre-retire-20260301T1200Z.dump
'''

RETURN = r'''
dest:
  description: Path of the dump.
  returned: success
  type: str
  sample: /var/tmp/incident/pre-retire-20260301T1200Z.dump
manifest:
  description: Path of the manifest.
  returned: success
  type: str
  sample: /var/tmp/incident/pre-retire-20260301T1200Z.dump.manifest.json
sha256:
  description: SHA-256 of the dump (null in check mode for O(state=present)).
  returned: success
  type: str
  sample: 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
backup:
  description: The manifest's content (null in check mode for O(state=present)).
  returned: success
  type: dict
  sample: {format: alexandria.ee/audit-backup/v1, sha256: 3a7bd3..., created_at: "2026-03-01T12:00:00Z",
           table_rows: {public.audit_logs: {rows: 1000, fingerprint: "123"}}}
tools:
  description: The C(pg_dump) and C(pg_restore) used, with the major version.
  returned: success
  type: dict
  sample: {pg_dump: /usr/lib/postgresql/16/bin/pg_dump, pg_restore: /usr/lib/postgresql/16/bin/pg_restore,
           major: 16, version: "pg_dump (PostgreSQL) 16.2"}
tenants:
  description:
    - With O(live_tenants), per tenant of the backup or of the checkpoints, the backup's tip (C(last_seq), C(rows))
      and its C(segments) against the checkpoints (C(truncated), C(rolled_back) at the checkpointed seq,
      C(tenant_missing)).
  returned: with O(state=restored) and O(live_tenants)
  type: dict
  sample: {acme: {last_seq: 480, rows: 480, segments: [{first_seq: 481, last_seq: 500, rows: 20, kind: truncated}]}}
table_rows:
  description: With O(state=restored), the audit tables' rows now (after the restore, or as they are).
  returned: success
  type: dict
  sample: {public.audit_logs: {rows: 1000, fingerprint: "123"}}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import audit_backup
from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files
from ansible_collections.alexandria.ee.plugins.module_utils import pg_grants
from ansible_collections.alexandria.ee.plugins.module_utils import restore_drill


def present(module, conn, creds, tables, tools, result):
    dest = result["dest"]
    if module.check_mode:
        result.update(changed=True, msg="would dump the database into %s with %s" % (dest, tools["pg_dump"]))
        return result
    if (os.path.exists(dest) or os.path.exists(result["manifest"])) and not module.params["force"]:
        module.fail_json(msg="%s or its manifest exists; a backup is never overwritten: choose another dest or "
                         "force=true" % dest, **result)
    tmp, manifest = audit_backup.take_backup(conn, tables, creds.dsn, creds.kwargs, dest, tools, creds.secrets,
                                             only_audit_tables=module.params["dump_scope"] == "audit_tables")
    os.rename(tmp, dest)
    files.write_json_atomic(result["manifest"], manifest)
    result.update(changed=True, sha256=manifest["sha256"], backup=manifest,
                  msg="backup of database %r written to %s (sha256 %s), verified with pg_restore --list"
                  % (manifest["database"]["database"], dest, manifest["sha256"]))
    return result


def restored(module, conn, creds, tables, tools, result):
    dest = result["dest"]
    try:
        manifest = files.read_json(result["manifest"])
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg="cannot read the backup manifest %s (%s)" % (result["manifest"], exc.__class__.__name__),
                         **result)
    with conn.cursor() as cur:
        identity = audit_store.database_identity(cur)
        current = audit_backup.table_fingerprints(cur, tables)
    conn.rollback()
    problems = audit_backup.backup_problems(manifest, dest, identity, tables, float("inf"), tools=tools)
    if problems:
        module.fail_json(msg="refusing to restore: " + "; ".join(problems), **result)
    result.update(sha256=manifest["sha256"], backup=manifest, table_rows=current)
    live = module.params["live_tenants"]
    if live is not None:
        at_seqs = dict((t, cp["last_seq"]) for t, cp in ((t, restore_drill.checkpoint_of(r)) for t, r in live.items())
                       if cp)
        tips = restore_drill.dump_tips(tools["pg_restore"], dest, tables, at_seqs, creds.secrets)
        result["tenants"] = restore_drill.backup_findings(tips, live)
    if current == manifest.get("table_rows"):
        result.update(msg="the audit tables already hold exactly the backup's rows")
        return result
    if module.check_mode:
        result.update(changed=True, msg="would restore the audit tables from %s" % dest)
        return result
    done = audit_backup.restore_audit_tables(conn, tables, manifest, dest, tools, creds.secrets,
                                             module.params["lock_timeout"])
    result.update(changed=True, table_rows=done["table_rows"],
                  msg="restored the audit tables from %s (sha256 %s); rows written after the backup are gone"
                  % (dest, manifest["sha256"]))
    return result


def argument_spec():
    spec = am.audit_argument_spec(key=False)
    spec.update(
        state=dict(type="str", default="present", choices=["present", "restored"]),
        dest=dict(type=arg_checks.path("a backup file path"), required=True),
        manifest=dict(type=arg_checks.path("a manifest file path")),
        force=dict(type="bool", default=False),
        pg_dump_path=dict(type=arg_checks.path("the pg_dump program")),
        pg_restore_path=dict(type=arg_checks.path("the pg_restore program")),
        lock_timeout=dict(type=arg_checks.text(64, "a PostgreSQL duration such as 30s"), default="30s"),
        dump_scope=dict(type="str", default="database", choices=["database", "audit_tables"]),
        live_tenants=dict(type=arg_checks.data("dict", "the live verification's tenants")),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    dest = p["dest"]
    result = dict(changed=False, dest=dest, manifest=p["manifest"] or dest + ".manifest.json", sha256=None,
                  backup=None, tools=None)
    if not (module.check_mode and p["state"] == "present") and not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        module.fail_json(msg="the directory of dest %s does not exist" % dest, **result)
    creds = am.resolve_credentials(module, need_key=False)
    tables = am.tables_from_params(p)
    conn = None
    try:
        conn = creds.connect()
        with conn.cursor() as cur:
            identity = audit_store.database_identity(cur)
            audit_store.check_tables(cur, tables, ("logs", "anchors", "quarantine"))
            operation = "backup" if p["state"] == "present" else "rollback"
            user, lacking = pg_grants.missing_privileges(cur, tables, operation)
        conn.rollback()
        if lacking:
            words = pg_grants.refusal(user, lacking, operation, "backing up the audit tables"
                                      if operation == "backup" else "restoring the audit tables")
            if not module.check_mode:
                module.fail_json(msg=words, **result)
            module.warn("a real run would refuse: " + words)
        tools = audit_backup.find_tools(identity["server_version_num"] // 10000, p["pg_dump_path"],
                                        p["pg_restore_path"])
        result["tools"] = tools
        if p["state"] == "present":
            present(module, conn, creds, tables, tools, result)
        else:
            restored(module, conn, creds, tables, tools, result)
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets), **result)
    finally:
        if conn is not None:
            conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
