#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_audit_scratch_db
short_description: Restore an audit backup into a scratch database for a restore drill, and drop it again
version_added: 0.1.0
description:
  - The restore drill of runbook scenario 3 (the runbook's backup-restore cross-link). O(state=present) creates the
    scratch database O(name) on the server of the live database (the one O(dsn) names), restores the whole backup
    O(backup) into it with C(pg_restore) in one transaction, and checks the restored audit tables against the
    backup manifest's row counts and fingerprints. The live database is only read.
  - The backup must be a verified one of the live database (M(alexandria.ee.alex_audit_backup)); it is checked
    against its manifest (SHA-256, C(pg_restore --list)) before anything is created.
  - It refuses a O(name) that is the live database, an existing database, and C(postgres) and the templates. After
    the restore it compares the identities (name and cluster system identifier) once more.
  - The scratch database carries a marker comment. O(state=absent) drops O(name) only when it has that marker, so
    it can never drop a database it did not create. A failed restore drops what it created.
  - Connect to the scratch database with the same connection options and O(login_db) set to O(name), for example
    to verify the restored chain with M(alexandria.ee.alex_audit_verify) against the live deployment's checkpoints.
  - The connecting user needs C(CREATEDB). Objects are restored owned by it (C(--no-owner), C(--no-privileges)).
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
      - O(state=present) checks the name and the backup and creates nothing; O(state=absent) drops nothing.
  diff_mode:
    support: none
options:
  name:
    description:
      - The scratch database. 1 to 63 of C([a-z0-9_]), starting with a letter or C(_); never the live database.
    type: str
    required: true
  state:
    description:
      - C(present) creates O(name) and restores O(backup) into it; C(absent) drops O(name) (only a scratch database).
    type: str
    choices: [present, absent]
    default: present
  backup:
    description:
      - With O(state=present), the custom-format dump to restore (its manifest beside it).
    type: path
  manifest:
    description:
      - Path of the backup's JSON manifest. Default is O(backup) followed by C(.manifest.json).
    type: path
  pg_dump_path:
    description:
      - A C(pg_dump) not older than the server; its C(pg_restore) is used. Default is found as
        M(alexandria.ee.alex_audit_backup) does.
    type: path
  pg_restore_path:
    description:
      - The C(pg_restore) to use. Default is the one beside the C(pg_dump) found.
    type: path
requirements:
  - PostgreSQL client programs C(pg_dump) and C(pg_restore) on the host running the module
seealso:
  - module: alexandria.ee.alex_audit_backup
  - module: alexandria.ee.alex_audit_verify
'''

EXAMPLES = r'''
- name: Restore the backup into a scratch database on the live server
  alexandria.ee.alex_audit_scratch_db:
    dsn: "{{ alex_dsn }}"
    name: alex_drill_20260301t120000
    backup: /var/tmp/drill/drill-20260301T120000Z.dump
  register: scratch

- name: Verify the restored chain against the live deployment's checkpoints
  alexandria.ee.alex_audit_verify:
    dsn: "{{ alex_dsn }}"
    login_db: alex_drill_20260301t120000
    namespace: alexandria
    release: alexandria-ee
    checkpoint_dir: /var/lib/alexandria-checkpoints
    mode: full

- name: Drop the scratch database
  alexandria.ee.alex_audit_scratch_db:
    dsn: "{{ alex_dsn }}"
    name: alex_drill_20260301t120000
    state: absent
'''

RETURN = r'''
name:
  description: The scratch database.
  returned: success
  type: str
  sample: alex_drill_20260301t120000
database:
  description: Identity of the live database (name, cluster system identifier, server version).
  returned: success
  type: dict
  sample: {database: alexandria, system_identifier: "7311111111111111111", server_version_num: 160002,
           server_version: "16.2"}
scratch:
  description: Identity of the scratch database after the restore (null in check mode and with O(state=absent)).
  returned: success
  type: dict
  sample: {database: alex_drill_20260301t120000, system_identifier: "7311111111111111111",
           server_version_num: 160002, server_version: "16.2"}
table_rows:
  description: The restored audit tables' rows and fingerprints (equal to the manifest's).
  returned: with O(state=present), when not in check mode
  type: dict
  sample: {public.audit_logs: {rows: 1000, fingerprint: "123"}}
sha256:
  description: SHA-256 of the backup restored.
  returned: with O(state=present)
  type: str
  sample: 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import audit_backup
from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files
from ansible_collections.alexandria.ee.plugins.module_utils import pg
from ansible_collections.alexandria.ee.plugins.module_utils import restore_drill as rd


