"""Certificate checks on by default (issue 15 part 7): the pure parts. tests/integration/test_tls_lab.py runs them
against the lab's HTTPS API, its Kubernetes facade and a PostgreSQL with ssl=on."""
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import pg, tls

# What urllib3 and requests wrap around the ssl module's error, in the shape real failures have.
REQUESTS_UNKNOWN_CA = ("HTTPSConnectionPool(host='127.0.0.1', port=40001): Max retries exceeded with url: /ready "
                       "(Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                       "verify failed: unable to get local issuer certificate (_ssl.c:992)')))")
URLLIB3_MISMATCH = ("HTTPSConnectionPool(host='127.0.0.2', port=6443): Max retries exceeded with url: /api/v1 (Caused "
                    "by SSLError(SSLCertVerificationError(1, \"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                    "failed: IP address mismatch, certificate is not valid for '127.0.0.2'. (_ssl.c:992)\")))")


@pytest.mark.parametrize("text,reason", [
    (REQUESTS_UNKNOWN_CA, "unable to get local issuer certificate"),
    (URLLIB3_MISMATCH, "IP address mismatch, certificate is not valid for '127.0.0.2'"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate", "self-signed certificate"),
    ("HTTPConnectionPool(host='127.0.0.1', port=1): Connection refused", None),
    ("", None),
])
def test_certificate_failure(text, reason):
    assert tls.certificate_failure(text) == reason


def test_untrusted_words_name_the_fix():
    assert tls.untrusted("the API's", "unable to get local issuer certificate", "ca_path") == (
        "the API's certificate is not trusted (certificate verify failed: unable to get local issuer certificate): "
        "pass ca_path with the CA certificate that signed it")
    assert tls.untrusted("the API's", "Hostname mismatch, certificate is not valid for 'x'", "ca_path").endswith(
        ": connect by a host name or address the certificate names")


@pytest.mark.parametrize("dsn,kwargs,environ,expected", [
    # nothing names an sslmode: verify-full
    ("postgresql://u:p@db.example/alex", {}, {}, "verify-full"),
    ("host=db.example dbname=alex", {"user": "u"}, {}, "verify-full"),
    (None, {"host": "db.example"}, {}, "verify-full"),
    ("host=/run/postgresql,db.example dbname=alex", {}, {}, "verify-full"),
    ("dbname=alex", {"hostaddr": "10.0.0.5"}, {}, "verify-full"),
    ("dbname=alex", {}, {"PGHOST": "db.example"}, "verify-full"),
    # a Unix socket (or libpq's default, one): nothing, since libpq uses no TLS there
    ("postgresql:///alex?host=/run/postgresql", {}, {}, None),
    ("dbname=alex", {"host": "@abstract"}, {}, None),
    ("dbname=alex", {}, {}, None),
    ("dbname=alex", {}, {"PGHOST": "/tmp"}, None),
    # named anywhere: left alone
    ("postgresql://db.example/alex?sslmode=disable", {}, {}, None),
    ("host=db.example sslmode=require", {}, {}, None),
    ("host=db.example", {"sslmode": "prefer"}, {}, None),
    ("host=db.example", {}, {"PGSSLMODE": "require"}, None),
    ("service=prod", {}, {}, None),
    ("host=db.example", {}, {"PGSERVICE": "prod"}, None),
    # unparsable: connect reports it
    ("host=db password='unterminated", {}, {}, None),
])
def test_sslmode_default(dsn, kwargs, environ, expected):
    result = pg.with_tls_default(dsn, kwargs, environ)
    assert result.get("sslmode") == (expected or kwargs.get("sslmode"))
    assert dict((k, v) for k, v in result.items() if k != "sslmode") == \
        dict((k, v) for k, v in kwargs.items() if k != "sslmode")


def test_ssl_rootcert_option_reaches_libpq():
    assert pg.connection_kwargs(dict(ssl_rootcert="/etc/ca.pem", ssl_mode="verify-ca", dsn=None)) == {
        "sslrootcert": "/etc/ca.pem", "sslmode": "verify-ca"}


def test_connect_error_words():
    missing = ('connection to server at "db.example" (10.0.0.5), port 5432 failed: root certificate file '
               '"/home/awx/.postgresql/root.crt" does not exist\nEither provide the file, use the system\'s trusted '
               'roots with sslrootcert=system, or change sslmode to disable server certificate verification.\n')
    words = pg.describe_connect_error(missing)
    assert "\n" not in words
    assert words.startswith('connection to server at "db.example" (10.0.0.5), port 5432 failed: root certificate file')
    assert words.endswith("pass ssl_rootcert (or PGSSLROOTCERT) with the CA certificate that signed it, and connect "
                          "by a host name the certificate names")
    no_tls = 'connection to server at "db.example", port 5432 failed: server does not support SSL, but SSL was required'
    assert pg.describe_connect_error(no_tls).endswith(
        "certificate checks are on by default; set ssl_mode (or sslmode in the DSN) explicitly to connect without TLS")
    refused = 'connection to server at "db", port 1 failed: Connection refused\n\tIs the server running?'
    assert pg.describe_connect_error(refused) == refused.strip()


def test_client_binaries_get_the_same_sslmode(monkeypatch):
    from ansible_collections.alexandria.ee.plugins.module_utils import audit_backup
    for name in ("PGSSLMODE", "PGSERVICE", "PGHOST", "PGHOSTADDR"):
        monkeypatch.delenv(name, raising=False)
    conninfo, _env = audit_backup.libpq_environment("postgresql://alice@db.example/alex", {"sslrootcert": "/ca.pem"})
    assert "sslmode=verify-full" in conninfo and "sslrootcert=/ca.pem" in conninfo
    socket_conninfo, _env = audit_backup.libpq_environment("postgresql:///alex?host=/run/postgresql", {})
    assert "sslmode" not in socket_conninfo
