"""The checkpoint codec (docs/contract.md section 4, "Checkpoints"): the contract's vectors recomputed with the
standard library, names, shape checks, ordering and what a comparison with the database finds."""
import hashlib
import hmac
import json
import pathlib
import re

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint as cpk
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_verify as cv

CONTRACT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def vectors():
    text = CONTRACT.read_text(encoding="utf-8")
    block = re.search(r"<!-- checkpoint-vectors:begin -->\n```json\n(.*?)\n```\n<!-- checkpoint-vectors:end -->",
                      text, re.S).group(1)
    return json.loads(block)


VECTORS = vectors()


def test_key_id_is_an_hmac_of_the_label():
    key = VECTORS["key"].encode("utf-8")
    expected = hmac.new(key, b"alexandria-checkpoint-key-id", hashlib.sha256).hexdigest()[:16]
    assert VECTORS["key_id"] == expected == cpk.key_id(VECTORS["key"])


@pytest.mark.parametrize("vector", VECTORS["checkpoints"], ids=lambda v: v["checkpoint"]["tenant_id"][:10])
def test_vectors_both_directions(vector):
    key = VECTORS["key"].encode("utf-8")
    doc = vector["checkpoint"]
    assert cpk.message(doc).decode("utf-8") == vector["message"]
    assert hmac.new(key, vector["message"].encode("utf-8"), hashlib.sha256).hexdigest() == doc["signature"]
    anchors_digest = hashlib.sha256(b"".join(a.encode() + b"\n" for a in vector["anchor_hmacs"])).hexdigest()
    assert doc["anchors_sha256"] == anchors_digest
    assert cpk.file_name(doc["tenant_id"]) == vector["file_name"]
    assert cpk.secret_data_key(doc, doc["tenant_id"]) == vector["secret_data_key"]
    assert re.match(r"^[-._a-zA-Z0-9]{1,253}$", vector["secret_data_key"])
    identity = {"namespace": doc["namespace"], "release": doc["release"], "system_identifier": doc["system_identifier"]}
    assert cpk.check(VECTORS["key"], doc, identity, doc["tenant_id"]) == []
    tip = dict((k, doc[k]) for k in ("first_seq", "last_seq", "last_row_hmac", "last_occurred_at", "rows"))
    anchors = dict((i, {"anchor_hmac": a}) for i, a in enumerate(vector["anchor_hmacs"]))
    assert cpk.build(VECTORS["key"], identity, doc["tenant_id"], tip, anchors, doc["checked_at"]) == doc


@pytest.mark.parametrize("field,value", [
    ("last_seq", 4), ("last_row_hmac", "0" * 64), ("rows", 1), ("tenant_id", "acme2"), ("checked_at", "2026-11-29T09:00:00Z"),
    ("anchors_sha256", "1" * 64), ("last_occurred_at", "2026-01-02 03:05:00+00"), ("first_seq", 2),
])
def test_any_changed_field_breaks_the_signature(field, value):
    doc = dict(VECTORS["checkpoints"][0]["checkpoint"], **{field: value})
    identity = {"namespace": "alexandria", "release": "alexandria-ee", "system_identifier": "7311111111111111111"}
    problems = cpk.check(VECTORS["key"], doc, identity, doc["tenant_id"])
    assert problems == ["the signature does not verify (the checkpoint was edited)"]


def test_identity_tenant_and_key_are_checked():
    doc = VECTORS["checkpoints"][0]["checkpoint"]
    ident = {"namespace": "alexandria", "release": "alexandria-ee", "system_identifier": "7311111111111111111"}
    assert "another deployment" in cpk.check(VECTORS["key"], doc, dict(ident, release="x"), "acme")[0]
    assert "another database cluster" in cpk.check(VECTORS["key"], doc, dict(ident, system_identifier="9"), "acme")[0]
    assert cpk.check(VECTORS["key"], doc, dict(ident, system_identifier=None), "acme") == []
    assert "stored as tenant 'globex'" in cpk.check(VECTORS["key"], doc, ident, "globex")[0]
    assert "another checkpoint key" in cpk.check("y" * 32, doc, ident, "acme")[0]


@pytest.mark.parametrize("doc,words", [
    ([], "not a JSON object"), ({"format": "x"}, "not an alexandria.ee/audit-checkpoint/v1"),
    ({"format": cpk.FORMAT}, "field namespace is missing"),
])
def test_shape_problems(doc, words):
    assert words in cpk.shape_problems(doc)[0]


def test_shape_types():
    doc = dict(VECTORS["checkpoints"][0]["checkpoint"], last_seq="3", rows=True, signature="XYZ",
               checked_at="yesterday")
    problems = cpk.shape_problems(doc)
    assert "last_seq is not a non-negative integer" in problems and "rows is not a non-negative integer" in problems
    assert "signature is not 64 lowercase hex digits" in problems and "checked_at is not an RFC 3339 UTC time" in problems


