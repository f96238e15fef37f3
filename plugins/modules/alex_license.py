#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: alex_license
short_description: Read quota usage, validate and apply Alexandria EE license blobs
version_added: 0.1.0
description:
  - O(state=query) reads C(GET /license) and reports usage, limits, headroom and which quota is exhausted.
  - O(state=validate) checks a license blob against what the product trusts (structure, issuer, signature,
    expiry, tier, counts) and returns its decoded claims. The product trusts the release's trusted issuer set
    (Secret C(<release>-license-issuers), see O(issuer_set)) when it has one, otherwise the single key
    O(issuer_public_key). The blob comes from O(blob), O(blob_file), or,
    when neither is given, from the license Secret.
  - O(state=present) writes a new blob to the license Secret. It refuses an invalid, expired or wrong-issuer
    blob (and one signed by an unknown, revoked or not yet trusted issuer key of the set), leaving the Secret
    unchanged, and a downgrade (fewer seats or tenants than in use) unless O(force=true). The previous blob is kept
    in the same Secret under O(backup_secret_key) so that O(state=rollback) can restore it.
  - O(state=rollback) puts the blob kept under O(backup_secret_key) back under O(license_secret_key).
  - The blob is never returned, logged or shown in a diff; results carry its claims and a short fingerprint.
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
  - alexandria.ee.api.SERVICE_PROXY
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written and the Deployment is not restarted; C(changed) and the diff say what
        would happen. A permission the real run would miss is a warning (and in RV(missing_permissions)).
  diff_mode:
    support: full
    details:
      - The diff shows the old and new claims and fingerprints, never the blob.
