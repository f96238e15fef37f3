"""Checkpoints of the audit chain (docs/contract.md section 4, "Checkpoints") against a real PostgreSQL.

Cut tails, deleted tenants and rollbacks are what a database insider can do without breaking a single
HMAC; each must come out with its exact seq range. Checkpoint files edited or swapped must be refused.
"""
import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint as cpk
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_store
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

import audit_helpers as h

CP_KEY = "checkpoint-key-0123456789abcdef0123456789abcdef"


def args(dsn, cp_dir, **extra):
    out = dict(dsn=dsn, hmac_key=h.KEY, checkpoint_dir=str(cp_dir), checkpoint_key=CP_KEY, workers=1)
    out.update(extra)
    return out


def tree_state(path):
    """Every file under path with its bytes and mode: equal means byte-identical."""
    state = {}
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as handle:
                state[os.path.relpath(full, path)] = (hashlib.sha256(handle.read()).hexdigest(),
                                                      oct(os.stat(full).st_mode & 0o777))
    return state


@pytest.fixture
def chain(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 500) + h.rows_for("globex", 40) + h.rows_for("t 'x'/..\\evil\t", 5))
    cp_dir = tmp_path / "checkpoints"
    cp_dir.mkdir(mode=0o700)
    return conn, pg_dsn, cp_dir


def checkpoint_now(dsn, cp_dir, **extra):
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True, **extra))
    assert res["verified"] is True, res["msg"]
    return res


def test_four_steps_check_write_check_write(chain):
    conn, dsn, cp_dir = chain
    first = h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True), check_mode=True, diff=True)
    assert first["changed"] is True and first["verified"] is True
    assert first["checkpoints"]["written"] == {"dir": ["acme", "globex", "t 'x'/..\\evil\t"]}
    assert tree_state(cp_dir) == {}, "check mode wrote a checkpoint"
    assert first["checkpoints"]["missing"] == ["acme", "globex", "t 'x'/..\\evil\t"]
    assert any("no checkpoint for tenant(s)" in w for w in first["warnings"])
    real = h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True), diff=True)
    assert real["changed"] is True and real["diff"]["after"] == {"acme": 500, "globex": 40, "t 'x'/..\\evil\t": 5}
    state = tree_state(cp_dir)
    assert len([n for n in state if n.endswith(".json")]) == 3
    assert all(mode == "0o600" for _digest, mode in state.values())
    again = h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True), check_mode=True)
    assert again["changed"] is False and again["verified"] is True and again["checkpoints"]["missing"] == []
    last = h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True))
    assert last["changed"] is False and tree_state(cp_dir) == state
    assert CP_KEY not in json.dumps(last) and h.KEY not in json.dumps(last)


def test_incremental_reads_only_new_rows_and_advances(chain):
    conn, dsn, cp_dir = chain
    checkpoint_now(dsn, cp_dir)
    h.load(conn, h.rows_for("acme", 25, start_seq=501, prev_hmac=last_hmac(conn, "acme")))
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True))
    acme = res["tenants"]["acme"]
    assert res["verified"] is True and acme["mode"] == "incremental"
    assert acme["rows_read"] == 26 and acme["rows"] == 525 and acme["valid_rows"] == 525
    assert res["tenants"]["globex"]["rows_read"] == 1
    assert res["checkpoints"]["written"] == {"dir": ["acme"]}
    full = h.run_module(alex_audit_verify, args(dsn, cp_dir, mode="full"))
    assert full["tenants"]["acme"]["rows_read"] == 525 and full["tenants"]["acme"]["mode"] == "full"
    assert full["tenants"]["acme"]["rows"] == 525


def last_hmac(conn, tenant):
    with conn.cursor() as cur:
        cur.execute("SELECT row_hmac FROM audit_logs WHERE tenant_id = %s ORDER BY seq DESC LIMIT 1", (tenant,))
        value = cur.fetchone()[0]
    conn.rollback()
    return value


@pytest.mark.parametrize("mode", ["incremental", "full"])
@pytest.mark.parametrize("cut", [1, 7])
def test_cut_tail_is_truncated_with_its_exact_range(chain, mode, cut):
    conn, dsn, cp_dir = chain
    checkpoint_now(dsn, cp_dir)
    h.delete(conn, "acme", range(501 - cut, 501))
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir, mode=mode, update_checkpoints=True))
    assert res["verified"] is False and res["broken"] == ["acme"]
    assert res["tenants"]["acme"]["segments"] == [
        {"first_seq": 501 - cut, "last_seq": 500, "rows": cut, "kind": "truncated"}]
    assert res["tenants"]["acme"]["probable_cause"] == "tail_truncation"
    assert res["checkpoints"]["written"] == {"dir": ["globex", "t 'x'/..\\evil\t"]} or \
        res["checkpoints"]["written"] == {"dir": []}
    # The cut tail stays reported: the broken tenant's checkpoint was not moved back.
    again = h.run_module(alex_audit_verify, args(dsn, cp_dir, mode=mode))
    assert again["tenants"]["acme"]["segments"][0]["kind"] == "truncated"


