"""alex_license and alex_seats argument handling, run in-process with patch_module_args.

Only what needs no server: validation of blobs (inline and from a file), refusals that happen before any
request, and bad arguments. A closed local port stands in for an unreachable API (a real connection
refusal, not a mock). Everything that talks to the API or Kubernetes is tested against the lab.
"""
import datetime
import json
import socket

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.modules import alex_license, alex_seats

TOKEN = "s3cr3t-admin-token-for-tests"


def claims(**over):
    base = dict(license_id="lic-unit", customer="Acme", tier="enterprise", seat_count=50, tenant_count=10,
                issued_at="2026-01-01T00:00:00Z", expires_at="2099-01-01T00:00:00Z")
    base.update(over)
    return base


@pytest.fixture(scope="module")
def issuer():
    return lc.generate_private_key()


@pytest.fixture(scope="module")
def pem(issuer):
    return lc.public_key_pem(issuer.public_key())


@pytest.fixture
def closed_url():
    """A localhost URL nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return "http://127.0.0.1:%d" % port


def run(module, args, capsys):
    """(result, raw JSON output) of one in-process module run."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def result_of(module, args, capsys):
    return run(module, args, capsys)[0]


def test_validate_inline_blob_returns_claims_never_the_blob(issuer, pem, capsys):
    blob = lc.encode_license(claims(), issuer)
    res, raw = run(alex_license, dict(state="validate", issuer_set="ignore", blob=blob, issuer_public_key=pem), capsys)
    assert res["valid"] is True and res["changed"] is False
    assert res["claims"]["seat_count"] == 50 and res["claims"]["tier"] == "enterprise"
    assert res["fingerprint"] == lc.blob_fingerprint(blob)
    assert res["downgrade"] == []
    assert blob not in raw and blob.split(".")[1] not in raw


def test_validate_blob_file(issuer, pem, tmp_path, capsys):
    blob = lc.encode_license(claims(license_id="from-file"), issuer)
    path = tmp_path / "new.blob"
    path.write_text(blob + "\n")
    res, raw = run(alex_license, dict(state="validate", issuer_set="ignore", blob_file=str(path), issuer_public_key=pem), capsys)
    assert res["valid"] is True and res["claims"]["license_id"] == "from-file"
    assert blob.split(".")[2] not in raw


@pytest.mark.parametrize("kind, reason", [("other", "wrong_issuer"), ("expired", "expired"), ("corrupt", "malformed")])
def test_validate_reports_invalid_without_failing(issuer, pem, capsys, kind, reason):
    if kind == "other":
        blob = lc.encode_license(claims(), lc.generate_private_key())
    elif kind == "expired":
        blob = lc.encode_license(claims(issued_at="2020-01-01T00:00:00Z", expires_at="2021-01-01T00:00:00Z"), issuer)
    else:
        blob = "ALXLIC1.not-a-payload"
    res, raw = run(alex_license, dict(state="validate", issuer_set="ignore", blob=blob, issuer_public_key=pem), capsys)
    assert res.get("failed") is not True
    assert res["valid"] is False and res["reason"] == reason
    assert blob not in raw


def test_blob_and_blob_file_are_exclusive(pem, capsys):
    res = result_of(alex_license, dict(state="validate", issuer_set="ignore", blob="ALXLIC1.dummy.dummy",
                                       blob_file="/nonexistent", issuer_public_key=pem), capsys)
    assert res["failed"] and "mutually exclusive" in res["msg"]


def test_unreadable_blob_file_is_one_clear_failure(pem, capsys):
    res = result_of(alex_license, dict(state="validate", issuer_set="ignore", blob_file="/nonexistent/blob", issuer_public_key=pem), capsys)
    assert res["failed"] and res["msg"].startswith("cannot read blob_file /nonexistent/blob")
    assert "Traceback" not in json.dumps(res)


def test_bad_issuer_key_is_a_clear_failure(issuer, capsys):
    blob = lc.encode_license(claims(), issuer)
    res, raw = run(alex_license, dict(state="validate", issuer_set="ignore", blob=blob, issuer_public_key="not a key"), capsys)
    assert res["failed"] and "issuer public key" in res["msg"]
    assert blob not in raw


