"""restart_plan: which causes a restart fixes and which pods it deletes (the rule roles/api_not_serving plans by)."""
from ansible_collections.alexandria.ee.plugins.module_utils import restart_plan


def test_only_the_most_likely_cause_counts():
    assert restart_plan.restart_fixes([{"code": "orchestrator_socket_missing"}, {"code": "oom_killed"}])
    assert restart_plan.restart_fixes([{"code": "orchestrator_deadline_exceeded"}])
    assert not restart_plan.restart_fixes([{"code": "oom_killed"}, {"code": "orchestrator_socket_missing"}])
    assert not restart_plan.restart_fixes([{"code": "healthy"}])
    assert not restart_plan.restart_fixes([])


def test_targets_are_the_unready_pods_else_all_sorted():
    pods = [{"name": "b", "ready": False}, {"name": "a", "ready": True}, {"name": "c", "ready": False}]
    assert restart_plan.restart_targets(pods) == ["b", "c"]
    assert restart_plan.restart_targets([{"name": "z", "ready": True}, {"name": "y", "ready": True}]) == ["y", "z"]
    assert restart_plan.restart_targets([]) == []
