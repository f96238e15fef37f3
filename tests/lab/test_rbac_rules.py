"""alexlab.rbac: rule matching as the API server's RBAC authorizer does it, and the shipped manifests.

Pure functions, no lab: the facade's enforcement is tested against a running lab in test_lab_rbac.py.
"""
import itertools
import pathlib

import pytest

from alexlab import rbac
from alexlab.rbac import Request

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
MANIFESTS = REPO / "extensions" / "rbac"
NS = "alexandria"
AUDIT_NS = "alexandria-audit"
CHECKPOINTS = "alexandria-ee-audit-checkpoints"
OBSERVER = rbac.service_account_user(NS, "alexandria-ee-observer")
RESPONDER = rbac.service_account_user(NS, "alexandria-ee-responder")


def req(verb, resource, name="", group="", namespace=NS):
    return rbac.request_for(verb, group, resource, namespace, name)


@pytest.mark.parametrize("rule,request_,allowed", [
    # verbs
    (dict(apiGroups=[""], resources=["pods"], verbs=["list"]), req("list", "pods"), True),
    (dict(apiGroups=[""], resources=["pods"], verbs=["list"]), req("watch", "pods"), False),
    (dict(apiGroups=[""], resources=["pods"], verbs=["*"]), req("deletecollection", "pods"), True),
    # apiGroups: "" is the core group, not a wildcard
    (dict(apiGroups=[""], resources=["deployments"], verbs=["get"]), req("get", "deployments", "d", "apps"), False),
    (dict(apiGroups=["apps"], resources=["deployments"], verbs=["get"]), req("get", "deployments", "d", "apps"), True),
    (dict(apiGroups=["*"], resources=["deployments"], verbs=["get"]), req("get", "deployments", "d", "apps"), True),
    (dict(apiGroups=["apps"], resources=["pods"], verbs=["list"]), req("list", "pods"), False),
    # resources and subresources
    (dict(apiGroups=[""], resources=["pods"], verbs=["get"]), req("get", "pods/log", "p"), False),
    (dict(apiGroups=[""], resources=["pods/log"], verbs=["get"]), req("get", "pods", "p"), False),
    (dict(apiGroups=[""], resources=["pods/log"], verbs=["get"]), req("get", "pods/log", "p"), True),
    (dict(apiGroups=[""], resources=["*/log"], verbs=["get"]), req("get", "pods/log", "p"), True),
    (dict(apiGroups=[""], resources=["*/log"], verbs=["get"]), req("get", "pods", "p"), False),
    (dict(apiGroups=[""], resources=["pods/*"], verbs=["get"]), req("get", "pods/log", "p"), False),
    (dict(apiGroups=[""], resources=["*"], verbs=["get"]), req("get", "pods/log", "p"), True),
    (dict(apiGroups=["apps"], resources=["deployments"], verbs=["patch"]),
     req("patch", "deployments/scale", "d", "apps"), False),
    # resourceNames: a named rule never matches a request without a name (list, watch, create)
    (dict(apiGroups=[""], resources=["secrets"], resourceNames=["a"], verbs=["get"]), req("get", "secrets", "a"), True),
    (dict(apiGroups=[""], resources=["secrets"], resourceNames=["a"], verbs=["get"]),
     req("get", "secrets", "b"), False),
    (dict(apiGroups=[""], resources=["secrets"], resourceNames=["a"], verbs=["list"]), req("list", "secrets"), False),
    (dict(apiGroups=[""], resources=["secrets"], resourceNames=["a"], verbs=["create"]),
     req("create", "secrets"), False),
    (dict(apiGroups=[""], resources=["secrets"], verbs=["create"]), req("create", "secrets"), True),
    (dict(apiGroups=[""], resources=["services/proxy"], resourceNames=["svc:80"], verbs=["get"]),
     req("get", "services/proxy", "svc:80"), True),
    (dict(apiGroups=[""], resources=["services/proxy"], resourceNames=["svc:80"], verbs=["get"]),
     req("get", "services/proxy", "svc:http"), False),
])
def test_rule_matches(rule, request_, allowed):
    assert rbac.rule_matches(rule, request_) is allowed


def policy_of(rules, subjects=None):
    subjects = subjects or [dict(kind="ServiceAccount", name="bot", namespace="alexandria")]
    text = "\n---\n".join([
        "kind: Role\nmetadata: {name: r, namespace: alexandria}\nrules: %s" % rules,
        "kind: RoleBinding\nmetadata: {name: rb, namespace: alexandria}\nroleRef: {kind: Role, name: r}\n"
        "subjects: %s" % (subjects,)])
    return rbac.parse_policy([text], NS)


