#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: alex_triage
short_description: Name why the Alexandria EE API is not serving, with the evidence
version_added: 0.1.0
description:
  - Runbook Scenario 1 pre-checks and steps 2 to 4 through the Kubernetes API with the official Python client
    (no C(kubectl) needed). For the release's pods (C(app.kubernetes.io/instance=<release>)) it reads the phase,
    the container states, C(restartCount), C(lastState.terminated) (reason, exit code), the memory limits; the
    namespace's events sorted by C(lastTimestamp) (the last 20 about the release); the tail of each container's
    current log and, for a container that restarted, of its previous log; and whether the license Secret and
    its key exist (never its value).
  - >-
    It classifies with the runbook's logic and returns RV(causes), ordered by confidence. Codes -
    C(orchestrator_socket_missing) (api log C(orchestrator.sock: no such file or directory), orchestrator
    crash-looping), C(orchestrator_deadline_exceeded) (api log C(context deadline exceeded), orchestrator hung),
    C(license_blob_invalid) (api log C(license blob invalid)), C(license_signature_failed) (api log
    C(license signature verification failed)), C(license_secret_missing) (the license Secret or its key
    missing), C(oom_killed) (C(lastState.terminated.reason=OOMKilled), exit code 137, OOM events),
    C(healthy), C(unknown).
  - >-
    With O(helm_history=true) (the default) it also reads the release's Helm history (the Secrets Helm 3 keeps
    it in, see M(alexandria.ee.alex_helm_release)) and adds C(recent_upgrade) when the outage's first symptom
    (the earliest Warning event on the current pods, or a container's last failed exit) came at most
    O(upgrade_window) minutes after the newest revision was deployed. It is reported next to the symptom cause,
    not instead of it - first, unless the first cause is a license one - and its next step is the rollback to
    the previous revision. An upgrade longer before the outage, a rollback, the install itself, or a release
    without history (not a Helm release) is not named; RV(helm_release) says why. A history Secret that cannot
    be decoded is one line of evidence and a warning, never a failure.
  - The number of Kubernetes API requests does not depend on the log length - 1 pod list, 1 event list,
    1 Helm history Secret list (with O(helm_history=true)), 1 Secret read, 1 log read per container plus 1 per
    restarted container (C(tailLines) and C(limitBytes) bound each).
  - With O(probe_api=true) it also probes the API's C(/ready) and C(/license) itself, as
    M(alexandria.ee.alex_ready) does (through O(base_url), or the Kubernetes service proxy without it), in a thread
    while the Kubernetes reads run, returns that probe as RV(probe) and classifies with it. An API that takes its
    own deadline to answer C(/ready) (a hung orchestrator) then costs that deadline once, not on top of the
    triage.
  - Fails with one message naming the problem when the Kubernetes API is unreachable, refuses the credentials,
    RBAC forbids a read (403), the namespace does not exist or no pod matches the release; with O(probe_api=true)
    the failure still carries RV(probe). A probe that cannot be made at all (the service proxy refused, a
    certificate that fails its check) fails the module as it fails M(alexandria.ee.alex_ready).
author:
  - alexandria.ee contributors (@alexandria-ee)
extends_documentation_fragment:
  - alexandria.ee.attributes
  - alexandria.ee.attributes.INFO_MODULE
  - alexandria.ee.k8s_auth
  - alexandria.ee.k8s_auth.DEPLOYMENT
  - alexandria.ee.api.SERVICE_PROXY
options:
  license_secret:
    description:
      - Name of the license Secret. Defaults to C(<release>-license).
    type: str
  license_secret_key:
    description:
      - Key of the license blob in the license Secret.
    type: str
    default: license.blob
  tail_lines:
    description:
      - Lines to read from the end of each log (C(kubectl logs --tail)); from 1 to 10000.
    type: int
    default: 50
  limit_bytes:
    description:
      - Upper bound of bytes read per log, whatever the line lengths; from 1024 to 16777216.
    type: int
    default: 65536
  request_timeout:
    description:
      - Seconds each Kubernetes API request may take; more than 0, at most 86400.
    type: float
    default: 10
  probe:
    description:
      - The result of M(alexandria.ee.alex_ready) (its RV(alexandria.ee.alex_ready#module:ready),
        RV(alexandria.ee.alex_ready#module:status) and RV(alexandria.ee.alex_ready#module:reason) are read).
      - With it, the API's own reason for not serving counts as evidence, and C(healthy) needs C(/ready) to
        answer 200; without it, C(healthy) means every container of the release is running and ready.
      - Passed in, it is used as given (no second probe); it excludes O(probe_api=true).
    type: dict
  probe_api:
    description:
      - Probe C(/ready) and C(/license) here, concurrently with the Kubernetes reads, instead of taking O(probe).
        The result is RV(probe), in the shape of M(alexandria.ee.alex_ready)'s result, and triage classifies with
        it as with a passed-in O(probe).
      - The API options (O(base_url), O(api_validate_certs), O(ca_path), O(timeout), O(service), O(service_port))
        and O(probe_retries), O(probe_retry_delay) are used only then.
    type: bool
    default: false
  api_validate_certs:
    description:
      - With O(probe_api=true) and O(base_url), whether to verify the API's TLS certificate. The Kubernetes API
        server's (and the service proxy's, without O(base_url)) follows O(validate_certs).
    type: bool
    default: true
  probe_retries:
    description:
      - With O(probe_api=true), how many times to retry C(/ready) when no HTTP answer came back (connection
        refused, DNS, TLS, timeout), as M(alexandria.ee.alex_ready)'s C(retries). An HTTP answer, even a 503, is
        never retried. From 0 to 10.
    type: int
    default: 2
  probe_retry_delay:
    description:
      - With O(probe_api=true), seconds before the first retry; each further retry waits twice as long. From 0
        to 60.
    type: float
    default: 0.5
  stable_seconds:
    description:
      - Seconds a container must have been running (and ready) since it was last OOMKilled to count as
        recovered. An OOM loop serves between kills, so a younger container is reported as C(oom_killed) even
        when C(/ready) answers 200.
      - From 0 to 86400.
    type: int
    default: 120
  restart_preflight:
    description:
      - In check mode, when the most likely cause is one a pod restart fixes (C(orchestrator_socket_missing),
        C(orchestrator_deadline_exceeded)), also ask the API server (C(SelfSubjectAccessReview), as
        C(kubectl auth can-i)) whether the credential may delete the pods a restart would delete (the unready
        ones, else all) and list the release's pods, the checks M(alexandria.ee.alex_pod_restart) makes before
        deleting. The result is RV(restart_preflight); a missing permission is a warning.
      - This lets a check-mode rehearsal plan the restart from this module's pod list instead of running
        M(alexandria.ee.alex_pod_restart) again. Ignored in a real run, where M(alexandria.ee.alex_pod_restart)
        checks the permissions itself before deleting anything.
      - With O(probe_api=true) the checks start while the probe is still out (a hung API takes its own deadline
        to answer), when the causes without the probe already call for a restart. They are kept only when the
        causes with the probe agree on the same pods, and asked again otherwise; RV(k8s_requests) counts every
        request made.
    type: bool
    default: false
  helm_history:
    description:
      - Read the release's Helm history (1 list request of the Secrets labelled C(owner=helm,name=<release>))
        and name C(recent_upgrade) when the outage followed an upgrade. A 403 on the list is a warning.
    type: bool
    default: true
  upgrade_window:
    description:
      - Minutes after the newest revision was deployed within which the outage's first symptom names
        C(recent_upgrade); from 0 (never) to 10080.
    type: int
    default: 30
requirements:
  - kubernetes (the official Python client)
notes:
  - Only reads. RBAC needed in the namespace - C(list) pods and events, C(get) pods/log and the license Secret,
    C(list) Secrets for the Helm history (and with O(probe_api=true) but no O(base_url), C(get) on
    C(services/proxy)). A 403 on the license Secret is reported in RV(license_secret), on the history in
    RV(helm_release), instead of failing.
seealso:
  - module: alexandria.ee.alex_ready
  - module: alexandria.ee.alex_pod_restart
'''

EXAMPLES = r'''
- name: Probe the API and name the cause, in one module run
  alexandria.ee.alex_triage:
    kubeconfig: ~/.kube/config
    namespace: alexandria
    release: alexandria-ee
    base_url: http://localhost:8080
    probe_api: true
    probe_retries: 1
  register: triage

- name: Or probe the API with alex_ready first
  alexandria.ee.alex_ready:
    base_url: http://localhost:8080
  register: probe

- name: Name the cause
  alexandria.ee.alex_triage:
    kubeconfig: ~/.kube/config
    namespace: alexandria
    release: alexandria-ee
    probe: "{{ probe }}"
  register: triage

- name: Show the most likely cause and its evidence
  ansible.builtin.debug:
    msg: "{{ triage.causes[0].code }}: {{ triage.causes[0].evidence }} -> {{ triage.causes[0].next_step }}"
'''

RETURN = r'''
causes:
  description:
    - The causes, most likely first. Exactly one element, C(healthy) or C(unknown), when none of the runbook's
      causes matches.
  returned: success
  type: list
  elements: dict
  contains:
    code:
      description: One of C(orchestrator_socket_missing), C(orchestrator_deadline_exceeded),
        C(license_blob_invalid), C(license_signature_failed), C(license_secret_missing), C(oom_killed),
        C(recent_upgrade), C(healthy), C(unknown).
      type: str
      sample: oom_killed
    container:
      description: The container at fault (C(api) or C(orchestrator)), or null for C(healthy) and C(unknown).
      type: str
      sample: orchestrator
    evidence:
      description:
        - What the decision rests on, each prefixed with where it was read - exact log lines (C(pod P container
          api log (current)) followed by the line as logged), container states, events, the probe's reason,
          the Secret's absence.
      type: list
      elements: str
      sample:
        - "pod alexandria-ee-5d8f-x2x container orchestrator lastState.terminated: reason=OOMKilled exitCode=137
          finishedAt=2026-11-27T09:52:00Z restartCount=4"
    next_step:
      description: The runbook step and the playbook (with the variable to set) that handles it.
      type: str
    confidence:
      description: 0-100, how strongly the evidence points at this cause; the list is sorted by it.
      type: int
      sample: 95
    memory_limit:
      description: For C(oom_killed), the container's current memory limit (null when none is set).
      type: str
      sample: 256Mi
    proposed_memory_limit:
      description: For C(oom_killed), twice the current limit (null when none is set).
      type: str
      sample: 512Mi
    revision:
      description: For C(recent_upgrade), the newest revision (the upgrade).
      type: int
      sample: 2
    chart:
      description: For C(recent_upgrade), its chart (C(<name>-<version>)).
      type: str
      sample: alexandria-ee-1.5.0
    app_version:
      description: For C(recent_upgrade), its app version.
      type: str
      sample: 1.5.0
    deployed_at:
      description: For C(recent_upgrade), when it was deployed (Helm's last_deployed).
      type: str
      sample: "2026-11-28T14:02:10.654321Z"
    previous_revision:
      description: For C(recent_upgrade), the rollback target (null when no earlier revision was deployed).
      type: int
      sample: 1
    previous_chart:
      description: For C(recent_upgrade), the rollback target's chart.
      type: str
      sample: alexandria-ee-1.4.0
    previous_app_version:
      description: For C(recent_upgrade), the rollback target's app version.
      type: str
      sample: 1.4.0
    first_symptom_after_seconds:
      description: For C(recent_upgrade), seconds from the deploy to the outage's first symptom.
      type: int
      sample: 4
    window_minutes:
      description: For C(recent_upgrade), the O(upgrade_window) it was judged with.
      type: int
      sample: 30
pods:
  description: Per pod - name, phase, node, deleting, ready, and per container name, ready, started, restart_count,
    state, running_since, state_reason, last_terminated (reason, exit_code, finished_at), memory_limit.
  returned: success
  type: list
  elements: dict
events:
  description: The last 20 events about the release's pods and objects, sorted by C(lastTimestamp) (oldest first).
  returned: success
  type: list
  elements: dict
logs:
  description: >-
    The log tails read - C({pod: {container: {current, previous}}}), null where there was none.
  returned: success
  type: dict
license_secret:
  description: The license Secret - C(name), C(key), C(exists) and C(key_present) (null when unknown), C(error).
  returned: success
  type: dict
  sample: {"name": "alexandria-ee-license", "key": "license.blob", "exists": true, "key_present": true,
           "error": null}
helm_release:
  description:
    - With O(helm_history=true) - the history as M(alexandria.ee.alex_helm_release) returns it (C(installed),
      C(current), C(previous), C(problems), C(summary)), C(error) (why it could not be listed, else null) and
      C(note), one line on the upgrade check (why no upgrade is named, or the timing of the one that is; null
      while serving).
  returned: success, with O(helm_history=true)
  type: dict
  sample: {"installed": true, "current": {"revision": 2, "chart": "alexandria-ee-1.5.0"}, "previous": {"revision": 1},
           "problems": [], "error": null, "summary": "alexandria-ee: revision 2 (deployed, ...); rollback target revision 1",
           "note": "revision 2 deployed 2026-11-28T14:02:10.654321Z; the first symptom came 0m04s after it (window 30 min)"}
probe:
  description:
    - With O(probe_api=true) - the probe of C(/ready) and C(/license), exactly as
      M(alexandria.ee.alex_ready) returns it (without RV(alexandria.ee.alex_ready#module:changed)) - C(ready),
      C(status), C(reason), C(checks), C(latency_ms), C(license) (C(valid_json), C(status), C(body), C(error)),
      C(attempts), C(url), C(api_route).
    - Also in the failure when the Kubernetes reads failed, so the API's answer is not lost.
  returned: when O(probe_api=true), also when the Kubernetes reads failed
  type: dict
  sample: {"ready": false, "status": 503, "reason": "context deadline exceeded",
           "checks": {"orchestrator": "context deadline exceeded", "license": "ok", "database": "ok"},
           "latency_ms": 2004.1, "license": {"valid_json": true, "status": 200, "body": {"valid": true},
           "error": null}, "attempts": 1, "url": "http://localhost:8080", "api_route": "base_url"}
k8s_requests:
  description: How many Kubernetes API requests the triage made.
  returned: always
  type: int
  sample: 6
restart_preflight:
  description:
    - With O(restart_preflight=true) in check mode and a most likely cause that a restart fixes - the pods a
      restart would delete (C(pods)), the permissions a real restart would miss (C(missing_permissions), each
      naming the verb, resource, namespace and the shipped Role that grants it), and C(checked) (false when the
      API server could not answer the reviews).
  returned: when O(restart_preflight=true), in check mode, and causes[0] is one a restart fixes
  type: dict
  sample: {"pods": ["alexandria-ee-6c9d7f-abcde"], "missing_permissions": [], "checked": true}
selector:
  description: The label selector of the release's pods.
  returned: always
  type: str
  sample: app.kubernetes.io/instance=alexandria-ee
namespace:
  description: The namespace triaged.
  returned: success
  type: str
  sample: alexandria
release:
  description: The release triaged.
  returned: success
  type: str
  sample: alexandria-ee
'''


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks, readiness
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import REQUESTS_IMPORT_ERROR, api_route_argument_spec

from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import (
    K8sError,
    build_api_client,
    deployment_argument_spec,
    k8s_auth_argument_spec,
    missing_library_details,
)
from ansible_collections.alexandria.ee.plugins.module_utils import (
    k8s_preflight,
    restart_plan,
    triage,
    upgrade_cause,
)


def argument_spec():
    spec = k8s_auth_argument_spec()
    spec.update(deployment_argument_spec())
    # The API options alex_ready takes (base_url, ca_path, timeout, service, service_port), for probe_api; the
    # Kubernetes validate_certs stays the Kubernetes one, the API's certificate has api_validate_certs.
    spec.update(api_route_argument_spec())
    spec.update(
        probe_api=dict(type="bool", default=False),
        api_validate_certs=dict(type="bool", default=True),
        probe_retries=dict(type=arg_checks.count(0, 10), default=2),
        probe_retry_delay=dict(type=arg_checks.seconds(zero=True, maximum=60), default=0.5),
        license_secret=dict(type=arg_checks.k8s_name(), no_log=False),
        license_secret_key=dict(type=arg_checks.k8s_key(), default="license.blob", no_log=False),
        tail_lines=dict(type=arg_checks.count(1, 10000), default=50),
        limit_bytes=dict(type=arg_checks.count(1024, 16 * 1024 * 1024), default=65536),
        request_timeout=dict(type=arg_checks.seconds(), default=10.0),
        probe=dict(type=arg_checks.data("dict")),
        stable_seconds=dict(type=arg_checks.count(0, arg_checks.DAY), default=triage.DEFAULT_STABLE_SECONDS),
        restart_preflight=dict(type="bool", default=False),
        helm_history=dict(type="bool", default=True),
        upgrade_window=dict(type=arg_checks.count(0, 7 * 24 * 60), default=upgrade_cause.DEFAULT_WINDOW_MINUTES),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    license_secret = params["license_secret"] or "%s-license" % params["release"]
    # The probe starts before the Kubernetes client's models are imported (about half a second of CPU): an API
    # that takes its own deadline to answer /ready (a hung orchestrator) then overlaps that import too.
    background = start_probe(module) if params["probe_api"] else None
    from ansible_collections.alexandria.ee.plugins.module_utils import triage_run
    from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import ReleaseService, selector_for
    selector = selector_for(params["release"])
    service = None
    failure = None
    try:
        api_client = build_api_client(params)
        service = ReleaseService(api_client, params["namespace"], params["release"],
                                 request_timeout=params["request_timeout"])
        gathered = service.gather(license_secret, params["license_secret_key"], params["tail_lines"],
                                  params["limit_bytes"], helm_history=params["helm_history"])
    except K8sError as exc:
        failure = exc
    wants_preflight = params["restart_preflight"] and module.check_mode
    early = None
    if background is not None and wants_preflight and failure is None:
        early = speculative_preflight(api_client, service, gathered, params)
    k8s_requests = service.requests if service else 0
    probed = finish_probe(module, background, selector, k8s_requests) if background else {}
    if failure is not None:
        extra = missing_library_details()
        extra.update(probed)
        module.fail_json(msg=str(failure), k8s_requests=k8s_requests, selector=selector, **extra)
    probe = probed["probe"] if background else params["probe"]
    try:
        decided, extra, warnings = triage_run.decide(gathered, probe, params["release"], params["namespace"],
                                                     params["stable_seconds"], params["helm_history"],
                                                     params["upgrade_window"])
    except ValueError as exc:
        module.fail_json(msg="cannot classify: %s" % exc, k8s_requests=service.requests, selector=selector, **probed)
    if wants_preflight and restart_plan.restart_fixes(decided["causes"]):
        targets = restart_plan.restart_targets(decided["pods"])
        preflight, preflight_warnings = (early if early and early[0]["pods"] == targets
                                         else preflight_restart(api_client, service, targets))
        extra["restart_preflight"] = preflight
        warnings = warnings + preflight_warnings
    for line in warnings:
        module.warn(line)
    module.exit_json(changed=False, causes=decided["causes"], pods=decided["pods"], events=decided["events"],
                     logs=gathered["logs"], license_secret=gathered["license_secret"],
                     k8s_requests=service.requests, selector=selector, namespace=params["namespace"],
                     release=params["release"], **dict(extra, **probed))


def start_probe(module):
    """alex_ready's probe (readiness.probe_route) started in a thread; base_url checked first, as alex_ready
    checks it."""
    params = module.params
    if params["probe"] is not None:
        module.fail_json(msg="give either probe (a result of alexandria.ee.alex_ready) or probe_api=true, not both",
                         selector=_selector(params["release"]))
    probe_params = dict(params)
    if params["base_url"]:
        problem = readiness.screen_base_url(params["base_url"], module.no_log_values)
        if problem:
            module.fail_json(msg=problem, selector=_selector(params["release"]))
        # validate_certs is the Kubernetes API server's here; the API's own certificate has its own option.
        probe_params["validate_certs"] = params["api_validate_certs"]
    return readiness.BackgroundProbe(probe_params, params["probe_retries"], params["probe_retry_delay"]).start()


def _selector(release):
    # Only for a failure before the Kubernetes reads: the import it needs is the one start_probe goes ahead of.
    from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import selector_for
    return selector_for(release)


def finish_probe(module, background, selector, k8s_requests):
    """{"probe": result}; a probe that could not be made fails the module, as it fails alex_ready."""
    probed, error = background.result()
    if error is not None:
        extra = dict(exception=REQUESTS_IMPORT_ERROR) if REQUESTS_IMPORT_ERROR else {}
        module.fail_json(msg=str(error), k8s_requests=k8s_requests, selector=selector, **extra)
    return dict(probe=probed)


def speculative_preflight(api_client, service, gathered, params):
    """preflight_restart() run while the probe is still out (a hung API takes its own deadline to answer), when
    the causes without the probe already say a restart: (preflight, warnings), or None. main() keeps it only when
    the causes with the probe agree on the same pods; its requests are counted either way."""
    try:
        early = triage.classify(gathered["pods"], gathered["events"], gathered["logs"], gathered["license_secret"],
                                probe=None, release=params["release"], stable_seconds=params["stable_seconds"])
    except ValueError:
        return None  # the classification with the probe reports it
    if not restart_plan.restart_fixes(early["causes"]):
        return None
    return preflight_restart(api_client, service, restart_plan.restart_targets(early["pods"]))


def preflight_restart(api_client, service, targets):
    """alex_pod_restart's permission checks (k8s_preflight.enforce in check mode) for the pods a restart would
    delete: (preflight, warnings). Missing permissions are warnings, and so is a review the API cannot answer."""
    action = "deleting pods %s" % ", ".join(targets)
    preflight = k8s_preflight.Preflight(api_client, service.request_timeout)
    try:
        missing = preflight.missing(k8s_preflight.pod_restart_needs(service.namespace, targets, True))
    except (k8s_preflight.ReviewUnavailable, K8sError) as exc:
        # The diagnosis stands without it; the real restart asks again before deleting anything.
        service.requests += preflight.requests
        return (dict(pods=targets, missing_permissions=[], checked=False),
                ["permissions not checked before %s: %s" % (action, exc)])
    service.requests += preflight.requests
    findings = [k8s_preflight.finding(need) for need in missing]
    return (dict(pods=targets, missing_permissions=findings, checked=True),
            ["a real run would stop before %s: %s" % (action, line) for line in findings])


if __name__ == "__main__":
    main()
