"""DSN passwords are found in every DSN form and masked; connection errors never carry them."""
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import pg


@pytest.mark.parametrize("dsn,secret", [
    ("postgresql://alex:s3cr%40t@db.example:5432/alex", "s3cr@t"),
    ("postgresql://alex:plainpw@db.example/alex", "plainpw"),
    ("host=db user=alex password=kvpass dbname=alex", "kvpass"),
    ("host=db password='quoted pass' dbname=alex", "quoted pass"),
])
def test_dsn_secrets_found(dsn, secret):
    assert secret in pg.dsn_secrets(dsn)


def test_no_password_no_secrets():
    assert pg.dsn_secrets("postgresql:///alex?host=/tmp") == set()
    assert pg.dsn_secrets(None) == set()


def test_connection_error_is_masked(pg_admin_dsn):
    # A real failure from a real server: a database that does not exist, with a password in the DSN.
    import psycopg2.extensions
    params = psycopg2.extensions.parse_dsn(pg_admin_dsn)
    params.update(dbname="no_such_db_hunter2", password="hunter2-secret")
    dsn = psycopg2.extensions.make_dsn(**params)
    with pytest.raises(pg.PgError) as err:
        pg.connect(dsn, secrets=pg.dsn_secrets(dsn))
    assert "hunter2-secret" not in str(err.value)
    assert "cannot connect to PostgreSQL" in str(err.value)


def test_unparsable_dsn_is_masked():
    dsn = "host=db password=topsecret-pw dbname"
    with pytest.raises(pg.PgError) as err:
        pg.connect(dsn, secrets=pg.dsn_secrets(dsn))
    assert "topsecret-pw" not in str(err.value)


def test_connect_pins_session_settings(pg_dsn):
    conn = pg.connect(pg_dsn)
    with conn.cursor() as cur:
        cur.execute("SHOW TimeZone")
        assert cur.fetchone()[0] == "UTC"
        cur.execute("SHOW DateStyle")
        assert cur.fetchone()[0] == "ISO, YMD"
    conn.close()
