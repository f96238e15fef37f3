"""The shipped PostgreSQL roles (extensions/sql/alexandria_audit_roles.sql) on a real server: each module runs under
a login role that has only them, and a missing privilege stops a destructive run before its first change."""
import json
import pathlib
import secrets

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.alexandria.ee.plugins.module_utils import pg_grants
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_export
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_retire
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

import audit_helpers as h

ROLES_SQL = pathlib.Path(h.REPO) / "extensions" / "sql" / "alexandria_audit_roles.sql"


def apply_roles(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(ROLES_SQL.read_text())
        cur.execute(ROLES_SQL.read_text())  # idempotent
    conn.close()


@pytest.fixture
def login(pg_dsn):
    """A function making a login role IN the given group roles; the DSN to connect as it. Dropped afterwards."""
    made = []

    def make(*groups):
        apply_roles(pg_dsn)  # the tables exist by now
        name = "alex_t_%s" % secrets.token_hex(4)
        password = secrets.token_hex(12)
        conn = psycopg2.connect(pg_dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s NOSUPERUSER").format(sql.Identifier(name)),
                        (password,))
            for group in groups:
                cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name)))
        conn.close()
        made.append(name)
        params = psycopg2.extensions.parse_dsn(pg_dsn)
        params.update(user=name, password=password)
        return " ".join("%s='%s'" % (k, str(v).replace("\\", "\\\\").replace("'", "\\'")) for k, v in params.items())

    yield make
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in made:
            cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    conn.close()


def broken_chain(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 60) + h.rows_for("clean", 10))
    h.tamper(conn, "acme", [20, 21])
    return conn


def test_roles_are_not_superusers_and_own_nothing(pg_dsn):
    broken_chain(pg_dsn)
    apply_roles(pg_dsn)
    conn = h.connect(pg_dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT rolname, rolsuper, rolcanlogin, rolcreatedb, rolcreaterole FROM pg_roles "
                    "WHERE rolname IN ('alexandria_audit_reader', 'alexandria_audit_retirer') ORDER BY 1")
        assert cur.fetchall() == [("alexandria_audit_reader", False, False, False, False),
                                  ("alexandria_audit_retirer", False, False, False, False)]
        cur.execute("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                    "WHERE r.rolname LIKE 'alexandria_audit_%'")
        assert cur.fetchone()[0] == 0
        # Exactly the privileges the preflight asks for, no more (UPDATE nowhere).
        for role, operations in (("alexandria_audit_reader", ("verify", "backup")),
                                 ("alexandria_audit_retirer", ("verify", "backup", "retire", "rollback"))):
            wanted = set()
            for operation in operations:
                wanted |= set(pg_grants.NEEDS[operation][0])
            for attr, name in (("logs", "audit_logs"), ("anchors", "audit_chain_anchors"),
                               ("quarantine", "audit_quarantine"), ("rotations", "audit_key_rotations")):
                for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                    cur.execute("SELECT has_table_privilege(%s, %s, %s)", (role, "public." + name, privilege))
                    assert cur.fetchone()[0] == ((attr, privilege) in wanted), (role, name, privilege)
    conn.rollback()


def test_reader_verifies_exports_and_backs_up(pg_dsn, login, tmp_path):
    conn = broken_chain(pg_dsn)
    reader = login("alexandria_audit_reader")
    res = h.run_module(alex_audit_verify, dict(dsn=reader, hmac_key=h.KEY))
    assert not res.get("failed"), res["msg"]
    assert res["broken"] == ["acme"]
    exp = h.run_module(alex_audit_export, dict(dsn=reader, hmac_key=h.KEY, tenant="acme", dest=str(tmp_path / "c.csv")))
    assert not exp.get("failed") and exp["changed"], exp["msg"]
    backup = h.run_module(alex_audit_backup, dict(dsn=reader, dest=str(tmp_path / "b.dump"), dump_scope="audit_tables"))
    assert not backup.get("failed") and backup["changed"], backup["msg"]
    assert backup["backup"]["dump_scope"] == "audit_tables"
    del conn


def test_retire_under_the_reader_stops_before_any_change(pg_dsn, login, tmp_path):
    conn = broken_chain(pg_dsn)
    reader = login("alexandria_audit_reader")
    before, versions = h.table_state(conn), h.row_versions(conn)
    res = h.run_module(alex_audit_retire, dict(dsn=reader, hmac_key=h.KEY, tenant="acme", compliance_signoff="CR-1",
                                               capture=str(tmp_path / "none.csv"), backup=str(tmp_path / "none.dump")))
    assert res["failed"]
    assert res["msg"].startswith("refusing to retire: the database role 'alex_t_")
    assert "lacks DELETE on public.audit_logs, INSERT on public.audit_quarantine, INSERT on " \
           "public.audit_chain_anchors" in res["msg"]
    assert "alexandria_audit_retirer" in res["msg"] and "nothing was changed" in res["msg"]
    assert "Traceback" not in json.dumps(res)
    assert h.table_state(conn) == before and h.row_versions(conn) == versions
    rehearsal = h.run_module(alex_audit_retire, dict(dsn=reader, hmac_key=h.KEY, tenant="acme"), check_mode=True)
    assert any("a real run would refuse: the database role" in w for w in rehearsal["warnings"])


def test_retirer_retires_and_rolls_back_with_exactly_its_grants(pg_dsn, login, tmp_path):
    conn = broken_chain(pg_dsn)
    retirer = login("alexandria_audit_retirer")
    capture = h.run_module(alex_audit_export, dict(dsn=retirer, hmac_key=h.KEY, tenant="acme",
                                                   dest=str(tmp_path / "cap.csv")))
    backup = h.run_module(alex_audit_backup, dict(dsn=retirer, dest=str(tmp_path / "pre.dump"),
                                                  dump_scope="audit_tables"))
    assert not backup.get("failed"), backup["msg"]
    broken = h.table_state(conn)
    res = h.run_module(alex_audit_retire, dict(dsn=retirer, hmac_key=h.KEY, tenant="acme", compliance_signoff="CR-9",
                                               capture=capture["dest"], backup=backup["dest"]))
    assert res["changed"] and res["moved"] == 2, res["msg"]
    assert h.run_module(alex_audit_verify, dict(dsn=retirer, hmac_key=h.KEY))["verified"]
    # The rollback needs exactly what the docs say: take away any one of its grants and it stops before a change.
    owner = h.connect(pg_dsn)
    owner.autocommit = True
    retired = h.table_state(conn)
    for table, privilege in (("audit_quarantine", "TRUNCATE"), ("audit_chain_anchors", "INSERT"),
                             ("audit_logs", "SELECT")):
        with owner.cursor() as cur:
            cur.execute(sql.SQL("REVOKE {} ON {} FROM alexandria_audit_retirer, alexandria_audit_reader").format(
                sql.SQL(privilege), sql.Identifier("public", table)))
        refused = h.run_module(alex_audit_backup, dict(dsn=retirer, state="restored", dest=backup["dest"]))
        assert refused["failed"] and "lacks %s on public.%s" % (privilege, table) in refused["msg"], refused["msg"]
        assert h.table_state(conn) == retired
        apply_roles(pg_dsn)
    restored = h.run_module(alex_audit_backup, dict(dsn=retirer, state="restored", dest=backup["dest"]))
    assert restored["changed"], restored["msg"]
    assert h.table_state(conn) == broken
