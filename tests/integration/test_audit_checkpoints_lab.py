"""Checkpoints against the lab: both stores (a controller directory and a Secret in the lab's <ns>-audit namespace,
read and written through its Kubernetes facade), each the other's witness; the issue's repro (the newest rows of
a tenant deleted, the API then handing out the same seqs again); --check leaves both stores byte-identical."""
import base64
import json
import os
import shutil

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint as cpk
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

from alexlab.testing import LabHandle

import audit_helpers as h
from test_audit_checkpoints import tree_state

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    handle = LabHandle.up(tmp_path_factory.mktemp("cplab"))
    handle.cli("seed-audit", "--tenants", "2", "--rows", "500")
    yield handle
    proc = handle.down()
    assert proc.returncode == 0, proc.stderr


def watch_args(lab, **extra):
    """Kubernetes options only (DSN and HMAC key from the release's Secret), both checkpoint stores."""
    info = lab.info
    args = dict(kubeconfig=info["kubeconfig"], namespace=info["namespace"], release=info["release"],
                checkpoint_dir=info["checkpoint_dir"], checkpoint_secret=info["checkpoint_secret"],
                checkpoint_namespace=info["checkpoint_namespace"], checkpoint_key=info["checkpoint_key"])
    args.update(extra)
    return args


def secret_state(lab):
    secret = lab.core().read_namespaced_secret(lab.info["checkpoint_secret"], lab.info["checkpoint_namespace"])
    return secret.metadata.resource_version, dict(secret.data or {})


def dir_file(lab, tenant):
    root = lab.info["checkpoint_dir"]
    [sub] = [d for d in os.listdir(root) if not d.startswith(".")]
    return os.path.join(root, sub, cpk.file_name(tenant))


def api_write(lab, tenant):
    code, body = lab.api("POST", "/api/v1/tenants/%s/audit" % tenant,
                         {"actor": "lab-test", "action": "doc.read", "payload": {"k": 1}})
    assert code == 201, body
    return body["seq"]


def test_both_stores_check_mode_witness_and_the_cut_tail(lab, tmp_path):
    # --check first: nothing written anywhere.
    dry = h.run_module(alex_audit_verify, watch_args(lab, update_checkpoints=True), check_mode=True)
    assert dry["verified"] and dry["checkpoints"]["written"] == {"dir": ["seed-001", "seed-002"],
                                                                 "secret": ["seed-001", "seed-002"]}
    assert tree_state(lab.info["checkpoint_dir"]) == {}
    proc = lab.kubectl("get", "secret", lab.info["checkpoint_secret"], "-n", lab.info["checkpoint_namespace"],
                       check=False)
    assert proc.returncode != 0 and "NotFound" in proc.stderr
    first = h.run_module(alex_audit_verify, watch_args(lab, update_checkpoints=True))
    assert first["changed"] and first["verified"], first["msg"]
    rv, data = secret_state(lab)
    assert len(data) == 2
    doc = json.loads(base64.b64decode(next(iter(data.values()))))
    assert doc["format"] == cpk.FORMAT and doc["namespace"] == lab.info["namespace"]
    files = tree_state(lab.info["checkpoint_dir"])
    for secret in (lab.info["checkpoint_key"], lab.info["hmac_key"], lab.info["admin_token"]):
        assert secret not in json.dumps(first)
    # A second run and a check-mode run: both stores byte-identical, the Secret not even rewritten.
    for check_mode in (True, False):
        again = h.run_module(alex_audit_verify, watch_args(lab, update_checkpoints=True), check_mode=check_mode)
        assert again["verified"] and not again["changed"]
        assert secret_state(lab) == (rv, data) and tree_state(lab.info["checkpoint_dir"]) == files

    # The directory's file replaced by an older valid one: the Secret, the witness, holds the newer.
    old_copy = tmp_path / "old.json"
    shutil.copy(dir_file(lab, "seed-001"), old_copy)
    for _write in range(3):
        api_write(lab, "seed-001")
    advanced = h.run_module(alex_audit_verify, watch_args(lab, update_checkpoints=True))
    assert advanced["tenants"]["seed-001"]["checkpoint"]["last_seq"] == 503
    shutil.copy(old_copy, dir_file(lab, "seed-001"))
    replayed = h.run_module(alex_audit_verify, watch_args(lab, update_checkpoints=True))
    seg = replayed["tenants"]["seed-001"]["segments"]
    assert replayed["verified"] is False and seg == [
        {"first_seq": 503, "last_seq": 503, "rows": 0, "kind": "checkpoint_invalid"}]
    assert "dir holds an older checkpoint (seq 500) than secret (seq 503)" in " ".join(
        replayed["tenants"]["seed-001"]["checkpoint"]["problems"])
    with open(dir_file(lab, "seed-001"), "rb") as handle, open(old_copy, "rb") as old:
        assert handle.read() == old.read(), "the replayed file was overwritten: the evidence is gone"

    # Put it right (the SRE copies the witness' checkpoint back), then the issue's repro: the newest rows of a
    # tenant deleted in SQL, after which the API hands out the same seqs again.
    secret = lab.core().read_namespaced_secret(lab.info["checkpoint_secret"], lab.info["checkpoint_namespace"])
    key = [k for k in secret.data if k.endswith(cpk.file_name("seed-001"))][0]
    with open(dir_file(lab, "seed-001"), "wb") as handle:
        handle.write(base64.b64decode(secret.data[key]))
    assert h.run_module(alex_audit_verify, watch_args(lab))["verified"]
    lab.sql("DELETE FROM audit_logs WHERE tenant_id = 'seed-001' AND seq > 500", fetch=False)
    cut = h.run_module(alex_audit_verify, watch_args(lab))
    assert cut["tenants"]["seed-001"]["segments"] == [
        {"first_seq": 501, "last_seq": 503, "rows": 3, "kind": "truncated"}]
    assert api_write(lab, "seed-001") == 501
    rewritten = h.run_module(alex_audit_verify, watch_args(lab, update_checkpoints=True))
    assert rewritten["tenants"]["seed-001"]["segments"] == [
        {"first_seq": 501, "last_seq": 501, "rows": 1, "kind": "rolled_back"},
        {"first_seq": 502, "last_seq": 503, "rows": 2, "kind": "truncated"}]
    assert rewritten["tenants"]["seed-001"]["probable_cause"] == "restore_rollback"
    assert rewritten["checkpoints"]["written"] == {"dir": [], "secret": []}
    # Every row of a tenant deleted: still listed, with rows 0.
    lab.sql("DELETE FROM audit_logs WHERE tenant_id = 'seed-002'", fetch=False)
    gone = h.run_module(alex_audit_verify, watch_args(lab))
    assert gone["tenants"]["seed-002"]["rows"] == 0
    assert gone["tenants"]["seed-002"]["segments"] == [
        {"first_seq": 1, "last_seq": 500, "rows": 500, "kind": "tenant_missing"}]
