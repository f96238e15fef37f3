"""The trusted issuer set (docs/contract.md section 3, "Trusted issuers"): the contract's vectors, the order of
the reasons, and adding and revoking keys (pure functions)."""
import copy
import datetime
import json
import pathlib
import re

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.module_utils import license_issuers as li
from ansible_collections.alexandria.ee.plugins.module_utils import license_logic as ll

CONTRACT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "contract.md"
T = lc.parse_time
NOW = T("2026-11-28T12:00:00Z")


def vectors():
    text = CONTRACT.read_text(encoding="utf-8")
    block = re.search(r"<!-- issuer-vectors:begin -->\n```json\n(.*?)\n```\n<!-- issuer-vectors:end -->", text, re.S)
    return json.loads(block.group(1))


VECTORS = vectors()


def claims(**over):
    base = dict(license_id="lic-1", customer="Acme", tier="enterprise", seat_count=25, tenant_count=5,
                issued_at="2026-01-01T00:00:00Z", expires_at="2027-01-01T00:00:00Z")
    base.update(over)
    return base


def test_the_vector_set_parses_and_hashes_as_the_contract_says():
    doc = li.parse_set(json.dumps(VECTORS["issuers"]))
    assert li.digest(doc) == VECTORS["digest"]
    assert li.parse_set(li.dump_set(doc)) == doc and li.dump_set(doc).endswith("}\n")
    assert li.ids_by_status(doc, T(VECTORS["now"])) == {
        "trusted": [VECTORS["blobs"][0]["issuer_key_id"]], "pending": [VECTORS["blobs"][2]["issuer_key_id"]],
        "revoked": [VECTORS["blobs"][1]["issuer_key_id"]]}


@pytest.mark.parametrize("vector", VECTORS["blobs"], ids=lambda v: v["signed_by"])
def test_vector_blobs_are_accepted_or_refused_with_their_reason(vector):
    doc = li.parse_set(json.dumps(VECTORS["issuers"]))
    check = ll.validate_blob(vector["blob"], doc, now=T(VECTORS["now"]))
    assert check["reason"] == vector["reason"] and check["valid"] is (vector["reason"] is None)
    assert check["claims"]["issuer_key_id"] == vector["issuer_key_id"]


def test_without_a_set_the_single_key_decides_as_before():
    single = lc.load_public_key(VECTORS["single_key"])
    by_old = [v for v in VECTORS["blobs"] if v["signed_by"] == "old"][0]["blob"]
    assert lc.decode_license(by_old, single, now=T(VECTORS["now"]))["license_id"] == "lic-vec-old"
    by_new = VECTORS["blobs"][0]["blob"]
    assert ll.validate_blob(by_new, single, now=T(VECTORS["now"]))["reason"] == "wrong_issuer"


def test_malformed_comes_before_the_issuer_and_signature_and_expiry_after_it():
    doc = li.parse_set(json.dumps(VECTORS["issuers"]))
    revoked = [v for v in VECTORS["blobs"] if v["reason"] == "revoked_issuer"][0]["blob"]
    assert ll.validate_blob(revoked[:-3], doc, now=NOW)["reason"] == "malformed"  # signature not 64 bytes
    trusted = VECTORS["blobs"][0]["blob"]
    prefix, payload, sig = trusted.split(".")
    flipped = ".".join([prefix, payload, sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]])
    assert ll.validate_blob(flipped, doc, now=NOW)["reason"] == "bad_signature"
    assert ll.validate_blob(trusted, doc, now=T("2027-01-01T00:00:00Z"))["reason"] == "expired"
    pending_then_trusted = [v for v in VECTORS["blobs"] if v["reason"] == "pending_issuer"][0]["blob"]
    later = ll.validate_blob(pending_then_trusted, doc, now=T("2099-01-01T00:00:00Z"))
    assert later["reason"] == "expired"  # trusted from 2099 on; the blob itself expired in 2027


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(format="v0"), "format is not alexandria.ee/license-issuers/v1"),
    (lambda d: d.update(extra=1), "expected exactly the fields format and keys"),
    (lambda d: d["keys"][1].update(id="0" * 16), "id does not match its public_key"),
    (lambda d: d["keys"][1].update(status="maybe"), "status is not one of trusted, revoked"),
    (lambda d: d["keys"][1].update(not_before="tomorrow"), "not_before is not an RFC 3339 UTC time"),
    (lambda d: d["keys"][1].update(revoked_at="2026-11-28T10:00:00Z"), "a trusted key has no revoked_at"),
    (lambda d: d["keys"][0].pop("compromised_at"), "compromised_at is not an RFC 3339 UTC time"),
    (lambda d: d["keys"][1].update(public_key="AB" * 32), "public_key is not the raw Ed25519 key"),
    (lambda d: d["keys"].append(copy.deepcopy(d["keys"][1])), "is listed twice"),
    (lambda d: d["keys"][1].update(private_key="x"), "has unknown fields private_key"),
])
def test_an_invalid_set_names_its_first_problem(mutate, words):
    doc = copy.deepcopy(VECTORS["issuers"])
    mutate(doc)
    with pytest.raises(li.IssuerSetInvalid) as err:
        li.parse_set(json.dumps(doc))
    assert words in str(err.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "null"])
