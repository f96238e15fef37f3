# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The table privileges each audit operation needs, and a preflight that names what is missing.

The shipped roles (extensions/sql/alexandria_audit_roles.sql) grant exactly these; the modules ask
PostgreSQL (has_table_privilege, for the session's user) before their first change, so a missing
grant stops a destructive run before it starts instead of in the middle of it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    from psycopg2 import sql
except ImportError:  # pg.connect reports it
    sql = None

READER = "alexandria_audit_reader"
RETIRER = "alexandria_audit_retirer"
ROLES_SQL = "extensions/sql/alexandria_audit_roles.sql"

# operation: [(table attribute, privilege)], and the shipped role that grants them all.
# The rotation records ("rotations") count only where the deployment has that table (no key rotated yet: none).
NEEDS = {
    "verify": ([("logs", "SELECT"), ("anchors", "SELECT"), ("rotations", "SELECT")], READER),
    "backup": ([("logs", "SELECT"), ("anchors", "SELECT"), ("quarantine", "SELECT"), ("rotations", "SELECT")],
               READER),
    "retire": ([("logs", "SELECT"), ("anchors", "SELECT"), ("quarantine", "SELECT"), ("rotations", "SELECT"),
                ("logs", "DELETE"), ("quarantine", "INSERT"), ("anchors", "INSERT")], RETIRER),
    "rollback": ([("logs", "SELECT"), ("anchors", "SELECT"), ("quarantine", "SELECT"), ("rotations", "SELECT"),
                  ("logs", "TRUNCATE"), ("anchors", "TRUNCATE"), ("quarantine", "TRUNCATE"), ("rotations", "TRUNCATE"),
                  ("logs", "INSERT"), ("anchors", "INSERT"), ("quarantine", "INSERT"), ("rotations", "INSERT")],
                 RETIRER),
}


def _name(tables, attr):
    return {"logs": tables.table, "anchors": tables.anchor_table, "quarantine": tables.quarantine_table,
            "rotations": tables.rotation_table}[attr]


def missing_privileges(cur, tables, operation):
    """(database user, ["DELETE on public.audit_logs", ...]) the operation needs and the user lacks."""
    needs, _role = NEEDS[operation]
    cur.execute("SELECT current_user")
    user = cur.fetchone()[0]
    missing = []
    for attr, privilege in needs:
        qualified = sql.Identifier(tables.schema, _name(tables, attr)).as_string(cur)
        if attr == "rotations":
            cur.execute("SELECT to_regclass(%s)", (qualified,))
            if cur.fetchone()[0] is None:
                continue
        cur.execute("SELECT has_table_privilege(%s, %s)", (qualified, privilege))
        if not cur.fetchone()[0]:
            missing.append("%s on %s.%s" % (privilege, tables.schema, _name(tables, attr)))
    return user, missing


def refusal(user, missing, operation, what):
    """One sentence: who lacks what, which shipped role grants it, and that nothing changed."""
    role = NEEDS[operation][1]
    return ("the database role %r lacks %s, which %s needs: grant it %s (%s) or use a role that has it; "
            "nothing was changed" % (user, ", ".join(missing), what, role, ROLES_SQL))
