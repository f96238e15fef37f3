"""Key epochs (docs/contract.md section 4, "Key epochs"): the vectors recomputed with the standard library, the
keyring's refusals, the epochs of a tenant and the unattested bound - pure logic, no database."""
import base64
import hashlib
import hmac
import json
import pathlib
import re

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring as akr

CONTRACT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def load(name):
    text = CONTRACT.read_text(encoding="utf-8")
    block = re.search(r"<!-- %s:begin -->\s*```json\n(.*?)```\s*<!-- %s:end -->" % (name, name), text, re.S)
    assert block, "docs/contract.md lost its %s block" % name
    return json.loads(block.group(1))


VECTORS = load("key-epoch-vectors")
CHAINS = load("test-vectors")["chains"]


def key_bytes(entry):
    return entry["key_utf8"].encode("utf-8") if "key_utf8" in entry else base64.b64decode(entry["key_b64"])


KEYS = dict((k["id"], key_bytes(k)) for k in VECTORS["keys"])


def hmac_hex(key, message):
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("entry", VECTORS["keys"], ids=lambda e: e["id"])
def test_key_ids_and_fingerprints(entry):
    key = key_bytes(entry)
    assert hmac_hex(key, b"alexandria-audit-key-id") == entry["fingerprint"] == akr.key_fingerprint(key)
    assert entry["id"] == entry["fingerprint"][:16] == akr.key_id(key)


def test_genesis_epoch_is_the_first_chain_vector():
    """The epoch vectors continue the first chain vector: same key, its seq 3 is the old epoch's last row."""
    first = CHAINS[0]
    assert akr.key_id(first["key"].encode("utf-8")) == VECTORS["keyring"]["genesis_key_id"]
    assert VECTORS["rotations"][0]["old_last_row_hmac"] == first["rows"][-1]["row_hmac"]


@pytest.mark.parametrize("record", VECTORS["rotations"], ids=lambda r: r["reason"])
def test_rotation_vectors(record):
    fields = dict((k, v) for k, v in record.items() if k != "message")
    message = record["message"].encode("utf-8")
    assert akr.rotation_message(fields) == message
    parts = ["alexandria-rotation-v1"] + [str(fields[f]) for f in akr.ROTATION_FIELDS]
    assert "\t".join(parts).encode("utf-8") == message  # no field of the vectors needs COPY escaping
    assert hmac_hex(KEYS[record["new_key_id"]], message) == record["new_key_hmac"]
    if record["reason"] == "planned":
        assert hmac_hex(KEYS[record["old_key_id"]], message) == record["old_key_hmac"]
    else:
        assert record["old_key_hmac"] == ""
    assert akr.rotation_problems(fields, KEYS[record["new_key_id"]], KEYS[record["old_key_id"]]) == []


def test_row_of_the_second_epoch():
    row = VECTORS["rows"][0]
    message = ac.row_message("acme", row["seq"], row["occurred_at"], row["actor"], row["action"], row["payload"],
                             row["prev_hmac"])
    assert message == row["message"].encode("utf-8")
    assert hmac_hex(KEYS[row["key_id"]], message) == row["row_hmac"]
    keyring = akr.parse_keyring(json.dumps(VECTORS["keyring"]))
    epochs = akr.EpochKeys(keyring, {"acme": [dict((k, v) for k, v in r.items() if k != "message")
                                              for r in VECTORS["rotations"]]})
    assert epochs.key_for("acme", 3) == CHAINS[0]["key"].encode("utf-8")
    assert epochs.key_for("acme", 4) == KEYS[row["key_id"]]
    assert akr.key_id(epochs.key_for("acme", 5)) == VECTORS["rotations"][1]["new_key_id"]
    assert epochs.tenant("acme").problems == []


