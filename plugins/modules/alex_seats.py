#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_seats
short_description: Find inactive Alexandria EE users, free their seats, and report tenant usage
version_added: 0.1.0
description:
  - Works through the Alexandria EE admin API (C(/admin/v1/users), C(/admin/v1/tenants)).
  - O(state=query) lists the active users inactive for at least O(inactive_days) (read-only) and, with
    O(list_tenants=true), every tenant with its usage, last activity and whether it looks unused.
  - O(state=deactivated) deactivates the users named in O(users), or, when O(users) is not given, the inactive
    selection. It refuses, changing nothing, when more than O(max_deactivate) users would be deactivated.
    Users already deactivated are left alone and do not count against the gate.
  - A user is inactive when its C(last_active_at) (or its C(created_at) if it was never active) is at least
    O(inactive_days) days old. Deactivating frees the user's seat; the contract has no reactivation.
  - Tenants are only reported, never deleted or changed.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.api
  - alexandria.ee.api.ADMIN
attributes:
  check_mode:
    support: full
    details:
      - In check mode no user is deactivated; C(deactivated) lists who would be.
  diff_mode:
    support: full
    details:
      - The diff shows the status of each user that is (or would be) deactivated.
options:
  state:
    description:
      - V(query) only reads. V(deactivated) deactivates users.
    type: str
    choices: [query, deactivated]
    default: query
  users:
    description:
      - Users to deactivate, by id or username. When not given, O(state=deactivated) takes the inactive selection.
      - All must exist, or nothing is changed.
    type: list
    elements: raw
  inactive_days:
    description:
      - Idle days that make an active user inactive, and a tenant unused; from 0 to 36500.
    type: int
    default: 90
  max_deactivate:
    description:
      - The most users O(state=deactivated) may deactivate in one run. If more would be, the module fails and
        changes nothing. Required with O(state=deactivated). From 0 to 100000.
    type: int
  list_tenants:
    description:
      - With O(state=query), also list the tenants (the API allows this on the C(enterprise) tier only; below it
        the module fails and says so).
    type: bool
    default: false
seealso:
  - module: alexandria.ee.alex_license
'''

EXAMPLES = r'''
- name: Who has not been active for 90 days?
  alexandria.ee.alex_seats:
    base_url: http://localhost:8080
    admin_token: "{{ alex_admin_token }}"
    inactive_days: 90
  register: seats

- name: Free their seats, at most 10
  alexandria.ee.alex_seats:
    base_url: http://localhost:8080
    admin_token: "{{ alex_admin_token }}"
    state: deactivated
    inactive_days: 90
    max_deactivate: 10

- name: Deactivate two named users
  alexandria.ee.alex_seats:
    base_url: http://localhost:8080
    admin_token: "{{ alex_admin_token }}"
    state: deactivated
    users: [alice, 42]
    max_deactivate: 2

- name: Tenants with usage (enterprise tier)
  alexandria.ee.alex_seats:
    base_url: http://localhost:8080
    admin_token: "{{ alex_admin_token }}"
    list_tenants: true
'''

RETURN = r'''
users_total:
  description: Users known to the API.
  returned: always
  type: int
inactive_days:
  description: The O(inactive_days) used for the selection.
  returned: always
  type: int
active_users:
  description: Active users (seats in use) before the run.
  returned: always
  type: int
inactive_users:
  description: The active users inactive for at least O(inactive_days), least recently active first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: User id.
      type: int
    username:
      description: User name.
      type: str
    tenant_id:
      description: The user's tenant.
      type: str
    status:
      description: C(active) or C(deactivated).
      type: str
    created_at:
      description: Creation time.
      type: str
    last_active_at:
      description: Last activity, null if never active.
      type: str
    idle_days:
      description: Days since last activity (or creation).
      type: float
deactivated:
  description: The users deactivated (in check mode, who would be), with the fields of RV(inactive_users).
  returned: state is deactivated
  type: list
  elements: dict
already_deactivated:
  description: Usernames that were asked for but already deactivated (left alone).
  returned: state is deactivated
  type: list
  elements: str
seats_freed:
  description: Number of users deactivated (would be, in check mode).
  returned: state is deactivated
  type: int
tenants:
  description: Every tenant with C(id), C(name), C(created_at), C(last_active_at), C(users), C(active_users),
    C(audit_rows), C(idle_days) and C(unused) (no active users, or idle for O(inactive_days)).
  returned: list_tenants is true
  type: list
  elements: dict
unused_tenants:
  description: Ids of the tenants flagged C(unused). Only a report; nothing is deleted.
  returned: list_tenants is true
  type: list
  elements: str
'''

import datetime

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import seats_logic as sl
from ansible_collections.alexandria.ee.plugins.module_utils import api_queries, arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import ApiClient, ApiError, api_argument_spec


def argument_spec():
    spec = api_argument_spec(admin=True)
    spec.update(
        state=dict(type="str", default="query", choices=["query", "deactivated"]),
        users=dict(type="list", elements=arg_checks.data()),
        inactive_days=dict(type=arg_checks.count(0, 36500), default=90),
        max_deactivate=dict(type=arg_checks.count(0, 100000)),
        list_tenants=dict(type="bool", default=False),
    )
    return spec


def deactivate(module, api, todo, now):
    """POST each deactivation; on a failure say which users were already done."""
    done, raced = [], []
    for user in todo:
        path = "/admin/v1/users/%d/deactivate" % int(user["id"])
        try:
            body = api.call_json("POST", path)
        except ApiError as exc:
            module.fail_json(msg="%s; deactivated before the failure: %s" % (
                exc, ", ".join(u["username"] for u in done) or "none"),
                changed=bool(done), deactivated=done, seats_freed=len(done))
        if body.get("changed") is False:
            raced.append(user.get("username"))
        else:
            done.append(sl.user_summary(body.get("user") or user, now))
    return done, raced


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "deactivated", ("max_deactivate",))],
        supports_check_mode=True,
    )
    p = module.params
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        api = ApiClient.from_params(p)
        if p["state"] == "query":
            module.exit_json(**api_queries.seats_query(api, p["inactive_days"], p["list_tenants"], now))
        users = api_queries.list_users(api)
        inactive = sl.select_inactive(users, p["inactive_days"], now)
        result = api_queries.seats_usage(users, inactive, p["inactive_days"], now)
        candidates = sl.resolve_users(users, p["users"]) if p["users"] else inactive
        todo, already = sl.plan_deactivation(candidates, p["max_deactivate"])
    except sl.SelectionError as exc:
        module.fail_json(msg=str(exc))
    except ApiError as exc:
        module.fail_json(msg=str(exc))

    result["already_deactivated"] = [u.get("username") for u in already]
    if module._diff:
        result["diff"] = dict(
            before=dict((u["username"], "active") for u in todo),
            after=dict((u["username"], "deactivated") for u in todo),
        )
    if module.check_mode:
        done = [sl.user_summary(u, now) for u in todo]
    else:
        done, raced = deactivate(module, api, todo, now)
        result["already_deactivated"].extend(raced)
    result.update(changed=bool(done), deactivated=done, seats_freed=len(done))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
