# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions about licenses and quotas (docs/contract.md sections 2 and 3): pure functions, no Ansible imports.

Nothing here returns or formats a license blob; only its claims and blob_fingerprint() reach results.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.module_utils import license_issuers as li

QUOTAS = ("seats", "tenants")
TIER_RANK = {"starter": 0, "business": 1, "enterprise": 2}
# The claims that describe a license, in display order (issuer_key_id last: it only says who signed it).
CLAIM_ORDER = ("license_id", "customer", "tier", "seat_count", "tenant_count", "issued_at", "expires_at",
               "issuer_key_id")
# /license keys that mirror a claim: (claim, /license key).
SERVED_CLAIMS = (("license_id", "license_id"), ("customer", "customer"), ("tier", "tier"),
                 ("seat_count", "max_seats"), ("tenant_count", "max_tenants"), ("issued_at", "issued_at"),
                 ("expires_at", "expires_at"))
LICENSE_KEYS = ("valid", "reason", "license_id", "customer", "tier", "issued_at", "expires_at", "max_seats",
                "max_tenants", "current_seats", "current_tenants")


class QuotaError(ValueError):
    """A /license answer that does not have the contract's shape."""


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _int(doc, key):
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise QuotaError("/license: %r is missing or not an integer" % key)
    return value


def quota_status(doc, now=None):
    """Summarise a GET /license body: usage, limits, headroom per quota and which quotas are exhausted.

    A quota is exhausted when current >= max (the API answers 402 to the next creation). When the
    license is invalid the API reports max 0, so both quotas show as exhausted and ``valid`` is false.
    """
    if not isinstance(doc, dict):
        raise QuotaError("/license did not answer a JSON object")
    missing = [k for k in LICENSE_KEYS if k not in doc]
    if missing:
        raise QuotaError("/license answer lacks %s" % ", ".join(missing))
    out = dict((k, doc.get(k)) for k in LICENSE_KEYS)
    for quota in QUOTAS:
        current = _int(doc, "current_" + quota)
        maximum = _int(doc, "max_" + quota)
        out[quota + "_headroom"] = maximum - current
    out["exhausted"] = [q for q in QUOTAS if out[q + "_headroom"] <= 0]
    out["expires_in_days"] = None
    if isinstance(doc.get("expires_at"), str):
        try:
            expires = lc.parse_time(doc["expires_at"])
        except ValueError:
            expires = None
        if expires is not None:
            out["expires_in_days"] = round(((expires - (now or _utcnow())).total_seconds()) / 86400.0, 2)
    return out


def public_claims(claims):
    """The claims in display order; the blob never appears here."""
    return dict((k, claims[k]) for k in CLAIM_ORDER if k in claims)


def validate_blob(blob, trust, now=None):
    """Check a blob in contract order (structure, issuer, signature, expiry).

    trust is the trusted issuer set (a dict, license_issuers.parse_set) or the single issuer public key.

    Returns a dict: valid, reason (None when valid), detail, fingerprint, claims (decoded claims when the
    structure could be read, even for an invalid blob, so an operator sees what was offered).
    """
    result = dict(valid=False, reason=None, detail=None, fingerprint=None, claims=None)
    if not isinstance(blob, str) or not blob.strip():
        result.update(reason="missing", detail="no license blob")
        return result
    result["fingerprint"] = lc.blob_fingerprint(blob)
    try:
        claims, _payload, _sig = lc.parse_license(blob)
        result["claims"] = public_claims(claims)
        li.decode_license(blob, trust, now=now)
    except lc.LicenseInvalid as exc:
        result.update(reason=exc.reason, detail=exc.detail)
        return result
    result["valid"] = True
    return result


def describe_blob(blob, trust=None, now=None):
    """Claims, fingerprint and validity of a stored blob (None-safe, nothing raised); valid is None when no
    trust (set or key) is given to check it against."""
    if not blob or not blob.strip():
        return dict(claims=None, fingerprint=None, valid=False, reason="missing")
    if trust is not None:
        check = validate_blob(blob, trust, now=now)
        return dict(claims=check["claims"], fingerprint=check["fingerprint"], valid=check["valid"],
                    reason=check["reason"])
    try:
        claims = public_claims(lc.parse_license(blob)[0])
    except lc.LicenseInvalid as exc:
        return dict(claims=None, fingerprint=lc.blob_fingerprint(blob), valid=None, reason=exc.reason)
    return dict(claims=claims, fingerprint=lc.blob_fingerprint(blob), valid=None, reason=None)


def status_doc_from(status):
    """The /license fields back from a quota_status() result."""
    return dict((k, status.get(k)) for k in LICENSE_KEYS)


def downgrade_problems(claims, current_seats, current_tenants):
    """Reasons the license would leave the deployment over quota: fewer seats/tenants than in use."""
    problems = []
    if current_seats is not None and claims["seat_count"] < current_seats:
        problems.append("seat_count %d is below the %d seats in use" % (claims["seat_count"], current_seats))
    if current_tenants is not None and claims["tenant_count"] < current_tenants:
        problems.append("tenant_count %d is below the %d tenants in use" % (claims["tenant_count"], current_tenants))
    return problems


def tier_downgrade(old_claims, new_claims):
    """True when the new tier ranks below the old one (enterprise > business > starter)."""
    if not old_claims or not new_claims:
        return False
    return TIER_RANK.get(new_claims.get("tier"), -1) < TIER_RANK.get(old_claims.get("tier"), -1)


def claim_diff(old_claims, new_claims):
    """{claim: {"before": old, "after": new}} for every claim that differs (old may be None)."""
    old_claims = old_claims or {}
    new_claims = new_claims or {}
    diff = {}
    for key in CLAIM_ORDER:
        if old_claims.get(key) != new_claims.get(key):
            diff[key] = {"before": old_claims.get(key), "after": new_claims.get(key)}
    return diff


def served_mismatch(claims, license_doc):
    """The claims /license does not serve as the blob says ([] when the API serves exactly these claims)."""
    if not isinstance(license_doc, dict):
        return ["/license unavailable"]
    problems = []
    if license_doc.get("valid") is not True:
        problems.append("/license reports valid=%s (reason %s)" % (license_doc.get("valid"), license_doc.get("reason")))
    for claim, key in SERVED_CLAIMS:
        if license_doc.get(key) != claims.get(claim):
            problems.append("/license %s is %r, the blob says %r" % (key, license_doc.get(key), claims.get(claim)))
    return problems


def headroom_after(status, new_claims=None, freed_seats=0):
    """Predicted headroom per quota after freeing seats and/or applying new claims (for check mode)."""
    max_seats = new_claims["seat_count"] if new_claims else status["max_seats"]
    max_tenants = new_claims["tenant_count"] if new_claims else status["max_tenants"]
    return {
        "seats": max_seats - (status["current_seats"] - freed_seats),
        "tenants": max_tenants - status["current_tenants"],
    }
