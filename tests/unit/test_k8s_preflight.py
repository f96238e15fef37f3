"""k8s_preflight's pure part: what each module will ask for, in which words, and which shipped Role grants it.

GRANTED_BY is checked against the manifests themselves (extensions/rbac/, evaluated by the lab's RBAC rules),
so the hint a failure gives cannot drift from what the Roles grant. The SelfSubjectAccessReview calls are
tested against the lab (tests/integration/test_rbac_lab.py).
"""
import pathlib

import pytest

from alexlab import rbac
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_preflight as kp
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_preflight import Need

MANIFESTS = pathlib.Path(__file__).resolve().parent.parent.parent / "extensions" / "rbac"
NS = "alexandria"
AUDIT_NS = "alexandria-audit"
POLICY = rbac.load_policy(str(MANIFESTS), NS)
USERS = {role: rbac.service_account_user(NS, rbac.service_account_for_role(POLICY, role))
         for role in (kp.OBSERVER_ROLE, kp.RESPONDER_ROLE)}


def allowed(role, need):
    group = kp.GROUPS[need.resource.split("/")[0]]
    request = rbac.request_for(need.verb, group, need.resource, need.namespace, need.name)
    return rbac.authorize(POLICY, USERS[role], request)[0]


def test_pod_restart_needs():
    assert kp.pod_restart_needs(NS, ["a", "b"]) == [Need("delete", "pods", "a", NS), Need("delete", "pods", "b", NS),
                                                    Need("list", "pods", None, NS)]
    assert kp.pod_restart_needs(NS, ["a"], wait=False) == [Need("delete", "pods", "a", NS)]


def test_checkpoint_needs():
    assert kp.checkpoint_needs(AUDIT_NS, "cp") == [Need("update", "secrets", "cp", AUDIT_NS)]
    assert kp.checkpoint_needs(AUDIT_NS, "cp", False) == [Need("create", "secrets", None, AUDIT_NS)]


def test_license_needs():
    assert kp.license_needs(NS, "lic", True) == [Need("update", "secrets", "lic", NS)]
    assert kp.license_needs(NS, "lic", False) == [Need("create", "secrets", None, NS)]
    assert kp.license_needs(NS, None, True, "dep") == [Need("patch", "deployments", "dep", NS),
                                                       Need("get", "deployments", "dep", NS)]
    assert kp.license_needs(NS) == []


@pytest.mark.parametrize("need,body", [
    (Need("delete", "pods", "p", NS), {"namespace": NS, "verb": "delete", "group": "", "resource": "pods",
                                       "name": "p"}),
    (Need("get", "pods/log", None, NS), {"namespace": NS, "verb": "get", "group": "", "resource": "pods",
                                         "subresource": "log"}),
    (Need("patch", "deployments", "d", NS), {"namespace": NS, "verb": "patch", "group": "apps",
                                             "resource": "deployments", "name": "d"}),
])
def test_review_body(need, body):
    assert kp.review_body(need) == {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                    "spec": {"resourceAttributes": body}}


def test_findings_name_verb_resource_namespace_and_role():
    assert kp.finding(Need("patch", "deployments", "alexandria-ee", NS)) == (
        'missing Kubernetes permission: patch deployments.apps "alexandria-ee" in namespace alexandria (granted by '
        "Role alexandria-ee-responder in extensions/rbac/ in the alexandria.ee collection)")
    assert kp.finding(Need("create", "secrets", None, "prod")) == (
        "missing Kubernetes permission: create secrets in namespace prod (granted by Role alexandria-ee-responder "
        "in extensions/rbac/ in the alexandria.ee collection)")
    assert kp.finding(Need("update", "secrets", "custom-license", NS)).endswith(
        "(Role alexandria-ee-responder in extensions/rbac/ in the alexandria.ee collection grants it only for "
        "alexandria-ee, alexandria-ee-license, alexandria-ee-license-issuers, alexandria-ee-audit-checkpoints: add "
        "custom-license to that rule's resourceNames)")
    assert kp.finding(Need("delete", "secrets", "x", NS)).endswith("(no Role in extensions/rbac/ in the "
                                                                   "alexandria.ee collection grants it)")
    message = kp.failure_message("deleting pods a", [Need("delete", "pods", "a", NS)])
    assert message.startswith("deleting pods a needs Kubernetes permissions this credential does not have, so "
                              "nothing was changed: missing Kubernetes permission: delete pods \"a\"")


@pytest.mark.parametrize("answer,expected", [
    ({"status": {"allowed": True}}, True), ({"status": {"allowed": False}}, False),
    ({"status": {"allowed": True, "denied": True}}, False), ({"status": {}}, False), ({}, False), ([], False),
    ({"status": {"allowed": "true"}}, False),
])
def test_allowed_in(answer, expected):
    assert kp.allowed_in(answer) is expected


@pytest.mark.parametrize("key", sorted(kp.GRANTED_BY), ids="-".join)
def test_granted_by_matches_the_manifests(key):
    verb, resource = key
    role, names = kp.GRANTED_BY[key]
    for name in names or ["any-name" if verb not in ("list", "create", "watch") else None]:
        # the checkpoint Secret lives in the audit namespace, everything else in the product's
        need = Need(verb, resource, name, AUDIT_NS if name == "alexandria-ee-audit-checkpoints" else NS)
        assert allowed(role, need), need
        if role == kp.RESPONDER_ROLE:
            assert not allowed(kp.OBSERVER_ROLE, need), "the least Role is named: %s" % (need,)
    if names:
        assert not allowed(role, Need(verb, resource, "not-" + names[0], NS))


def test_every_need_of_the_modules_is_granted_by_the_responder():
    needs = kp.pod_restart_needs(NS, ["alexandria-ee-abc-xyz"]) + kp.license_needs(
        NS, "alexandria-ee-license", True, "alexandria-ee") + kp.license_needs(NS, "alexandria-ee-license", False) + \
        kp.checkpoint_needs(AUDIT_NS, "alexandria-ee-audit-checkpoints") + kp.checkpoint_needs(AUDIT_NS, "x", False)
    for need in needs:
        assert allowed(kp.RESPONDER_ROLE, need), need
        assert (need.verb, need.resource) in kp.GRANTED_BY
