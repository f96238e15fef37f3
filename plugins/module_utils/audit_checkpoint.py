# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Audit-chain checkpoints (docs/contract.md section 4, "Checkpoints"): pure functions, no Ansible imports.

A checkpoint records, after a clean verification, where one tenant's chain stood: its last seq, that
row's row_hmac and occurred_at, the row count and a digest of the tenant's anchors, bound to the
deployment (namespace, release, database system identifier). It is authenticated with HMAC-SHA256
under a checkpoint key that is not the audit HMAC key and is kept outside the product's database, so
someone who can write the database cannot forge or move one. Comparing the database with it names
what a database insider can do unseen by the chain alone: cut the tail (truncated), delete a tenant
(tenant_missing), or roll back to an older backup and write again (rolled_back).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import re

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac

FORMAT = "alexandria.ee/audit-checkpoint/v1"
PREFIX = "alexandria-checkpoint-v1"
KEY_ID_LABEL = b"alexandria-checkpoint-key-id"
MIN_KEY_BYTES = 32

KIND_TRUNCATED = "truncated"
KIND_ROLLED_BACK = "rolled_back"
KIND_TENANT_MISSING = "tenant_missing"
KIND_INVALID = "checkpoint_invalid"
CHECKPOINT_KINDS = (KIND_TRUNCATED, KIND_ROLLED_BACK, KIND_TENANT_MISSING, KIND_INVALID)

CAUSE_TRUNCATION = "tail_truncation"
CAUSE_ROLLBACK = "restore_rollback"
CAUSE_INVALID = "checkpoint_invalid"

# Signed, in this order; text fields COPY-escaped, integers in decimal, a missing system identifier as "".
SIGNED_FIELDS = (
    "namespace", "release", "system_identifier", "tenant_id", "first_seq", "last_seq", "last_row_hmac",
    "last_occurred_at", "rows", "anchors_sha256", "checked_at",
)
INT_FIELDS = ("first_seq", "last_seq", "rows")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class CheckpointError(ac.AuditError):
    """A checkpoint that cannot be used, phrased for an operator (never carries a key)."""


def key_bytes(key):
    """The checkpoint key as bytes (UTF-8 of the text as given); CheckpointError when too short."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key or len(key) < MIN_KEY_BYTES:
        raise CheckpointError("the checkpoint key must be at least %d bytes (for example 64 hex digits from "
                              "'openssl rand -hex 32'); it is %d" % (MIN_KEY_BYTES, len(key or b"")))
    return key


def key_id(key):
    """16 hex digits naming the key without revealing it: HMAC-SHA256(key, label), truncated."""
    return hmac.new(key_bytes(key), KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def anchors_digest(anchors):
    """SHA-256 (hex) of a tenant's valid anchors' anchor_hmac values, each plus a newline, by resume_seq."""
    digest = hashlib.sha256()
    for resume_seq in sorted(anchors or {}):
        digest.update(anchors[resume_seq]["anchor_hmac"].encode("ascii", "replace") + b"\n")
    return digest.hexdigest()


def message(doc):
    """The exact bytes the checkpoint's signature is computed over."""
    parts = [PREFIX]
    for name in SIGNED_FIELDS:
        value = doc.get(name)
        if name in INT_FIELDS:
            parts.append(str(int(value)))
        else:
            parts.append(ac.copy_escape("" if value is None else str(value)))
    return "\t".join(parts).encode("utf-8")


def sign(key, doc):
    """doc (the SIGNED_FIELDS) completed with format, key_id and signature."""
    signed = dict((name, doc.get(name)) for name in SIGNED_FIELDS)
    signed["format"] = FORMAT
    signed["key_id"] = key_id(key)
    signed["signature"] = hmac.new(key_bytes(key), message(signed), hashlib.sha256).hexdigest()
    return signed


def build(key, identity, tenant_id, tip, anchors, checked_at):
    """A signed checkpoint of one tenant.

    identity: {namespace, release, system_identifier}; tip: {first_seq, last_seq, last_row_hmac,
    last_occurred_at, rows} of the verified chain; anchors: {resume_seq: anchor} (valid ones).
    """
    doc = dict(identity_of(identity))
    doc.update(tenant_id=tenant_id, first_seq=tip["first_seq"], last_seq=tip["last_seq"],
               last_row_hmac=tip["last_row_hmac"], last_occurred_at=tip["last_occurred_at"], rows=tip["rows"],
               anchors_sha256=anchors_digest(anchors), checked_at=checked_at)
    return sign(key, doc)


def identity_of(identity):
    return {"namespace": identity.get("namespace"), "release": identity.get("release"),
            "system_identifier": identity.get("system_identifier") or ""}


def shape_problems(doc):
    """Why doc is not a well-formed checkpoint (list of words; empty when it is)."""
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    if doc.get("format") != FORMAT:
        return ["not an %s document" % FORMAT]
    problems = []
    for name in SIGNED_FIELDS + ("key_id", "signature"):
        if name not in doc:
            problems.append("field %s is missing" % name)
    if problems:
        return problems
    for name in INT_FIELDS:
        if not isinstance(doc[name], int) or isinstance(doc[name], bool) or doc[name] < 0:
            problems.append("%s is not a non-negative integer" % name)
    for name in ("namespace", "release", "system_identifier", "tenant_id", "last_occurred_at", "key_id",
                 "signature"):
        if not isinstance(doc[name], str):
            problems.append("%s is not a string" % name)
    for name in ("last_row_hmac", "anchors_sha256", "signature"):
        if isinstance(doc[name], str) and not _HEX64.match(doc[name]):
            problems.append("%s is not 64 lowercase hex digits" % name)
    if isinstance(doc["checked_at"], str) and not _TIME.match(doc["checked_at"]):
        problems.append("checked_at is not an RFC 3339 UTC time")
    if not problems and doc["last_seq"] < 1:
        problems.append("last_seq is below 1")
    return problems


