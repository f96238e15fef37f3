"""A throwaway real PostgreSQL server (the pgserver wheel's binaries), or an existing one.

Shared by the lab and the test suite: ALEX_TEST_DSN wins when set.
"""
import atexit
import os
import uuid

import psycopg2
from psycopg2 import sql


def start_embedded(datadir):
    """Start (or reuse) the embedded server for datadir; return (dsn, postmaster pid).

    The server outlives this process (cleanup_mode=None): stop it with stop_embedded.
    """
    import pgserver  # imported late: only the embedded mode needs it

    server = pgserver.get_server(str(datadir), cleanup_mode=None)
    return server.get_uri(), server.get_pid()


def stop_embedded(datadir):
    import pgserver
    from pgserver._commands import pg_ctl

    if not os.path.exists(os.path.join(str(datadir), "postmaster.pid")):
        return False
    server = pgserver.get_server(str(datadir), cleanup_mode=None)
    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=server.pgdata, user=server.system_user)
    # pgserver caches one handle per data directory; a later start_embedded in this process must not reuse it.
    atexit.unregister(server._cleanup)
    pgserver.postgres_server.PostgresServer._instances.pop(server.pgdata, None)
    return True


def test_admin_dsn(environ=None):
    """ALEX_TEST_DSN, or None. The collection verifies the server's certificate unless an sslmode is named
    (plugins/module_utils/pg.py); the suite tests the collection, not the server's TLS, so a DSN that names none
    gets libpq's own default, sslmode=prefer, stated. Name sslmode in ALEX_TEST_DSN to test with another."""
    dsn = (os.environ if environ is None else environ).get("ALEX_TEST_DSN")
    if not dsn or "sslmode" in psycopg2.extensions.parse_dsn(dsn):
        return dsn or None
    return psycopg2.extensions.make_dsn(dsn, sslmode="prefer")


def dsn_for_database(dsn, dbname):
    """The same server, another database (works for URIs and key=value DSNs)."""
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = dbname
    return psycopg2.extensions.make_dsn(**params)


def create_database(admin_dsn, prefix="alex"):
    """Create a fresh database on admin_dsn's server; return its DSN."""
    name = "%s_%s" % (prefix, uuid.uuid4().hex[:12])
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name)))
    finally:
        conn.close()
    return dsn_for_database(admin_dsn, name)


def drop_database(admin_dsn, dsn):
    name = psycopg2.extensions.parse_dsn(dsn)["dbname"]
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()
