"""Verification across key epochs on a real PostgreSQL (docs/contract.md section 4, "Key epochs"): each epoch with
its own key, unknown_key, rotation_invalid and unattested apart from hmac_mismatch, anchors in a later epoch,
retirement across an epoch boundary, and chunks cut across epochs."""
import base64
import datetime
import json
import os
import subprocess

import pytest
from psycopg2 import sql

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring as akr
from ansible_collections.alexandria.ee.plugins.module_utils import audit_retire
from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

import audit_helpers as h
import playbooks

K1 = h.KEY.encode("utf-8")
K2 = b"second-epoch-key-\x00\xff-binary-ok-0123456789abcdef"
K3 = b"third-epoch-key-after-the-compromise-0123456789"
TABLES = audit_store.AuditTables()


def keyring_json(entries, genesis=K1):
    keys = []
    for key, status, extra in entries:
        entry = {"id": akr.key_id(key), "key_b64": base64.b64encode(key).decode("ascii"), "status": status,
                 "created_at": "2026-01-01T00:00:00Z"}
        entry.update(extra)
        keys.append(entry)
    return json.dumps({"format": akr.KEYRING_FORMAT, "genesis_key_id": akr.key_id(genesis), "keys": keys})


PLANNED = [(K1, "retired", {"reason": "planned"}), (K2, "active", {})]


def insert_record(conn, tenant, first_seq, prev, old, new, reason="planned", rotated_at="2026-03-01T12:10:00Z"):
    record = {"tenant_id": tenant, "first_seq": first_seq, "old_key_id": akr.key_id(old), "new_key_id": akr.key_id(new),
              "reason": reason, "old_last_seq": first_seq - 1, "old_last_row_hmac": prev, "rotated_at": rotated_at}
    record = akr.sign_rotation(record, new, old)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            TABLES.rotations, sql.SQL(", ").join(sql.Identifier(c) for c in akr.ROTATION_COLUMNS),
            sql.SQL(", ").join(sql.Placeholder() * len(akr.ROTATION_COLUMNS))),
            tuple(record[c] for c in akr.ROTATION_COLUMNS))
    conn.commit()
    return record


def two_epochs(conn, tenant="acme", first=10, second=10):
    """Rows 1..first with K1, a planned rotation, rows first+1..first+second with K2, linked across."""
    old = h.rows_for(tenant, first, key=h.KEY)
    h.load(conn, old)
    insert_record(conn, tenant, first + 1, old[-1]["row_hmac"], K1, K2)
    new = h.rows_for(tenant, second, start_seq=first + 1, prev_hmac=old[-1]["row_hmac"], key=K2)
    h.load(conn, new)
    return old + new


def verify(dsn, keyring, **extra):
    return h.run_module(alex_audit_verify, dict(dsn=dsn, hmac_keyring=keyring, **extra))