def check(key, doc, identity, tenant_id):
    """Problems with a stored checkpoint (list of words): shape, key, signature, deployment, tenant."""
    problems = shape_problems(doc)
    if problems:
        return problems
    if not hmac.compare_digest(doc["key_id"], key_id(key)):
        return ["signed with another checkpoint key (key id %s, expected %s)" % (doc["key_id"], key_id(key))]
    expected = hmac.new(key_bytes(key), message(doc), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, doc["signature"]):
        return ["the signature does not verify (the checkpoint was edited)"]
    problems = []
    if doc["tenant_id"] != tenant_id:
        problems.append("it is tenant %r's checkpoint, stored as tenant %r's" % (doc["tenant_id"], tenant_id))
    want = identity_of(identity)
    for name in ("namespace", "release"):
        if doc[name] != want[name]:
            problems.append("it belongs to another deployment (%s %r, this one is %r)" % (name, doc[name], want[name]))
    if doc["system_identifier"] and want["system_identifier"] and doc["system_identifier"] != want["system_identifier"]:
        problems.append("it belongs to another database cluster (system identifier %s, this one is %s)"
                        % (doc["system_identifier"], want["system_identifier"]))
    return problems


def ordering(old, new):
    """How new stands to old: 'same', 'forward', or words saying why it would move backwards."""
    if new["last_seq"] == old["last_seq"]:
        if new["last_row_hmac"] == old["last_row_hmac"]:
            return "same"
        return "the same seq %d with another row_hmac" % new["last_seq"]
    if new["last_seq"] < old["last_seq"]:
        return "a lower seq (%d, the stored one is %d)" % (new["last_seq"], old["last_seq"])
    return "forward"


def retired_through(anchors, seq):
    """Whether valid anchors account for seq having been retired (a retirement, not a truncation)."""
    for anchor in (anchors or {}).values():
        if anchor["retired_first_seq"] <= seq <= anchor["retired_last_seq"]:
            return True
    return False


def segment(kind, first_seq, last_seq, rows):
    return {"first_seq": first_seq, "last_seq": last_seq, "rows": rows, "kind": kind}


def tip_findings(cp, facts, anchors=None):
    """Segments from comparing one tenant's checkpoint with the database now.

    facts: max_seq (None without rows), row_hmac (of the row at the checkpoint's seq, None when
    absent), last_original (the last seq <= the checkpoint's whose occurred_at is not later than the
    checkpointed row's: rows after it were written after the checkpoint, so they replace checkpointed
    ones). A truncation that valid anchors account for is a retirement: no finding.
    """
    seq = cp["last_seq"]
    max_seq = facts.get("max_seq")
    if max_seq is None:
        if retired_through(anchors, seq):
            return []
        return [segment(KIND_TENANT_MISSING, cp["first_seq"] or 1, seq, cp["rows"])]
    row_hmac = facts.get("row_hmac")
    if row_hmac is not None and row_hmac == cp["last_row_hmac"]:
        return []
    found = []
    top = min(max_seq, seq)
    last_original = facts.get("last_original")
    if last_original is not None and last_original < top:
        found.append(segment(KIND_ROLLED_BACK, last_original + 1, top, top - last_original))
    elif row_hmac is not None:
        # Replaced, though no row looks newer than the checkpoint (clocks?): name the row that proves it.
        found.append(segment(KIND_ROLLED_BACK, seq, seq, 1))
    if max_seq < seq and not retired_through(anchors, seq):
        found.append(segment(KIND_TRUNCATED, max_seq + 1, seq, seq - max_seq))
    # The checkpointed row alone gone while later rows exist: the scan reports that gap as seq_gap.
    return found


def invalid_segment(cp_seq=None):
    seq = cp_seq if isinstance(cp_seq, int) and not isinstance(cp_seq, bool) and cp_seq > 0 else 0
    return segment(KIND_INVALID, seq, seq, 0)


def probable_cause(base_cause, segments):
    """The chain's own cause first when rows fail their HMAC (or the key is wrong); then the checkpoint's."""
    kinds = set(s["kind"] for s in segments)
    if base_cause in ("key_mismatch", "direct_db_edit"):
        return base_cause
    if KIND_ROLLED_BACK in kinds:
        return CAUSE_ROLLBACK
    if KIND_TRUNCATED in kinds or KIND_TENANT_MISSING in kinds:
        return CAUSE_TRUNCATION
    if base_cause:
        return base_cause
    if KIND_INVALID in kinds:
        return CAUSE_INVALID
    return None


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def file_name(tenant_id):
    """A file name for a tenant's checkpoint: readable where the id is plain, a digest where it is not."""
    plain = _SAFE_NAME.sub("_", tenant_id)[:80].lstrip(".") or "tenant"
    return "%s.%s.json" % (plain, hashlib.sha256(tenant_id.encode("utf-8")).hexdigest()[:16])


def deployment_dir_name(identity):
    """Directory (under the store) of one deployment: namespace and release, readable and collision-free."""
    ident = identity_of(identity)
    text = "%s\0%s" % (ident["namespace"], ident["release"])
    plain = _SAFE_NAME.sub("_", "%s.%s" % (ident["namespace"], ident["release"]))[:100].lstrip(".") or "deployment"
    return "%s.%s" % (plain, hashlib.sha256(text.encode("utf-8")).hexdigest()[:12])


def secret_data_key(identity, tenant_id):
    """A Secret data key (at most 253 characters of [-._a-zA-Z0-9]) for one deployment's tenant."""
    return "%s.%s" % (deployment_dir_name(identity), file_name(tenant_id))