def test_keyring_round_trip_and_public_view_hold_no_key():
    keyring = akr.parse_keyring(json.dumps(VECTORS["keyring"]))
    assert keyring.active_id == VECTORS["keys"][2]["id"]
    again = akr.parse_keyring(akr.dump_keyring(keyring))
    assert again.keys == keyring.keys and again.genesis_key_id == keyring.genesis_key_id
    shown = json.dumps(keyring.public())
    for key in KEYS.values():
        for form in akr.shown_forms(key):
            assert form not in shown


def edited(change):
    doc = json.loads(json.dumps(VECTORS["keyring"]))
    change(doc)
    return json.dumps(doc)


@pytest.mark.parametrize("change,words", [
    (lambda d: d["keys"][0].update(status="active"), "has 2 active keys (ids 162c28b11ea44d46, 5a02f1abde75bca0)"),
    (lambda d: d["keys"][2].update(status="retired"), "has 0 active keys"),
    (lambda d: d["keys"][1].update(id="0000000000000000"), "but its key's id is cc239aaccdecff89"),
    (lambda d: d["keys"][1].pop("compromised_at"), "is compromised but has no compromised_at"),
    (lambda d: d["keys"][1].update(status="lost"), "has status 'lost'"),
    (lambda d: d["keys"].append(dict(d["keys"][0])), "holds key 162c28b11ea44d46 twice"),
    (lambda d: d.update(format="v0"), "is not an alexandria.ee/audit-keyring/v1 document"),
    (lambda d: d["keys"][0].update(key_b64="%%%"), "key_b64 is not base64"),
])
def test_keyring_refusals_are_one_sentence(change, words):
    with pytest.raises(akr.KeyringError) as info:
        akr.parse_keyring(edited(change))
    assert words in str(info.value)
    for key in KEYS.values():
        assert key.decode("utf-8", "replace") not in str(info.value)


def test_not_json():
    with pytest.raises(akr.KeyringError, match="not JSON"):
        akr.parse_keyring("{")


def records():
    return [dict((k, v) for k, v in r.items() if k != "message") for r in VECTORS["rotations"]]


def test_an_edited_record_is_invalid_and_named():
    keyring = akr.parse_keyring(json.dumps(VECTORS["keyring"]))
    recs = records()
    recs[0]["old_last_seq"] = 2
    epochs = akr.tenant_epochs(keyring, "acme", recs)
    assert [p["first_seq"] for p in epochs.problems] == [4]
    assert "first_seq is not old_last_seq + 1" in epochs.problems[0]["problems"]
    assert "new_key_hmac does not verify with key cc239aaccdecff89" in epochs.problems[0]["problems"]


def test_unknown_key_epoch_has_no_key():
    doc = json.loads(json.dumps(VECTORS["keyring"]))
    doc["keys"] = [k for k in doc["keys"] if k["id"] != "cc239aaccdecff89"]
    keyring = akr.parse_keyring(json.dumps(doc))
    keys = akr.EpochKeys(keyring, {"acme": records()})
    assert keys.key_for("acme", 4) is None
    assert [(e.first_seq, e.last_seq, e.status) for e in keys.tenant("acme").epochs] == \
        [(1, 3, "retired"), (4, 4, "unknown"), (5, None, "active")]
    # Without the old key, the planned record's old_key_hmac cannot be checked: only what can be is.
    assert keys.tenant("acme").problems == []


def test_unattested_bound_follows_the_checkpoint_taken_before_the_compromise():
    keyring = akr.parse_keyring(json.dumps(VECTORS["keyring"]))
    epoch = akr.EpochKeys(keyring, {"acme": records()}).tenant("acme").epochs[1]
    assert epoch.status == "compromised"
    before = akr.EpochKeys(keyring, {"acme": records()}, {"acme": {"last_seq": 4, "checked_at": "2026-11-28T10:20:00Z"}})
    after = akr.EpochKeys(keyring, {"acme": records()}, {"acme": {"last_seq": 4, "checked_at": "2026-11-28T10:40:00Z"}})
    none = akr.EpochKeys(keyring, {"acme": records()})
    assert before.unattested_from("acme", epoch) == 5
    assert after.unattested_from("acme", epoch) == 4
    assert none.unattested_from("acme", epoch) == 4
    assert none.unattested_from("acme", none.tenant("acme").epochs[0]) is None


