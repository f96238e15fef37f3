# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which users free seats, and which tenants look unused (docs/contract.md section 2): pure, no Ansible imports.

A seat is an active user. A user is inactive when its last activity (or, if it never was active, its
creation) is at least ``inactive_days`` old. Nothing here deletes anything; tenants are only reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


class SelectionError(ValueError):
    """Bad input to a selection (unknown users, malformed API data); the message is for the operator."""


class GateError(SelectionError):
    """More users would be deactivated than max_deactivate allows."""


def parse_api_time(text):
    """An RFC 3339 time from the API (``Z`` or an offset, optional fraction) as an aware datetime."""
    if text is None:
        return None
    match = _TIME_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise SelectionError("not an RFC 3339 time: %r" % (text,))
    date, clock, frac, zone = match.groups()
    value = datetime.datetime.strptime(date + "T" + clock, "%Y-%m-%dT%H:%M:%S")
    if frac:
        value = value.replace(microsecond=int((frac[1:] + "000000")[:6]))
    if zone == "Z":
        offset = datetime.timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return value.replace(tzinfo=datetime.timezone(offset)).astimezone(datetime.timezone.utc)


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def last_seen(record):
    """The time a user or tenant was last active, falling back to its creation time."""
    return parse_api_time(record.get("last_active_at")) or parse_api_time(record.get("created_at"))


def idle_days(record, now):
    seen = last_seen(record)
    if seen is None:
        return None
    return round((now - seen).total_seconds() / 86400.0, 2)


def user_summary(user, now):
    """The user fields a result shows, with idle_days added."""
    return {
        "id": user.get("id"),
        "username": user.get("username"),
        "tenant_id": user.get("tenant_id"),
        "status": user.get("status"),
        "created_at": user.get("created_at"),
        "last_active_at": user.get("last_active_at"),
        "idle_days": idle_days(user, now),
    }


def select_inactive(users, inactive_days, now=None):
    """Active users idle for at least inactive_days, least recently active first (then by id)."""
    if inactive_days is None or inactive_days < 0:
        raise SelectionError("inactive_days must be 0 or more")
    now = now or _utcnow()
    cutoff = now - datetime.timedelta(days=inactive_days)
    chosen = []
    for user in users:
        if user.get("status") != "active":
            continue
        seen = last_seen(user)
        if seen is not None and seen <= cutoff:
            chosen.append((seen, user.get("id"), user))
    chosen.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in chosen]


def resolve_users(users, wanted):
    """Map each wanted entry (an id, a numeric string, or a username) to its user; unknown ones fail together."""
    by_id = dict((u.get("id"), u) for u in users)
    by_name = dict((u.get("username"), u) for u in users)
    found, unknown, seen_ids = [], [], set()
    for entry in wanted:
        user = None
        if isinstance(entry, int) and not isinstance(entry, bool):
            user = by_id.get(entry)
        elif isinstance(entry, str):
            user = by_name.get(entry)
            if user is None and entry.isdigit():
                user = by_id.get(int(entry))
        if user is None:
            unknown.append(entry)
        elif user.get("id") not in seen_ids:
            seen_ids.add(user.get("id"))
            found.append(user)
    if unknown:
        raise SelectionError("unknown users (no such id or username): %s" % ", ".join(str(u) for u in unknown))
    return found


def plan_deactivation(candidates, max_deactivate):
    """Split candidates into (to_deactivate, already_deactivated); GateError when more than max_deactivate.

    Already-deactivated users do not count against the gate: they are not touched.
    """
    if max_deactivate is None or max_deactivate < 0:
        raise SelectionError("max_deactivate must be 0 or more")
    todo = [u for u in candidates if u.get("status") == "active"]
    already = [u for u in candidates if u.get("status") != "active"]
    if len(todo) > max_deactivate:
        names = ", ".join(str(u.get("username")) for u in todo[:20])
        more = "" if len(todo) <= 20 else " and %d more" % (len(todo) - 20)
        raise GateError("%d users would be deactivated, more than max_deactivate=%d (%s%s); nothing was changed"
                        % (len(todo), max_deactivate, names, more))
    return todo, already


def tenant_summary(tenants, inactive_days, now=None):
    """Tenants with usage, idle_days and an ``unused`` flag (no active users, or idle for inactive_days).

    Only a report: tenants are never deleted automatically.
    """
    now = now or _utcnow()
    out = []
    for tenant in tenants:
        idle = idle_days(tenant, now)
        unused = tenant.get("active_users", 0) == 0 or (idle is not None and idle >= inactive_days)
        out.append({
            "id": tenant.get("id"),
            "name": tenant.get("name"),
            "created_at": tenant.get("created_at"),
            "last_active_at": tenant.get("last_active_at"),
            "users": tenant.get("users"),
            "active_users": tenant.get("active_users"),
            "audit_rows": tenant.get("audit_rows"),
            "idle_days": idle,
            "unused": unused,
        })
    return out
