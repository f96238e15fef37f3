# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit-chain codec of docs/contract.md section 4: pure functions, no Ansible imports.

Everything works on the bytes PostgreSQL's COPY text format prints, so a verifier
never rebuilds Python values: it cuts a line at its last TAB and hashes the left part.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import hmac
import json

GENESIS = "0" * 64
ANCHOR_PREFIX = "alexandria-anchor-v1"
KIND_HMAC = "hmac_mismatch"
KIND_LINK = "link_broken"
KIND_GAP = "seq_gap"
KEY_MISMATCH_FRACTION = 0.5


class AuditError(Exception):
    """A failure phrased for an operator (never carries a secret)."""


# COPY text format escapes: backslash first, then the six control bytes.
_COPY_ESCAPES = {
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
}
_COPY_ESCAPE_TABLE = str.maketrans(_COPY_ESCAPES)
_COPY_UNESCAPES = {
    "\\": "\\",
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
}


def copy_escape(text):
    """Escape one text value as PostgreSQL's COPY text format prints it."""
    return text.translate(_COPY_ESCAPE_TABLE)


def copy_unescape(text):
    """Undo copy_escape (the subset of escapes COPY itself emits)."""
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(_COPY_UNESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def format_timestamptz(value):
    """Text output of a timestamptz with TimeZone=UTC and DateStyle=ISO."""
    if value.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    value = value.astimezone(datetime.timezone.utc)
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += (".%06d" % value.microsecond).rstrip("0")
    return text + "+00"


def _jsonb_string(text):
    # jsonb escapes '"', '\\', \b \f \n \r \t, other controls as \u00XX; keeps non-ASCII as is.
    return json.dumps(text, ensure_ascii=False)


def _jsonb_key_order(key):
    encoded = key.encode("utf-8")
    return (len(encoded), encoded)


def jsonb_text(value):
    """The text PostgreSQL prints for a jsonb built from this Python value.

    jsonb sorts object keys by byte length, then bytes, and prints ', ' and ': '.
    Floats are refused: their jsonb text depends on the numeric's written scale.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _jsonb_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: _jsonb_key_order(kv[0]))
        return "{" + ", ".join(_jsonb_string(k) + ": " + jsonb_text(v) for k, v in items) + "}"
    raise ValueError("payload values must be null, bool, int, str, list or dict, not %s" % type(value).__name__)


def row_fields(tenant_id, seq, occurred_at, actor, action, payload, prev_hmac):
    """The seven message fields as COPY text, from Python values.

    occurred_at: an aware datetime or the timestamptz text; payload: a Python value,
    or a str already holding jsonb's text output.
    """
    if isinstance(occurred_at, datetime.datetime):
        occurred_at = format_timestamptz(occurred_at)
    if not isinstance(payload, str):
        payload = jsonb_text(payload)
    return [
        copy_escape(tenant_id),
        str(int(seq)),
        copy_escape(occurred_at),
        copy_escape(actor),
        copy_escape(action),
        copy_escape(payload),
        copy_escape(prev_hmac),
    ]


def row_message(tenant_id, seq, occurred_at, actor, action, payload, prev_hmac):
    """The exact bytes the row HMAC is computed over."""
    return "\t".join(row_fields(tenant_id, seq, occurred_at, actor, action, payload, prev_hmac)).encode("utf-8")


class ChainHasher:
    """HMAC-SHA256 with the key's inner and outer pads hashed once, copied per message."""

    def __init__(self, key):
        if isinstance(key, str):
            key = key.encode("utf-8")
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def hexdigest(self, message):
        mac = self._base.copy()
        mac.update(message)
        return mac.hexdigest()


def row_hmac(key, message):
    return ChainHasher(key).hexdigest(message)


def copy_line(tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac_hex):
    """A full eight-column COPY text line (no newline)."""
    fields = row_fields(tenant_id, seq, occurred_at, actor, action, payload, prev_hmac)
    fields.append(copy_escape(row_hmac_hex))
    return "\t".join(fields).encode("utf-8")


def build_chain(key, tenant_id, rows, start_seq=1, prev_hmac=GENESIS):
    """Chain rows (dicts with occurred_at, actor, action, payload) for one tenant.

    Returns a list of dicts with seq, prev_hmac and row_hmac added.
    """
    hasher = ChainHasher(key)
    chained = []
    seq = start_seq
    for row in rows:
        message = row_message(tenant_id, seq, row["occurred_at"], row["actor"], row["action"], row["payload"], prev_hmac)
        digest = hasher.hexdigest(message)
        chained.append(dict(row, tenant_id=tenant_id, seq=seq, prev_hmac=prev_hmac, row_hmac=digest))
        prev_hmac = digest
        seq += 1
    return chained


def retired_digest(lines):
    """SHA-256 (hex) of retired rows' full COPY lines, each ending in a newline, in seq order."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()


ANCHOR_FIELDS = (
    "tenant_id", "resume_seq", "resume_prev_hmac", "retired_first_seq", "retired_last_seq",
    "retired_rows", "retired_sha256", "capture_sha256", "backup_sha256", "signoff", "reason",
)


def anchor_message(anchor):
    parts = [ANCHOR_PREFIX]
    for name in ANCHOR_FIELDS:
        value = anchor[name]
        parts.append(str(int(value)) if isinstance(value, int) else copy_escape(value))
    return "\t".join(parts).encode("utf-8")


def anchor_key(key, anchor):
    """The key of an anchor: key itself, or (key epochs) the key of the epoch its resume_seq falls in."""
    if hasattr(key, "key_for"):
        return key.key_for(anchor["tenant_id"], anchor["resume_seq"])
    return key


def anchor_hmac(key, anchor):
    key = anchor_key(key, anchor)
    if key is None:
        raise AuditError("no key for the anchor of tenant %r at resume_seq %s: its epoch's key is not in the keyring"
                         % (anchor["tenant_id"], anchor["resume_seq"]))
    return ChainHasher(key).hexdigest(anchor_message(anchor))


class TenantScan:
    """Verification state of one tenant, fed rows in seq order.

    anchors: {resume_seq: anchor dict} for this tenant, already checked (valid ones only).
    """

    def __init__(self, tenant_id, anchors=None):
        self.tenant_id = tenant_id
        self.anchors = anchors or {}
        self.rows = 0
        self.valid_rows = 0
        self.hmac_failures = 0
        self.link_failures = 0
        self.segments = []
        self.last_seq = 0
        self.last_row_hmac = GENESIS

    def _bad(self, kind, first_seq, last_seq, rows):
        if self.segments:
            seg = self.segments[-1]
            if seg["kind"] == kind and seg["last_seq"] == first_seq - 1:
                seg["last_seq"] = last_seq
                seg["rows"] += rows
                return
        self.segments.append({"first_seq": first_seq, "last_seq": last_seq, "rows": rows, "kind": kind})

    def _anchor_covering(self, first_missing, seq):
        """The resume_prev_hmac of an anchor chain covering seqs first_missing..seq-1, or None."""
        anchor = self.anchors.get(seq)
        if anchor is None:
            return None
        resume_prev = anchor["resume_prev_hmac"]
        while anchor["retired_first_seq"] > first_missing:
            anchor = self.anchors.get(anchor["retired_first_seq"])
            if anchor is None:
                return None
        return resume_prev

    def feed(self, seq, hmac_ok, prev_hmac, stored_row_hmac):
        """One row: its seq, whether its own HMAC verified, its prev_hmac and row_hmac."""
        self.rows += 1
        expected_link = None
        expected_seq = self.last_seq + 1
        if seq == expected_seq:
            expected_link = self.last_row_hmac
        elif seq > expected_seq:
            expected_link = self._anchor_covering(expected_seq, seq)
            if expected_link is None:
                self._bad(KIND_GAP, expected_seq, seq - 1, seq - expected_seq)
        if not hmac_ok:
            self.hmac_failures += 1
            self._bad(KIND_HMAC, seq, seq, 1)
        elif expected_link is not None and prev_hmac != expected_link:
            self.link_failures += 1
            self._bad(KIND_LINK, seq, seq, 1)
        else:
            self.valid_rows += 1
        self.last_seq = seq
        self.last_row_hmac = stored_row_hmac

    def probable_cause(self, key_mismatch_fraction=KEY_MISMATCH_FRACTION):
        return probable_cause(self.rows, self.hmac_failures, self.link_failures, self.segments, key_mismatch_fraction)

    def result(self, key_mismatch_fraction=KEY_MISMATCH_FRACTION):
        return {
            "rows": self.rows,
            "valid_rows": self.valid_rows,
            "segments": self.segments,
            "verified": not self.segments,
            "probable_cause": self.probable_cause(key_mismatch_fraction),
        }


def probable_cause(rows, hmac_failures, link_failures, segments, key_mismatch_fraction=KEY_MISMATCH_FRACTION):
    """Name the likeliest cause of a tenant's failures, from their shape alone.

    key_mismatch: (nearly) every row fails its own HMAC while links hold - the rows
    were written with another key; direct_db_edit: some rows fail their HMAC;
    restore_gap: rows are missing; replication_lag: rows are present and signed but
    do not link, as when one node's rows were taken from an older point.
    """
    if not segments:
        return None
    if rows and link_failures == 0 and (
        hmac_failures == rows or (rows >= 2 and hmac_failures > key_mismatch_fraction * rows)
    ):
        return "key_mismatch"
    kinds = set(seg["kind"] for seg in segments)
    if KIND_HMAC in kinds:
        return "direct_db_edit"
    if KIND_GAP in kinds:
        return "restore_gap"
    return "replication_lag"


def split_copy_line(line):
    """Cut one eight-column COPY text line: (tenant_field, seq, message, prev_hmac, row_hmac).

    tenant_field stays COPY-escaped (bytes); it only changes at tenant boundaries.
    """
    message, _sep, stored = line.rpartition(b"\t")
    tenant_field, _sep, rest = message.partition(b"\t")
    seq_field = rest[:rest.index(b"\t")]
    prev = message[message.rindex(b"\t") + 1:]
    return tenant_field, int(seq_field), message, prev, stored


def verify_copy_lines(key, lines, anchors_by_tenant=None, key_mismatch_fraction=KEY_MISMATCH_FRACTION):
    """Verify eight-column COPY text lines ordered by (tenant_id, seq).

    key: bytes, or an object with key_for(tenant_id, seq) (audit_keyring.EpochKeys).

    anchors_by_tenant: {tenant_id: {resume_seq: anchor}} of valid anchors.
    Returns {tenant_id: result dict}.
    """
    epochs = hasattr(key, "key_for")
    hasher = None if epochs else ChainHasher(key)
    hashers = {}
    anchors_by_tenant = anchors_by_tenant or {}
    results = {}
    scan = None
    current = None
    for line in lines:
        tenant_field, seq, message, prev, stored = split_copy_line(line)
        if tenant_field != current:
            if scan is not None:
                results[scan.tenant_id] = scan.result(key_mismatch_fraction)
            current = tenant_field
            tenant_id = copy_unescape(tenant_field.decode("utf-8"))
            scan = TenantScan(tenant_id, anchors_by_tenant.get(tenant_id))
        if epochs:
            # Key epochs: the key of the epoch the seq falls in (a row of an unknown key fails).
            own = key.key_for(tenant_id, seq)
            hasher = (hashers.get(own) or hashers.setdefault(own, ChainHasher(own))) if own is not None else None
        ok = hasher is not None and hmac.compare_digest(hasher.hexdigest(message).encode("ascii"), stored)
        scan.feed(seq, ok, prev.decode("ascii", "replace"), stored.decode("ascii", "replace"))
    if scan is not None:
        results[scan.tenant_id] = scan.result(key_mismatch_fraction)
    return results


def check_anchors(key, anchors):
    """Split anchor dicts into ({tenant: {resume_seq: anchor}} of valid ones, [invalid]).

    key: bytes, or an object with key_for(tenant_id, seq) (audit_keyring.EpochKeys): each anchor is then
    checked with the key of the epoch its resume_seq falls in; an anchor in an epoch of unknown key is invalid.
    """
    hashers = {}
    valid = {}
    invalid = []
    for anchor in anchors:
        own = anchor_key(key, anchor)
        if own is not None and own not in hashers:
            hashers[own] = ChainHasher(own)
        expected = hashers[own].hexdigest(anchor_message(anchor)) if own is not None else ""
        if own is not None and hmac.compare_digest(expected, anchor["anchor_hmac"]):
            valid.setdefault(anchor["tenant_id"], {})[int(anchor["resume_seq"])] = anchor
        else:
            invalid.append({"tenant_id": anchor["tenant_id"], "resume_seq": int(anchor["resume_seq"])})
    return valid, invalid


# Writers and the retire operation serialize per tenant on this lock (docs/contract.md, "Writers").
TENANT_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('alexandria.audit:' || %s, 0))"