def test_planned_rotation_verifies_across_epochs_and_chunks(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    two_epochs(conn)
    two_epochs(conn, "beta", 3, 1)
    res = verify(pg_dsn, keyring_json(PLANNED))
    assert res["verified"], res["msg"]
    assert res["tenants"]["acme"]["epochs"] == [
        {"first_seq": 1, "last_seq": 10, "key_id": akr.key_id(K1), "status": "retired"},
        {"first_seq": 11, "last_seq": None, "key_id": akr.key_id(K2), "status": "active"}]
    # Chunks cut across the epoch boundary (several processes, one exported snapshot) give the same answer.
    keyring = akr.parse_keyring(keyring_json(PLANNED))
    creds = h.connect
    results = audit_store.verify(conn, TABLES, keyring, workers=2, connect=lambda: audit_store.tune_session(
        creds(pg_dsn)), chunk_rows=3, min_parallel_rows=1)[0]
    assert all(r["verified"] for r in results.values()) and results["acme"]["rows"] == 20
    # The genesis key alone (today's single key): the second epoch's key is unknown, its rows are not tampering.
    single = h.run_module(alex_audit_verify, dict(dsn=pg_dsn, hmac_key=h.KEY))
    assert single["tenants"]["acme"]["segments"] == [{"first_seq": 11, "last_seq": 20, "rows": 10,
                                                      "kind": "unknown_key"}]
    assert single["tenants"]["acme"]["probable_cause"] == "unknown_key"
    assert single["key_mismatch"] == []
    for secret in (h.KEY, base64.b64encode(K2).decode("ascii")):
        assert secret not in json.dumps(res) and secret not in json.dumps(single)


def test_key_mismatch_keeps_its_meaning_within_an_epoch(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    rows = h.rows_for("acme", 8, key=h.OTHER_KEY)
    h.load(conn, rows)
    res = verify(pg_dsn, keyring_json([(K1, "active", {})]))
    assert res["key_mismatch"] == ["acme"]
    assert res["tenants"]["acme"]["segments"] == [{"first_seq": 1, "last_seq": 8, "rows": 8, "kind": "hmac_mismatch"}]


def test_unknown_key_two_active_keys_and_an_edited_record(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    two_epochs(conn)
    unknown = verify(pg_dsn, keyring_json([(K1, "active", {})]))
    assert unknown["tenants"]["acme"]["segments"] == [{"first_seq": 11, "last_seq": 20, "rows": 10,
                                                       "kind": "unknown_key"}]
    assert "unknown_key seq 11-20 (10 rows); probable cause unknown_key" in unknown["msg"]
    two = verify(pg_dsn, keyring_json([(K1, "active", {}), (K2, "active", {})]))
    assert two.get("failed") and two["msg"] == (
        "the audit keyring has 2 active keys (ids %s): exactly one key signs new rows; mark the others retired "
        "(or compromised)" % ", ".join(sorted([akr.key_id(K1), akr.key_id(K2)])))
    with conn.cursor() as cur:
        cur.execute("UPDATE audit_key_rotations SET rotated_at = '2026-03-01T12:11:00Z' WHERE tenant_id = 'acme'")
    conn.commit()
    edited = verify(pg_dsn, keyring_json(PLANNED))
    acme = edited["tenants"]["acme"]
    assert not edited["verified"] and acme["probable_cause"] == "rotation_record_invalid"
    assert acme["segments"] == [{"first_seq": 11, "last_seq": 11, "rows": 0, "kind": "rotation_invalid"}]
    assert acme["rotation_problems"] == [{"first_seq": 11, "new_key_id": akr.key_id(K2), "problems": [
        "new_key_hmac does not verify with key %s" % akr.key_id(K2),
        "old_key_hmac does not verify with key %s (a planned rotation is signed by both keys)" % akr.key_id(K1)]}]
    assert edited["msg"] == "audit chain broken: tenant 'acme': rotation_invalid seq 11 (0 rows); probable cause " \
        "rotation_record_invalid"
    # Moving the epoch boundary in the record puts row 10 under the new key: it fails there, and the record too.
    with conn.cursor() as cur:
        cur.execute("UPDATE audit_key_rotations SET old_last_seq = 9, first_seq = 10 WHERE tenant_id = 'acme'")
    conn.commit()
    moved = verify(pg_dsn, keyring_json(PLANNED))["tenants"]["acme"]["segments"]
    assert moved == [{"first_seq": 10, "last_seq": 10, "rows": 1, "kind": "hmac_mismatch"},
                     {"first_seq": 10, "last_seq": 10, "rows": 0, "kind": "rotation_invalid"}]


def test_compromise_unattested_then_forged_rows_are_hmac_mismatch(pg_dsn, tmp_path):
    """K2 leaks: a checkpoint taken before the leak vouches for seq 1-15; rows 16-20 only verify with the stolen
    key (unattested); after the compromise rotation to K3, rows forged with K2 are hmac_mismatch."""
    conn = h.setup_tables(pg_dsn)
    rows = two_epochs(conn, second=5)
    cp_key = "checkpoint-key-of-the-automation-0123456789"
    keyring = keyring_json(PLANNED)
    first = verify(pg_dsn, keyring, checkpoint_dir=str(tmp_path), checkpoint_key=cp_key, update_checkpoints=True)
    assert first["verified"] and first["checkpoints"]["written"] == {"dir": ["acme"]}
    checked_at = akr.utc_instant(first["tenants"]["acme"]["checkpoint"]["checked_at"])
    compromised_at = akr.rfc3339(checked_at + datetime.timedelta(seconds=2))
    more = h.rows_for("acme", 5, start_seq=16, prev_hmac=rows[-1]["row_hmac"], key=K2)
    h.load(conn, more)
    insert_record(conn, "acme", 21, more[-1]["row_hmac"], K2, K3, reason="compromise")
    forged = h.rows_for("acme", 3, start_seq=21, prev_hmac=more[-1]["row_hmac"], key=K2)
    h.load(conn, forged)
    after = keyring_json([(K1, "retired", {"reason": "planned"}),
                          (K2, "compromised", {"reason": "compromise", "compromised_at": compromised_at}),
                          (K3, "active", {})])
    res = verify(pg_dsn, after, checkpoint_dir=str(tmp_path), checkpoint_key=cp_key)
    acme = res["tenants"]["acme"]
    assert acme["segments"] == [{"first_seq": 16, "last_seq": 20, "rows": 5, "kind": "unattested"},
                                {"first_seq": 21, "last_seq": 23, "rows": 3, "kind": "hmac_mismatch"}], acme
    assert acme["probable_cause"] == "direct_db_edit" and acme["checkpoint"]["read_in_full_because"]
    # Without the checkpoint nothing vouches for the compromised epoch: all of it is unattested.
    bare = verify(pg_dsn, after)
    assert bare["tenants"]["acme"]["segments"][0] == {"first_seq": 11, "last_seq": 20, "rows": 10,
                                                      "kind": "unattested"}
    # The checkpoint is no witness when taken after the compromise.
    late = keyring_json([(K1, "retired", {"reason": "planned"}),
                         (K2, "compromised", {"reason": "compromise", "compromised_at": "2026-01-01T00:00:00Z"}),
                         (K3, "active", {})])
    assert verify(pg_dsn, late, checkpoint_dir=str(tmp_path), checkpoint_key=cp_key)["tenants"]["acme"][
        "segments"][0]["first_seq"] == 11


def test_anchor_in_the_second_epoch_and_retirement_across_the_boundary(pg_dsn):
    conn = h.setup_tables(pg_dsn)
    two_epochs(conn)
    h.tamper(conn, "acme", [10, 11])
    keyring = akr.parse_keyring(keyring_json(PLANNED))
    first = audit_retire.retire_scan(conn, TABLES, keyring, "acme")
    assert first["result"]["segments"] == [{"first_seq": 10, "last_seq": 11, "rows": 2, "kind": "hmac_mismatch"}]
    [run] = first["runs"]
    assert run["resume_seq"] == 12
    digest, _size, _rows = audit_ranges.capture_digest(conn.cursor(), TABLES, "acme", [[10, 11]])
    conn.rollback()
    manifest = {"seq_ranges": [[10, 11]], "segments": first["result"]["segments"], "sha256": digest}
    done = audit_retire.retire_apply(conn, TABLES, keyring, "acme", first, manifest, "b" * 64, "CR-1")
    assert done["changed"] and done["moved"] == 2
    [anchor] = done["anchors"]
    # Authenticated with the key of the epoch its resume_seq falls in (K2), not the genesis key.
    assert anchor["anchor_hmac"] == ac.ChainHasher(K2).hexdigest(ac.anchor_message(anchor))
    res = verify(pg_dsn, keyring_json(PLANNED))
    assert res["verified"], res["msg"]
    # The same anchor checked with the genesis key alone is invalid: the key is found from the epoch.
    valid, invalid = ac.check_anchors(K1, audit_store.load_anchors(conn.cursor(), TABLES))
    assert valid == {} and invalid == [{"tenant_id": "acme", "resume_seq": 12}]
    conn.rollback()


@pytest.mark.parametrize("kind", ["compromise", "planned"])
def test_rotation_with_no_row_between(pg_dsn, kind):
    """Two rotations at the same first_seq (no row written between): the epochs follow old -> new ids."""
    conn = h.setup_tables(pg_dsn)
    rows = h.rows_for("acme", 4, key=h.KEY)
    h.load(conn, rows)
    insert_record(conn, "acme", 5, rows[-1]["row_hmac"], K1, K2, rotated_at="2026-03-01T12:20:00Z")
    insert_record(conn, "acme", 5, rows[-1]["row_hmac"], K2, K3, reason=kind, rotated_at="2026-03-01T12:10:00Z")
    h.load(conn, h.rows_for("acme", 2, start_seq=5, prev_hmac=rows[-1]["row_hmac"], key=K3))
    status = "compromised" if kind == "compromise" else "retired"
    extra = {"compromised_at": "2026-03-01T12:09:00Z"} if kind == "compromise" else {}
    res = verify(pg_dsn, keyring_json([(K1, "retired", {}), (K2, status, extra), (K3, "active", {})]))
    assert res["verified"], res["msg"]
    assert [e["key_id"] for e in res["tenants"]["acme"]["epochs"]] == [akr.key_id(k) for k in (K1, K2, K3)]


def test_scenario_3_scopes_captures_and_retires_across_epochs(pg_dsn, tmp_path):
    """The audit_chain_failure playbook with the keyring: rows edited in both epochs are scoped, captured and
    retired (the anchor after the second one authenticated with the second key), and the chain verifies."""
    conn = h.setup_tables(pg_dsn)
    two_epochs(conn, first=60, second=60)
    h.tamper(conn, "acme", [10, 90])
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    variables = tmp_path / "vars.json"
    variables.write_text(json.dumps({
        "audit_chain_dsn": pg_dsn, "audit_chain_hmac_key": "", "audit_chain_hmac_keyring": keyring_json(PLANNED),
        "audit_chain_evidence_dir": str(evidence), "audit_chain_incident_id": "inc-epochs",
        "alex_report_dir": str(tmp_path / "records")}))
    env = playbooks.ansible_env(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    argv = [os.path.join(str(playbooks.BIN), "ansible-playbook"), "alexandria.ee.audit_chain_failure",
            "-e", "@" + str(variables), "-e", "audit_chain_signoff=CR-EPOCHS", "-e", "audit_chain_confirm=true"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert h.KEY not in output and base64.b64encode(K2).decode("ascii") not in output
    report = json.load(open(evidence / "inc-epochs" / "incident-report.json"))
    assert report["status"] == "retired" and report["verification_after"]["verified"] is True
    [acme] = report["tenants"]
    assert acme["affected_row_ranges"] == [[10, 10], [90, 90]]
    anchors = dict((a["resume_seq"], a) for a in acme["retired"]["anchors"])
    assert sorted(anchors) == [11, 91]
    [stored] = [a for a in audit_store.load_anchors(conn.cursor(), TABLES) if a["resume_seq"] == 91]
    conn.rollback()
    assert stored["anchor_hmac"] == ac.ChainHasher(K2).hexdigest(ac.anchor_message(stored))
    assert verify(pg_dsn, keyring_json(PLANNED))["verified"]


def test_checkpoints_keep_working_across_epochs(pg_dsn, tmp_path):
    """A checkpoint taken in the first epoch vouches for it after the rotation: the incremental run reads from the
    checkpointed row on, through the epoch boundary, and advances the checkpoint into the second epoch."""
    conn = h.setup_tables(pg_dsn)
    old = h.rows_for("acme", 10, key=h.KEY)
    h.load(conn, old)
    stores = dict(checkpoint_dir=str(tmp_path), checkpoint_key="checkpoint-key-of-the-automation-0123456789")
    first = verify(pg_dsn, keyring_json([(K1, "active", {})]), update_checkpoints=True, **stores)
    assert first["checkpoints"]["written"] == {"dir": ["acme"]}
    insert_record(conn, "acme", 11, old[-1]["row_hmac"], K1, K2)
    h.load(conn, h.rows_for("acme", 10, start_seq=11, prev_hmac=old[-1]["row_hmac"], key=K2))
    res = verify(pg_dsn, keyring_json(PLANNED), update_checkpoints=True, **stores)
    acme = res["tenants"]["acme"]
    assert res["verified"] and acme["mode"] == "incremental" and acme["rows_read"] == 11 and acme["rows"] == 20
    assert acme["checkpoint"]["last_seq"] == 20 and res["checkpoints"]["written"] == {"dir": ["acme"]}


@pytest.mark.parametrize("scope", ["database", "audit_tables"])
def test_backup_and_rollback_keep_the_rotation_records(pg_dsn, tmp_path, scope):
    """A backup without the rotation records could not tell a restored chain's epochs apart: it holds them, and a
    rollback restores them with the rows they belong to."""
    from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup
    conn = h.setup_tables(pg_dsn)
    two_epochs(conn)
    dest = str(tmp_path / "pre.dump")
    backup = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest, dump_scope=scope))
    assert backup["changed"], backup.get("msg")
    with open(backup["manifest"], encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert manifest["table_rows"]["public.audit_key_rotations"]["rows"] == 1, manifest["table_rows"]
    original = h.table_state(conn)
    with conn.cursor() as cur:  # the insider removes the rotation record: the second epoch then fails its HMACs
        cur.execute(sql.SQL("DELETE FROM {}").format(TABLES.rotations))
    conn.commit()
    assert not verify(pg_dsn, keyring_json(PLANNED))["verified"]
    restored = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=dest, state="restored"))
    assert restored["changed"], restored.get("msg")
    assert h.table_state(conn) == original
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(TABLES.rotations))
        assert cur.fetchone()[0] == 1
    assert verify(pg_dsn, keyring_json(PLANNED))["verified"]