options:
  state:
    description:
      - V(query) reads C(/license) (read-only). V(validate) checks a blob (read-only).
      - V(present) applies O(blob) or O(blob_file). V(rollback) restores the previous blob.
    type: str
    choices: [query, validate, present, rollback]
    default: query
  blob:
    description:
      - The license blob text (C(ALXLIC1.<payload>.<signature>)). Never logged.
      - Mutually exclusive with O(blob_file).
    type: str
  blob_file:
    description:
      - A file on the managed node holding the blob.
    type: path
  issuer_public_key:
    description:
      - The issuer's Ed25519 public key, PEM C(PUBLIC KEY) or 64 hex digits. Not a secret.
      - The single key the product trusts when the release has no trusted issuer set. Required then for
        O(state=validate) and O(state=present), and always with O(issuer_set=ignore).
    type: str
  issuer_set:
    description:
      - Which issuers a blob is checked against.
      - V(auto) reads the release's trusted issuer set (O(issuer_set_secret)) and, when the release has none,
        uses O(issuer_public_key), as the product does.
      - V(require) fails when the release has no issuer set.
      - V(ignore) checks against O(issuer_public_key) alone, without asking Kubernetes (offline validation).
      - With O(state=rollback) the restored blob is checked when a set or O(issuer_public_key) is there.
    type: str
    choices: [auto, require, ignore]
    default: auto
  issuer_set_secret:
    description:
      - Name of the Secret holding the trusted issuer set. Defaults to C(<release>-license-issuers).
    type: str
  issuer_set_secret_key:
    description:
      - Key of the issuer set (JSON, docs/contract.md section 3) in O(issuer_set_secret).
    type: str
    default: issuers.json
  force:
    description:
      - Apply a blob with fewer seats or tenants than are in use (the API then answers 402 to new users or
        tenants). Invalid, expired and wrong-issuer blobs are refused even with O(force=true).
    type: bool
    default: false
  restart:
    description:
      - After writing the Secret, patch the Deployment's C(kubectl.kubernetes.io/restartedAt) annotation, wait for
        the rollout and for C(/ready). With O(state=present) the restart also happens when the Secret already
        holds the blob but C(/license) does not serve its claims (a run interrupted before its restart).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the rollout, then again for C(/ready), after a restart; from 1 to 86400.
    type: int
    default: 300
  license_secret:
    description:
      - Name of the license Secret. Defaults to C(<release>-license).
    type: str
  license_secret_key:
    description:
      - Key of the blob in the license Secret.
    type: str
    default: license.blob
  backup_secret_key:
    description:
      - Key of the license Secret where O(state=present) keeps the blob it replaces, and where O(state=rollback)
        reads it. The API reads only O(license_secret_key).
    type: str
    default: license.blob.previous
  rollback_from:
    description:
      - With O(state=rollback), roll back only when the blob in the Secret has this fingerprint (the
        C(fingerprint) returned when it was applied). Otherwise nothing is changed.
    type: str
  deployment:
    description:
      - Name of the Deployment to restart. Defaults to the release name.
    type: str
  base_url:
    description:
      - Base URL of the Alexandria EE API, for example C(http://localhost:8080). Can also be set with
        E(ALEX_BASE_URL).
      - O(state=query) and O(state=present) read C(/license) (current usage for the downgrade check), and a
        restart waits for C(/ready). Without O(base_url) those requests go through the Kubernetes API server's
        service proxy (C(/api/v1/namespaces/<namespace>/services/<service>:<service_port>/proxy/...)) with the
        Kubernetes options; a missing Service, no Ready endpoint and RBAC refusing C(services/proxy) each fail
        with their own message.
      - With O(state=validate), O(base_url) adds the downgrade check (without it, validation stays offline).
    type: str
  validate_certs:
    description:
      - Whether to verify TLS certificates, of the HTTP API and of the Kubernetes API server.
      - Unset, the HTTP API's certificate is verified and the Kubernetes API follows the kubeconfig.
      - Can also be set with E(K8S_AUTH_VERIFY_SSL).
notes:
  - The previous blob is kept in the license Secret itself (O(backup_secret_key)), written in the same replace as
    the new blob, so there is no window where the new blob is stored and the old one is lost, and no copy of a
    secret on the controller.
  - Before writing, O(state=present) and O(state=rollback) ask the API server (C(SelfSubjectAccessReview), as
    C(kubectl auth can-i) does) for every change they will make - C(update) the license Secret (C(create) when
    it does not exist), and with O(restart=true) C(patch) and C(get) the Deployment. When one is missing they
    fail before any change, naming it and the shipped Role that grants it (C(alexandria-ee-responder),
    C(extensions/rbac/)). Reading needs C(get) on the license Secret and, unless O(issuer_set=ignore), on the
    issuer set Secret (C(alexandria-ee-observer)).
requirements:
  - kubernetes (for the Secret and the Deployment)
  - requests
  - cryptography
seealso:
  - module: alexandria.ee.alex_seats
  - module: alexandria.ee.alex_license_issuers
'''

EXAMPLES = r'''
- name: Which quota is exhausted?
  alexandria.ee.alex_license:
    base_url: http://localhost:8080
  register: lic

- name: Validate a new blob against the issuer key (read-only)
  alexandria.ee.alex_license:
    state: validate
    blob_file: /secure/new-license.blob
    issuer_public_key: "{{ issuer_pem }}"
    base_url: http://localhost:8080

- name: Apply it and restart the API
  alexandria.ee.alex_license:
    state: present
    blob_file: /secure/new-license.blob
    issuer_public_key: "{{ issuer_pem }}"
    base_url: http://localhost:8080
    kubeconfig: ~/.kube/config
    namespace: alexandria
    restart: true
  register: applied

- name: Put the previous blob back if the new one is not served
  alexandria.ee.alex_license:
    state: rollback
    rollback_from: "{{ applied.fingerprint }}"
    base_url: http://localhost:8080
    restart: true
'''

RETURN = r'''
valid:
  description: Whether the license (served, or the blob checked) is valid.
  returned: always
  type: bool
reason:
  description:
    - Why it is not valid, one of C(missing), C(malformed), C(wrong_issuer), C(unknown_issuer), C(revoked_issuer),
      C(pending_issuer), C(bad_signature), C(expired).
  returned: always
  type: str
current_seats:
  description: Active users.
  returned: state is query
  type: int
max_seats:
  description: The license's C(seat_count) (C(0) when invalid).
  returned: state is query
  type: int
seats_headroom:
  description: C(max_seats - current_seats); C(0) or less means new users get HTTP 402.
  returned: state is query
  type: int
current_tenants:
  description: Tenants.
  returned: state is query
  type: int
max_tenants:
  description: The license's C(tenant_count) (C(0) when invalid).
  returned: state is query
  type: int
tenants_headroom:
  description: C(max_tenants - current_tenants).
  returned: state is query
  type: int
exhausted:
  description: The quotas with no headroom, from C(seats) and C(tenants).
  returned: state is query
  type: list
  elements: str
  sample: [seats]
tier:
  description: Product tier served by C(/license).
  returned: state is query
  type: str
expires_at:
  description: Expiry served by C(/license).
  returned: state is query
  type: str
expires_in_days:
  description: Days until expiry (negative when past).
  returned: state is query
  type: float
license_id:
  description: License id served by C(/license).
  returned: state is query
  type: str
claims:
  description: The decoded claims of the blob checked or applied (never the blob itself).
  returned: state is validate, present or rollback
  type: dict
  sample: {license_id: lic-002, customer: Acme, tier: enterprise, seat_count: 50, tenant_count: 10,
           issued_at: "2026-11-01T00:00:00Z", expires_at: "2027-11-01T00:00:00Z", issuer_key_id: 3f1c0a9e5b7d2c44}
fingerprint:
  description: First 12 hex digits of the SHA-256 of the blob checked or applied; safe to show.
  returned: state is validate, present or rollback
  type: str
trusted_by:
  description: What the blob was checked against, the release's trusted issuer set (naming its Secret) or C(issuer_public_key).
  returned: state is validate or present
  type: str
  sample: trusted issuer set in Secret alexandria/alexandria-ee-license-issuers key issuers.json
source:
  description: Where the checked blob came from (C(argument), or the Secret and key it was read from).
  returned: state is validate
  type: str
  sample: secret alexandria/alexandria-ee-license key license.blob
detail:
  description: Why the blob is invalid, in words.
  returned: state is validate
  type: str
downgrade:
  description: Why the blob is a downgrade (fewer seats or tenants than in use); empty when it is not.
  returned: state is validate or present
  type: list
  elements: str
previous_claims:
  description: Claims of the blob that was in the Secret before (null when there was none or it is unreadable).
  returned: state is present or rollback
  type: dict
previous_fingerprint:
  description: Fingerprint of the blob that was in the Secret before.
  returned: state is present or rollback
  type: str
changes:
  description: "The claims that differ, each as C({claim: {before: old, after: new}})."
  returned: state is present or rollback
  type: dict
secret_resource_version:
  description: resourceVersion of the license Secret after the run.
  returned: state is present or rollback
  type: str
missing_permissions:
  description:
    - The permissions a real run needs and the credential lacks, each naming the verb, resource, namespace and
      the shipped Role that grants it.
  returned: in check mode with state present or rollback, and when a real run stops for a missing permission
  type: list
  elements: str
restarted:
  description: Whether the Deployment's restart annotation was patched.
  returned: state is present or rollback
  type: bool
rollout:
  description: The rollout's final status line.
  returned: when restarted
  type: str
ready:
  description: Whether C(/ready) answered 200 after the restart.
  returned: when restarted and the blob put in place is valid
  type: bool
license:
  description: The C(/license) answer after the run (after the restart when there was one).
  returned: state is present, or rollback when the API was asked (base_url set, or a restart)
  type: dict
api_route:
  description: How the API was reached, V(base_url) or V(service_proxy) (the Kubernetes API server's service proxy).
  returned: when the API was asked
  type: str
  sample: service_proxy
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
from ansible_collections.alexandria.ee.plugins.module_utils import license_k8s as lk
from ansible_collections.alexandria.ee.plugins.module_utils import license_logic as ll
from ansible_collections.alexandria.ee.plugins.module_utils import api_queries, arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import (
    ApiClient, ApiError, api_route_argument_spec,
)
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_preflight as kp
from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import K8sError, build_api_client
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_workload as kw


def argument_spec():
    spec = api_route_argument_spec()  # one validate_certs for both APIs (the Kubernetes one's spec is kept)
    spec.update(
        state=dict(type="str", default="query", choices=["query", "validate", "present", "rollback"]),
        blob=dict(type=arg_checks.text(arg_checks.MAX_TOKEN, "a license blob"), no_log=True),
        blob_file=dict(type=arg_checks.path("a license blob file")),
        issuer_public_key=dict(type=arg_checks.text(arg_checks.MAX_TOKEN, "a public key"), no_log=False),
        force=dict(type="bool", default=False),
        restart=dict(type="bool", default=False),
        wait_timeout=dict(type=arg_checks.count(1, arg_checks.DAY), default=300),
        license_secret=dict(type=arg_checks.k8s_name(), no_log=False),
        license_secret_key=dict(type=arg_checks.k8s_key(), default=kw.DEFAULT_LICENSE_KEY, no_log=False),
        backup_secret_key=dict(type=arg_checks.k8s_key(), default="license.blob.previous", no_log=False),
        rollback_from=dict(type=arg_checks.text(256, "a blob fingerprint")),
        deployment=dict(type=arg_checks.k8s_name()),
    )
    spec.update(lk.issuer_set_spec(arg_checks))
    return spec


class Runner:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self._api = None
        self._workload = None
        self.trusted_by = None
        self.secret_name = kw.license_secret_name(self.p["release"], self.p["license_secret"])

    # -- connections -------------------------------------------------------------------------------
    def api(self):
        """The API at base_url, or through the Kubernetes service proxy when base_url is unset."""
        if self._api is None:
            self._api = ApiClient.from_params(dict(self.p, admin_token=None))
        return self._api

    def route(self):
        """base_url or service_proxy, once the API was asked; None otherwise."""
        return self._api.route_name if self._api is not None else None

    def workload(self):
        if self._workload is None:
            self._workload = kw.Workload(build_api_client(self.p), self.p["namespace"])
        return self._workload

    def fail(self, msg, **extra):
        self.module.fail_json(msg=msg, **extra)

    def secret(self, value):
        """Register a secret read from a file or a Secret so Ansible masks it in any output."""
        if value:
            self.module.no_log_values.add(value)
            self.module.no_log_values.add(value.strip())
        return value

    def trust(self, optional=False):
        """The trusted issuer set of the release, or issuer_public_key (lk.resolve_trust); with optional, None
        when neither is there (a rollback without a way to check the blob it restores)."""
        if optional and self.p["issuer_set"] == "ignore" and not self.p["issuer_public_key"]:
            return None
        try:
            trust, self.trusted_by = lk.resolve_trust(self.p, self.workload)
        except ValueError as exc:
            self.fail(str(exc))
        if trust is None and not optional:
            self.fail(self.trusted_by)
        return trust

    def license_doc(self):
        return self.api().call_json("GET", "/license", auth=False)

    def given_blob(self):
        if self.p["blob"] is not None:
            return self.p["blob"]
        if self.p["blob_file"]:
            try:
                with open(self.p["blob_file"], "r", encoding="utf-8") as handle:
                    return self.secret(handle.read())
            except (OSError, UnicodeDecodeError) as exc:
                self.fail("cannot read blob_file %s: %s" % (self.p["blob_file"], exc.__class__.__name__))
        return None

    def read_secret(self):
        secret = self.workload().read_secret(self.secret_name)
        current = self.secret(kw.secret_value(secret, self.p["license_secret_key"]))
        backup = self.secret(kw.secret_value(secret, self.p["backup_secret_key"]))
        return secret, current, backup

    # -- states ------------------------------------------------------------------------------------
    def query(self):
        return api_queries.license_query(self.api())

    def validate(self):
        key = self.trust()
        blob = self.given_blob()
        source = "argument"
        if blob is None:
            _secret, blob, _backup = self.read_secret()
            source = "secret %s/%s key %s" % (self.p["namespace"], self.secret_name, self.p["license_secret_key"])
        check = ll.validate_blob(blob, key)
        result = dict(changed=False, source=source, trusted_by=self.trusted_by, downgrade=[], **check)
        if self.p["base_url"] and check["claims"]:
            status = ll.quota_status(self.license_doc())
            result["downgrade"] = ll.downgrade_problems(check["claims"], status["current_seats"],
                                                        status["current_tenants"])
        return result

    def present(self):
        key = self.trust()
        blob = self.given_blob()
        if blob is None:
            self.fail("state=present needs blob or blob_file")
        check = ll.validate_blob(blob, key)
        if not check["valid"]:
            self.fail("refusing to apply the license blob (fingerprint %s): %s: %s (checked against the %s); "
                      "the license Secret is unchanged" % (check["fingerprint"], check["reason"], check["detail"],
                                                           self.trusted_by),
                      reason=check["reason"], claims=check["claims"], fingerprint=check["fingerprint"],
                      trusted_by=self.trusted_by)
        claims = check["claims"]
        status = ll.quota_status(self.license_doc())
        downgrade = ll.downgrade_problems(claims, status["current_seats"], status["current_tenants"])
        warnings = []
        if downgrade and not self.p["force"]:
            self.fail("refusing a downgrade (use force=true to apply anyway): %s" % "; ".join(downgrade),
                      downgrade=downgrade, claims=claims, fingerprint=check["fingerprint"])
        if downgrade:
            warnings.append("applying a downgrade because force=true: %s" % "; ".join(downgrade))
        secret, current, _backup = self.read_secret()
        previous = ll.describe_blob(current, key)
        if previous["claims"] and ll.tier_downgrade(previous["claims"], claims):
            warnings.append("tier goes down from %s to %s" % (previous["claims"]["tier"], claims["tier"]))
        changed = current is None or current.strip() != blob.strip()
        values = {self.p["license_secret_key"]: blob.strip()}
        if current is not None and current.strip() and self.p["backup_secret_key"]:
            values[self.p["backup_secret_key"]] = current.strip()
        restart_needed = changed
        if self.p["restart"] and not changed and not self.module.check_mode:
            restart_needed = bool(ll.served_mismatch(claims, ll.status_doc_from(status)))
        findings = self.preflight("applying the license", secret, changed, restart_needed)
        result = self.write(secret, values, changed, previous, claims, check["fingerprint"], findings)
        result.update(downgrade=downgrade, valid=True, reason=None, trusted_by=self.trusted_by)
        self.finish(result, restart_needed, wait_ready=True)
        for warning in warnings:
            self.module.warn(warning)
        return result

    def rollback(self):
        key = self.trust(optional=True)
        secret, current, backup = self.read_secret()
        if not backup:
            self.fail("no previous blob under key %s of Secret %s/%s: nothing to roll back to" % (
                self.p["backup_secret_key"], self.p["namespace"], self.secret_name))
        target = ll.describe_blob(backup, key)
        previous = ll.describe_blob(current, key)
        current_fp = previous["fingerprint"]
        if self.p["rollback_from"] and current_fp != self.p["rollback_from"]:
            changed = False
            note = "the Secret holds blob %s, not %s: nothing rolled back" % (current_fp, self.p["rollback_from"])
        else:
            changed = current is None or current.strip() != backup.strip()
            note = None
        values = {self.p["license_secret_key"]: backup.strip()}
        findings = self.preflight("rolling the license back", secret, changed, changed)
        result = self.write(secret, values, changed, previous, target["claims"], target["fingerprint"], findings)
        result.update(valid=target["valid"], reason=target["reason"])
        if note:
            result["msg"] = note
        self.finish(result, changed, wait_ready=bool(target["valid"]))
        if key is not None and not target["valid"]:
            self.module.warn("the restored blob is not valid (%s): the API will not serve until a valid one is applied"
                             % target["reason"])
        return result

    # -- helpers -----------------------------------------------------------------------------------
    def preflight(self, action, secret, write, restart):
        """Before the first change: may this credential write the Secret and restart the Deployment?
        Fails a real run naming what is missing; returns the findings (check mode: also warnings)."""
        deployment = kw.deployment_name(self.p["release"], self.p["deployment"]) if restart and self.p["restart"] \
            else None
        needs = kp.license_needs(self.p["namespace"], self.secret_name if write else None, secret is not None,
                                 deployment)
        if not needs:
            return []
        return kp.enforce(self.module, self.workload().core.api_client, needs, action)[1]

    def write(self, secret, values, changed, previous, claims, fingerprint, findings=None):
        result = dict(
            changed=changed, claims=claims, fingerprint=fingerprint,
            previous_claims=previous["claims"], previous_fingerprint=previous["fingerprint"],
            changes=ll.claim_diff(previous["claims"], claims) if changed else {},
            restarted=False,
            secret_resource_version=((secret or {}).get("metadata") or {}).get("resourceVersion"),
        )
        if self.module.check_mode:
            result["missing_permissions"] = findings or []
        if self.module._diff:
            where = "%s/%s[%s]" % (self.p["namespace"], self.secret_name, self.p["license_secret_key"])
            result["diff"] = dict(
                before_header=where, after_header=where,
                before=dict(fingerprint=previous["fingerprint"], claims=previous["claims"]) if changed else {},
                after=dict(fingerprint=fingerprint, claims=claims) if changed else {},
            )
        if changed and not self.module.check_mode:
            stored = self.workload().write_secret_values(self.secret_name, values, secret)
            result["secret_resource_version"] = (stored.get("metadata") or {}).get("resourceVersion")
        return result

    def finish(self, result, restart_needed, wait_ready):
        if not (self.p["restart"] and restart_needed) or self.module.check_mode:
            if (self.p["base_url"] or self._api is not None) and not self.module.check_mode:
                result["license"] = self.license_doc()
            return
        name = kw.deployment_name(self.p["release"], self.p["deployment"])
        try:
            lk.restart_and_wait(result, self.workload(), self.api(), name, self.p["wait_timeout"], wait_ready)
            result["changed"] = True
            result["license"] = self.license_doc()
        except (K8sError, ApiError) as exc:
            # The Secret is written: say so, so a playbook can roll back.
            self.fail("the license Secret was written but the restart did not complete: %s" % exc, **result)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("blob", "blob_file")],
        supports_check_mode=True,
    )
    if not lc.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=lc.CRYPTOGRAPHY_IMPORT_ERROR)
    runner = Runner(module)
    try:
        result = getattr(runner, module.params["state"])()
    except (ApiError, K8sError, ll.QuotaError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    if runner.route():
        result["api_route"] = runner.route()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