def restore(module, conn, creds, tables, identity, result):
    p = module.params
    name = p["name"]
    if not p["backup"]:
        module.fail_json(msg="state=present needs backup (the dump to restore)", **result)
    manifest_path = p["manifest"] or p["backup"] + ".manifest.json"
    try:
        manifest = files.read_json(manifest_path)
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg="cannot read the backup manifest %s (%s)" % (manifest_path, exc.__class__.__name__),
                         **result)
    tools = audit_backup.find_tools(identity["server_version_num"] // 10000, p["pg_dump_path"], p["pg_restore_path"])
    problems = audit_backup.backup_problems(manifest, p["backup"], identity, tables, float("inf"), tools=tools)
    if problems:
        module.fail_json(msg="refusing the drill: " + "; ".join(problems), **result)
    result["sha256"] = manifest["sha256"]
    with conn.cursor() as cur:
        marked = rd.database_marker(cur, name)
    conn.rollback()
    if marked is not None:
        module.fail_json(msg="database %r exists already%s: a drill restores only into a database it creates; drop it "
                         "(state=absent) or choose another name" % (
                             name, " (a scratch database kept from an earlier drill)" if marked else ""), **result)
    if module.check_mode:
        result.update(changed=True, msg="would create the scratch database %r and restore %s into it" % (
            name, p["backup"]))
        return
    rd.create_scratch(conn, name)
    result["changed"] = True
    scratch_kwargs = dict(creds.kwargs, dbname=name)
    try:
        conninfo, env = audit_backup.libpq_environment(creds.dsn, scratch_kwargs)
        rd.restore_whole_dump(tools["pg_restore"], p["backup"], conninfo, env, creds.secrets)
        scratch_conn = pg.connect(creds.dsn, scratch_kwargs, creds.secrets, application_name="alexandria.ee drill")
        try:
            with scratch_conn.cursor() as cur:
                scratch = audit_store.database_identity(cur)
                restored = audit_backup.table_fingerprints(cur, tables)
        finally:
            scratch_conn.close()
        if audit_store.same_database(scratch, identity):
            raise rd.DrillError("the scratch database has the live database's identity; stopped")
        if restored != manifest.get("table_rows"):
            raise rd.DrillError("the restored audit tables do not match the backup manifest (%s vs %s)"
                                % (restored, manifest.get("table_rows")))
    except BaseException:
        try:
            rd.drop_scratch(conn, name, identity["server_version_num"])
        except Exception:  # the restore's error is the one to report; state=absent drops it later
            pass
        raise
    result.update(scratch=scratch, table_rows=restored,
                  msg="restored %s (sha256 %s) into the scratch database %r; its audit tables match the manifest"
                  % (p["backup"], manifest["sha256"], name))


def argument_spec():
    spec = am.audit_argument_spec(key=False)
    spec.update(
        name=dict(type=arg_checks.pg_identifier("a database name (1 to 63 bytes, no NUL)"), required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        backup=dict(type=arg_checks.path("a backup dump")),
        manifest=dict(type=arg_checks.path("a backup manifest")),
        pg_dump_path=dict(type=arg_checks.path("the pg_dump program")),
        pg_restore_path=dict(type=arg_checks.path("the pg_restore program")),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    result = dict(changed=False, name=p["name"], database=None, scratch=None)
    if p["state"] == "present" and p["backup"] and not os.path.isfile(p["backup"]):
        module.fail_json(msg="the backup %s does not exist" % p["backup"], **result)
    creds = am.resolve_credentials(module, need_key=False)
    tables = am.tables_from_params(p)
    conn = None
    try:
        conn = creds.connect()
        with conn.cursor() as cur:
            identity = audit_store.database_identity(cur)
            audit_store.check_tables(cur, tables, ("logs", "anchors", "quarantine"))
        conn.rollback()
        result["database"] = identity
        problems = rd.scratch_name_problems(p["name"], identity)
        if problems:
            module.fail_json(msg="; ".join(problems), **result)
        if p["state"] == "present":
            restore(module, conn, creds, tables, identity, result)
        elif module.check_mode:
            with conn.cursor() as cur:
                marked = rd.database_marker(cur, p["name"])
            if marked is False:
                module.fail_json(msg="database %r is not a restore drill's scratch database; it would not be dropped"
                                 % p["name"], **result)
            result.update(changed=marked is True, msg="would drop the scratch database %r" % p["name"]
                          if marked else "no database %r" % p["name"])
        else:
            dropped = rd.drop_scratch(conn, p["name"], identity["server_version_num"])
            result.update(changed=dropped, msg="dropped the scratch database %r" % p["name"] if dropped
                          else "no database %r" % p["name"])
    except am.handled_errors() as exc:
        module.fail_json(msg=am.describe_error(exc, creds.secrets), **result)
    finally:
        if conn is not None:
            conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