def test_key_must_be_long_enough():
    with pytest.raises(cpk.CheckpointError) as err:
        cpk.key_bytes("too short")
    assert "at least 32 bytes" in str(err.value) and "too short" not in str(err.value)


def test_file_names_are_safe_and_distinct():
    names = set()
    for tenant in ("acme", "ACME", "../etc/passwd", ".hidden", "a/b", "a_b", "é", "", "x" * 500, "t\x00n"):
        name = cpk.file_name(tenant)
        assert re.match(r"^[A-Za-z0-9_.-]+\.json$", name) and not name.startswith(".") and len(name) < 120
        names.add(name)
    assert len(names) == 10


def test_ordering():
    old = {"last_seq": 10, "last_row_hmac": "a" * 64}
    assert cpk.ordering(old, dict(old)) == "same"
    assert cpk.ordering(old, {"last_seq": 11, "last_row_hmac": "b" * 64}) == "forward"
    assert cpk.ordering(old, {"last_seq": 9, "last_row_hmac": "b" * 64}).startswith("a lower seq (9")
    assert cpk.ordering(old, {"last_seq": 10, "last_row_hmac": "b" * 64}).startswith("the same seq 10")


CP = {"first_seq": 1, "last_seq": 500, "last_row_hmac": "a" * 64, "rows": 500}


@pytest.mark.parametrize("facts,anchors,expected", [
    ({"max_seq": 600, "row_hmac": "a" * 64}, None, []),
    ({"max_seq": None}, None, [("tenant_missing", 1, 500, 500)]),
    ({"max_seq": None}, {9: {"retired_first_seq": 1, "retired_last_seq": 500}}, []),
    ({"max_seq": 499, "last_original": 499}, None, [("truncated", 500, 500, 1)]),
    ({"max_seq": 493, "last_original": 493}, None, [("truncated", 494, 500, 7)]),
    ({"max_seq": 493, "last_original": 493}, {494: {"retired_first_seq": 494, "retired_last_seq": 500}}, []),
    ({"max_seq": 530, "row_hmac": "b" * 64, "last_original": 480}, None, [("rolled_back", 481, 500, 20)]),
    ({"max_seq": 498, "last_original": 497}, None, [("rolled_back", 498, 498, 1), ("truncated", 499, 500, 2)]),
    ({"max_seq": 530, "row_hmac": "b" * 64, "last_original": 500}, None, [("rolled_back", 500, 500, 1)]),
    ({"max_seq": 530, "row_hmac": None, "last_original": 530}, None, []),
])
def test_tip_findings(facts, anchors, expected):
    found = cpk.tip_findings(CP, facts, anchors)
    assert [(s["kind"], s["first_seq"], s["last_seq"], s["rows"]) for s in found] == expected


@pytest.mark.parametrize("base,kinds,cause", [
    (None, ["truncated"], "tail_truncation"), (None, ["tenant_missing"], "tail_truncation"),
    (None, ["rolled_back", "truncated"], "restore_rollback"),
    ("direct_db_edit", ["hmac_mismatch", "truncated"], "direct_db_edit"),
    ("key_mismatch", ["hmac_mismatch", "rolled_back"], "key_mismatch"), ("restore_gap", ["seq_gap"], "restore_gap"),
    (None, ["checkpoint_invalid"], "checkpoint_invalid"),
    ("restore_gap", ["seq_gap", "checkpoint_invalid"], "restore_gap"),
    (None, [], None),
])
def test_probable_cause(base, kinds, cause):
    assert cpk.probable_cause(base, [{"kind": k} for k in kinds]) == cause


def test_witness_takes_the_highest_seq_of_real_records_of_this_deployment():
    ident = {"namespace": "alexandria", "release": "alexandria-ee"}
    real = {"scenario": "audit_chain_watch", "check_mode": False, "finished_at": "2026-11-28T09:00:00Z",
            "deployment": dict(ident, host="prod"),
            "details": {"checkpoints": {"acme": {"last_seq": 10, "last_row_hmac": "a" * 64},
                                        "globex": {"status": "missing"}}}}
    newer_failed = dict(real, finished_at="2026-11-28T10:00:00Z", details={"checkpoints": {"acme": {
        "last_seq": 8, "last_row_hmac": "b" * 64, "witnessed_last_seq": 12, "witnessed_last_row_hmac": "c" * 64}}})
    rehearsal = dict(real, check_mode=True, details={"checkpoints": {"acme": {"last_seq": 99, "last_row_hmac": "d" * 64}}})
    other = dict(real, deployment={"namespace": "other", "release": "alexandria-ee"},
                 details={"checkpoints": {"acme": {"last_seq": 99, "last_row_hmac": "d" * 64}}})
    seen, source = cv.witness_from_records([("a.json", real), ("b.json", newer_failed), ("c.json", rehearsal),
                                            ("d.json", other), ("e.json", None)], ident)
    assert seen == {"acme": {"last_seq": 12, "last_row_hmac": "c" * 64}}
    assert "b.json" in source
    assert cv.witness_from_records([("c.json", rehearsal)], ident) == ({}, None)