def test_authorize_binds_the_service_account_in_the_policy_namespace_only():
    policy = policy_of([dict(apiGroups=[""], resources=["pods"], verbs=["list"])])
    bot = rbac.service_account_user(NS, "bot")
    allowed, reason = rbac.authorize(policy, bot, req("list", "pods"))
    assert allowed and reason == ('RBAC: allowed by RoleBinding "rb/alexandria" of Role "r" to ServiceAccount '
                                  '"bot/alexandria"')
    assert rbac.authorize(policy, bot, req("list", "pods", namespace="other")) == (False, "")
    assert rbac.authorize(policy, rbac.service_account_user("other", "bot"), req("list", "pods")) == (False, "")
    assert rbac.authorize(policy, rbac.service_account_user(NS, "someone"), req("list", "pods")) == (False, "")
    # a Role never grants cluster-scoped requests
    assert rbac.authorize(policy, bot, req("list", "pods", namespace="")) == (False, "")


def test_authorize_groups_and_users():
    policy = policy_of([dict(apiGroups=[""], resources=["events"], verbs=["list"])],
                       [dict(kind="Group", name="system:serviceaccounts:alexandria")])
    assert rbac.authorize(policy, rbac.service_account_user(NS, "any"), req("list", "events"))[0]
    assert not rbac.authorize(policy, "jane", req("list", "events"))[0]
    policy = policy_of([dict(apiGroups=[""], resources=["events"], verbs=["list"])], [dict(kind="User", name="jane")])
    assert rbac.authorize(policy, "jane", req("list", "events"))[0]


def test_a_namespace_object_is_in_its_own_namespace():
    assert req("get", "namespaces", "alexandria", namespace=None) == Request("get", "", "namespaces", "", NS, NS)
    assert req("list", "namespaces", namespace=None).namespace == ""


@pytest.mark.parametrize("request_,message", [
    (req("delete", "pods", "x"), 'pods "x" is forbidden: User "U" cannot delete resource "pods" in API group "" in '
                                 'the namespace "alexandria"'),
    (req("get", "pods/log", "x"), 'pods "x" is forbidden: User "U" cannot get resource "pods/log" in API group "" '
                                  'in the namespace "alexandria"'),
    (req("list", "pods"), 'pods is forbidden: User "U" cannot list resource "pods" in API group "" in the namespace '
                          '"alexandria"'),
    (req("patch", "deployments", "d", "apps"), 'deployments.apps "d" is forbidden: User "U" cannot patch resource '
                                               '"deployments" in API group "apps" in the namespace "alexandria"'),
    (req("list", "namespaces", namespace=None), 'namespaces is forbidden: User "U" cannot list resource "namespaces" '
                                                'in API group "" at the cluster scope'),
])
def test_forbidden_is_worded_as_the_api_server_does(request_, message):
    text, details = rbac.forbidden("U", request_)
    assert text == message
    assert details["kind"] == request_.resource


