# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The trusted license issuer set of docs/contract.md section 3: pure functions, no Ansible imports.

The set is JSON in Secret ``<release>-license-issuers``, key ``issuers.json``. It holds public keys only
(never a private key), so everything here may be shown; the blobs checked against it are never returned.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import copy
import datetime
import hashlib
import json
import re

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc

FORMAT = "alexandria.ee/license-issuers/v1"
SECRET_SUFFIX = "-license-issuers"
DEFAULT_SECRET_KEY = "issuers.json"
STATUSES = ("trusted", "revoked")
REVOCATION_REASONS = ("planned", "compromise")
# The refusals only a set gives, in the order they are checked (after malformed, before bad_signature).
SET_REASONS = ("unknown_issuer", "revoked_issuer", "pending_issuer")
ENTRY_FIELDS = ("id", "public_key", "status", "not_before", "revoked_at", "revocation_reason", "compromised_at")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_RAW_KEY = re.compile(r"^[0-9a-f]{64}$")


class IssuerSetInvalid(ValueError):
    """The stored set is not a readable issuer set; the message says what is wrong (never a secret)."""


def secret_name(release, override=None):
    return override or release + SECRET_SUFFIX


def utcnow():
    """Now in whole seconds: the precision the set stores."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def raw_hex(public_key):
    return lc.public_key_raw(public_key).hex()


def new_entry(public_key, not_before):
    """A trusted entry for public_key, trusted from not_before (a datetime)."""
    return {"id": lc.key_id(public_key), "public_key": raw_hex(public_key), "status": "trusted",
            "not_before": lc.format_time(not_before)}


def empty_set():
    return {"format": FORMAT, "keys": []}


def _check_time(entry, field, where):
    try:
        lc.parse_time(entry.get(field))
    except ValueError as exc:
        raise IssuerSetInvalid("%s: %s is %s" % (where, field, exc))


def _check_entry(entry, index):
    where = "keys[%d]" % index
    if not isinstance(entry, dict):
        raise IssuerSetInvalid("%s is not an object" % where)
    unknown = sorted(set(entry) - set(ENTRY_FIELDS))
    if unknown:
        raise IssuerSetInvalid("%s has unknown fields %s" % (where, ", ".join(unknown)))
    if not isinstance(entry.get("id"), str) or not _KEY_ID.match(entry["id"]):
        raise IssuerSetInvalid("%s: id is not 16 lowercase hex digits" % where)
    where = "key %s" % entry["id"]
    if not isinstance(entry.get("public_key"), str) or not _RAW_KEY.match(entry["public_key"]):
        raise IssuerSetInvalid("%s: public_key is not the raw Ed25519 key as 64 lowercase hex digits" % where)
    expected = hashlib.sha256(binascii.unhexlify(entry["public_key"])).hexdigest()[:16]
    if expected != entry["id"]:
        raise IssuerSetInvalid("%s: id does not match its public_key (which has id %s)" % (where, expected))
    if entry.get("status") not in STATUSES:
        raise IssuerSetInvalid("%s: status is not one of %s" % (where, ", ".join(STATUSES)))
    _check_time(entry, "not_before", where)
    revoked = entry["status"] == "revoked"
    if revoked:
        _check_time(entry, "revoked_at", where)
        if entry.get("revocation_reason") not in REVOCATION_REASONS:
            raise IssuerSetInvalid("%s: revocation_reason is not one of %s" % (where, ", ".join(REVOCATION_REASONS)))
        if entry["revocation_reason"] == "compromise":
            _check_time(entry, "compromised_at", where)
        elif "compromised_at" in entry:
            raise IssuerSetInvalid("%s: compromised_at is only for revocation_reason compromise" % where)
    elif any(field in entry for field in ("revoked_at", "revocation_reason", "compromised_at")):
        raise IssuerSetInvalid("%s: a trusted key has no revoked_at, revocation_reason or compromised_at" % where)


def parse_set(text):
    """The set stored as text, checked; IssuerSetInvalid names the first problem."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        raise IssuerSetInvalid("not JSON")
    if not isinstance(doc, dict):
        raise IssuerSetInvalid("not a JSON object")
    if doc.get("format") != FORMAT:
        raise IssuerSetInvalid("format is not %s" % FORMAT)
    if sorted(doc) != ["format", "keys"] or not isinstance(doc["keys"], list):
        raise IssuerSetInvalid("expected exactly the fields format and keys (a list)")
    seen = set()
    for index, entry in enumerate(doc["keys"]):
        _check_entry(entry, index)
        if entry["id"] in seen:
            raise IssuerSetInvalid("key %s is listed twice" % entry["id"])
        seen.add(entry["id"])
    return doc


