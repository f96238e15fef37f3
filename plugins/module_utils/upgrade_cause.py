# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook's "if a recent upgrade caused the outage, roll back the Helm release" as a pure function.

Input: the release's pods and events (v1.Pod, v1.Event JSON), the history from helm_history.history(), the
causes triage.classify() found, and the current time. Output: the cause ``recent_upgrade`` when the outage's
first symptom came within the window after the newest revision was deployed, reported next to the symptom
cause (orchestrator_socket_missing, oom_killed, ...), never instead of it.

No Ansible and no Kubernetes imports: tested on recorded JSON.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.alexandria.ee.plugins.module_utils import helm_history, triage

DEFAULT_WINDOW_MINUTES = 30
ROLLBACK_VAR = "api_not_serving_allow_rollback"
CONFIDENCE = 90
# Helm stamps last_deployed with the helm client's clock, events carry the cluster's: a symptom this many
# seconds "before" the deploy still counts as after it.
CLOCK_SKEW_SECONDS = 60
# Causes the license playbook handles: an upgrade next to them is reported after them, not first.
LICENSE_CODES = ("license_blob_invalid", "license_signature_failed", "license_secret_missing")


def symptom_onset(pods, events, now):
    """(seconds since the epoch, words) of the outage's first sign on the release's current pods: the earliest
    Warning event about them (its firstTimestamp) or a container's last non-zero exit; `now` when none shows."""
    names = set(triage.get_path(p, "metadata", "name") for p in pods or [] if isinstance(p, dict))
    found = []
    for event in events or []:
        if not isinstance(event, dict) or event.get("type") != "Warning":
            continue
        if triage.get_path(event, "involvedObject", "name") not in names:
            continue
        stamp = event.get("firstTimestamp") or event.get("eventTime") or event.get("lastTimestamp")
        when = triage.parse_time(stamp)
        if when is not None:
            found.append((when, "event %s %s on pod %s: %s" % (
                stamp, event.get("reason") or "?", triage.get_path(event, "involvedObject", "name"),
                (event.get("message") or "")[:200])))
    for pod in pods or []:
        for status in triage.get_path(pod, "status", "containerStatuses") or []:
            last = triage.get_path(status, "lastState", "terminated") or {}
            if last.get("exitCode") in (None, 0):
                continue
            when = triage.parse_time(last.get("finishedAt"))
            if when is not None:
                found.append((when, "pod %s container %s exited %s (%s) at %s" % (
                    triage.get_path(pod, "metadata", "name"), status.get("name"), last.get("exitCode"), last.get("reason"),
                    last.get("finishedAt"))))
    if not found:
        return now, "no Warning event or failed container on the current pods: the outage is dated now"
    return min(found)


def _duration(seconds):
    seconds = int(abs(seconds))
    if seconds < 3600:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%dh%02dm" % (seconds // 3600, (seconds % 3600) // 60)


def rollback_command(release, namespace, revision, timeout="5m", helm="helm"):
    return [helm, "rollback", release, str(revision), "--namespace", namespace, "--wait", "--timeout", timeout]


def recent_upgrade(found, onset, onset_words, window_minutes, release, namespace):
    """(cause or None, note): the recent_upgrade cause when the newest revision was deployed at most
    window_minutes before the first symptom; otherwise None and one line saying why not."""
    if not found["installed"]:
        return None, helm_history.summary(release, found) + ": no upgrade to blame, no rollback to offer"
    if not found["revisions"]:
        return None, "no readable Helm revision: the upgrade history cannot be checked"
    newest = found["revisions"][-1]
    if newest["revision"] == 1:
        return None, "revision 1 is the install, not an upgrade"
    if (newest["description"] or "").startswith(helm_history.ROLLBACK_PREFIX):
        return None, "the newest revision %d is a rollback (%s), not an upgrade" % (
            newest["revision"], newest["description"])
    deployed = triage.parse_time(newest["last_deployed"])
    if deployed is None:
        return None, "revision %d has no readable last_deployed time (%r)" % (newest["revision"],
                                                                              newest["last_deployed"])
    after = onset - deployed
    window = window_minutes * 60
    words = "revision %d deployed %s; the first symptom came %s %s it (window %d min)" % (
        newest["revision"], newest["last_deployed"], _duration(after), "after" if after >= 0 else "before",
        window_minutes)
    if after < -CLOCK_SKEW_SECONDS:
        return None, words + ": the outage began before the upgrade"
    if after > window:
        return None, words + ": too long before the outage to name it the cause"
    previous = found["previous"]
    evidence = [
        "helm revision %d of %s: chart %s, app version %s, status %s, deployed %s (%s; Secret %s)" % (
            newest["revision"], release, newest["chart"], newest["app_version"] or "?", newest["status"],
            newest["last_deployed"], newest["description"] or "no description", newest["secret"]),
        "first symptom %s after it (window %d min): %s" % (_duration(max(after, 0)), window_minutes, onset_words),
    ]
    if previous:
        evidence.append("previous revision %d: chart %s, app version %s, status %s, deployed %s - the rollback "
                        "target" % (previous["revision"], previous["chart"], previous["app_version"] or "?",
                                    previous["status"], previous["last_deployed"]))
        command = " ".join(rollback_command(release, namespace, previous["revision"]))
        next_step = ("Runbook Scenario 1, Rollback (upgrade.md): the outage began %s after revision %d was deployed. "
                     "Roll the Helm release back to revision %d: %s - playbooks/api_not_serving.yml with %s=true "
                     "runs it and verifies /ready and /license" % (_duration(max(after, 0)), newest["revision"],
                                                                   previous["revision"], command, ROLLBACK_VAR))
    else:
        evidence.append("no earlier revision that was deployed: nothing to roll back to")
        next_step = ("Runbook Scenario 1, Rollback (upgrade.md): revision %d came just before the outage but the "
                     "release has no earlier deployed revision to roll back to: escalate" % newest["revision"])
    cause = dict(code="recent_upgrade", container=None, evidence=evidence, next_step=next_step,
                 confidence=CONFIDENCE, revision=newest["revision"], chart=newest["chart"],
                 app_version=newest["app_version"], deployed_at=newest["last_deployed"],
                 previous_revision=previous["revision"] if previous else None,
                 previous_chart=previous["chart"] if previous else None,
                 previous_app_version=previous["app_version"] if previous else None,
                 first_symptom_after_seconds=int(max(after, 0)), window_minutes=window_minutes)
    return cause, words


def with_upgrade_cause(causes, found, pods, events, now, window_minutes, release, namespace):
    """(causes, note): the causes with recent_upgrade added next to the symptom cause (first, unless the first
    is a license cause), and one line on what the history says (why no upgrade is blamed, or the timing); the
    causes unchanged and no note while serving. Unreadable history Secrets are evidence of the first cause."""
    if not causes or causes[0]["code"] == "healthy" or window_minutes <= 0:
        return causes, None
    onset, onset_words = symptom_onset(pods, events, now)
    cause, note = recent_upgrade(found, onset, onset_words, window_minutes, release, namespace)
    out = [dict(c) for c in causes]
    problems = ["helm history: %s" % line for line in found["problems"]]
    if problems:
        out[0]["evidence"] = list(out[0]["evidence"]) + problems
    if cause is None:
        return out, note
    position = 1 if out[0]["code"] in LICENSE_CODES else 0
    cause["evidence"] += problems
    out.insert(position, cause)
    return out, note