def test_query_without_base_url_goes_to_the_service_proxy(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("ALEX_BASE_URL", raising=False)
    res = result_of(alex_license, dict(state="query", kubeconfig=str(tmp_path / "no-such-kubeconfig")), capsys)
    assert res["failed"] and res["msg"].startswith("service proxy: cannot load Kubernetes configuration")


def test_seats_without_base_url_says_the_admin_token_cannot_cross_the_service_proxy(capsys, monkeypatch):
    monkeypatch.delenv("ALEX_BASE_URL", raising=False)
    res = result_of(alex_seats, dict(admin_token=TOKEN), capsys)
    assert res["failed"] and res["msg"].startswith("the admin API needs base_url: its token travels in the "
                                                   "Authorization header, which the Kubernetes API server removes")


def test_present_refuses_invalid_blob_before_any_request(issuer, pem, closed_url, capsys):
    expired = lc.encode_license(claims(issued_at="2020-01-01T00:00:00Z", expires_at="2021-01-01T00:00:00Z"), issuer)
    res, raw = run(alex_license, dict(state="present", issuer_set="ignore", blob=expired, issuer_public_key=pem, base_url=closed_url), capsys)
    assert res["failed"] and res["msg"].startswith("refusing to apply the license blob")
    assert res["reason"] == "expired"
    assert res["claims"]["expires_at"] == "2021-01-01T00:00:00Z"
    assert expired not in raw


def test_validate_reads_the_issuer_set_unless_told_to_ignore_it(issuer, pem, capsys, tmp_path):
    """issuer_set=auto (the default) asks Kubernetes for the release's trusted issuer set: without a cluster that
    is one clear failure, never a silent check against issuer_public_key alone."""
    blob = lc.encode_license(claims(), issuer)
    res, raw = run(alex_license, dict(state="validate", blob=blob, issuer_public_key=pem,
                                      kubeconfig=str(tmp_path / "no-such-kubeconfig")), capsys)
    assert res["failed"] and "cannot load Kubernetes configuration" in res["msg"]
    assert blob not in raw


def test_present_unreachable_api_fails_in_words(issuer, pem, closed_url, capsys):
    blob = lc.encode_license(claims(), issuer)
    res, raw = run(alex_license, dict(state="present", issuer_set="ignore", blob=blob, issuer_public_key=pem, base_url=closed_url), capsys)
    assert res["failed"] and res["msg"] == "GET /license: connection refused"
    assert blob not in raw


def test_seats_deactivated_requires_max_deactivate(closed_url, capsys):
    res, raw = run(alex_seats, dict(state="deactivated", base_url=closed_url, admin_token=TOKEN), capsys)
    assert res["failed"] and "max_deactivate" in res["msg"]
    assert TOKEN not in raw


def test_seats_unreachable_api_fails_in_words_without_token(closed_url, capsys):
    res, raw = run(alex_seats, dict(base_url=closed_url, admin_token=TOKEN), capsys)
    assert res["failed"] and res["msg"] == "GET /admin/v1/users: connection refused"
    assert TOKEN not in raw


def test_argument_specs_mark_secrets_no_log():
    lic = alex_license.argument_spec()
    assert lic["blob"]["no_log"] is True
    assert lic["api_key"]["no_log"] is True
    assert lic["issuer_public_key"]["no_log"] is False  # a public key is not a secret
    assert alex_seats.argument_spec()["admin_token"]["no_log"] is True


def test_expiry_is_checked_against_now(issuer, pem, capsys):
    """A blob that expires in a minute is valid now; validation uses the real clock."""
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    blob = lc.encode_license(claims(expires_at=soon), issuer)
    res = result_of(alex_license, dict(state="validate", issuer_set="ignore", blob=blob, issuer_public_key=pem), capsys)
    assert res["valid"] is True


class _Admin5xx:
    """A real HTTP server on 127.0.0.1 for what the lab cannot produce: admin API 5xx answers.

    GET /admin/v1/users lists two idle users; the first deactivation succeeds, the second answers 500.
    With ``down=True`` every request answers 503.
    """

    def __init__(self, down=False):
        import http.server
        import threading

        state = dict(down=down, calls=[])

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if state["down"]:
                    return self._send(503, {"error": "unavailable"})
                old = "2020-01-01T00:00:00Z"
                users = [dict(id=i, username="idle%d" % i, tenant_id="t", status="active", created_at=old,
                              last_active_at=old) for i in (1, 2)]
                return self._send(200, {"users": users})

            def do_POST(self):
                state["calls"].append(self.path)
                if state["down"] or len(state["calls"]) > 1:
                    return self._send(500, {"error": "internal"})
                return self._send(200, {"user": dict(id=1, username="idle1", tenant_id="t", status="deactivated",
                                                     created_at="2020-01-01T00:00:00Z", last_active_at=None),
                                        "changed": True})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_admin_api_5xx_is_a_clear_failure(capsys):
    server = _Admin5xx(down=True)
    try:
        res, raw = run(alex_seats, dict(base_url=server.url, admin_token=TOKEN), capsys)
    finally:
        server.close()
    assert res["failed"] and res["msg"] == "GET /admin/v1/users answered HTTP 503 (unavailable): server error"
    assert TOKEN not in raw


def test_a_deactivation_failing_half_way_says_who_was_done(capsys):
    server = _Admin5xx()
    try:
        res = result_of(alex_seats, dict(base_url=server.url, admin_token=TOKEN, state="deactivated", inactive_days=30,
                                         max_deactivate=2), capsys)
    finally:
        server.close()
    assert res["failed"] and res["changed"] is True
    assert res["msg"] == ("POST /admin/v1/users/2/deactivate answered HTTP 500 (internal): server error; "
                          "deactivated before the failure: idle1")
    assert [u["username"] for u in res["deactivated"]] == ["idle1"] and res["seats_freed"] == 1