def dump_set(doc):
    """The stored form: sorted keys, two-space indentation, one trailing newline."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n"


def digest(doc):
    """SHA-256 (hex) of the set's canonical JSON: what the Deployment's pod template is annotated with."""
    return hashlib.sha256(lc.canonical_claims(doc)).hexdigest()


def find(doc, key_id):
    for entry in doc["keys"]:
        if entry["id"] == key_id:
            return entry
    return None


def trusted_now(entry, now):
    return entry["status"] == "trusted" and lc.parse_time(entry["not_before"]) <= now


def issuer_key(doc, key_id, now=None):
    """The public key that may sign for key_id now; lc.LicenseInvalid with the set's reason otherwise."""
    now = now or utcnow()
    entry = find(doc, key_id)
    if entry is None:
        raise lc.LicenseInvalid("unknown_issuer", "signed by issuer key %s, which is not in the trusted issuer set"
                                % key_id)
    if entry["status"] == "revoked":
        raise lc.LicenseInvalid("revoked_issuer", "signed by issuer key %s, revoked at %s (%s)" % (
            key_id, entry["revoked_at"], entry["revocation_reason"]))
    if not trusted_now(entry, now):
        raise lc.LicenseInvalid("pending_issuer", "signed by issuer key %s, which is trusted only from %s" % (
            key_id, entry["not_before"]))
    return lc.load_public_key(entry["public_key"])


def decode_license(blob, trust, now=None):
    """Verify a blob against a trusted issuer set (a dict) or a single public key; claims or lc.LicenseInvalid."""
    if not isinstance(trust, dict):
        return lc.decode_license(blob, trust, now=now)
    claims, payload, signature = lc.parse_license(blob)
    public_key = issuer_key(trust, claims["issuer_key_id"], now)
    return lc.check_signature_and_expiry(claims, payload, signature, public_key, now)


def add_key(doc, public_key, now=None, not_before=None):
    """(new set, changed): public_key trusted from not_before (default now). A revoked key is refused."""
    now = now or utcnow()
    key_id = lc.key_id(public_key)
    entry = find(doc, key_id)
    if entry is not None:
        if entry["status"] == "revoked":
            raise ValueError("issuer key %s was revoked at %s (%s): a revoked key is never trusted again; "
                             "have the issuer sign with a new key" % (key_id, entry["revoked_at"],
                                                                      entry["revocation_reason"]))
        return doc, False
    new = copy.deepcopy(doc)
    new["keys"].append(new_entry(public_key, not_before or now))
    return new, True


def revoke_key(doc, key_id, now=None, reason="planned", compromised_at=None):
    """(new set, changed): key_id revoked. Unknown ids, and revoking the last key trusted now, are refused."""
    now = now or utcnow()
    entry = find(doc, key_id)
    if entry is None:
        raise ValueError("issuer key %s is not in the trusted issuer set (it holds %s): nothing to revoke" % (
            key_id, ", ".join(e["id"] for e in doc["keys"]) or "no key"))
    if entry["status"] == "revoked":
        return doc, False
    if not any(trusted_now(e, now) for e in doc["keys"] if e["id"] != key_id):
        raise ValueError("refusing to revoke issuer key %s: no other key is trusted now, so the API would refuse "
                         "every license; add its successor (and apply a blob it signed) first" % key_id)
    if reason not in REVOCATION_REASONS:
        raise ValueError("revocation reason must be one of %s" % ", ".join(REVOCATION_REASONS))
    new = copy.deepcopy(doc)
    revoked = find(new, key_id)
    revoked.update(status="revoked", revoked_at=lc.format_time(now), revocation_reason=reason)
    if reason == "compromise":
        if compromised_at is None:
            raise ValueError("a revocation for compromise needs the time of the compromise")
        revoked["compromised_at"] = lc.format_time(compromised_at)
    return new, True


def summary(doc):
    """The set without key material: id, status and times of each key (ids are public key fingerprints)."""
    if doc is None:
        return []
    return [dict((k, e[k]) for k in ENTRY_FIELDS if k in e and k != "public_key") for e in doc["keys"]]


def ids_by_status(doc, now=None):
    """{"trusted": [...], "pending": [...], "revoked": [...]} of key ids, for plans and run records."""
    now = now or utcnow()
    out = {"trusted": [], "pending": [], "revoked": []}
    for entry in (doc or {"keys": []})["keys"]:
        if entry["status"] == "revoked":
            out["revoked"].append(entry["id"])
        elif trusted_now(entry, now):
            out["trusted"].append(entry["id"])
        else:
            out["pending"].append(entry["id"])
    return out