def test_text_that_is_no_set_is_refused(text):
    with pytest.raises(li.IssuerSetInvalid):
        li.parse_set(text)


def test_add_then_revoke_is_idempotent_and_refuses_what_would_break_the_license():
    old, new = lc.generate_private_key().public_key(), lc.generate_private_key().public_key()
    doc, changed = li.add_key(li.empty_set(), old, NOW - datetime.timedelta(days=300))
    assert changed and li.ids_by_status(doc, NOW)["trusted"] == [lc.key_id(old)]
    with pytest.raises(ValueError) as err:
        li.revoke_key(doc, lc.key_id(old), NOW)
    assert "no other key is trusted now" in str(err.value)
    staged, _changed = li.add_key(doc, new, NOW, not_before=NOW + datetime.timedelta(days=1))
    with pytest.raises(ValueError):  # a pending successor is not trusted yet
        li.revoke_key(staged, lc.key_id(old), NOW)
    doc, changed = li.add_key(doc, new, NOW)
    assert changed and li.add_key(doc, new, NOW) == (doc, False)
    revoked, changed = li.revoke_key(doc, lc.key_id(old), NOW, "compromise", NOW - datetime.timedelta(hours=3))
    assert changed and li.revoke_key(revoked, lc.key_id(old), NOW) == (revoked, False)
    entry = li.find(revoked, lc.key_id(old))
    assert entry["status"] == "revoked" and entry["revocation_reason"] == "compromise"
    assert li.parse_set(li.dump_set(revoked)) == revoked
    with pytest.raises(ValueError) as err:
        li.add_key(revoked, old, NOW)
    assert "a revoked key is never trusted again" in str(err.value)
    with pytest.raises(ValueError) as err:
        li.revoke_key(revoked, "0123456789abcdef", NOW)
    assert "is not in the trusted issuer set" in str(err.value)
    assert doc == li.add_key(li.add_key(li.empty_set(), old, NOW - datetime.timedelta(days=300))[0], new, NOW)[0]


def test_summaries_carry_no_key_material():
    doc = li.parse_set(json.dumps(VECTORS["issuers"]))
    text = json.dumps(li.summary(doc))
    assert all(entry["public_key"] not in text for entry in doc["keys"])
    assert [e["id"] for e in li.summary(doc)] == [e["id"] for e in doc["keys"]]
    assert li.summary(None) == [] and li.ids_by_status(None) == {"trusted": [], "pending": [], "revoked": []}


def test_blobs_signed_under_a_set_refuse_with_a_message_naming_the_key_only():
    issuer = lc.generate_private_key()
    doc = li.add_key(li.empty_set(), lc.generate_private_key().public_key(), NOW)[0]
    blob = lc.encode_license(claims(), issuer)
    with pytest.raises(lc.LicenseInvalid) as err:
        li.decode_license(blob, doc, now=NOW)
    assert err.value.reason == "unknown_issuer" and lc.key_id(issuer.public_key()) in str(err.value)
    assert blob.split(".")[1] not in str(err.value)
