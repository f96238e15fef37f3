"""The license issuer key rotation (issue 13 part 5 and the license_issuer target of playbooks/key_rotation.yml).

One lab for the module (the tests run in file order and build on each other's state: the gates change
nothing, the playbook rotates from the lab's issuer key to `next`, the refusals run against that set). The
lab's API reads the trusted issuer set from Secret alexandria-ee-license-issuers at start, as the contract says.
"""
import json
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from alexlab import pg as labpg
from alexlab.testing import LabHandle
from ansible_collections.alexandria.ee.plugins.modules import alex_license, alex_license_issuers

import playbooks

pytestmark = pytest.mark.lab

NS = "alexandria"
ISSUERS = "alexandria-ee-license-issuers"
LICENSE = "alexandria-ee-license"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, pg_admin_dsn):
    dsn = labpg.create_database(pg_admin_dsn, prefix="keyrot")
    handle = LabHandle(tmp_path_factory.mktemp("keyrotlab"), pg_admin_dsn, dsn)
    proc = handle.cli("up", "--dsn", dsn, check=False)
    if proc.returncode != 0:
        handle.drop_database()
        raise AssertionError(proc.stderr)
    yield handle
    proc = handle.down()
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def keys(lab):
    """The lab's issuer keys as an issuer hands them over: public key and key id (the private halves stay in the lab)."""
    out = {}
    for name in ("issuer", "next", "staged"):
        proc = lab.cli("license", "issuer-key", "--name", name)
        assert "PRIVATE" not in proc.stdout
        out[name] = json.loads(proc.stdout)
    return out


@pytest.fixture(scope="module")
def rotated(lab, keys):
    """The rotation from `issuer` to `next` done (by the playbook test when it ran first, else here with the
    modules, which then change what the playbook would have): tests that need the rotated set run alone too."""
    args = dict(kubeconfig=lab.info["kubeconfig"], namespace=NS, base_url=lab.info["api_url"], wait_timeout=120)
    for module, extra in ((alex_license_issuers, dict(add_public_key=keys["next"]["public_key"],
                                                      issuer_public_key=lab.info["issuer_public_key"])),
                          (alex_license, dict(state="present", blob=mint(lab, "next", seats=40, tenants=8),
                                              issuer_set="require", restart=True)),
                          (alex_license_issuers, dict(revoke_key_id=keys["issuer"]["key_id"], restart=True))):
        with patch_module_args(dict(args, **extra)):
            with pytest.raises(SystemExit):
                module.main()
    return keys


def mint(lab, key, seats=30, tenants=6, license_id=None):
    return lab.cli("license", "mint", "--seats", str(seats), "--tenants", str(tenants), "--tier", "enterprise",
                   "--key", key).stdout.strip()


def secret(lab, name):
    """(resourceVersion, data) of a Secret read with the lab's admin token, or None."""
    status, body = lab.client.kube("GET", "/api/v1/namespaces/%s/secrets/%s" % (NS, name))
    if status == 404:
        return None
    assert status == 200, body
    return body["metadata"]["resourceVersion"], body["data"]


def issuer_set(lab):
    import base64
    state = secret(lab, ISSUERS)
    return json.loads(base64.b64decode(state[1]["issuers.json"])) if state else None


def private_keys(lab):
    with open(lab.dir + "/keys.json", encoding="utf-8") as handle:
        data = json.load(handle)
    return [data["issuer_private_key"]] + list((data.get("issuer_keys") or {}).values())


