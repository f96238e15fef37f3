# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API's log lines (docs/contract.md section 6) as data: no Ansible imports.

A line is ``<RFC 3339 time> <LEVEL> <message>``. The audit messages name the tenant as a JSON
string, so a tenant id with spaces, quotes or any Unicode is read back exactly:

    HMAC mismatch: tenant="acme" seq=100-120 rows=21
    audit chain broken: tenant="acme" seq=100-120 kind=hmac_mismatch rows=21 probable_cause=direct_db_edit
    audit chain broken: tenant="acme" seq=250-250 kind=hmac_mismatch: write refused
    audit chain anchor reset: tenant="acme" resume_seq=121 retired=100-120 rows=21 signoff="CR-2026-0042"
    audit chain anchor reset: tenant="acme" resume_seq=121: writes resume
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re

# The runbook's strings, by event kind (contract section 6).
AUDIT_PREFIXES = (
    ("hmac_mismatch", "HMAC mismatch: "),
    ("chain_broken", "audit chain broken: "),
    ("anchor_reset", "audit chain anchor reset: "),
    ("anchor_invalid", "audit chain anchor invalid: "),
)
EVENT_KINDS = tuple(kind for kind, _prefix in AUDIT_PREFIXES)

_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))\s+([A-Za-z]+)\s+(.*)$")
_FIELD = re.compile(r"\s*([a-z_]+)=")
_RANGE = re.compile(r"^(\d+)-(\d+)")
_WORD = re.compile(r"^([A-Za-z0-9_.-]+)")
_JSON = json.JSONDecoder()
UTC = datetime.timezone.utc


def parse_time(text):
    """An aware UTC datetime from RFC 3339 text ('Z' or an offset, optional fraction); ValueError otherwise."""
    text = text.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    match = re.match(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([+-]\d{2}):?(\d{2})$", text)
    if not match:
        raise ValueError("not an RFC 3339 time: %r" % text)
    day, clock, fraction, hours, minutes = match.groups()
    micro = int(((fraction or ".0")[1:] + "000000")[:6])
    value = datetime.datetime.strptime("%s %s" % (day, clock), "%Y-%m-%d %H:%M:%S").replace(microsecond=micro)
    sign = -1 if hours.startswith("-") else 1
    offset = datetime.timedelta(hours=int(hours), minutes=sign * int(minutes))
    return (value - offset).replace(tzinfo=UTC)


def split_line(line):
    """(time or None, level or None, message) of one log line."""
    match = _LINE.match(line.rstrip("\r\n"))
    if not match:
        return None, None, line.rstrip("\r\n")
    try:
        when = parse_time(match.group(1))
    except ValueError:
        when = None
    return when, match.group(2).upper(), match.group(3)


def _fields(rest):
    """key=value pairs of an audit message after its prefix; values are JSON strings, ranges, numbers or words."""
    fields = {}
    pos = 0
    while True:
        match = _FIELD.match(rest, pos)
        if not match:
            return fields, rest[pos:].strip()
        key = match.group(1)
        pos = match.end()
        if rest.startswith('"', pos):
            try:
                value, pos = _JSON.raw_decode(rest, pos)
            except ValueError:
                return fields, rest[pos:].strip()
        else:
            found = _WORD.match(rest[pos:])  # a word, a number or a range such as 100-120
            if not found:
                return fields, rest[pos:].strip()
            value = found.group(0)
            pos += len(value)
        fields[key] = value
        if rest.startswith(":", pos):  # a ':' ends the fields ("...: write refused")
            return fields, rest[pos + 1:].strip()


def audit_event(message):
    """The audit event a message reports (dict with kind, tenant, ...), or None."""
    for kind, prefix in AUDIT_PREFIXES:
        if message.startswith(prefix):
            break
    else:
        return None
    fields, note = _fields(message[len(prefix):])
    tenant = fields.get("tenant")
    if not isinstance(tenant, str):
        return None
    event = {"kind": kind, "tenant": tenant}
    for key in ("seq", "retired"):
        value = fields.get(key)
        match = _RANGE.match(value) if isinstance(value, str) else None
        if match:
            event["first_seq" if key == "seq" else "retired_first_seq"] = int(match.group(1))
            event["last_seq" if key == "seq" else "retired_last_seq"] = int(match.group(2))
    for key in ("rows", "resume_seq"):
        if isinstance(fields.get(key), str) and fields[key].isdigit():
            event[key] = int(fields[key])
    for key in ("kind", "probable_cause", "signoff"):
        if isinstance(fields.get(key), str):
            event["segment_kind" if key == "kind" else key] = fields[key]
    if note:
        event["note"] = note
    return event


def audit_events(text, since=None):
    """Audit events of a log text, in order, each with its time (RFC 3339 text or None), level and line.

    With since (an aware datetime), lines stamped before it are left out; unstamped lines are kept.
    """
    events = []
    for line in text.splitlines():
        when, level, message = split_line(line)
        if since is not None and when is not None and when < since:
            continue
        event = audit_event(message)
        if event is None:
            continue
        event.update(time=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else None, level=level,
                     line=line.rstrip("\r\n"))
        events.append(event)
    return events


def missing_events(events, expected):
    """The expected {kind, tenant} pairs no event matches, in the order given."""
    seen = set((e["kind"], e["tenant"]) for e in events)
    return [dict(kind=e["kind"], tenant=e["tenant"]) for e in expected if (e["kind"], e["tenant"]) not in seen]
