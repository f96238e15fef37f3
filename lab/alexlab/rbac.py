"""Kubernetes RBAC for the lab's facade, evaluated the way the API server's RBAC authorizer does.

A request is a `Request` (verb, API group, resource, subresource, namespace, name). It is allowed when a
rule of a Role bound (RoleBinding, same namespace) to the user matches all of: apiGroups, resources
(`pods/log` for a subresource; `*` and `*/log` wildcards), verbs, and resourceNames (a rule with
resourceNames never matches a request without a name: list, watch, create). Roles and bindings are read
from the shipped manifests (extensions/rbac/), moved from the default namespaces `alexandria` and
`alexandria-<suffix>` to the lab's `<ns>` and `<ns>-<suffix>`. Everything here is a pure function of its
arguments except `load_policy`.
"""
import collections
import glob
import hmac
import os

import yaml

Request = collections.namedtuple("Request", "verb group resource subresource namespace name")
MANIFEST_NAMESPACE = "alexandria"  # what extensions/rbac/ is written for
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
AUTHZ_GROUP = "authorization.k8s.io"
# Granted to every authenticated user by system:basic-user and system:discovery in a real cluster.
OPEN_NON_RESOURCE = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")


def service_account_user(namespace, name):
    return "system:serviceaccount:%s:%s" % (namespace, name)


def request_for(verb, group, resource, namespace, name):
    """The authorizer's attributes of a facade request; resource may carry a subresource (`pods/log`)."""
    base, _sep, sub = resource.partition("/")
    if base == "namespaces" and name and not namespace:
        namespace = name  # the API server: a namespace object lives in its own namespace
    return Request(verb, group, base, sub, namespace or "", name or "")


# -- the documents ------------------------------------------------------------------------------------


def relocate(manifest_namespace, namespace):
    """`alexandria` -> namespace, `alexandria-audit` -> namespace + `-audit`; any other name stays."""
    if manifest_namespace == MANIFEST_NAMESPACE or (manifest_namespace or "").startswith(MANIFEST_NAMESPACE + "-"):
        return namespace + manifest_namespace[len(MANIFEST_NAMESPACE):]
    return manifest_namespace


def parse_policy(texts, namespace):
    """{"roles": {(namespace, name): rules}, "bindings": [binding], "service_accounts": [(namespace, name)]} from
    manifest texts, moved to the lab's namespace (relocate)."""
    policy = {"roles": {}, "bindings": [], "service_accounts": [], "namespace": namespace}
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if not isinstance(doc, dict):
                continue
            kind, meta = doc.get("kind"), doc.get("metadata") or {}
            where = relocate(meta.get("namespace") or MANIFEST_NAMESPACE, namespace)
            if kind == "Role":
                policy["roles"][(where, meta.get("name"))] = doc.get("rules") or []
            elif kind == "RoleBinding":
                subjects = []
                for subject in doc.get("subjects") or []:
                    subject = dict(subject)
                    if subject.get("kind") == "ServiceAccount":
                        subject["namespace"] = relocate(subject.get("namespace") or where, namespace)
                    subjects.append(subject)
                policy["bindings"].append({"name": meta.get("name"), "namespace": where,
                                           "roleRef": doc.get("roleRef") or {}, "subjects": subjects})
            elif kind == "ServiceAccount":
                policy["service_accounts"].append((where, meta.get("name")))
    return policy


def load_policy(directory, namespace):
    """The policy of the files directory/kustomization.yaml lists (what `kubectl apply -k` applies), or of
    every *.yaml file when there is no kustomization."""
    kustomization = os.path.join(directory, "kustomization.yaml")
    if os.path.exists(kustomization):
        with open(kustomization, encoding="utf-8") as handle:
            paths = [os.path.join(directory, name) for name in (yaml.safe_load(handle) or {}).get("resources") or []]
    else:
        paths = sorted(glob.glob(os.path.join(directory, "*.yaml")))
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            texts.append(handle.read())
    return parse_policy(texts, namespace)


def service_account_for_role(policy, role):
    """The ServiceAccount a RoleBinding in the lab's namespace binds Role `role` to (the lab mints its token)."""
    for binding in policy["bindings"]:
        ref = binding["roleRef"]
        if binding["namespace"] == policy["namespace"] and ref.get("kind") == "Role" and ref.get("name") == role:
            for subject in binding["subjects"]:
                if subject.get("kind") == "ServiceAccount":
                    return subject["name"]
    raise ValueError("no RoleBinding binds Role %s to a ServiceAccount" % role)


# -- evaluation ---------------------------------------------------------------------------------------


def _subject_matches(subject, user, groups):
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        return user == service_account_user(subject.get("namespace", ""), subject.get("name", ""))
    if kind == "User":
        return user == subject.get("name")
    if kind == "Group":
        return subject.get("name") in groups
    return False


def user_groups(user):
    """The groups the API server gives a ServiceAccount's token (and every authenticated user)."""
    groups = ["system:authenticated"]
    parts = user.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        groups += ["system:serviceaccounts", "system:serviceaccounts:%s" % parts[2]]
    return groups