def run_module(module, args, capsys, check_mode=False, diff=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    raw = capsys.readouterr().out
    result = json.loads(raw)
    result["raw"] = raw
    return result


def k8s(lab, **extra):
    return dict(kubeconfig=lab.info["kubeconfig"], namespace=NS, base_url=lab.info["api_url"], wait_timeout=120,
                **extra)


def rotation_vars(lab, keys, blob_file, **over):
    variables = dict(
        alex_base_url=lab.info["api_url"], alex_kubeconfig=lab.info["kubeconfig"], alex_namespace=NS,
        alex_license_issuer_public_key=lab.info["issuer_public_key"], alex_target="localhost",
        key_rotation_target="license_issuer", key_rotation_reason="compromise",
        key_rotation_compromised_at="2026-11-27T21:40:00Z", key_rotation_change_ref="CHG-4711",
        key_rotation_confirm=True, key_rotation_new_issuer_public_key=keys["next"]["public_key"],
        key_rotation_license_blob_file=str(blob_file), key_rotation_revoke_issuer_key_id=keys["issuer"]["key_id"],
        key_rotation_wait_timeout=120)
    variables.update(over)
    return variables


def everything(lab):
    """What a rotation may change: both license Secrets and the Deployment's generation."""
    return secret(lab, ISSUERS), secret(lab, LICENSE), lab.client.deployment()["metadata"]["generation"]


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


# -- the lab ------------------------------------------------------------------------------------------------------

def test_lab_mints_under_named_issuer_keys_and_refuses_unknown_names(lab, keys, capsys):
    assert keys["issuer"]["public_key"] == lab.info["issuer_public_key"]
    assert keys["next"]["key_id"] != keys["issuer"]["key_id"]
    again = json.loads(lab.cli("license", "issuer-key", "--name", "next").stdout)
    assert again == keys["next"]  # made once, then the same key
    blob = mint(lab, "next")
    checked = run_module(alex_license, dict(state="validate", issuer_set="ignore", blob=blob,
                                            issuer_public_key=keys["next"]["public_key"]), capsys)
    assert checked["valid"] is True and checked["claims"]["issuer_key_id"] == keys["next"]["key_id"]
    proc = lab.cli("license", "mint", "--seats", "1", "--tenants", "1", "--tier", "starter", "--key", "nope",
                   check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("alexlab: no issuer key 'nope' in this lab: make it with alexlab license "
                                   "issuer-key --name nope")


# -- the gates -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("over, missing", [
    (dict(key_rotation_change_ref=""), "key_rotation_change_ref (the change reference"),
    (dict(key_rotation_confirm=False), "key_rotation_confirm=true (the explicit confirmation"),
    (dict(key_rotation_compromised_at=""), "key_rotation_reason=compromise needs key_rotation_compromised_at"),
    (dict(key_rotation_compromised_at="yesterday"), "2026-11-27T21:40:00Z), not yesterday."),
])
def test_the_gates_refuse_and_change_nothing(lab, keys, tmp_path, over, missing):
    blob_file = tmp_path / "next.blob"
    blob_file.write_text(mint(lab, "next") + "\n")
    before = everything(lab)
    run = playbooks.run_playbook("key_rotation", tmp_path, variables=rotation_vars(lab, keys, blob_file, **over))
    assert run.rc != 0
    assert missing in run.failure()
    assert run.host("localhost")["result"] == "gated"
    assert everything(lab) == before and before[0] is None


# -- the procedure, in four steps ---------------------------------------------------------------------------------

def test_issuer_rotation_playbook_check_run_check_run(lab, keys, tmp_path):
    blob = mint(lab, "next", seats=40, tenants=8)
    blob_file = tmp_path / "next.blob"
    blob_file.write_text(blob + "\n")
    variables = rotation_vars(lab, keys, blob_file)
    before = everything(lab)
    secrets_seen = [blob, blob.split(".")[1], blob.split(".")[2], lab.info["license_blob"]] + private_keys(lab)

    check = playbooks.run_playbook("key_rotation", tmp_path, "--diff", "-vvv", variables=variables, check=True)
    assert check.rc == 0, check.out
    assert everything(lab) == before  # byte for byte: no Secret written, no rollout
    summary = check.host("localhost")
    assert summary["scenario"] == "key_rotation" and summary["result"] == "planned" and summary["check_mode"]
    plan = check.record("localhost")["plan"]
    assert [(step["action"], step["change"]) for step in plan] == [
        ("add_issuer_key", True), ("apply_license", True), ("revoke_issuer_key", True)]
    assert plan[0]["key_id"] == keys["next"]["key_id"] and plan[0]["create_set"] is True
    assert plan[2]["key_id"] == keys["issuer"]["key_id"] and plan[2]["reason"] == "compromise"
    assert not any(text in check.out for text in secrets_seen)

    real = playbooks.run_playbook("key_rotation", tmp_path, "-vvv", variables=dict(
        variables, alex_expected_plan_hash=summary["plan_hash"]))
    assert real.rc == 0, real.out
    assert not any(text in real.out for text in secrets_seen)
    result = real.custom["key_rotation"]
    assert result["changed"] is True and result["reason"] == "compromise"
    assert result["ids_before"] == {"trusted": [], "pending": [], "revoked": []}
    assert result["ids_after"] == {"trusted": [keys["next"]["key_id"]], "pending": [],
                                   "revoked": [keys["issuer"]["key_id"]]}
    assert result["verification"]["ready"] is True and result["verification"]["serves_new_license"] is True
    assert result["verification"]["previous_blob_reason"] == "revoked_issuer"
    assert real.host("localhost")["result"] == "rotated"
    stored = issuer_set(lab)
    revoked = [k for k in stored["keys"] if k["id"] == keys["issuer"]["key_id"]][0]
    assert revoked["status"] == "revoked" and revoked["revocation_reason"] == "compromise"
    assert revoked["compromised_at"] == "2026-11-27T21:40:00Z"
    status, served = lab.api("GET", "/license", auth=False)
    assert status == 200 and served["valid"] is True and served["max_seats"] == 40
    assert lab.api("GET", "/ready", auth=False)[0] == 200
    after = everything(lab)

    check_again = playbooks.run_playbook("key_rotation", tmp_path, "--diff", variables=variables, check=True)
    assert check_again.rc == 0, check_again.out
    assert [step["change"] for step in check_again.record("localhost")["plan"]] == [False, False, False]
    assert check_again.changed_tasks == []
    assert everything(lab) == after

    again = playbooks.run_playbook("key_rotation", tmp_path, variables=variables)
    assert again.rc == 0, again.out
    assert again.changed_tasks == [] and again.custom["key_rotation"]["changed"] is False
    assert again.host("localhost")["result"] == "unchanged"
    assert everything(lab) == after


