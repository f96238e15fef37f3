"""Quota and license decisions (license_logic): headroom, exhaustion, validation, downgrades, claim diffs."""
import datetime

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.module_utils import license_logic as ll

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def claims(**over):
    base = dict(license_id="lic-001", customer="Acme", tier="business", seat_count=25, tenant_count=5,
                issued_at="2026-01-01T00:00:00Z", expires_at="2027-01-01T00:00:00Z")
    base.update(over)
    return base


def license_doc(**over):
    doc = dict(valid=True, reason=None, license_id="lic-001", customer="Acme", tier="business",
               issued_at="2026-01-01T00:00:00Z", expires_at="2027-01-01T00:00:00Z",
               max_seats=25, max_tenants=5, current_seats=10, current_tenants=2)
    doc.update(over)
    return doc


@pytest.fixture(scope="module")
def issuer():
    return lc.generate_private_key()


@pytest.fixture(scope="module")
def other():
    return lc.generate_private_key()


def test_quota_status_with_headroom():
    st = ll.quota_status(license_doc(), now=NOW)
    assert st["seats_headroom"] == 15
    assert st["tenants_headroom"] == 3
    assert st["exhausted"] == []
    assert st["expires_in_days"] == 34.5
    assert st["tier"] == "business" and st["valid"] is True


@pytest.mark.parametrize("over, exhausted", [
    (dict(current_seats=25), ["seats"]),
    (dict(current_seats=30), ["seats"]),
    (dict(current_tenants=5), ["tenants"]),
    (dict(current_seats=25, current_tenants=5), ["seats", "tenants"]),
])
def test_quota_status_exhausted(over, exhausted):
    assert ll.quota_status(license_doc(**over), now=NOW)["exhausted"] == exhausted


def test_invalid_license_exhausts_both_and_says_why():
    st = ll.quota_status(license_doc(valid=False, reason="expired", max_seats=0, max_tenants=0, expires_at=None))
    assert st["exhausted"] == ["seats", "tenants"]
    assert st["reason"] == "expired"
    assert st["expires_in_days"] is None


@pytest.mark.parametrize("doc", [None, [], {"valid": True}, license_doc(max_seats="25"), license_doc(current_seats=True)])
def test_quota_status_rejects_bad_shapes(doc):
    with pytest.raises(ll.QuotaError):
        ll.quota_status(doc)


def test_validate_good_blob_returns_claims_not_blob(issuer):
    blob = lc.encode_license(claims(seat_count=50), issuer)
    res = ll.validate_blob(blob, issuer.public_key(), now=NOW)
    assert res["valid"] is True and res["reason"] is None
    assert res["claims"]["seat_count"] == 50
    assert res["claims"]["issuer_key_id"] == lc.key_id(issuer.public_key())
    assert res["fingerprint"] == lc.blob_fingerprint(blob)
    assert blob not in repr(res)
    assert blob.split(".")[1] not in repr(res) and blob.split(".")[2] not in repr(res)


def test_validate_reasons(issuer, other):
    good = lc.encode_license(claims(), issuer)
    corrupt = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    expired = lc.encode_license(claims(issued_at="2025-01-01T00:00:00Z", expires_at="2026-01-01T00:00:00Z"), issuer)
    cases = {
        "": "missing",
        "ALXLIC1.garbage": "malformed",
        corrupt: "bad_signature",
        lc.encode_license(claims(), other): "wrong_issuer",
        expired: "expired",
    }
    for blob, reason in cases.items():
        res = ll.validate_blob(blob, issuer.public_key(), now=NOW)
        assert res["valid"] is False
        assert res["reason"] == reason, (reason, res)
        if blob:
            assert blob not in (res["detail"] or "")
    # Readable structure: the claims offered are shown even when the blob is refused.
    assert ll.validate_blob(expired, issuer.public_key(), now=NOW)["claims"]["expires_at"] == "2026-01-01T00:00:00Z"


def test_downgrade_problems():
    assert ll.downgrade_problems(claims(seat_count=25, tenant_count=5), 25, 5) == []
    problems = ll.downgrade_problems(claims(seat_count=10, tenant_count=1), 25, 5)
    assert problems == ["seat_count 10 is below the 25 seats in use", "tenant_count 1 is below the 5 tenants in use"]
    assert ll.downgrade_problems(claims(seat_count=10), None, None) == []


def test_tier_downgrade():
    assert ll.tier_downgrade(claims(tier="enterprise"), claims(tier="business"))
    assert not ll.tier_downgrade(claims(tier="business"), claims(tier="enterprise"))
    assert not ll.tier_downgrade(None, claims())


def test_claim_diff_lists_only_changes():
    old = ll.public_claims(dict(claims(), issuer_key_id="k1"))
    new = ll.public_claims(dict(claims(seat_count=50, license_id="lic-002"), issuer_key_id="k1"))
    assert ll.claim_diff(old, new) == {
        "license_id": {"before": "lic-001", "after": "lic-002"},
        "seat_count": {"before": 25, "after": 50},
    }
    assert ll.claim_diff(old, old) == {}
    assert set(ll.claim_diff(None, new)) == set(new)


def test_served_mismatch():
    c = claims()
    assert ll.served_mismatch(c, license_doc()) == []
    problems = ll.served_mismatch(dict(c, seat_count=50), license_doc())
    assert problems == ["/license max_seats is 25, the blob says 50"]
    assert ll.served_mismatch(c, license_doc(valid=False, reason="expired"))[0].startswith("/license reports valid=False")
    assert ll.served_mismatch(c, None) == ["/license unavailable"]


def test_headroom_after():
    st = ll.quota_status(license_doc(current_seats=25, max_seats=25))
    assert ll.headroom_after(st, freed_seats=3) == {"seats": 3, "tenants": 3}
    assert ll.headroom_after(st, new_claims=claims(seat_count=40, tenant_count=5)) == {"seats": 15, "tenants": 3}
