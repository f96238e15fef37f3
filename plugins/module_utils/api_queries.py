# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only API queries of S2 (docs/contract.md section 2): /license usage and the admin API's users and
tenants. Shared by alex_license (state=query), alex_seats and alex_health; each raises ApiError (or QuotaError
for a /license answer without the contract's shape) in words."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.alexandria.ee.plugins.module_utils import license_logic
from ansible_collections.alexandria.ee.plugins.module_utils import seats_logic
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import ApiError


def license_query(api):
    """alex_license state=query: usage, limits, headroom, exhausted quotas and days to expiry from GET /license."""
    return dict(changed=False, **license_logic.quota_status(api.call_json("GET", "/license", auth=False)))


def list_users(api):
    body = api.call_json("GET", "/admin/v1/users")
    users = body.get("users")
    if not isinstance(users, list):
        raise ApiError("GET /admin/v1/users: answer has no 'users' list")
    return users


def list_tenants(api):
    try:
        body = api.call_json("GET", "/admin/v1/tenants")
    except ApiError as exc:
        if exc.status == 403 and isinstance(exc.body, dict) and exc.body.get("error") == "tier_required":
            raise ApiError("listing tenants needs the %s tier; this license is %s (GET /admin/v1/tenants answered 403)"
                           % (exc.body.get("required", "enterprise"), exc.body.get("tier", "unknown")), status=403)
        raise
    tenants = body.get("tenants")
    if not isinstance(tenants, list):
        raise ApiError("GET /admin/v1/tenants: answer has no 'tenants' list")
    return tenants


def seats_usage(users, inactive, inactive_days, now):
    """alex_seats' answer about the users: totals and the inactive ones (pure)."""
    return dict(
        changed=False,
        users_total=len(users),
        active_users=sum(1 for u in users if u.get("status") == "active"),
        inactive_days=inactive_days,
        inactive_users=[seats_logic.user_summary(u, now) for u in inactive],
    )


def seats_query(api, inactive_days, with_tenants=False, now=None):
    """alex_seats state=query: the users (and with_tenants, the tenants and which are unused)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    users = list_users(api)
    result = seats_usage(users, seats_logic.select_inactive(users, inactive_days, now), inactive_days, now)
    if with_tenants:
        tenants = seats_logic.tenant_summary(list_tenants(api), inactive_days, now)
        result["tenants"] = tenants
        result["unused_tenants"] = [t["id"] for t in tenants if t["unused"]]
    return result