def rule_matches(rule, request):
    """One PolicyRule against one request (rbac/v1 helpers: VerbMatches, APIGroupMatches, ResourceMatches,
    ResourceNameMatches)."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and request.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and request.group not in groups:
        return False
    combined = "%s/%s" % (request.resource, request.subresource) if request.subresource else request.resource
    resources = rule.get("resources") or []
    if not any(r == "*" or r == combined or (request.subresource and r == "*/" + request.subresource)
               for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def authorize(policy, user, request):
    """(allowed, reason). A RoleBinding grants its Role's rules in its own namespace only: cluster-scoped
    requests are never allowed."""
    if not request.namespace:
        return False, ""
    groups = user_groups(user)
    for binding in policy["bindings"]:
        ref = binding["roleRef"]
        rules = policy["roles"].get((binding["namespace"], ref.get("name")))
        if binding["namespace"] != request.namespace or ref.get("kind") != "Role" or rules is None:
            continue
        subject = next((s for s in binding["subjects"] if _subject_matches(s, user, groups)), None)
        if subject is None:
            continue
        for rule in rules:
            if rule_matches(rule, request):
                who = subject.get("name")
                if subject.get("kind") == "ServiceAccount":
                    who = "%s/%s" % (subject["name"], subject["namespace"])
                return True, 'RBAC: allowed by RoleBinding "%s/%s" of Role "%s" to %s "%s"' % (
                    binding["name"], binding["namespace"], ref["name"], subject.get("kind"), who)
    return False, ""


def fault_denies(rules, request):
    """The lab's rbac-deny fault: {"resource": "pods/log" | "pods" | "*", "verb": "get" | "*"} entries."""
    combined = "%s/%s" % (request.resource, request.subresource) if request.subresource else request.resource
    return any(r.get("resource") in ("*", combined) and r.get("verb") in ("*", request.verb) for r in rules)


def forbidden(user, request):
    """(message, details) of the API server's 403 (responsewriters.forbiddenMessage + errors.NewForbidden)."""
    combined = "%s/%s" % (request.resource, request.subresource) if request.subresource else request.resource
    qualified = "%s.%s" % (request.resource, request.group) if request.group else request.resource
    where = ' in the namespace "%s"' % request.namespace if request.namespace else " at the cluster scope"
    reason = 'User "%s" cannot %s resource "%s" in API group "%s"%s' % (
        user, request.verb, combined, request.group, where)
    message = "%s%s is forbidden: %s" % (qualified, ' "%s"' % request.name if request.name else "", reason)
    details = {"kind": request.resource}
    if request.group:
        details["group"] = request.group
    if request.name:
        details["name"] = request.name
    return message, details


# -- who is asking ------------------------------------------------------------------------------------


class Access:
    """Bearer tokens to users, and the decision for each request.

    The admin token (the lab's own tools, `--rbac none`) is a superuser; ServiceAccount tokens get what
    their RoleBindings grant. The rbac-deny fault's rules deny for every token.
    """

    def __init__(self, admin_token, admin_user, tokens, policy):
        self.admin_token, self.admin_user = admin_token, admin_user
        self.tokens = dict(tokens)  # token -> user
        self.policy = policy

    @classmethod
    def from_lab(cls, info, admin_user):
        accounts = info.get("k8s_service_accounts") or {}
        tokens = dict((a["token"], a["user"]) for a in accounts.values())
        policy = load_policy(info["rbac_manifests"], info["namespace"]) if accounts else None
        return cls(info["k8s_token"], admin_user, tokens, policy)

    def authenticate(self, header):
        """The user of an `Authorization: Bearer` header, or None."""
        given = header.encode("utf-8", "replace")
        if hmac.compare_digest(given, ("Bearer " + self.admin_token).encode("utf-8")):
            return self.admin_user
        for token, user in self.tokens.items():
            if hmac.compare_digest(given, ("Bearer " + token).encode("utf-8")):
                return user
        return None

    def decide(self, user, request, fault_rules=()):
        if fault_denies(fault_rules, request):
            return False, ""
        if user == self.admin_user:
            return True, ""
        return authorize(self.policy, user, request)


def access_review(body, decide):
    """The SelfSubjectAccessReview answer for a request body; decide(Request) -> (allowed, reason).

    Raises ValueError for a body the API server would refuse (422)."""
    spec = (body or {}).get("spec") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise ValueError("spec: Required value")
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(resource) == bool(non_resource):
        raise ValueError("spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or "
                         "resourceAttributes must be specified")
    if resource:
        request = Request(resource.get("verb") or "", resource.get("group") or "", resource.get("resource") or "",
                          resource.get("subresource") or "", resource.get("namespace") or "",
                          resource.get("name") or "")
        allowed, reason = decide(request)  # as given: no RequestInfo here (a namespace get is cluster scope)
    else:
        path = non_resource.get("path") or ""
        allowed = non_resource.get("verb") == "get" and any(
            path == p or path.startswith(p + "/") for p in OPEN_NON_RESOURCE)
        reason = 'RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" ' \
                 'to Group "system:authenticated"' if allowed else ""
    status = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


def discovery(path):
    """Discovery documents of the authorization.k8s.io group (only SelfSubjectAccessReview), or None."""
    version = {"groupVersion": AUTHZ_GROUP + "/v1", "version": "v1"}
    if path == "/apis/" + AUTHZ_GROUP:
        return {"kind": "APIGroup", "apiVersion": "v1", "name": AUTHZ_GROUP, "versions": [version],
                "preferredVersion": version}
    if path == "/apis/%s/v1" % AUTHZ_GROUP:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": AUTHZ_GROUP + "/v1", "resources": [
            {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": False,
             "kind": "SelfSubjectAccessReview", "verbs": ["create"]}]}
    return None


def group_entry():
    """The group's entry in /apis."""
    version = {"groupVersion": AUTHZ_GROUP + "/v1", "version": "v1"}
    return {"name": AUTHZ_GROUP, "versions": [version], "preferredVersion": version}
