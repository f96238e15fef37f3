"""TLS stays on (issue 15 part 7): certificate checks are on by default for the Kubernetes API, the HTTP API and
PostgreSQL; an untrusted certificate is refused with one clear message, and accepted with ca_cert, ca_path or
ssl_rootcert.

One lab started with `alexlab up --api-tls` (the API and the Kubernetes facade both serve certificates of the lab's
CA, DIR/pki/ca.crt), and one real PostgreSQL with ssl=on on 127.0.0.1 whose certificate comes from a throwaway CA:
the suite's server behind the lab's TLS front (alexlab.pg_tls), since the pgserver wheel's server is built without
OpenSSL; to libpq the front is a server with ssl=on.
"""
import json
import os
import ssl
import urllib.request

import psycopg2
import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from alexlab import pg as labpg
from alexlab import pg_tls, pki, schema
from alexlab.testing import LabHandle
from ansible_collections.alexandria.ee.plugins.module_utils import pg
from ansible_collections.alexandria.ee.plugins.modules import (alex_audit_verify, alex_license, alex_pod_restart,
                                                               alex_ready, alex_triage)

import awx_runner
import playbooks

pytestmark = pytest.mark.lab

NS = "alexandria"
LOCAL_ISSUER = "certificate verify failed: unable to get local issuer certificate"
API_UNTRUSTED = ("TLS failure: the API's certificate is not trusted (%s): pass ca_path with the CA certificate that "
                 "signed it" % LOCAL_ISSUER)
K8S_UNTRUSTED = ("the Kubernetes API server's certificate is not trusted (%s): pass ca_cert (or K8S_AUTH_SSL_CA_CERT, "
                 "or the kubeconfig's certificate-authority) with the CA certificate that signed it" % LOCAL_ISSUER)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    handle = LabHandle.up(tmp_path_factory.mktemp("tlslab"), "--api-tls")
    yield handle
    proc = handle.down()
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def no_ca_kubeconfig(lab, tmp_path_factory):
    """The lab's kubeconfig without its certificate-authority-data: the facade's CA is then trusted by nothing."""
    with open(lab.info["kubeconfig"], encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    for cluster in config["clusters"]:
        del cluster["cluster"]["certificate-authority-data"]
    path = tmp_path_factory.mktemp("noca") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, 0o600)
    return str(path)