def test_access_review_answers_and_refuses_bad_bodies():
    def decide(request):
        return request == Request("get", "", "pods", "log", NS, ""), "because"
    body = {"spec": {"resourceAttributes": {"namespace": NS, "verb": "get", "resource": "pods", "subresource": "log"}}}
    answer = rbac.access_review(body, decide)
    assert answer["kind"] == "SelfSubjectAccessReview" and answer["status"] == {"allowed": True, "reason": "because"}
    body["spec"]["resourceAttributes"]["verb"] = "list"
    assert rbac.access_review(body, decide)["status"] == {"allowed": False, "reason": "because"}
    assert rbac.access_review({"spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}},
                              decide)["status"]["allowed"]
    assert not rbac.access_review({"spec": {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}},
                                  decide)["status"]["allowed"]
    for bad in (None, [], {}, {"spec": {}}, {"spec": {"resourceAttributes": {"verb": "get"},
                                                      "nonResourceAttributes": {"path": "/api"}}}):
        with pytest.raises(ValueError):
            rbac.access_review(bad, decide)


def test_manifests_move_to_the_labs_namespace():
    assert rbac.relocate("alexandria", "prod") == "prod"
    assert rbac.relocate("alexandria-audit", "prod") == "prod-audit"
    assert rbac.relocate("kube-system", "prod") == "kube-system"
    policy = rbac.load_policy(str(MANIFESTS), "prod")
    bot = rbac.service_account_user("prod", "alexandria-ee-responder")
    assert rbac.authorize(policy, bot, req("update", "secrets", CHECKPOINTS, namespace="prod-audit"))[0]
    assert rbac.authorize(policy, bot, req("delete", "pods", "p", namespace="prod"))[0]
    assert not rbac.authorize(policy, RESPONDER, req("delete", "pods", "p"))[0]  # alexandria's SA: not bound


def test_fault_rules_and_the_admin():
    access = rbac.Access("admin-token", "alexlab-sre", {"sa-token": OBSERVER},
                         rbac.load_policy(str(MANIFESTS), NS))
    assert access.authenticate("Bearer admin-token") == "alexlab-sre"
    assert access.authenticate("Bearer sa-token") == OBSERVER
    assert access.authenticate("Bearer nope") is None and access.authenticate("") is None
    assert access.decide("alexlab-sre", req("delete", "pods", "x"))[0]
    assert not access.decide("alexlab-sre", req("get", "pods/log", "x"), [{"resource": "pods/log", "verb": "*"}])[0]
    assert access.decide("alexlab-sre", req("get", "pods", "x"), [{"resource": "pods/log", "verb": "*"}])[0]
    assert access.decide(OBSERVER, req("list", "pods"))[0]
    assert not access.decide(OBSERVER, req("list", "pods"), [{"resource": "*", "verb": "list"}])[0]


# -- the shipped manifests -------------------------------------------------------------------------------------

POLICY = rbac.load_policy(str(MANIFESTS), NS)
# Everything a module of the collection asks the Kubernetes API for (plugins/module_utils/k8s_service.py,
# k8s_workload.py, audit_module.py), by who needs it.
CHECK_RUN_READS = [
    req("list", "pods"),                                                 # triage, api_log, pod_restart
    req("get", "pods/log", "alexandria-ee-abc-xyz"),                      # triage, api_log
    req("list", "events"),                                               # triage
    req("get", "secrets", "alexandria-ee-license"),                       # triage, alex_license
    req("get", "secrets", "alexandria-ee"),                               # audit modules (dsn, hmac key)
    req("get", "secrets", "alexandria-ee-license-issuers"),               # alex_license, alex_license_issuers
    req("get", "services/proxy", "alexandria-ee:80"),                     # HTTP modules through the proxy
    req("get", "secrets", CHECKPOINTS, namespace=AUDIT_NS),               # alex_audit_verify checkpoints
]
REAL_RUN_WRITES = [
    req("delete", "pods", "alexandria-ee-abc-xyz"),                       # alex_pod_restart
    req("update", "secrets", "alexandria-ee-license"),                    # alex_license present/rollback
    req("update", "secrets", "alexandria-ee-license-issuers"),            # alex_license_issuers
    req("create", "secrets"),                                            # alex_license, the Secret missing
    req("patch", "deployments", "alexandria-ee", "apps"),                 # alex_license restart
    req("get", "deployments", "alexandria-ee", "apps"),                   # alex_license waits for the rollout
    req("create", "services/proxy", "alexandria-ee:80"),                  # alex_seats POSTs through the proxy
    req("update", "secrets", CHECKPOINTS, namespace=AUDIT_NS),            # alex_audit_verify advances them
    req("create", "secrets", namespace=AUDIT_NS),                        # alex_audit_verify, the first one
]


def test_the_service_accounts_are_bound_to_their_roles():
    assert rbac.service_account_for_role(POLICY, "alexandria-ee-observer") == "alexandria-ee-observer"
    assert rbac.service_account_for_role(POLICY, "alexandria-ee-responder") == "alexandria-ee-responder"
    assert sorted(POLICY["roles"]) == [(NS, "alexandria-ee-observer"), (NS, "alexandria-ee-responder"),
                                       (AUDIT_NS, "alexandria-ee-observer"), (AUDIT_NS, "alexandria-ee-responder")]
    assert sorted(POLICY["service_accounts"]) == [(NS, "alexandria-ee-observer"), (NS, "alexandria-ee-responder")]


@pytest.mark.parametrize("request_", CHECK_RUN_READS, ids=lambda r: "%s-%s/%s" % (r.verb, r.resource, r.subresource))
def test_observer_and_responder_read_what_the_check_runs_read(request_):
    assert rbac.authorize(POLICY, OBSERVER, request_)[0]
    assert rbac.authorize(POLICY, RESPONDER, request_)[0]


@pytest.mark.parametrize("request_", REAL_RUN_WRITES, ids=lambda r: "%s-%s" % (r.verb, r.resource))
def test_only_the_responder_changes_things(request_):
    assert not rbac.authorize(POLICY, OBSERVER, request_)[0]
    assert rbac.authorize(POLICY, RESPONDER, request_)[0]


@pytest.mark.parametrize("namespace", [NS, AUDIT_NS])
def test_observer_grants_nothing_more(namespace):
    """No write verb, no wildcard, in either namespace."""
    for rule in POLICY["roles"][(namespace, "alexandria-ee-observer")]:
        assert set(rule["verbs"]) <= {"get", "list"}, rule
        assert "*" not in rule["resources"] + rule["apiGroups"], rule


@pytest.mark.parametrize("namespace", [NS, AUDIT_NS])
def test_responder_includes_every_observer_rule(namespace):
    responder = POLICY["roles"][(namespace, "alexandria-ee-responder")]
    for rule in POLICY["roles"][(namespace, "alexandria-ee-observer")]:
        for group, resource, verb in itertools.product(rule["apiGroups"], rule["resources"], rule["verbs"]):
            for name in rule.get("resourceNames") or [""]:
                request_ = rbac.request_for(verb, group, resource, namespace, name)
                assert any(rbac.rule_matches(r, request_) for r in responder), request_


@pytest.mark.parametrize("request_", [
    req("get", "secrets", "other-secret"), req("list", "secrets"), req("watch", "pods"),
    req("update", "secrets", "other-secret"), req("patch", "deployments", "other", "apps"),
    req("delete", "deployments", "alexandria-ee", "apps"), req("patch", "deployments/scale", "alexandria-ee", "apps"),
    req("create", "pods/exec", "alexandria-ee-abc-xyz"), req("get", "services/proxy", "other:80"),
    req("list", "pods", namespace="kube-system"), req("get", "namespaces", "alexandria", namespace=None),
    req("get", "secrets", CHECKPOINTS), req("update", "secrets", "alexandria-ee-license", namespace=AUDIT_NS),
    req("get", "secrets", "alexandria-ee", namespace=AUDIT_NS), req("list", "secrets", namespace=AUDIT_NS),
])
def test_responder_is_pinned(request_):
    assert not rbac.authorize(POLICY, RESPONDER, request_)[0]


def test_the_policy_is_what_the_kustomization_applies(tmp_path):
    role = "kind: Role\nmetadata: {name: %s, namespace: alexandria}\nrules: []\n"
    (tmp_path / "listed.yaml").write_text(role % "listed")
    (tmp_path / "left-out.yaml").write_text(role % "left-out")
    (tmp_path / "kustomization.yaml").write_text("resources: [listed.yaml]\n")
    assert sorted(rbac.load_policy(str(tmp_path), NS)["roles"]) == [(NS, "listed")]
    (tmp_path / "kustomization.yaml").unlink()
    assert sorted(rbac.load_policy(str(tmp_path), NS)["roles"]) == [(NS, "left-out"), (NS, "listed")]


def _field(number, payload):
    """One length-delimited protobuf field (lengths under 128 here)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_kubectl_auth_can_i_protobuf_body_decodes():
    """What kubectl sends for `auth can-i get pods --subresource=log -n alexandria` (runtime.Unknown envelope)."""
    from alexlab import protowire
    attributes = (_field(1, b"alexandria") + _field(2, b"get") + _field(3, b"") + _field(5, b"pods")
                  + _field(6, b"log") + _field(7, b"p"))
    review = _field(1, b"") + _field(2, _field(1, attributes))
    type_meta = _field(1, b"authorization.k8s.io/v1") + _field(2, b"SelfSubjectAccessReview")
    envelope = protowire.MAGIC + _field(1, type_meta) + _field(2, review)
    body = protowire.decode(envelope)
    assert body["spec"] == {"resourceAttributes": {"namespace": "alexandria", "verb": "get", "group": "",
                                                   "resource": "pods", "subresource": "log", "name": "p"}}
    decision = rbac.access_review(body, lambda request: (request == Request("get", "", "pods", "log", NS, "p"), ""))
    assert decision["status"] == {"allowed": True}
    with pytest.raises(protowire.Unsupported):
        protowire.decode(protowire.MAGIC + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap")))