def test_deleted_tenant_is_missing_with_zero_rows(chain):
    conn, dsn, cp_dir = chain
    checkpoint_now(dsn, cp_dir)
    h.delete(conn, "globex", range(1, 41))
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir))
    assert res["broken"] == ["globex"]
    globex = res["tenants"]["globex"]
    assert globex["rows"] == 0
    assert globex["segments"] == [{"first_seq": 1, "last_seq": 40, "rows": 40, "kind": "tenant_missing"}]
    assert globex["probable_cause"] == "tail_truncation"


def test_older_backup_restored_then_written_is_rolled_back(chain):
    conn, dsn, cp_dir = chain
    checkpoint_now(dsn, cp_dir)
    # The backup ended at seq 480; it is restored (481-500 gone) and the API writes again from 481.
    h.delete(conn, "acme", range(481, 501))
    for _write in range(30):
        h.write_audit(conn, "acme", "after.restore")
    for mode in ("incremental", "full"):
        res = h.run_module(alex_audit_verify, args(dsn, cp_dir, mode=mode))
        acme = res["tenants"]["acme"]
        assert acme["segments"] == [{"first_seq": 481, "last_seq": 500, "rows": 20, "kind": "rolled_back"}], mode
        assert acme["probable_cause"] == "restore_rollback" and acme["mode"] == "full"


def checkpoint_path(cp_dir, tenant):
    [sub] = os.listdir(cp_dir)
    return os.path.join(cp_dir, sub, cpk.file_name(tenant))


def test_edited_or_swapped_checkpoint_is_invalid(chain, pg_admin_dsn):
    conn, dsn, cp_dir = chain
    checkpoint_now(dsn, cp_dir)
    path = checkpoint_path(cp_dir, "acme")
    with open(path) as handle:
        doc = json.load(handle)
    edited = dict(doc, last_seq=400)
    with open(path, "w") as handle:
        json.dump(edited, handle)
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True))
    acme = res["tenants"]["acme"]
    assert res["verified"] is False and acme["segments"] == [
        {"first_seq": 0, "last_seq": 0, "rows": 0, "kind": "checkpoint_invalid"}]
    assert acme["checkpoint"]["status"] == "invalid"
    assert "the signature does not verify" in " ".join(acme["checkpoint"]["problems"])
    with open(path) as handle:
        assert json.load(handle) == edited, "an invalid checkpoint was overwritten"
    # globex's checkpoint copied over acme's: signed, but another tenant's.
    with open(checkpoint_path(cp_dir, "globex")) as handle:
        globex_doc = handle.read()
    with open(path, "w") as handle:
        handle.write(globex_doc)
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir))
    assert res["tenants"]["acme"]["segments"][0]["kind"] == "checkpoint_invalid"
    assert "stored as tenant 'acme'" in " ".join(res["tenants"]["acme"]["checkpoint"]["problems"])
    # Another deployment's checkpoint (same key, other release) put in place of this one's.
    other = cpk.sign(CP_KEY.encode(), dict(doc, release="other-release"))
    with open(path, "w") as handle:
        json.dump(other, handle)
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir))
    assert "another deployment" in " ".join(res["tenants"]["acme"]["checkpoint"]["problems"])
    # Signed with another checkpoint key.
    with open(path, "w") as handle:
        json.dump(cpk.sign(b"x" * 40, doc), handle)
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir))
    assert "another checkpoint key" in " ".join(res["tenants"]["acme"]["checkpoint"]["problems"])
    # Garbage.
    with open(path, "wb") as handle:
        handle.write(b"\xff\xfe not json")
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir))
    assert res["tenants"]["acme"]["segments"][0]["kind"] == "checkpoint_invalid"
    assert "not JSON" in " ".join(res["tenants"]["acme"]["checkpoint"]["problems"])