def run_module(module, args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    assert "Traceback" not in out
    return json.loads(out)


def refused(result):
    """The result of a refusal: failed, one message, no exception."""
    assert result["failed"] is True and "exception" not in result, result
    assert "\n" not in result["msg"]
    return result["msg"]


# -- the lab's API over HTTPS --------------------------------------------------------------------------------


def test_the_lab_serves_the_api_over_https_with_its_ca(lab):
    info = lab.info
    assert info["api_tls"] is True and info["api_url"].startswith("https://127.0.0.1:")
    assert info["api_ca"] == info["k8s_ca"] and os.path.isfile(info["api_ca"])
    host = json.loads(lab.cli("inventory", "--host", "x").stdout)["all"]["children"]["alexandria"]["hosts"]["x"]
    assert host["alex_base_url"] == info["api_url"] and host["alex_api_ca_path"] == info["api_ca"]
    context = ssl.create_default_context(cafile=info["api_ca"])
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(info["api_url"] + "/ready", timeout=10) as resp:
        assert resp.status == 200 and json.load(resp)["status"] == "ready"
    # The Deployment says so, as a chart would: the certificate's paths in the env, an HTTPS readiness probe.
    api = [c for c in lab.client.deployment()["spec"]["template"]["spec"]["containers"] if c["name"] == "api"][0]
    assert api["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {"ALEX_TLS_CERT_FILE", "ALEX_TLS_KEY_FILE"} <= set(e["name"] for e in api["env"])


def test_http_modules_refuse_the_untrusted_api_certificate(lab, capsys):
    info = lab.info
    ready = run_module(alex_ready, dict(base_url=info["api_url"]), capsys)
    assert refused(ready) == "GET /ready: " + API_UNTRUSTED
    # A refused certificate is not retried or waited on: no wait gets past it.
    waited = run_module(alex_ready, dict(base_url=info["api_url"], wait=True, wait_timeout=600), capsys)
    assert refused(waited) == "GET /ready: " + API_UNTRUSTED
    query = run_module(alex_license, dict(base_url=info["api_url"], kubeconfig=info["kubeconfig"]), capsys)
    assert refused(query) == "GET /license: " + API_UNTRUSTED


def test_http_modules_accept_the_api_certificate_with_ca_path(lab, capsys):
    info = lab.info
    ready = run_module(alex_ready, dict(base_url=info["api_url"], ca_path=info["api_ca"]), capsys)
    assert not ready.get("failed") and ready["ready"] is True and ready["license"]["valid_json"] is True
    query = run_module(alex_license, dict(base_url=info["api_url"], ca_path=info["api_ca"],
                                          kubeconfig=info["kubeconfig"]), capsys)
    assert not query.get("failed"), query["msg"]
    assert query["valid"] is True and query["max_seats"] == 25


def test_localhost_is_a_name_the_api_certificate_holds(lab, capsys):
    url = lab.info["api_url"].replace("127.0.0.1", "localhost")
    assert run_module(alex_ready, dict(base_url=url, ca_path=lab.info["api_ca"]), capsys)["ready"] is True


# -- the Kubernetes API --------------------------------------------------------------------------------------


def test_kubernetes_modules_refuse_a_facade_they_cannot_verify(lab, no_ca_kubeconfig, capsys):
    triage = run_module(alex_triage, dict(kubeconfig=no_ca_kubeconfig, namespace=NS), capsys)
    assert refused(triage).endswith(": " + K8S_UNTRUSTED), triage["msg"]
    assert "TLS failure while " in triage["msg"]
    before = lab.client.pod()["metadata"]["uid"]
    restart = run_module(alex_pod_restart, dict(kubeconfig=no_ca_kubeconfig, namespace=NS), capsys)
    assert refused(restart).endswith(": " + K8S_UNTRUSTED), restart["msg"]
    assert lab.client.pod()["metadata"]["uid"] == before
    # host and api_key instead of a kubeconfig: the client's own default, verification on
    token = lab.info["k8s_token"]
    direct = run_module(alex_triage, dict(host=lab.info["k8s_url"], api_key=token, namespace=NS), capsys)
    assert refused(direct).endswith(": " + K8S_UNTRUSTED), direct["msg"]
    assert token not in json.dumps(direct)
    # The service proxy route of the HTTP modules asks the same Kubernetes API server.
    proxied = run_module(alex_ready, dict(kubeconfig=no_ca_kubeconfig, namespace=NS), capsys)
    assert refused(proxied) == "GET /ready: service proxy: " + K8S_UNTRUSTED


def test_kubernetes_modules_accept_the_facade_with_ca_cert(lab, no_ca_kubeconfig, capsys):
    ca_cert = lab.info["k8s_ca"]
    triage = run_module(alex_triage, dict(kubeconfig=no_ca_kubeconfig, ca_cert=ca_cert, namespace=NS), capsys)
    assert not triage.get("failed"), triage["msg"]
    assert triage["pods"] and triage["pods"][0]["ready"] is True
    direct = run_module(alex_triage, dict(host=lab.info["k8s_url"], api_key=lab.info["k8s_token"], ca_cert=ca_cert,
                                          namespace=NS), capsys)
    assert not direct.get("failed"), direct["msg"]
    planned = run_module(alex_pod_restart, dict(kubeconfig=no_ca_kubeconfig, ca_cert=ca_cert, namespace=NS), capsys,
                         check_mode=True)
    assert not planned.get("failed") and planned["changed"] is True


# -- PostgreSQL with ssl=on ----------------------------------------------------------------------------------

PG_PASSWORD = "Tls-Pw-5ecret-never-printed"
PG_USER = "alex_tls"


@pytest.fixture(scope="module")
def tls_postgres(pg_admin_dsn, tmp_path_factory):
    """The suite's real PostgreSQL behind the lab's TLS front (alexlab.pg_tls) on 127.0.0.1, its certificate from a
    throwaway CA, with a password-only role and an empty audit database. Yields (ca.crt, port, admin DSN)."""
    certs = tmp_path_factory.mktemp("pgca")
    ca_key, ca = pki.new_ca("alex-test-postgres-ca")
    key, cert = pki.issue(ca_key, ca, "alex-test-postgres")
    for name, obj in (("ca.crt", ca), ("server.crt", cert), ("server.key", key)):
        pki.write_pem(str(certs / name), obj)
    database = labpg.create_database(pg_admin_dsn, prefix="tls")
    conn = psycopg2.connect(pg_admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("DROP ROLE IF EXISTS %s" % PG_USER)
            cur.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % PG_USER, (PG_PASSWORD,))
            cur.execute("ALTER DATABASE %s OWNER TO %s" % (psycopg2.extensions.parse_dsn(database)["dbname"], PG_USER))
    finally:
        conn.close()
    conn = psycopg2.connect(database)
    try:
        schema.create_audit_tables(conn)  # the audit modules' tables, empty
        with conn.cursor() as cur:
            cur.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO %s" % PG_USER)
            cur.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %s" % PG_USER)
        conn.commit()
    finally:
        conn.close()
    front = pg_tls.PgTlsFront(pg_tls.backend_of(psycopg2.extensions.parse_dsn(pg_admin_dsn)),
                              str(certs / "server.crt"), str(certs / "server.key")).start()
    try:
        yield str(certs / "ca.crt"), front.port, pg_admin_dsn, psycopg2.extensions.parse_dsn(database)["dbname"]
    finally:
        front.stop()
        labpg.drop_database(pg_admin_dsn, database)
        conn = psycopg2.connect(pg_admin_dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DROP ROLE IF EXISTS %s" % PG_USER)
        conn.close()


@pytest.fixture
def pg_home(tmp_path, monkeypatch):
    """No ~/.postgresql/root.crt and no PG* settings from the machine running the tests."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("PGSSLMODE", "PGSSLROOTCERT", "PGSERVICE", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)


def tcp_dsn(tls_postgres, **extra):
    return pg.psycopg2.extensions.make_dsn(host="127.0.0.1", port=tls_postgres[1], user=PG_USER, password=PG_PASSWORD,
                                           dbname=tls_postgres[3], connect_timeout=10, **extra)


def test_postgres_certificate_checked_by_default(tls_postgres, pg_home):
    port = tls_postgres[1]
    dsn = tcp_dsn(tls_postgres)
    with pytest.raises(pg.PgError) as err:
        pg.connect(dsn, secrets=pg.dsn_secrets(dsn))
    message = str(err.value)
    assert message.startswith('cannot connect to PostgreSQL: connection to server at "127.0.0.1", port %d failed: '
                              'root certificate file "%s/.postgresql/root.crt" does not exist' % (port, os.environ["HOME"]))
    assert message.endswith(": the server's TLS certificate could not be verified (sslmode verify-full is the "
                            "default); pass ssl_rootcert (or PGSSLROOTCERT) with the CA certificate that signed it, "
                            "and connect by a host name the certificate names")
    assert "\n" not in message and PG_PASSWORD not in message


def test_postgres_untrusted_ca_refused(tls_postgres, pg_home, tmp_path):
    other_ca = str(tmp_path / "other-ca.crt")
    pki.write_pem(other_ca, pki.new_ca("some-other-ca")[1])
    dsn = tcp_dsn(tls_postgres)
    with pytest.raises(pg.PgError) as err:
        pg.connect(dsn, {"sslrootcert": other_ca}, secrets=pg.dsn_secrets(dsn))
    assert "certificate verify failed" in str(err.value) and "pass ssl_rootcert" in str(err.value)
    assert PG_PASSWORD not in str(err.value)


def test_postgres_accepted_with_ssl_rootcert(tls_postgres, pg_home):
    conn = pg.connect(tcp_dsn(tls_postgres), {"sslrootcert": tls_postgres[0]})
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone() == (PG_USER,)
        assert conn.info.ssl_in_use and conn.info.ssl_attribute("protocol").startswith("TLS")
        assert conn.get_dsn_parameters()["sslmode"] == "verify-full"
    finally:
        conn.close()


def test_postgres_unix_socket_needs_no_certificate(tls_postgres, pg_home):
    params = psycopg2.extensions.parse_dsn(tls_postgres[2])
    if not (params.get("host") or "/").startswith("/"):
        pytest.skip("ALEX_TEST_DSN reaches its server over TCP: no Unix socket to test")
    conn = pg.connect(tls_postgres[2])
    try:
        assert not conn.info.ssl_in_use
        assert "sslmode" not in conn.get_dsn_parameters() or conn.get_dsn_parameters()["sslmode"] != "verify-full"
    finally:
        conn.close()


def test_postgres_sslmode_named_in_the_dsn_or_option_wins(tls_postgres, pg_home):
    for dsn, kwargs in ((tcp_dsn(tls_postgres, sslmode="require"), {}), (tcp_dsn(tls_postgres), {"sslmode": "require"})):
        conn = pg.connect(dsn, kwargs)
        try:
            assert conn.get_dsn_parameters()["sslmode"] == "require"
        finally:
            conn.close()


def test_audit_module_refuses_then_accepts_with_ssl_rootcert(tls_postgres, pg_home, capsys, monkeypatch):
    ca = tls_postgres[0]
    args = dict(dsn=tcp_dsn(tls_postgres), hmac_key="k" * 32)
    result = run_module(alex_audit_verify, args, capsys)
    assert "pass ssl_rootcert (or PGSSLROOTCERT)" in refused(result)
    assert PG_PASSWORD not in json.dumps(result)
    # accepted with the option, and with its environment fallback: the (empty) chain verifies
    for extra in (dict(ssl_rootcert=ca), {}):
        if not extra:
            monkeypatch.setenv("PGSSLROOTCERT", ca)
        result = run_module(alex_audit_verify, dict(args, **extra), capsys)
        assert not result.get("failed"), result["msg"]
        assert result["broken"] == [] and PG_PASSWORD not in json.dumps(result)


def test_awx_database_ca_credential_lets_the_audit_modules_verify_the_server(tls_postgres, pg_home, capsys,
                                                                             monkeypatch, tmp_path):
    # The credential type of extensions/awx, injected as AWX injects it for a job (awx_runner.inject_credential).
    ca = tls_postgres[0]
    with open(ca) as handle:
        pem = handle.read()
    types = dict((t["name"], t) for t in awx_runner.load_config()["controller_credential_types"])
    env, args = {}, []
    awx_runner.inject_credential(types["Alexandria EE database CA"], {"ca_certificate": pem}, env, args, tmp_path)
    assert list(env) == ["PGSSLROOTCERT"] and args == []
    injected = env["PGSSLROOTCERT"]
    assert os.path.dirname(injected) == str(tmp_path) and os.stat(injected).st_mode & 0o777 == 0o600
    with open(injected) as handle:
        assert handle.read() == pem
    args = dict(dsn=tcp_dsn(tls_postgres), hmac_key="k" * 32)
    assert "pass ssl_rootcert (or PGSSLROOTCERT)" in refused(run_module(alex_audit_verify, args, capsys))
    monkeypatch.setenv("PGSSLROOTCERT", injected)
    result = run_module(alex_audit_verify, args, capsys)
    assert not result.get("failed"), result["msg"]
    assert result["broken"] == [] and PG_PASSWORD not in json.dumps(result)


# -- the playbooks take the CA from the inventory (alexlab inventory writes alex_api_ca_path) ----------------------


@pytest.fixture(scope="module")
def tls_play(lab, tmp_path_factory):
    return playbooks.lab_player(lab, tmp_path_factory.mktemp("tlsplay"))


def test_health_over_https_with_the_inventorys_ca(lab, tls_play):
    run = tls_play("health")
    assert run.rc == 0, run.out[-3000:]
    assert lab.info["api_url"].startswith("https://")
    assert run.host("lab")["scenario"] == "healthy", run.host("lab")


def test_health_over_https_without_the_ca_names_the_certificate(lab, tls_play):
    run = tls_play("health", alex_api_ca_path="")
    assert run.rc == 0, run.out[-3000:]  # one bad deployment is a line of the report, never the end of the run
    host = run.host("lab")
    assert host["scenario"] != "healthy", host
    assert any("certificate is not trusted" in problem and "pass ca_path" in problem for problem in host["problems"]), host
