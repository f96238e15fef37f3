"""License blob codec (docs/contract.md section 3): each way a blob is invalid, and the good path."""
import datetime

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def claims(**over):
    base = dict(license_id="lic-001", customer="Acme Ünited", tier="enterprise", seat_count=25, tenant_count=5,
                issued_at="2026-01-01T00:00:00Z", expires_at="2027-01-01T00:00:00Z")
    base.update(over)
    return base


@pytest.fixture(scope="module")
def issuer():
    return lc.generate_private_key()


def test_round_trip(issuer):
    blob = lc.encode_license(claims(), issuer)
    decoded = lc.decode_license(blob, issuer.public_key(), now=NOW)
    assert decoded["seat_count"] == 25
    assert decoded["customer"] == "Acme Ünited"
    assert decoded["issuer_key_id"] == lc.key_id(issuer.public_key())


def test_public_key_forms_agree(issuer):
    pem = lc.public_key_pem(issuer.public_key())
    raw_hex = lc.public_key_raw(issuer.public_key()).hex()
    assert lc.key_id(lc.load_public_key(pem)) == lc.key_id(lc.load_public_key(raw_hex))


@pytest.mark.parametrize("text", ["", "nonsense", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"])
def test_bad_public_key_is_a_clear_value_error(text):
    with pytest.raises(ValueError) as err:
        lc.load_public_key(text)
    assert "issuer public key" in str(err.value)


def _reason(blob, key, now=NOW):
    with pytest.raises(lc.LicenseInvalid) as err:
        lc.decode_license(blob, key, now=now)
    assert err.value.reason in lc.REASONS
    return err.value


@pytest.mark.parametrize("blob", [
    "ALXLIC1.abc", "XXX.a.b", "ALXLIC1.!!!.AAAA", "ALXLIC1.e30.AAAA",
])
def test_malformed(issuer, blob):
    assert _reason(blob, issuer.public_key()).reason == "malformed"


def test_missing_claim_and_unknown_tier_are_malformed(issuer):
    for bad in (claims(tier="platinum"), claims(seat_count="25"), claims(expires_at="2027-01-01")):
        assert _reason(lc.encode_license(bad, issuer), issuer.public_key()).reason == "malformed"
    incomplete = claims()
    del incomplete["customer"]
    assert _reason(lc.encode_license(incomplete, issuer), issuer.public_key()).reason == "malformed"


def test_wrong_issuer(issuer):
    other = lc.generate_private_key()
    error = _reason(lc.encode_license(claims(), other), issuer.public_key())
    assert error.reason == "wrong_issuer"


def test_bad_signature(issuer):
    blob = lc.encode_license(claims(), issuer)
    prefix, payload, sig = blob.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert _reason(".".join([prefix, payload, flipped]), issuer.public_key()).reason == "bad_signature"


def test_edited_payload_fails_signature(issuer):
    blob = lc.encode_license(claims(), issuer)
    other = lc.encode_license(claims(seat_count=9999), issuer)
    spliced = ".".join([lc.PREFIX, other.split(".")[1], blob.split(".")[2]])
    assert _reason(spliced, issuer.public_key()).reason == "bad_signature"


def test_expired(issuer):
    blob = lc.encode_license(claims(expires_at="2026-06-01T00:00:00Z"), issuer)
    assert _reason(blob, issuer.public_key()).reason == "expired"


def test_errors_never_contain_the_blob(issuer):
    blob = lc.encode_license(claims(), issuer)
    for candidate in (blob[:-3] + "zzz", blob.replace("ALXLIC1", "ALXLIC2"), blob + ".x"):
        with pytest.raises(lc.LicenseInvalid) as err:
            lc.decode_license(candidate, issuer.public_key(), now=NOW)
        for part in candidate.split("."):
            if len(part) > 8:
                assert part not in str(err.value)


def test_fingerprint_is_short_and_stable(issuer):
    blob = lc.encode_license(claims(), issuer)
    assert lc.blob_fingerprint(blob) == lc.blob_fingerprint(blob + "\n")
    assert len(lc.blob_fingerprint(blob)) == 12
