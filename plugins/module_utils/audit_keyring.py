# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Audit key epochs (docs/contract.md section 4, "Key epochs"): pure functions, no Ansible imports.

A keyring (JSON in the release's main Secret) holds every audit HMAC key with an id derived from the
key, a status and times. Rotation records (one per tenant and rotation, in their own table) say from
which seq on a tenant's rows are signed with which key id: the key of a row is found from the epoch
its seq falls in, never by trying keys. EpochKeys binds a keyring to the rotation records read in a
verification's snapshot and answers key_for(tenant, seq) for rows and anchors.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import os

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac

KEYRING_FORMAT = "alexandria.ee/audit-keyring/v1"
KEY_ID_MESSAGE = b"alexandria-audit-key-id"
ROTATION_PREFIX = "alexandria-rotation-v1"
STATUSES = ("active", "retired", "compromised")
REASONS = ("planned", "compromise")
KIND_UNKNOWN_KEY = "unknown_key"
KIND_ROTATION = "rotation_invalid"
KIND_UNATTESTED = "unattested"
ROTATION_FIELDS = ("tenant_id", "first_seq", "old_key_id", "new_key_id", "reason", "old_last_seq",
                   "old_last_row_hmac", "rotated_at")
ROTATION_COLUMNS = ROTATION_FIELDS + ("old_key_hmac", "new_key_hmac")


class KeyringError(ac.AuditError):
    """The keyring cannot be used (one sentence: what is wrong, what to do; never a key)."""


def utc_instant(text):
    """An RFC 3339 time as a comparable aware datetime (KeyringError when it is not one)."""
    try:
        value = datetime.datetime.strptime(text.replace("Z", "+0000").replace("z", "+0000")
                                           .replace("+00:00", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
    except (ValueError, AttributeError):
        try:
            value = datetime.datetime.strptime(text.replace("Z", "+0000").replace("+00:00", "+0000"),
                                               "%Y-%m-%dT%H:%M:%S.%f%z")
        except (ValueError, AttributeError):
            raise KeyringError("%r is not an RFC 3339 time such as 2026-11-27T09:52:00Z" % (text,))
    return value.astimezone(datetime.timezone.utc)


def rfc3339(value):
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_bytes(key):
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def generate_key():
    """A new audit HMAC key: 32 random bytes from the operating system."""
    return os.urandom(32)


def shown_forms(key):
    """The texts a key could appear as in output (to mask): its UTF-8 reading and its base64."""
    return [key.decode("utf-8", "replace"), base64.b64encode(key).decode("ascii")]


def key_fingerprint(key):
    """64 hex digits of HMAC-SHA256(key, "alexandria-audit-key-id"): names the key without revealing it."""
    return hmac.new(as_bytes(key), KEY_ID_MESSAGE, hashlib.sha256).hexdigest()


def key_id(key):
    """The key's id: the first 16 hex digits of its fingerprint."""
    return key_fingerprint(key)[:16]


class Keyring:
    """Keys by id: {id: {"key": bytes, "status", "created_at", ...}}, the genesis id and the active id."""

    def __init__(self, keys, genesis_key_id, source="keyring"):
        self.keys = keys
        self.genesis_key_id = genesis_key_id
        self.source = source
        active = [kid for kid, entry in keys.items() if entry["status"] == "active"]
        self.active_id = active[0] if len(active) == 1 else None

    @classmethod
    def single(cls, key):
        """Today's deployments: one key (option hmac_key, or Secret key audit-hmac-key), the genesis epoch's."""
        key = as_bytes(key)
        kid = key_id(key)
        return cls({kid: {"key": key, "status": "active", "created_at": None}}, kid, source="single key")

    def key(self, kid):
        entry = self.keys.get(kid)
        return entry["key"] if entry else None

    def secrets(self):
        return [entry["key"] for entry in self.keys.values()]

    def public(self):
        """What may be shown: ids, fingerprints, statuses and times (never a key)."""
        out = []
        for kid, entry in self.keys.items():
            shown = dict((k, v) for k, v in entry.items() if k != "key")
            shown.update(id=kid, fingerprint=key_fingerprint(entry["key"]))
            out.append(shown)
        return out


def parse_keyring(text, genesis_key=None):
    """A Keyring from the JSON of contract section 4 (str or bytes); KeyringError with one clear sentence."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        raise KeyringError("the audit keyring is not JSON: give the keyring document of docs/contract.md section 4")
    if not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT or not isinstance(doc.get("keys"), list):
        raise KeyringError("the audit keyring is not an %s document (format and keys are required)" % KEYRING_FORMAT)
    keys = {}
    for index, entry in enumerate(doc["keys"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("key_b64"), str):
            raise KeyringError("audit keyring entry %d has no key_b64" % index)
        try:
            material = base64.b64decode(entry["key_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError("audit keyring entry %d: key_b64 is not base64" % index)
        if not material:
            raise KeyringError("audit keyring entry %d holds an empty key" % index)
        kid = key_id(material)
        if entry.get("id") != kid:
            raise KeyringError("audit keyring entry %d names id %r but its key's id is %s: the id must be the first "
                               "16 hex digits of HMAC-SHA256(key, 'alexandria-audit-key-id')"
                               % (index, entry.get("id"), kid))
        if kid in keys:
            raise KeyringError("audit keyring holds key %s twice" % kid)
        status = entry.get("status")
        if status not in STATUSES:
            raise KeyringError("audit keyring key %s has status %r: use active, retired or compromised" % (kid, status))
        if status == "compromised" and not isinstance(entry.get("compromised_at"), str):
            raise KeyringError("audit keyring key %s is compromised but has no compromised_at time" % kid)
        kept = dict((k, v) for k, v in entry.items() if k not in ("key_b64", "id"))
        kept["key"] = material
        keys[kid] = kept
    active = sorted(kid for kid, e in keys.items() if e["status"] == "active")
    if len(active) != 1:
        raise KeyringError("the audit keyring has %d active keys%s: exactly one key signs new rows; mark the others "
                           "retired (or compromised)" % (len(active), " (ids %s)" % ", ".join(active) if active else ""))
    genesis = doc.get("genesis_key_id")
    if genesis is None and genesis_key is not None:
        genesis = key_id(genesis_key)
    if not isinstance(genesis, str):
        raise KeyringError("the audit keyring has no genesis_key_id (the id of the key of rows written before any "
                           "rotation)")
    return Keyring(keys, genesis)


def dump_keyring(keyring):
    """The keyring's JSON text (keys sorted by created_at, then id)."""
    entries = []
    for kid, entry in keyring.keys.items():
        out = {"id": kid, "key_b64": base64.b64encode(entry["key"]).decode("ascii")}
        out.update((k, v) for k, v in entry.items() if k != "key")
        entries.append(out)
    entries.sort(key=lambda e: (e.get("created_at") or "", e["id"]))
    return json.dumps({"format": KEYRING_FORMAT, "genesis_key_id": keyring.genesis_key_id, "keys": entries},
                      sort_keys=True, separators=(",", ":"))


def rotate(keyring, new_key, reason, now, change_ref, compromised_at=None):
    """A new Keyring: the active key retired (planned) or compromised (compromise), new_key active."""
    if reason not in REASONS:
        raise KeyringError("reason must be planned or compromise")
    keys = dict((kid, dict(entry)) for kid, entry in keyring.keys.items())
    old = keys[keyring.active_id]
    if reason == "planned":
        old.update(status="retired", retired_at=now, reason="planned")
    else:
        old.update(status="compromised", retired_at=now, reason="compromise", compromised_at=compromised_at or now)
    new_id = key_id(new_key)
    if new_id in keys:
        raise KeyringError("the new key's id %s is already in the keyring" % new_id)
    keys[new_id] = {"key": as_bytes(new_key), "status": "active", "created_at": now, "change_ref": change_ref}
    return Keyring(keys, keyring.genesis_key_id)


def rotation_for_change(keyring, change_ref):
    """The id of the key a rotation with this change reference made active (or made and then retired), or None."""
    for kid, entry in keyring.keys.items():
        if change_ref and entry.get("change_ref") == change_ref:
            return kid
    return None


# ---------------------------------------------------------------------------------------------
# Rotation records


def rotation_message(record):
    parts = [ROTATION_PREFIX]
    for name in ROTATION_FIELDS:
        value = record[name]
        parts.append(str(int(value)) if isinstance(value, int) else ac.copy_escape(value))
    return "\t".join(parts).encode("utf-8")


def sign_rotation(record, new_key, old_key=None):
    """The record with new_key_hmac, and old_key_hmac for a planned rotation ("" for a compromise)."""
    message = rotation_message(record)
    out = dict(record)
    out["new_key_hmac"] = ac.ChainHasher(new_key).hexdigest(message)
    out["old_key_hmac"] = ac.ChainHasher(old_key).hexdigest(message) if record["reason"] == "planned" else ""
    return out


def rotation_problems(record, new_key, old_key):
    """Words for what is wrong with one record, given the keys its ids name (None when unknown)."""
    problems = []
    if record["reason"] not in REASONS:
        problems.append("reason %r is neither planned nor compromise" % record["reason"])
    if int(record["first_seq"]) != int(record["old_last_seq"]) + 1:
        problems.append("first_seq is not old_last_seq + 1")
    message = rotation_message(record)
    if new_key is not None and not hmac.compare_digest(ac.ChainHasher(new_key).hexdigest(message),
                                                       record["new_key_hmac"]):
        problems.append("new_key_hmac does not verify with key %s" % record["new_key_id"])
    if record["reason"] == "planned":
        if old_key is not None and not hmac.compare_digest(ac.ChainHasher(old_key).hexdigest(message),
                                                           record["old_key_hmac"]):
            problems.append("old_key_hmac does not verify with key %s (a planned rotation is signed by both keys)"
                            % record["old_key_id"])
    elif record["reason"] == "compromise" and record["old_key_hmac"] != "":
        problems.append("a compromise rotation carries no old_key_hmac")
    return problems


def order_records(records):
    """A tenant's records in epoch order: by first_seq, and within one first_seq along old -> new ids."""
    rest = sorted(records, key=lambda r: (int(r["first_seq"]), r["rotated_at"]))
    ordered = []
    current = None
    while rest:
        group = [r for r in rest if int(r["first_seq"]) == int(rest[0]["first_seq"])]
        follows = [r for r in group if r["old_key_id"] == current]
        # Otherwise the start of the group's chain: the record no other one of the group leads to.
        starts = [r for r in group if r["old_key_id"] not in set(o["new_key_id"] for o in group)]
        record = (follows or starts or group)[0]
        rest.remove(record)
        ordered.append(record)
        current = record["new_key_id"]
    return ordered


class Epoch:
    """Seqs first_seq..last_seq (last_seq None: open) signed with key_id (key None when unknown)."""

    def __init__(self, first_seq, key_id_, key, status, compromised_at=None, record=None):
        self.first_seq = first_seq
        self.last_seq = None
        self.key_id = key_id_
        self.key = key
        self.status = status
        self.compromised_at = compromised_at
        self.record = record

    def describe(self):
        return {"first_seq": self.first_seq, "last_seq": self.last_seq, "key_id": self.key_id,
                "status": self.status}


class TenantEpochs:
    """A tenant's epochs (in seq order) and its invalid rotation records (segments and words)."""

    def __init__(self, epochs, problems):
        self.epochs = epochs
        self.problems = problems

    def at(self, seq):
        found = self.epochs[0]
        for epoch in self.epochs:
            if epoch.first_seq <= seq:
                found = epoch
            else:
                break
        return found

    def spans(self, low, high):
        """[(epoch, low, high)] cutting low..high at the epoch bounds (epochs without seqs left out)."""
        out = []
        for epoch in self.epochs:
            end = epoch.last_seq if epoch.last_seq is not None else high
            start = max(low, epoch.first_seq)
            end = min(high, end)
            if start <= end:
                out.append((epoch, start, end))
        return out


def tenant_epochs(keyring, tenant_id, records):
    """TenantEpochs of one tenant from its rotation records (dicts of ROTATION_COLUMNS)."""
    ordered = order_records(records)
    first_id = ordered[0]["old_key_id"] if ordered else keyring.genesis_key_id

    def make(first_seq, kid, record):
        entry = keyring.keys.get(kid) or {}
        return Epoch(first_seq, kid, entry.get("key"), entry.get("status", "unknown"), entry.get("compromised_at"),
                     record)

    epochs = [make(1, first_id, None)]
    problems = []
    for record in ordered:
        words = rotation_problems(record, keyring.key(record["new_key_id"]), keyring.key(record["old_key_id"]))
        if record["old_key_id"] != epochs[-1].key_id:
            words.append("old_key_id %s is not the key of the epoch before it (%s)"
                         % (record["old_key_id"], epochs[-1].key_id))
        first_seq = int(record["first_seq"])
        if words:
            problems.append({"first_seq": first_seq, "new_key_id": record["new_key_id"], "problems": words})
        epochs[-1].last_seq = first_seq - 1
        epochs.append(make(first_seq, record["new_key_id"], record))
    return TenantEpochs(epochs, problems)


class EpochKeys:
    """A keyring bound to the rotation records of a snapshot: the key of each tenant's seqs.

    attested_through: {tenant: seq} the checkpoint taken before a compromise vouches for (see unattested_from).
    """

    def __init__(self, keyring, records_by_tenant=None, attested=None):
        self.keyring = keyring
        self.records = records_by_tenant or {}
        self.attested = attested or {}
        self._cache = {}

    def tenant(self, tenant_id):
        if tenant_id not in self._cache:
            self._cache[tenant_id] = tenant_epochs(self.keyring, tenant_id, self.records.get(tenant_id, []))
        return self._cache[tenant_id]

    def key_for(self, tenant_id, seq):
        return self.tenant(tenant_id).at(int(seq)).key

    def unattested_from(self, tenant_id, epoch):
        """The first seq of a compromised epoch that nothing outside the log vouches for (None: not compromised).

        attested[tenant] is {"last_seq", "checked_at"} of the tenant's checkpoint; it vouches for its seqs only
        when it was taken before the compromise.
        """
        if epoch.status != "compromised":
            return None
        seen = self.attested.get(tenant_id)
        if seen and epoch.compromised_at and seen.get("checked_at") and \
                utc_instant(seen["checked_at"]) < utc_instant(epoch.compromised_at):
            return max(epoch.first_seq, int(seen["last_seq"]) + 1)
        return epoch.first_seq


def as_epoch_keys(key):
    """EpochKeys for anything the scanning code is given: bytes (one genesis key), a Keyring (no records), or EpochKeys."""
    if isinstance(key, EpochKeys):
        return key
    if isinstance(key, Keyring):
        return EpochKeys(key)
    return EpochKeys(Keyring.single(key))


def uncovered(low, high, segments):
    """[(first, last)] of low..high not inside any segment (segments sorted or not)."""
    spans = []
    start = low
    for seg in sorted(segments, key=lambda s: s["first_seq"]):
        if seg["last_seq"] < start or seg["first_seq"] > high:
            continue
        if seg["first_seq"] > start:
            spans.append((start, seg["first_seq"] - 1))
        start = max(start, seg["last_seq"] + 1)
    if start <= high:
        spans.append((start, high))
    return spans
