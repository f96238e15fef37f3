"""Runbook scenario 2 (quota exceeded, HTTP 402) and license renewal against the lab.

Each test starts its own lab (`alexlab up --dir`, on a fresh database of the session's PostgreSQL),
injects the fault with `alexlab break seats-exhausted|tenants-exhausted`, seeds users with
`alexlab seed-users`, mints blobs with `alexlab license mint`, and runs the modules in-process or the
playbooks as an operator would. Secrets are compared through the official kubernetes client.
"""
import base64
import json
import os
import pathlib
import subprocess
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.modules import alex_license, alex_seats

import playbooks

pytestmark = pytest.mark.lab

BIN = pathlib.Path(sys.executable).parent
SECRET = "alexandria-ee-license"


class Lab:
    def __init__(self, directory):
        self.dir = directory
        self.info = json.loads((directory / "lab.json").read_text())
        self.api_url = self.info["api_url"]
        self.kubeconfig = self.info["kubeconfig"]
        self.namespace = self.info["namespace"]
        self.token = self.info["admin_token"]
        self.issuer = self.info["issuer_public_key"]

    def cli(self, *args, check=True, timeout=120):
        argv = [str(BIN / "alexlab")] + list(args) + ["--dir", str(self.dir)]
        if args and args[0] == "license":
            argv = [str(BIN / "alexlab"), "license", "--dir", str(self.dir)] + list(args[1:])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("alexlab %s failed: %s" % (" ".join(args), proc.stderr))
        return proc

    def mint(self, seats, tenants, tier="enterprise", *extra):
        return self.cli("license", "mint", "--seats", str(seats), "--tenants", str(tenants), "--tier", tier,
                        *extra).stdout.strip()

    def _client(self):
        import kubernetes
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=self.kubeconfig, client_configuration=config)
        return kubernetes.client.ApiClient(config)

    def secret(self):
        """(resourceVersion, data) of the license Secret."""
        import kubernetes
        obj = kubernetes.client.CoreV1Api(self._client()).read_namespaced_secret(SECRET, self.namespace)
        return obj.metadata.resource_version, dict(obj.data or {})

    def secret_blob(self, key="license.blob"):
        data = self.secret()[1]
        return base64.b64decode(data[key]).decode("utf-8") if key in data else None

    def deployment(self):
        import kubernetes
        return kubernetes.client.AppsV1Api(self._client()).read_namespaced_deployment("alexandria-ee", self.namespace)

    def license(self):
        import requests
        return requests.get(self.api_url + "/license", timeout=10).json()

    def active_users(self):
        import requests
        body = requests.get(self.api_url + "/admin/v1/users?status=active", timeout=10,
                            headers={"Authorization": "Bearer " + self.token}).json()
        return sorted(u["username"] for u in body["users"])

    def api_args(self, **extra):
        return dict(dict(base_url=self.api_url), **extra)

    def admin_args(self, **extra):
        return dict(dict(base_url=self.api_url, admin_token=self.token), **extra)

    def license_args(self, **extra):
        return dict(dict(base_url=self.api_url, kubeconfig=self.kubeconfig, namespace=self.namespace,
                         issuer_public_key=self.issuer, wait_timeout=120), **extra)