def test_store_and_key_errors_are_one_clear_message(chain, tmp_path):
    conn, dsn, cp_dir = chain
    res = h.run_module(alex_audit_verify, args(dsn, tmp_path / "nowhere"))
    assert res["failed"] and "checkpoint directory" in res["msg"] and "does not exist" in res["msg"]
    assert "Traceback" not in json.dumps(res)
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir, checkpoint_key="short"))
    assert res["failed"] and "at least 32 bytes" in res["msg"] and "short" not in res["msg"]
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir, checkpoint_key=h.KEY * 2, hmac_key=h.KEY * 2))
    assert res["failed"] and "must not be the audit HMAC key" in res["msg"]
    res = h.run_module(alex_audit_verify, dict(dsn=dsn, hmac_key=h.KEY, update_checkpoints=True))
    assert res["failed"] and "needs a checkpoint store" in res["msg"]
    res = h.run_module(alex_audit_verify, dict(dsn=dsn, hmac_key=h.KEY, checkpoint_secret="cp",
                                               checkpoint_key=CP_KEY))
    assert res["failed"] and "checkpoint_namespace" in res["msg"]
    res = h.run_module(alex_audit_verify, dict(dsn=dsn, hmac_key=h.KEY, checkpoint_secret="cp",
                                               checkpoint_namespace="alexandria", checkpoint_key=CP_KEY))
    assert res["failed"] and "must not be the product's namespace" in res["msg"]
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    res = h.run_module(alex_audit_verify, args(dsn, not_a_dir))
    assert res["failed"] and "is not a directory" in res["msg"]


def test_concurrent_writers_during_incremental_watch(chain):
    conn, dsn, cp_dir = chain
    checkpoint_now(dsn, cp_dir)
    stop = threading.Event()
    written = []

    def writer():
        wconn = h.connect(dsn)
        try:
            while not stop.is_set():
                written.append(h.write_audit(wconn, "acme", "concurrent"))
        finally:
            wconn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = []
        for _run in range(6):
            results.append(h.run_module(alex_audit_verify, args(dsn, cp_dir, update_checkpoints=True)))
    finally:
        stop.set()
        thread.join()
    assert all(r["verified"] for r in results), [r["msg"] for r in results if not r["verified"]]
    assert len(written) > 0
    final = h.run_module(alex_audit_verify, args(dsn, cp_dir, mode="full", update_checkpoints=True))
    assert final["verified"] is True and final["tenants"]["acme"]["rows"] == 500 + len(written)
    assert final["tenants"]["acme"]["last_seq"] == 500 + len(written)


KILL_WRITER = r"""
import sys, time
sys.path[:0] = sys.argv[3:]
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_store as cs
store = cs.DirStore(sys.argv[1], {"namespace": "ns", "release": "rel"})
docs = [{"n": i, "pad": "x" * 20000} for i in range(2)]
print("ready", flush=True)
i = 0
while True:
    store.write({"t.json": docs[i % 2]}, lambda name, current: True)
    i += 1
"""


def test_kill_9_while_writing_leaves_old_or_new(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    for attempt in range(8):
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, str(root), "x"] + sys.path,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + attempt * 0.013)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        store = checkpoint_store.DirStore(str(root), {"namespace": "ns", "release": "rel"})
        entries = store.load()
        assert set(entries) == {"t.json"}
        assert entries["t.json"].error is None and entries["t.json"].doc["n"] in (0, 1)


def test_tail_cut_after_checkpoint_found_by_full_verify_of_restore(chain):
    """mode=full of a tenant whose rows are all present but fewer than checkpointed: rows count does not matter,
    the tip does."""
    conn, dsn, cp_dir = chain
    checkpoint_now(dsn, cp_dir)
    h.delete(conn, "acme", [250])
    res = h.run_module(alex_audit_verify, args(dsn, cp_dir, mode="full"))
    assert res["tenants"]["acme"]["segments"] == [{"first_seq": 250, "last_seq": 250, "rows": 1, "kind": "seq_gap"}]
    # Incremental mode trusts the checkpointed prefix (only the tip row is re-read): contract section 4.
    inc = h.run_module(alex_audit_verify, args(dsn, cp_dir))
    assert inc["verified"] is True and inc["tenants"]["acme"]["rows_read"] == 1


def test_checkpoint_times(chain):
    _conn, dsn, cp_dir = chain
    res = checkpoint_now(dsn, cp_dir)
    path = checkpoint_path(cp_dir, "acme")
    with open(path) as handle:
        doc = json.load(handle)
    assert doc["last_seq"] == 500 and doc["rows"] == 500 and doc["first_seq"] == 1
    assert doc["namespace"] == "alexandria" and doc["release"] == "alexandria-ee"
    assert doc["system_identifier"] == (res["database"]["system_identifier"] or "")
    checked = datetime.datetime.strptime(doc["checked_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((datetime.datetime.utcnow() - checked).total_seconds()) < 300
    assert cpk.check(CP_KEY, doc, {"namespace": "alexandria", "release": "alexandria-ee",
                                   "system_identifier": doc["system_identifier"]}, "acme") == []