def test_rotate_marks_the_old_key_and_records_the_change():
    keyring = akr.Keyring.single(b"genesis-key")
    new = akr.generate_key()
    assert len(new) == 32
    planned = akr.rotate(keyring, new, "planned", "2026-11-28T10:00:00Z", "CHG-9")
    old = planned.keys[akr.key_id(b"genesis-key")]
    assert (old["status"], old["reason"], old["retired_at"]) == ("retired", "planned", "2026-11-28T10:00:00Z")
    assert planned.active_id == akr.key_id(new)
    assert akr.rotation_for_change(planned, "CHG-9") == planned.active_id
    assert akr.rotation_for_change(planned, "CHG-10") is None
    compromised = akr.rotate(planned, akr.generate_key(), "compromise", "2026-11-28T11:00:00Z", "INC-1",
                             "2026-11-28T09:00:00Z")
    assert compromised.keys[planned.active_id]["status"] == "compromised"
    assert compromised.keys[planned.active_id]["compromised_at"] == "2026-11-28T09:00:00Z"
    assert akr.parse_keyring(akr.dump_keyring(compromised)).active_id == compromised.active_id


def test_uncovered_spans():
    segs = [{"first_seq": 3, "last_seq": 4}, {"first_seq": 8, "last_seq": 8}]
    assert akr.uncovered(1, 10, segs) == [(1, 2), (5, 7), (9, 10)]
    assert akr.uncovered(3, 4, segs) == []


@pytest.mark.parametrize("text,ok", [("2026-11-27T09:52:00Z", True), ("2026-11-27T10:52:00+01:00", True),
                                     ("2026-11-27T09:52:00.5Z", True), ("yesterday", False), ("", False)])
def test_rfc3339(text, ok):
    if ok:
        assert akr.rfc3339(akr.utc_instant(text)) == "2026-11-27T09:52:00Z"
    else:
        with pytest.raises(akr.KeyringError):
            akr.utc_instant(text)


@pytest.mark.parametrize("kinds,hmac_failures,cause", [
    (["unattested"], 0, "compromised_key"),
    (["unknown_key"], 0, "unknown_key"),
    (["rotation_invalid", "unknown_key"], 0, "rotation_record_invalid"),
    (["unattested", "hmac_mismatch"], 1, "direct_db_edit"),
    ([], 0, None),
])
def test_epoch_cause_puts_the_chain_first(kinds, hmac_failures, cause):
    from ansible_collections.alexandria.ee.plugins.module_utils import audit_epochs
    segments = [{"first_seq": i + 1, "last_seq": i + 1, "rows": 1, "kind": k} for i, k in enumerate(kinds)]
    assert audit_epochs.epoch_cause(10, hmac_failures, 0, segments) == cause


def test_report_reads_epoch_kinds_and_never_lists_them_as_affected():
    from ansible_collections.alexandria.ee.plugins.module_utils import audit_report
    result = {"rows": 20, "probable_cause": "compromised_key", "verified": False,
              "segments": [{"first_seq": 5, "last_seq": 9, "rows": 5, "kind": "unattested"},
                           {"first_seq": 12, "last_seq": 14, "rows": 3, "kind": "unknown_key"}]}
    cause, why = audit_report.reasoning(result)
    assert cause == "compromised_key" and "compromised_key" in audit_report.CAUSES
    assert any("5 row(s) (seq 5-9) verify only with a key marked compromised" in w for w in why)
    assert any("3 row(s) (seq 12-14) belong to a key epoch whose key is not in the keyring" in w for w in why)
    report = audit_report.build_report("INC-1", {"broken": ["acme"], "tenants": {"acme": result}},
                                       generated_at="2026-11-28T10:00:00Z")
    assert report["tenants"][0]["affected_row_ranges"] == []