@pytest.fixture
def lab(tmp_path, pg_dsn):
    directory = tmp_path / "lab"
    proc = subprocess.run([str(BIN / "alexlab"), "up", "--dir", str(directory), "--dsn", pg_dsn],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    yield Lab(directory)
    subprocess.run([str(BIN / "alexlab"), "down", "--dir", str(directory)], capture_output=True, timeout=120,
                   check=False)


class Result(dict):
    """A module's result, with the raw JSON it printed in .raw (to look for secrets in)."""

    def __init__(self, raw):
        super().__init__(json.loads(raw))
        self.raw = raw


def run_module(module, args, capsys, check_mode=False, diff=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return Result(capsys.readouterr().out)


def seed_and_fill_seats(lab):
    """5 users idle for 120 days (4 inactive, 1 never active), 2 recently active, then seats filled to 25."""
    seeded = json.loads(lab.cli("seed-users", "--active", "2", "--inactive", "4", "--inactive-days", "120",
                                "--never-active", "1").stdout)
    lab.cli("break", "seats-exhausted")
    return seeded


# ------------------------------------------------------------------------------------ identify

def test_seats_exhausted_is_identified(lab, capsys):
    seed_and_fill_seats(lab)
    res = run_module(alex_license, lab.api_args(), capsys)
    assert res["changed"] is False
    assert res["exhausted"] == ["seats"]
    assert res["current_seats"] == res["max_seats"] == 25 and res["seats_headroom"] == 0
    assert res["tenants_headroom"] > 0 and res["tier"] == "enterprise" and res["valid"] is True
    users = run_module(alex_seats, lab.admin_args(inactive_days=90), capsys)
    assert users["active_users"] == 25
    assert len(users["inactive_users"]) == 5
    assert all(u["idle_days"] >= 90 for u in users["inactive_users"])


def test_tenants_exhausted_is_identified_and_listed_never_deleted(lab, capsys):
    lab.cli("break", "tenants-exhausted")
    res = run_module(alex_license, lab.api_args(), capsys)
    assert res["exhausted"] == ["tenants"]
    assert res["current_tenants"] == res["max_tenants"] == 5 and res["tenants_headroom"] == 0
    listed = run_module(alex_seats, lab.admin_args(list_tenants=True), capsys)
    assert listed["changed"] is False
    assert len(listed["tenants"]) == 5
    assert set(t["id"] for t in listed["tenants"]) >= set(listed["unused_tenants"])
    assert listed["unused_tenants"], "the lab's filler tenants have no active users"
    for tenant in listed["tenants"]:
        assert set(tenant) >= {"users", "active_users", "audit_rows", "last_active_at", "idle_days", "unused"}
    assert lab.license()["current_tenants"] == 5


def test_tenant_listing_below_enterprise_fails_clearly(tmp_path, pg_dsn, capsys):
    directory = tmp_path / "lab"
    subprocess.run([str(BIN / "alexlab"), "up", "--dir", str(directory), "--dsn", pg_dsn, "--tier", "business"],
                   capture_output=True, text=True, timeout=180, check=True)
    try:
        lab = Lab(directory)
        res = run_module(alex_seats, lab.admin_args(list_tenants=True), capsys)
        assert res["failed"] is True
        assert res["msg"] == ("listing tenants needs the enterprise tier; this license is business "
                              "(GET /admin/v1/tenants answered 403)")
        assert lab.token not in res.raw
    finally:
        subprocess.run([str(BIN / "alexlab"), "down", "--dir", str(directory)], capture_output=True, timeout=120,
                       check=False)


# ------------------------------------------------------------------------------------ admin API errors

def test_admin_api_wrong_token_fails_clearly(lab, capsys):
    wrong = "not-the-admin-token-0123456789"
    res = run_module(alex_seats, lab.admin_args(admin_token=wrong), capsys)
    assert res["failed"] is True
    assert res["msg"] == ("GET /admin/v1/users answered HTTP 401 (unauthorized): "
                          "the admin token was refused: check admin_token")
    assert wrong not in res.raw and "Traceback" not in res.raw
    res = run_module(alex_seats, lab.admin_args(admin_token=wrong, state="deactivated", max_deactivate=1), capsys)
    assert res["failed"] is True and "HTTP 401" in res["msg"]


def test_admin_api_not_found_fails_clearly(lab, capsys):
    res = run_module(alex_seats, lab.admin_args(base_url=lab.api_url + "/wrong-prefix"), capsys)
    assert res["failed"] is True
    assert res["msg"].startswith("GET /admin/v1/users answered HTTP 404")
    assert "check base_url" in res["msg"]


# ------------------------------------------------------------------------------------ free seats

def test_free_seats_gate_check_mode_headroom_and_idempotence(lab, capsys):
    seed_and_fill_seats(lab)
    before = lab.active_users()

    refused = run_module(alex_seats, lab.admin_args(state="deactivated", inactive_days=90, max_deactivate=4),
                         capsys)
    assert refused["failed"] is True
    assert refused["msg"].startswith("5 users would be deactivated, more than max_deactivate=4")
    assert lab.active_users() == before

    planned = run_module(alex_seats, lab.admin_args(state="deactivated", inactive_days=90, max_deactivate=5),
                         capsys, check_mode=True, diff=True)
    assert planned["changed"] is True and planned["seats_freed"] == 5
    assert sorted(planned["diff"]["after"]) == sorted(u["username"] for u in planned["deactivated"])
    assert lab.active_users() == before

    done = run_module(alex_seats, lab.admin_args(state="deactivated", inactive_days=90, max_deactivate=5), capsys)
    assert done["changed"] is True and done["seats_freed"] == 5
    freed = sorted(u["username"] for u in done["deactivated"])
    assert freed == sorted(u["username"] for u in planned["deactivated"])
    assert lab.active_users() == sorted(set(before) - set(freed))
    status = run_module(alex_license, lab.api_args(), capsys)
    assert status["seats_headroom"] == 5 and status["exhausted"] == []

    again = run_module(alex_seats, lab.admin_args(state="deactivated", inactive_days=90, max_deactivate=0), capsys)
    assert again["changed"] is False and again["deactivated"] == []

    named = run_module(alex_seats, lab.admin_args(state="deactivated", users=freed[:2], max_deactivate=0), capsys)
    assert named["changed"] is False and sorted(named["already_deactivated"]) == freed[:2]

    unknown = run_module(alex_seats, lab.admin_args(state="deactivated", users=["nobody-here"], max_deactivate=5),
                         capsys)
    assert unknown["failed"] is True and "nobody-here" in unknown["msg"]


# ------------------------------------------------------------------------------------ licenses

def test_upgraded_blob_is_applied_and_served_after_restart(lab, capsys):
    seed_and_fill_seats(lab)
    original = lab.secret_blob()
    blob = lab.mint(50, 10)
    generation = lab.deployment().metadata.generation

    planned = run_module(alex_license, lab.license_args(state="present", blob=blob, restart=True), capsys,
                         check_mode=True, diff=True)
    assert planned["changed"] is True and planned["restarted"] is False
    assert planned["diff"]["before"]["claims"]["seat_count"] == 25
    assert planned["diff"]["after"]["claims"]["seat_count"] == 50
    assert blob not in planned.raw and original not in planned.raw
    assert lab.secret_blob() == original

    applied = run_module(alex_license, lab.license_args(state="present", blob=blob, restart=True), capsys)
    assert applied["changed"] is True and applied["restarted"] is True and applied["ready"] is True
    assert applied["changes"]["seat_count"] == {"before": 25, "after": 50}
    assert applied["changes"]["tenant_count"] == {"before": 5, "after": 10}
    assert applied["license"]["max_seats"] == 50 and applied["license"]["max_tenants"] == 10
    assert blob not in applied.raw and original not in applied.raw
    assert lab.secret_blob() == blob
    assert lab.secret_blob("license.blob.previous") == original
    dep = lab.deployment()
    assert dep.metadata.generation > generation
    assert "kubectl.kubernetes.io/restartedAt" in (dep.spec.template.metadata.annotations or {})

    status = run_module(alex_license, lab.api_args(), capsys)
    assert status["max_seats"] == 50 and status["seats_headroom"] == 25 and status["exhausted"] == []
    assert status["license_id"] == applied["claims"]["license_id"]

    rv = lab.secret()[0]
    same = run_module(alex_license, lab.license_args(state="present", blob=blob, restart=True), capsys)
    assert same["changed"] is False and same["restarted"] is False
    assert lab.secret()[0] == rv and lab.deployment().metadata.generation == dep.metadata.generation


def test_validate_reads_the_secret_when_no_blob_is_given(lab, capsys):
    res = run_module(alex_license, lab.license_args(state="validate"), capsys)
    assert res["valid"] is True and res["claims"]["seat_count"] == 25
    assert res["source"] == "secret alexandria/alexandria-ee-license key license.blob"
    assert lab.info["license_blob"] not in res.raw


def corrupt(blob):
    prefix, payload, signature = blob.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[5] ^= 0x40
    return "%s.%s.%s" % (prefix, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii"))


@pytest.mark.parametrize("kind, words", [
    ("corrupt", "bad_signature: license signature verification failed"),
    ("expired", "expired: expired at"),
    ("other-key", "wrong_issuer: signed by issuer key"),
    ("downgrade", "refusing a downgrade (use force=true to apply anyway): seat_count 10 is below the 25 seats in use"),
])
def test_bad_blobs_are_refused_and_the_secret_is_unchanged(lab, capsys, kind, words):
    lab.cli("break", "seats-exhausted")
    if kind == "corrupt":
        blob = corrupt(lab.mint(50, 10))
    elif kind == "expired":
        blob = lab.mint(50, 10, "enterprise", "--expires-in", "-1")
    elif kind == "other-key":
        blob = lab.mint(50, 10, "enterprise", "--key", "other")
    else:
        blob = lab.mint(10, 10)
    before = lab.secret()
    generation = lab.deployment().metadata.generation
    res = run_module(alex_license, lab.license_args(state="present", blob=blob, restart=True), capsys)
    assert res["failed"] is True
    assert words in res["msg"], res["msg"]
    assert blob not in res.raw
    assert lab.secret() == before  # resourceVersion and data
    assert lab.deployment().metadata.generation == generation
    assert lab.license()["max_seats"] == 25


def test_downgrade_with_force_is_applied_with_a_warning(lab, capsys):
    lab.cli("seed-users", "--active", "12")
    blob = lab.mint(10, 5)
    res = run_module(alex_license, lab.license_args(state="present", blob=blob, force=True), capsys)
    assert res["changed"] is True and res["downgrade"] == ["seat_count 10 is below the 12 seats in use"]
    assert "applying a downgrade because force=true" in json.dumps(res.get("warnings")), res
    assert lab.secret_blob() == blob


def test_rollback_restores_the_previous_blob_only_from_the_applied_one(lab, capsys):
    original = lab.secret_blob()
    blob = lab.mint(40, 8)
    applied = run_module(alex_license, lab.license_args(state="present", blob=blob, restart=True), capsys)
    assert applied["license"]["max_seats"] == 40

    other = run_module(alex_license, lab.license_args(state="rollback", rollback_from="000000000000", restart=True),
                       capsys)
    assert other["changed"] is False and "nothing rolled back" in other["msg"]
    assert lab.secret_blob() == blob

    back = run_module(alex_license, lab.license_args(state="rollback", rollback_from=applied["fingerprint"],
                                                     restart=True), capsys)
    assert back["changed"] is True and back["restarted"] is True
    assert back["fingerprint"] == lc.blob_fingerprint(original)
    assert back["license"]["max_seats"] == 25 and back["license"]["valid"] is True
    assert lab.secret_blob() == original
    assert blob not in back.raw and original not in back.raw

    again = run_module(alex_license, lab.license_args(state="rollback", restart=True), capsys)
    assert again["changed"] is False and again["restarted"] is False


# ------------------------------------------------------------------------------------ playbooks

def playbook(lab, tmp_path, name, *args, **variables):
    common = dict(alex_base_url=lab.api_url, alex_admin_token=lab.token, alex_kubeconfig=lab.kubeconfig,
                  alex_namespace=lab.namespace, alex_license_issuer_public_key=lab.issuer)
    common.update(variables)
    return playbooks.run_playbook(name, tmp_path, *args, variables=common)


def test_quota_playbook_frees_seats_check_real_and_idempotent(lab, tmp_path):
    seed_and_fill_seats(lab)
    before_users, before_secret = lab.active_users(), lab.secret()
    gates = dict(quota_exceeded_free_seats=True, quota_exceeded_max_deactivate=5)

    check = playbook(lab, tmp_path, "quota_exceeded", "--check", "--diff", **gates)
    assert check.rc == 0, check.out
    summary = check.custom["quota_exceeded"]
    assert summary["check_mode"] is True and summary["exhausted_before"] == ["seats"]
    assert summary["seats_freed"] == 5 and int(summary["headroom_after"]["seats"]) == 5
    assert lab.active_users() == before_users and lab.secret() == before_secret

    real = playbook(lab, tmp_path, "quota_exceeded", "-vvv", **gates)
    assert real.rc == 0, real.out
    summary = real.custom["quota_exceeded"]
    assert summary["exhausted_before"] == ["seats"] and summary["exhausted_after"] == []
    assert summary["seats_freed"] == 5 and len(summary["deactivated"]) == 5
    assert int(summary["headroom_after"]["seats"]) == 5
    assert summary["license_applied"] is False
    assert "Headroom: 5 seats" in real.out
    assert lab.token not in real.out
    assert len(lab.active_users()) == 20 and lab.license()["current_seats"] == 20

    second = playbook(lab, tmp_path, "quota_exceeded", **gates)
    assert second.rc == 0, second.out
    assert second.changed_tasks == []
    assert second.custom["quota_exceeded"]["exhausted_before"] == []
    assert len(lab.active_users()) == 20


def test_quota_playbook_gate_and_refusal_leave_everything_unchanged(lab, tmp_path):
    seed_and_fill_seats(lab)
    before_users = lab.active_users()
    not_allowed = playbook(lab, tmp_path, "quota_exceeded")
    assert not_allowed.rc != 0
    assert "No headroom yet: seats 25/25" in not_allowed.failure()
    too_many = playbook(lab, tmp_path, "quota_exceeded", quota_exceeded_free_seats=True,
                        quota_exceeded_max_deactivate=2)
    assert too_many.rc != 0
    assert "5 users would be deactivated, more than max_deactivate=2" in too_many.failure()
    assert lab.active_users() == before_users


def test_quota_playbook_tenants_with_an_upgraded_blob(lab, tmp_path):
    lab.cli("break", "tenants-exhausted")
    blob_file = tmp_path / "upgrade.blob"
    blob = lab.mint(25, 10)
    blob_file.write_text(blob + "\n")
    os.chmod(blob_file, 0o600)
    before_secret = lab.secret()

    check = playbook(lab, tmp_path, "quota_exceeded", "--check", "--diff",
                     quota_exceeded_license_blob_file=str(blob_file))
    assert check.rc == 0, check.out
    assert check.custom["quota_exceeded"]["exhausted_before"] == ["tenants"]
    assert int(check.custom["quota_exceeded"]["headroom_after"]["tenants"]) == 5
    assert '"tenant_count": 10' in check.out  # the diff shows claims
    assert blob not in check.out
    assert lab.secret() == before_secret

    real = playbook(lab, tmp_path, "quota_exceeded", "-vvv", quota_exceeded_license_blob_file=str(blob_file))
    assert real.rc == 0, real.out
    summary = real.custom["quota_exceeded"]
    assert summary["exhausted_before"] == ["tenants"] and summary["exhausted_after"] == []
    assert summary["license_applied"] is True
    assert summary["license_changes"]["tenant_count"] == {"before": 5, "after": 10}
    assert summary["unused_tenants"], "the unused filler tenants are reported"
    assert int(summary["headroom_after"]["tenants"]) == 5
    served = lab.license()
    assert served["max_tenants"] == 10 and served["current_tenants"] == 5
    assert blob not in real.out and lab.token not in real.out

    second = playbook(lab, tmp_path, "quota_exceeded", quota_exceeded_license_blob_file=str(blob_file))
    assert second.rc == 0, second.out
    assert second.changed_tasks == []


def test_license_renewal_playbook_check_apply_verify_idempotent_no_secret_in_output(lab, tmp_path):
    original = lab.secret_blob()
    blob = lab.mint(30, 6, "enterprise", "--expires-in", "730")
    before_secret = lab.secret()

    check = playbook(lab, tmp_path, "license_renewal", "--check", "--diff", "-vvv", license_renewal_blob=blob)
    assert check.rc == 0, check.out
    assert check.custom["license_renewal"]["result"] == "check"
    assert lab.secret() == before_secret
    assert blob not in check.out and original not in check.out

    real = playbook(lab, tmp_path, "license_renewal", "-vvv", license_renewal_blob=blob)
    assert real.rc == 0, real.out
    summary = real.custom["license_renewal"]
    assert summary["result"] == "applied" and summary["changed"] is True and summary["restarted"] is True
    assert summary["claims"]["seat_count"] == 30 and summary["changes"]["seat_count"] == {"before": 25, "after": 30}
    assert summary["previous_fingerprint"] == lc.blob_fingerprint(original)
    assert "/license serves license %s" % summary["claims"]["license_id"] in real.out
    assert blob not in real.out and original not in real.out
    assert blob.split(".")[1] not in real.out and blob.split(".")[2] not in real.out
    served = lab.license()
    assert served["license_id"] == summary["claims"]["license_id"] and served["max_seats"] == 30
    assert lab.secret_blob() == blob and lab.secret_blob("license.blob.previous") == original

    second = playbook(lab, tmp_path, "license_renewal", license_renewal_blob=blob)
    assert second.rc == 0, second.out
    assert second.changed_tasks == []
    assert second.custom["license_renewal"]["restarted"] is False


@pytest.mark.parametrize("kind", ["expired", "other-key", "downgrade", "downgrade-survey-string"])
def test_license_renewal_playbook_refuses_bad_blobs(lab, tmp_path, kind):
    if kind == "expired":
        blob = lab.mint(50, 10, "enterprise", "--expires-in", "-1")
        words = "invalid, expired"
    elif kind == "other-key":
        blob = lab.mint(50, 10, "enterprise", "--key", "other")
        words = "invalid, wrong_issuer"
    else:
        lab.cli("break", "seats-exhausted")
        blob = lab.mint(20, 10)
        words = "a downgrade: seat_count 20 is below the 25 seats in use"
    # An AWX survey answers "false" as a string: it must refuse exactly like the boolean.
    extra = {"license_renewal_allow_downgrade": "false"} if kind == "downgrade-survey-string" else {}
    before = lab.secret()
    run = playbook(lab, tmp_path, "license_renewal", license_renewal_blob=blob, **extra)
    assert run.rc != 0
    assert words in run.failure(), run.failure()
    assert lab.secret() == before
    assert blob not in run.out


def test_license_renewal_rolls_back_when_the_api_does_not_serve_the_new_blob(lab, tmp_path):
    """The operator validated against the wrong issuer key: the blob checks out locally, the API refuses it."""
    original = lab.secret_blob()
    wrong_key = lc.generate_private_key()
    blob = lc.encode_license(dict(license_id="WRONG-KEY-1", customer="Alexandria Lab", tier="enterprise",
                                  seat_count=60, tenant_count=12, issued_at="2026-01-01T00:00:00Z",
                                  expires_at="2099-01-01T00:00:00Z"), wrong_key)
    run = playbook(lab, tmp_path, "license_renewal", license_renewal_blob=blob,
                   license_renewal_issuer_public_key=lc.public_key_pem(wrong_key.public_key()),
                   license_renewal_wait_timeout=15)
    assert run.rc != 0
    failure = run.failure()
    assert "the license Secret was written but the restart did not complete" in failure
    # The lab's readiness probe (/ready) keeps the new pod unavailable, so the rollout itself never completes.
    assert "did not roll out within 15s: 0 of 1 updated replicas are available" in failure
    assert "Rolled back to the previous blob %s" % lc.blob_fingerprint(original) in failure
    summary = run.custom["license_renewal"]
    assert summary["result"] == "failed" and summary["rolled_back"] is True
    assert summary["restored_fingerprint"] == lc.blob_fingerprint(original)
    assert lab.secret_blob() == original
    served = lab.license()
    assert served["valid"] is True and served["max_seats"] == 25
    assert blob not in run.out


def test_present_creates_a_missing_license_secret(lab, capsys):
    lab.cli("break", "license-missing")
    status = run_module(alex_license, lab.api_args(), capsys)
    assert status["valid"] is False and status["reason"] == "missing"
    assert status["exhausted"] == ["seats", "tenants"]
    blob = lab.mint(25, 5)
    res = run_module(alex_license, lab.license_args(state="present", blob=blob, restart=True), capsys)
    assert res["changed"] is True and res["previous_claims"] is None and res["restarted"] is True
    assert res["license"]["valid"] is True and res["license"]["max_seats"] == 25
    assert lab.secret_blob() == blob and lab.secret_blob("license.blob.previous") is None
    assert blob not in res.raw


def test_license_renewal_playbook_repairs_a_corrupt_license(lab, tmp_path):
    """Scenario 1 sends a license_signature_failed cause here: a fresh blob from the issuer fixes it."""
    lab.cli("break", "license-corrupt")
    assert lab.license()["reason"] == "bad_signature"
    blob = lab.mint(25, 5)
    run = playbook(lab, tmp_path, "license_renewal", license_renewal_blob=blob)
    assert run.rc == 0, run.out
    summary = run.custom["license_renewal"]
    assert summary["result"] == "applied" and summary["restarted"] is True
    assert summary["served_before"]["license_id"] is not None
    served = lab.license()
    assert served["valid"] is True and served["license_id"] == summary["claims"]["license_id"]
    assert blob not in run.out