# -- refusals against the rotated set ----------------------------------------------------------------------------

@pytest.mark.parametrize("key, reason", [("issuer", "revoked_issuer"), ("other", "unknown_issuer"),
                                         ("staged", "pending_issuer")])
def test_blobs_under_revoked_unknown_and_not_yet_trusted_keys_are_refused(lab, rotated, capsys, key, reason):
    keys = rotated
    if key == "staged":  # known to the set, trusted only from 2099
        staged = run_module(alex_license_issuers, k8s(lab, add_public_key=keys["staged"]["public_key"],
                                                      not_before="2099-01-01T00:00:00Z"), capsys)
        assert not staged.get("failed"), staged.get("msg")
        assert keys["staged"]["key_id"] in staged["key_ids_after"]["pending"]
    blob = mint(lab, key)
    before = everything(lab)
    checked = run_module(alex_license, k8s(lab, state="validate", blob=blob), capsys)
    assert checked["valid"] is False and checked["reason"] == reason
    assert checked["trusted_by"] == "trusted issuer set in Secret alexandria/%s key issuers.json" % ISSUERS
    refused = run_module(alex_license, k8s(lab, state="present", blob=blob, restart=True), capsys)
    assert refused["failed"] is True and refused["reason"] == reason
    assert "the license Secret is unchanged" in refused["msg"]
    assert blob not in refused["raw"] and blob.split(".")[2] not in refused["raw"]
    assert everything(lab) == before


def test_the_api_refuses_a_blob_under_the_revoked_key_and_logs_revoked_issuer(lab, rotated):
    good = secret(lab, LICENSE)
    lab.client.set_secret_value(LICENSE, "license.blob", mint(lab, "issuer").encode("ascii"))
    lab.client.rollout_restart()

    def refused():
        body = lab.api("GET", "/license", auth=False)[1]
        return isinstance(body, dict) and body.get("reason") == "revoked_issuer"

    assert wait_for("/license to say revoked_issuer", refused)
    status, ready = lab.api("GET", "/ready", auth=False)
    assert status == 503 and ready["checks"]["license"] == "license blob invalid: revoked_issuer"
    assert wait_for("the api log line", lambda: "license blob invalid: revoked_issuer" in lab.logs("api"))
    import base64
    lab.client.set_secret_value(LICENSE, "license.blob", base64.b64decode(good[1]["license.blob"]))
    lab.client.rollout_restart()
    lab.client.wait_ready(120)
    assert lab.api("GET", "/license", auth=False)[1]["valid"] is True


# -- the module's own refusals --------------------------------------------------------------------------------------

def test_issuer_module_refusals_change_nothing(lab, rotated, keys, capsys):
    before = everything(lab)
    cases = [
        (dict(revoke_key_id=keys["next"]["key_id"]), "refusing to revoke issuer key %s: no other key is trusted now"
         % keys["next"]["key_id"]),
        (dict(add_public_key=keys["issuer"]["public_key"]), "issuer key %s was revoked at" % keys["issuer"]["key_id"]),
        (dict(revoke_key_id="0123456789abcdef"), "issuer key 0123456789abcdef is not in the trusted issuer set"),
        (dict(revoke_key_id=keys["staged"]["key_id"], revocation_reason="compromise"),
         "revocation_reason=compromise needs compromised_at"),
        (dict(add_public_key="-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----"),
         "add_public_key holds a PRIVATE key"),
    ]
    for args, words in cases:
        result = run_module(alex_license_issuers, k8s(lab, **args), capsys)
        assert result.get("failed") is True and words in result["msg"], result["msg"]
        assert "MC4CAQAwBQYDK2VwBCIEIA" not in result["raw"]
    assert everything(lab) == before


