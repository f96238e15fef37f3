"""Inactive-user selection, the max_deactivate gate and tenant reports (seats_logic)."""
import datetime

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import seats_logic as sl

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def ago(days):
    return (NOW - datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def user(uid, name, status="active", last=None, created=400):
    return dict(id=uid, username=name, tenant_id="acme", status=status, created_at=ago(created),
                last_active_at=None if last is None else ago(last))


USERS = [
    user(1, "alice", last=1),
    user(2, "bob", last=120),
    user(3, "carol", last=95),
    user(4, "dave", status="deactivated", last=300),
    user(5, "erin", last=None, created=200),     # never active, created long ago
    user(6, "frank", last=None, created=5),      # never active, but new
    user(7, "grace", last=90),                   # exactly at the cutoff
]


def test_parse_api_time_forms():
    assert sl.parse_api_time("2026-11-27T09:52:00Z") == datetime.datetime(2026, 11, 27, 9, 52, tzinfo=UTC)
    assert sl.parse_api_time("2026-11-27T09:52:00.5Z").microsecond == 500000
    assert sl.parse_api_time("2026-11-27T10:52:00+01:00") == datetime.datetime(2026, 11, 27, 9, 52, tzinfo=UTC)
    assert sl.parse_api_time(None) is None
    with pytest.raises(sl.SelectionError):
        sl.parse_api_time("yesterday")


def test_select_inactive_order_and_rules():
    chosen = sl.select_inactive(USERS, 90, now=NOW)
    # erin (200 days since creation), bob (120), carol (95), grace (90, at the cutoff); oldest first.
    assert [u["username"] for u in chosen] == ["erin", "bob", "carol", "grace"]
    assert all(u["status"] == "active" for u in chosen)
    assert [u["username"] for u in sl.select_inactive(USERS, 100, now=NOW)] == ["erin", "bob"]
    assert len(sl.select_inactive(USERS, 0, now=NOW)) == 6
    with pytest.raises(sl.SelectionError):
        sl.select_inactive(USERS, -1, now=NOW)


def test_user_summary_has_idle_days():
    s = sl.user_summary(USERS[1], NOW)
    assert s["idle_days"] == 120.0 and s["username"] == "bob"
    assert sl.user_summary(USERS[4], NOW)["idle_days"] == 200.0


def test_resolve_users_by_name_and_id():
    found = sl.resolve_users(USERS, ["bob", 3, "4", "bob"])
    assert [u["username"] for u in found] == ["bob", "carol", "dave"]
    with pytest.raises(sl.SelectionError) as err:
        sl.resolve_users(USERS, ["bob", "zed", 99])
    assert "zed" in str(err.value) and "99" in str(err.value)


def test_gate_allows_up_to_max_and_skips_already_inactive():
    todo, already = sl.plan_deactivation(sl.resolve_users(USERS, ["bob", "carol", "dave"]), 2)
    assert [u["username"] for u in todo] == ["bob", "carol"]
    assert [u["username"] for u in already] == ["dave"]


def test_gate_refuses_when_more_would_be_touched():
    with pytest.raises(sl.GateError) as err:
        sl.plan_deactivation(sl.select_inactive(USERS, 90, now=NOW), 3)
    assert "4 users would be deactivated, more than max_deactivate=3" in str(err.value)
    assert "nothing was changed" in str(err.value)
    with pytest.raises(sl.SelectionError):
        sl.plan_deactivation([], -1)


def test_gate_zero_with_nothing_to_do_is_fine():
    todo, already = sl.plan_deactivation([USERS[3]], 0)
    assert todo == [] and len(already) == 1


def test_tenant_summary_flags_unused_only():
    tenants = [
        dict(id="acme", name="Acme", created_at=ago(300), last_active_at=ago(1), users=5, active_users=4, audit_rows=10),
        dict(id="old", name="Old", created_at=ago(300), last_active_at=ago(200), users=2, active_users=1, audit_rows=3),
        dict(id="empty", name="Empty", created_at=ago(2), last_active_at=None, users=1, active_users=0, audit_rows=0),
    ]
    out = sl.tenant_summary(tenants, 90, now=NOW)
    assert [(t["id"], t["unused"]) for t in out] == [("acme", False), ("old", True), ("empty", True)]
    assert out[1]["idle_days"] == 200.0
    assert out[0]["users"] == 5 and out[0]["audit_rows"] == 10
