# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The license blob codec of docs/contract.md section 3: pure functions, no Ansible imports.

Error messages never contain the blob itself: it is a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import json
import re
import traceback

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

PREFIX = "ALXLIC1"
TIERS = ("starter", "business", "enterprise")
# In the order of verification (docs/contract.md section 3). wrong_issuer is the single configured key's
# refusal; unknown_issuer, revoked_issuer and pending_issuer are the trusted issuer set's (license_issuers.py).
REASONS = ("missing", "malformed", "wrong_issuer", "unknown_issuer", "revoked_issuer", "pending_issuer",
           "bad_signature", "expired")
CLAIM_TYPES = (
    ("license_id", str),
    ("customer", str),
    ("tier", str),
    ("seat_count", int),
    ("tenant_count", int),
    ("issued_at", str),
    ("expires_at", str),
    ("issuer_key_id", str),
)
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class LicenseInvalid(Exception):
    """A blob that does not verify; reason is one of REASONS."""

    def __init__(self, reason, detail):
        super(LicenseInvalid, self).__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


def _require_crypto():
    if not HAS_CRYPTOGRAPHY:
        raise RuntimeError("the Python library 'cryptography' is required for license signatures")


def format_time(value):
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise ValueError("not an RFC 3339 UTC time like 2026-01-31T00:00:00Z")
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def _b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text):
    if not re.match(r"^[A-Za-z0-9_-]*$", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_claims(claims):
    return json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_key_raw(public_key):
    _require_crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key):
    """First 16 hex digits of SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key_raw(public_key)).hexdigest()[:16]


def load_public_key(text):
    """An Ed25519 public key from PEM or 64 hex digits; ValueError says what is wrong."""
    _require_crypto()
    text = (text or "").strip()
    if re.match(r"^[0-9a-fA-F]{64}$", text):
        return Ed25519PublicKey.from_public_bytes(binascii.unhexlify(text))
    if "BEGIN PUBLIC KEY" in text:
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, TypeError) as exc:
            raise ValueError("issuer public key is not a readable PEM public key (%s)" % exc.__class__.__name__)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("issuer public key is not an Ed25519 key")
        return key
    raise ValueError("issuer public key must be a PEM 'PUBLIC KEY' block or 64 hex digits")


def public_key_pem(public_key):
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def generate_private_key():
    _require_crypto()
    return Ed25519PrivateKey.generate()


def encode_license(claims, private_key):
    """Sign claims (issuer_key_id is filled in from the key) and return the blob text."""
    claims = dict(claims)
    claims["issuer_key_id"] = key_id(private_key.public_key())
    payload = canonical_claims(claims)
    signature = private_key.sign(payload)
    return "%s.%s.%s" % (PREFIX, _b64url_encode(payload), _b64url_encode(signature))


def parse_license(blob):
    """Structure only: (claims, payload bytes, signature bytes); raises LicenseInvalid('malformed')."""
    if not isinstance(blob, str) or not blob.strip():
        raise LicenseInvalid("missing", "the license blob is empty")
    parts = blob.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise LicenseInvalid("malformed", "expected %s.<payload>.<signature>" % PREFIX)
    try:
        payload = _b64url_decode(parts[1])
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error):
        raise LicenseInvalid("malformed", "payload or signature is not base64url")
    if len(signature) != 64:
        raise LicenseInvalid("malformed", "signature is %d bytes, not 64" % len(signature))
    try:
        claims = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise LicenseInvalid("malformed", "payload is not UTF-8 JSON")
    if not isinstance(claims, dict):
        raise LicenseInvalid("malformed", "payload is not a JSON object")
    if canonical_claims(claims) != payload:
        raise LicenseInvalid("malformed", "payload is not canonical JSON")
    for name, kind in CLAIM_TYPES:
        value = claims.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise LicenseInvalid("malformed", "claim %r is missing or not a %s" % (name, kind.__name__))
    if claims["tier"] not in TIERS:
        raise LicenseInvalid("malformed", "tier %r is not one of %s" % (claims["tier"], ", ".join(TIERS)))
    if claims["seat_count"] < 0 or claims["tenant_count"] < 0:
        raise LicenseInvalid("malformed", "seat_count and tenant_count must not be negative")
    try:
        issued = parse_time(claims["issued_at"])
        expires = parse_time(claims["expires_at"])
    except ValueError as exc:
        raise LicenseInvalid("malformed", "issued_at/expires_at: %s" % exc)
    if expires <= issued:
        raise LicenseInvalid("malformed", "expires_at is not after issued_at")
    return claims, payload, signature


def decode_license(blob, public_key, now=None):
    """Verify a blob against the issuer key; return its claims or raise LicenseInvalid."""
    _require_crypto()
    claims, payload, signature = parse_license(blob)
    expected_kid = key_id(public_key)
    if claims["issuer_key_id"] != expected_kid:
        raise LicenseInvalid(
            "wrong_issuer", "signed by issuer key %s, expected %s" % (claims["issuer_key_id"], expected_kid)
        )
    return check_signature_and_expiry(claims, payload, signature, public_key, now)


def check_signature_and_expiry(claims, payload, signature, public_key, now=None):
    """The last two checks of every verification, once the issuer's key is chosen: signature, then expiry."""
    _require_crypto()
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise LicenseInvalid("bad_signature", "license signature verification failed")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if parse_time(claims["expires_at"]) <= now:
        raise LicenseInvalid("expired", "expired at %s" % claims["expires_at"])
    return claims


def blob_fingerprint(blob):
    """A short, non-reversible id of a blob, safe to show (first 12 hex of SHA-256)."""
    return hashlib.sha256(blob.strip().encode("utf-8")).hexdigest()[:12]