def test_issuer_module_check_mode_and_diff_show_ids_only(lab, rotated, capsys):
    before = everything(lab)
    other = json.loads(lab.cli("license", "issuer-key", "--name", "spare").stdout)
    planned = run_module(alex_license_issuers, k8s(lab, add_public_key=other["public_key"], restart=True), capsys,
                         check_mode=True, diff=True)
    assert planned["changed"] is True and planned["restart_needed"] is True and planned["restarted"] is False
    assert planned["missing_permissions"] == []
    assert [k["id"] for k in planned["diff"]["after"]["keys"]] == [k["id"] for k in planned["diff"]["before"]["keys"]] \
        + [other["key_id"]]
    assert other["public_key_hex"] not in json.dumps(planned["diff"])
    assert everything(lab) == before


def test_an_unreadable_issuer_set_is_one_clear_message(lab, rotated, capsys):
    good = secret(lab, ISSUERS)
    lab.client.set_secret_value(ISSUERS, "issuers.json", b"{not json")
    try:
        result = run_module(alex_license, k8s(lab, state="validate"), capsys)
        assert result["failed"] is True
        assert result["msg"].startswith("the trusted issuer set in Secret alexandria/%s key issuers.json is invalid "
                                        "(not JSON): the API trusts no issuer while it is" % ISSUERS)
    finally:
        import base64
        lab.client.set_secret_value(ISSUERS, "issuers.json", base64.b64decode(good[1]["issuers.json"]))


def test_a_concurrent_change_of_the_set_is_refused_not_overwritten(lab, rotated):
    """The replace carries the resourceVersion it read: a change in between gives 409, and both keep theirs."""
    from ansible_collections.alexandria.ee.plugins.module_utils import k8s_workload as kw
    from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, build_api_client
    from ansible_collections.alexandria.ee.plugins.module_utils import license_issuers as li
    workload = kw.Workload(build_api_client(dict(kubeconfig=lab.info["kubeconfig"], context=None, host=None,
                                                 api_key=None, validate_certs=None, ca_cert=None)), NS)
    stale = workload.read_secret(ISSUERS)
    doc = li.parse_set(kw.secret_value(stale, "issuers.json"))
    # Another writer stores the same set in another layout (an unchanged object would keep its resourceVersion).
    lab.client.set_secret_value(ISSUERS, "issuers.json", json.dumps(doc).encode("ascii"))
    current = secret(lab, ISSUERS)
    with pytest.raises(K8sError) as err:
        workload.write_secret_values(ISSUERS, {"issuers.json": li.dump_set(li.empty_set())}, stale)
    assert "409" in str(err.value) or "Conflict" in str(err.value)
    assert secret(lab, ISSUERS) == current


def test_the_playbook_rotates_the_audit_hmac_key_through_the_same_gates_and_record(lab, keys, tmp_path):
    """key_rotation_target=audit_hmac: main.yml's gates, then tasks/audit_hmac.yml (alex_audit_key), then the same
    run record and set_stats; a second run with the same change reference changes nothing."""
    variables = dict(
        alex_base_url=lab.info["api_url"], alex_kubeconfig=lab.info["kubeconfig"], alex_namespace=NS,
        alex_target="localhost", key_rotation_target="audit_hmac", key_rotation_reason="planned",
        key_rotation_change_ref="CHG-AUDIT-1", key_rotation_confirm=True, key_rotation_wait_timeout=120)
    run = playbooks.run_playbook("key_rotation", tmp_path, "-vvv", variables=variables)
    assert run.rc == 0, run.out
    result = run.custom["key_rotation"]
    assert result["target"] == "audit_hmac" and result["changed"] is True
    assert run.host("localhost")["result"] == "rotated"
    assert run.record("localhost")["plan"][0]["action"] == "rotate_audit_hmac_key"
    assert lab.info["hmac_key"] not in run.out
    again = playbooks.run_playbook("key_rotation", tmp_path, variables=variables)
    assert again.rc == 0, again.out
    assert again.custom["key_rotation"]["changed"] is False and again.host("localhost")["result"] == "unchanged"
