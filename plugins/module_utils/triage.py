# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runbook Scenario 1 ("API not serving") as a pure function.

Input: plain dicts exactly as the Kubernetes API returns them (``v1.Pod`` and ``v1.Event`` JSON, camelCase),
the tails of the containers' logs, whether the license Secret exists, and optionally the result of probing
``/ready``. Output: the causes, ordered by confidence, each with the evidence it was decided on.

No Ansible and no Kubernetes imports: this module is tested on recorded JSON (docs/contract.md sections 1,
5 and 6 name every field and log string it reads).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

API = "api"
ORCHESTRATOR = "orchestrator"

# The runbook's exact strings (contract section 6).
SOCKET_MISSING = "orchestrator.sock: no such file or directory"
# The socket file is left behind by a killed orchestrator: the same cause, worded by the dialer.
SOCKET_REFUSED = "orchestrator.sock: connection refused"
DEADLINE_EXCEEDED = "context deadline exceeded"
LICENSE_INVALID = "license blob invalid"
LICENSE_SIGNATURE = "license signature verification failed"

CODES = (
    "orchestrator_socket_missing",
    "orchestrator_deadline_exceeded",
    "license_blob_invalid",
    "license_signature_failed",
    "license_secret_missing",
    "oom_killed",
    "healthy",
    "unknown",
)

# code -> (log strings, container whose log shows them, container at fault)
LOG_SIGNALS = (
    ("orchestrator_socket_missing", (SOCKET_MISSING, SOCKET_REFUSED), API, ORCHESTRATOR),
    ("orchestrator_deadline_exceeded", (DEADLINE_EXCEEDED,), API, ORCHESTRATOR),
    ("license_signature_failed", (LICENSE_SIGNATURE,), API, API),
    ("license_blob_invalid", (LICENSE_INVALID,), API, API),
)

LICENSE_PLAYBOOK = "playbooks/license_renewal.yml"
RESTART_VAR = "api_not_serving_allow_restart"
HELM_VAR = "api_not_serving_allow_helm_upgrade"

NEXT_STEPS = {
    "orchestrator_socket_missing": (
        "Runbook Scenario 1 step 2: the orchestrator is down or crash-looping, so its socket does not exist. Read "
        "the orchestrator's previous log (pods[].logs), then restart the pod: playbooks/api_not_serving.yml with "
        "%s=true" % RESTART_VAR),
    "orchestrator_deadline_exceeded": (
        "Runbook Scenario 1 step 2: the orchestrator is up but does not answer within the deadline (hung). Restart "
        "the pod: playbooks/api_not_serving.yml with %s=true" % RESTART_VAR),
    "license_blob_invalid": (
        "Runbook Scenario 1 step 3: the license blob in the license Secret does not decode or verify. Restore a "
        "valid blob with %s (license-renewal.md), then re-run this playbook to verify" % LICENSE_PLAYBOOK),
    "license_signature_failed": (
        "Runbook Scenario 1 step 3: the license blob's signature does not verify under the issuer key. Restore "
        "the blob as issued with %s (license-renewal.md), then re-run this playbook to verify" % LICENSE_PLAYBOOK),
    "license_secret_missing": (
        "Runbook Scenario 1 step 3: the license Secret (or its key) is missing. Recreate it with %s "
        "(license-renewal.md), then re-run this playbook to verify" % LICENSE_PLAYBOOK),
    "oom_killed": (
        "Runbook Scenario 1 step 4: the orchestrator was OOMKilled. Raise resources.orchestrator.limits.memory in "
        "the site values and run a Helm upgrade (upgrade.md): playbooks/api_not_serving.yml with %s=true prints "
        "the exact change and command, and runs it where helm is installed" % HELM_VAR),
    "healthy": "None: /ready answers 200 and every container of the release is running and ready.",
    "unknown": (
        "None of the runbook's four causes matches. Read the evidence (pod states, events, log tails), then "
        "escalate; check a recent Helm upgrade and roll back if it caused the outage (upgrade.md)"),
}

# Base confidence of each kind of signal; evidence that corroborates adds to it.
SCORE_SECRET_MISSING = 100
SCORE_OOM_STATE = 95
SCORE_LICENSE_LOG = 85
SCORE_ORCHESTRATOR_LOG = 80
SCORE_OOM_EVENT_ONLY = 70
SCORE_OOM_RUNNING = 75
SCORE_OOM_RECOVERED = 65
SCORE_CRASHLOOP_ONLY = 60
BONUS_PROBE_REASON = 10
BONUS_CORROBORATED = 5
BONUS_MOST_RECENT = 8

MAX_EVIDENCE_LINES = 3
MAX_LINE_CHARS = 500
EVENTS_TAIL = 20


# ---------------------------------------------------------------- small readers of Kubernetes JSON

def get_path(obj, *path):
    """obj[path[0]][path[1]]..., or None where a level is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def pod_name(pod):
    return get_path(pod, "metadata", "name") or "?"


def _state_words(state):
    """'running', 'waiting (CrashLoopBackOff)', 'terminated (OOMKilled, exit 137)' from a v1.ContainerState."""
    if not isinstance(state, dict) or not state:
        return None
    for kind in ("running", "waiting", "terminated"):
        detail = state.get(kind)
        if detail is None:
            continue
        parts = []
        if isinstance(detail, dict):
            if detail.get("reason"):
                parts.append(str(detail["reason"]))
            if detail.get("exitCode") is not None:
                parts.append("exit %s" % detail["exitCode"])
        return "%s (%s)" % (kind, ", ".join(parts)) if parts else kind
    return None


def container_summaries(pod):
    """Per container: the facts the runbook's pre-checks read, in the order of spec.containers."""
    statuses = {s.get("name"): s for s in (get_path(pod, "status", "containerStatuses") or []) if isinstance(s, dict)}
    specs = [c for c in (get_path(pod, "spec", "containers") or []) if isinstance(c, dict)]
    names = [c.get("name") for c in specs] + sorted(n for n in statuses if n not in [c.get("name") for c in specs])
    limits = {c.get("name"): get_path(c, "resources", "limits", "memory") for c in specs}
    out = []
    for name in names:
        status = statuses.get(name) or {}
        last = get_path(status, "lastState", "terminated") or {}
        out.append(dict(
            name=name,
            ready=bool(status.get("ready")),
            started=status.get("started"),
            restart_count=int(status.get("restartCount") or 0),
            state=_state_words(status.get("state")) or "unknown",
            running_since=get_path(status, "state", "running", "startedAt"),
            state_reason=_first(get_path(status, "state", kind, "reason") for kind in ("waiting", "terminated")),
            last_terminated=dict(
                reason=last.get("reason"),
                exit_code=last.get("exitCode"),
                finished_at=last.get("finishedAt"),
            ) if last else None,
            memory_limit=limits.get(name),
        ))
    return out


def _first(values):
    for value in values:
        if value:
            return value
    return None


def pod_summary(pod):
    containers = container_summaries(pod)
    return dict(
        name=pod_name(pod),
        phase=get_path(pod, "status", "phase") or "Unknown",
        node=get_path(pod, "spec", "nodeName"),
        deleting=bool(get_path(pod, "metadata", "deletionTimestamp")),
        ready=bool(containers) and all(c["ready"] for c in containers),
        containers=containers,
    )


def _event_time(event):
    return (event.get("lastTimestamp") or event.get("eventTime") or get_path(event, "metadata", "creationTimestamp")
            or event.get("firstTimestamp") or "")


def sort_events(events, pod_names=None, release=None, tail=EVENTS_TAIL):
    """The release's events, oldest first, by lastTimestamp (kubectl get events --sort-by), last `tail` kept.

    Kept: events about one of the pods, or about an object named after the release (Deployment, ReplicaSet).
    """
    pod_names = set(pod_names or ())
    kept = []
    for event in events or ():
        if not isinstance(event, dict):
            continue
        name = get_path(event, "involvedObject", "name") or ""
        if pod_names or release:
            if name not in pod_names and not (release and name.startswith(release)):
                continue
        kept.append(event)
    kept.sort(key=_event_time)
    if tail:
        kept = kept[-tail:]
    return [dict(
        last_timestamp=_event_time(e),
        type=e.get("type"),
        reason=e.get("reason"),
        object="%s/%s" % (get_path(e, "involvedObject", "kind") or "?", get_path(e, "involvedObject", "name") or "?"),
        field_path=get_path(e, "involvedObject", "fieldPath"),
        count=e.get("count"),
        message=e.get("message"),
    ) for e in kept]


def event_words(event):
    count = " x%s" % event["count"] if event.get("count") else ""
    return "event %s %s %s %s%s: %s" % (event.get("last_timestamp") or "?", event.get("type") or "?",
                                        event.get("reason") or "?", event.get("object"), count,
                                        _clip(event.get("message") or ""))


def _clip(text):
    text = text.rstrip("\r\n")
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + "..."


def _event_container(event):
    """The container an event is about: from involvedObject.fieldPath spec.containers{x}, or its message."""
    match = re.search(r"spec\.containers\{([^}]*)\}", event.get("field_path") or "")
    if match:
        return match.group(1)
    match = re.search(r"container (\S+)", event.get("message") or "")
    return match.group(1) if match else None


# ---------------------------------------------------------------- classification

class _Candidate:
    def __init__(self, code, container, score):
        self.code = code
        self.container = container
        self.score = score
        self.evidence = []
        self.extra = {}

    def add(self, line):
        if line not in self.evidence:
            self.evidence.append(line)

    def result(self):
        out = dict(code=self.code, container=self.container, evidence=list(self.evidence),
                   next_step=NEXT_STEPS[self.code], confidence=min(int(self.score), 100))
        out.update(self.extra)
        return out


def _log_text(logs, pod, container, stream):
    entry = get_path(logs or {}, pod, container)
    if not isinstance(entry, dict):
        return None
    text = entry.get(stream)
    return text if isinstance(text, str) else None


def _matches(text, needles):
    """(positions, lines) of the log lines containing one of needles; positions count from the end (0 = last)."""
    if not text:
        return [], []
    lines = text.splitlines()
    found = [(len(lines) - 1 - i, line) for i, line in enumerate(lines) if any(n in line for n in needles)]
    return [position for position, line in found], [line for position, line in found]


_NOTABLE = re.compile(r"panic|fatal|error|warn|deadlock|killed|out of memory|signal", re.IGNORECASE)


def _log_excerpt(logs, pod, container, stream, count=2):
    """The last `count` notable lines (panic, error, warning...) of a log, else its last line."""
    text = _log_text(logs, pod, container, stream)
    if not text:
        return []
    lines = [line for line in text.splitlines() if line.strip()]
    notable = [line for line in lines if _NOTABLE.search(line)]
    return ["pod %s container %s log (%s): %s" % (pod, container, stream, _clip(line))
            for line in (notable[-count:] if notable else lines[-1:])]


def parse_time(text):
    """Seconds since the epoch of an RFC 3339 time (2026-11-27T09:52:00Z, with optional fraction or offset)."""
    match = re.match(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|z|[+-]\d\d:\d\d)?$",
                     str(text or "").strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    value = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    value += float(match.group(7) or 0)
    zone = match.group(8)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        value -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return value


def _days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


DEFAULT_STABLE_SECONDS = 120


def classify(pods, events=None, logs=None, license_secret=None, probe=None, release=None, now=None,
             stable_seconds=DEFAULT_STABLE_SECONDS):
    """The runbook's decision, as data.

    pods: list of v1.Pod dicts (the release's pods). events: list of v1.Event dicts (the namespace's; filtered
    here). logs: {pod: {container: {"current": str|None, "previous": str|None}}}. license_secret: {"name",
    "exists": bool|None, "key": str, "key_present": bool|None} or None when unknown. probe: the result of
    probing /ready ({"ready": bool, "status": int|None, "reason": str|None}) or None. now: the current time
    (seconds since the epoch) or None; with it, a container that was OOMKilled and has been running again for
    less than stable_seconds is still crash-looping (an OOM loop serves in between kills), not recovered.

    Returns {"causes": [...], "pods": [...], "events": [...]} where causes are
    {code, container, evidence, next_step, confidence} ordered by confidence (highest first); exactly one
    cause is "healthy" or "unknown" when nothing else matches.
    """
    pods = [p for p in (pods or []) if isinstance(p, dict)]
    summaries = [pod_summary(p) for p in pods]
    names = [s["name"] for s in summaries]
    recent = sort_events(events, pod_names=names, release=release)
    candidates = {}

    def candidate(code, container, score):
        cand = candidates.get(code)
        if cand is None:
            cand = candidates[code] = _Candidate(code, container, score)
        else:
            cand.score = max(cand.score, score)
        return cand

    probe_reason = ""
    if isinstance(probe, dict) and not probe.get("ready"):
        probe_reason = str(probe.get("reason") or "")

    blocking = set()  # causes the current state shows (not only log lines), even while /ready answers 200

    # -- 1. the license Secret (runbook step 3: kubectl get secret)
    secret_missing = False
    if isinstance(license_secret, dict):
        name = license_secret.get("name") or "license Secret"
        if license_secret.get("exists") is False:
            secret_missing = True
            blocking.add("license_secret_missing")
            candidate("license_secret_missing", API, SCORE_SECRET_MISSING).add(
                "secret %s: not found (404)" % name)
        elif license_secret.get("exists") and license_secret.get("key_present") is False:
            secret_missing = True
            blocking.add("license_secret_missing")
            candidate("license_secret_missing", API, SCORE_SECRET_MISSING).add(
                "secret %s: exists but has no key %s" % (name, license_secret.get("key") or "license.blob"))

    # -- 2. container states (runbook step 4 and the crash loop of step 2)
    oom_containers = set()
    crashloop = set()
    for summary in summaries:
        for cont in summary["containers"]:
            where = "pod %s container %s" % (summary["name"], cont["name"])
            last = cont["last_terminated"] or {}
            state_oom = cont["state_reason"] == "OOMKilled"
            if last.get("reason") == "OOMKilled" or state_oom:
                # Running and ready again, for long enough: history, ranked low. Otherwise the current cause.
                running = cont["state"].startswith("running")
                recovered = cont["ready"] and running
                started = parse_time(cont["running_since"]) if running else None
                uptime = max(0, int(now - started)) if (now is not None and started is not None) else None
                flapping = recovered and uptime is not None and uptime < stable_seconds
                if flapping:
                    recovered = False
                if not recovered:
                    oom_containers.add(cont["name"])
                    blocking.add("oom_killed")
                score = (SCORE_OOM_RECOVERED if recovered else SCORE_OOM_STATE if flapping or not running
                         else SCORE_OOM_RUNNING)
                cand = candidate("oom_killed", cont["name"], score)
                if flapping:
                    cand.add("%s state: %s, ready, but only for %ds since the OOM kill (less than %ds): the "
                             "next kill is likely" % (where, cont["state"], uptime, stable_seconds))
                elif recovered:
                    cand.add("%s state: %s, ready since the kill%s" % (
                        where, cont["state"], " (%ds)" % uptime if uptime is not None else ""))
                if last.get("reason") == "OOMKilled":
                    cand.add("%s lastState.terminated: reason=OOMKilled exitCode=%s finishedAt=%s restartCount=%d"
                             % (where, last.get("exit_code"), last.get("finished_at"), cont["restart_count"]))
                if state_oom:
                    cand.add("%s state: %s" % (where, cont["state"]))
                cand.add("%s memory limit: %s" % (where, cont["memory_limit"] or "none set"))
                for line in _log_excerpt(logs, summary["name"], cont["name"], "previous", count=1):
                    cand.add(line)
                cand.extra.setdefault("memory_limit", cont["memory_limit"])
            elif cont["state_reason"] in ("CrashLoopBackOff", "Error") or (
                    last and last.get("exit_code") not in (None, 0) and not cont["state"].startswith("running")):
                # Down after a failure. (Running again after one is not yet a loop: its readiness may lag.)
                crashloop.add(cont["name"])

    # -- 3. events (kubectl get events --sort-by=.lastTimestamp | tail -20)
    oom_events = []
    backoff_events = {}
    for event in recent:
        reason = event.get("reason") or ""
        message = event.get("message") or ""
        if reason == "OOMKilling" or "OOMKilled" in message or "out of memory" in message.lower():
            oom_events.append(event)
        elif reason == "BackOff":
            backoff_events.setdefault(_event_container(event), []).append(event)
    if oom_events:
        cand = candidate("oom_killed", ORCHESTRATOR if not oom_containers else sorted(oom_containers)[0],
                         SCORE_OOM_EVENT_ONLY)
        if oom_containers:
            cand.score += BONUS_CORROBORATED
        for event in oom_events[-MAX_EVIDENCE_LINES:]:
            cand.add(event_words(event))
    if "oom_killed" in candidates:
        for event in backoff_events.get(candidates["oom_killed"].container, [])[-1:]:
            candidates["oom_killed"].add(event_words(event))

    # -- 4. the api container's log tails (runbook step 2 and 3)
    order = []
    for code, needles, log_container, fault_container in LOG_SIGNALS:
        lines_found = []
        nearest = None
        for summary in summaries:
            for stream in ("current", "previous"):
                text = _log_text(logs, summary["name"], log_container, stream)
                positions, lines = _matches(text, needles)
                if not lines:
                    continue
                if stream == "current" and (nearest is None or positions[-1] < nearest):
                    nearest = positions[-1]
                lines_found.append((summary["name"], stream, lines))
        in_probe = any(n in probe_reason for n in needles)
        if not lines_found and not in_probe:
            continue
        if code == "license_blob_invalid" and secret_missing:
            cand = candidates["license_secret_missing"]
        else:
            base = SCORE_LICENSE_LOG if code.startswith("license") else SCORE_ORCHESTRATOR_LOG
            cand = candidate(code, fault_container, base)
        if in_probe:
            cand.score += BONUS_PROBE_REASON
            cand.add("probe /ready HTTP %s: %s" % (probe.get("status"), _clip(probe_reason)))
        for pod, stream, lines in lines_found:
            shown = lines[-MAX_EVIDENCE_LINES:]
            for line in shown:
                cand.add("pod %s container %s log (%s): %s" % (pod, log_container, stream, _clip(line)))
            if len(lines) > len(shown):
                cand.add("pod %s container %s log (%s): %d more line(s) with %s in the tail"
                         % (pod, log_container, stream, len(lines) - len(shown), " or ".join(repr(n) for n in needles)))
        if nearest is not None:
            order.append((nearest, cand.code))

    # The orchestrator's own state corroborates the api's complaint about it.
    socket = candidates.get("orchestrator_socket_missing")
    corroborated = set()
    for summary in summaries:
        for cont in summary["containers"]:
            if cont["name"] != ORCHESTRATOR:
                continue
            last = cont["last_terminated"] or {}
            words = "pod %s container orchestrator state: %s, restartCount=%d" % (
                summary["name"], cont["state"], cont["restart_count"])
            if last:
                words += ", lastState.terminated: reason=%s exitCode=%s" % (last.get("reason"), last.get("exit_code"))
            if ORCHESTRATOR in oom_containers:
                # A symptom of the OOM kill: the api's words stay as evidence, ranked below the OOM kill.
                if socket is not None:
                    socket.add(words + " (the OOM kill removed the socket)")
            elif ORCHESTRATOR in crashloop:
                blocking.add("orchestrator_socket_missing")
                cand = socket or candidate("orchestrator_socket_missing", ORCHESTRATOR, SCORE_CRASHLOOP_ONLY)
                if socket is not None:
                    corroborated.add(cand.code)
                cand.add(words)
                for line in _log_excerpt(logs, summary["name"], ORCHESTRATOR, "previous"):
                    cand.add(line)
                for event in backoff_events.get(ORCHESTRATOR, [])[-1:]:
                    cand.add(event_words(event))
    hung = candidates.get("orchestrator_deadline_exceeded")
    if hung is not None:
        for summary in summaries:
            for cont in summary["containers"]:
                if cont["name"] == ORCHESTRATOR and cont["state"].startswith("running"):
                    hung.add("pod %s container orchestrator state: %s, ready=%s, restartCount=%d (process up, "
                             "not answering)" % (summary["name"], cont["state"], cont["ready"], cont["restart_count"]))
                    corroborated.add(hung.code)
                    for line in _log_excerpt(logs, summary["name"], ORCHESTRATOR, "current"):
                        hung.add(line)
    for code in corroborated:
        candidates[code].score += BONUS_CORROBORATED

    # The signal seen last in the api log is the current one.
    if order:
        order.sort()
        candidates[order[0][1]].score += BONUS_MOST_RECENT

    # An OOM-killed orchestrator explains a missing socket: the symptom never outranks the kill.
    oom = candidates.get("oom_killed")
    if oom is not None and socket is not None and ORCHESTRATOR in oom_containers:
        socket.score = min(socket.score, oom.score - 1)

    probe_ready = isinstance(probe, dict) and bool(probe.get("ready"))
    pods_ready = bool(summaries) and all(s["ready"] and s["phase"] == "Running" and not s["deleting"]
                                         for s in summaries)
    # Serving: /ready answers 200 and no container state, event or Secret shows a current cause (log lines alone
    # are history then, and a container's readiness may lag: the kubelet probes periodically). Without a probe:
    # every pod ready and nothing current.
    if isinstance(probe, dict):
        healthy = probe_ready and bool(summaries)
    else:
        healthy = pods_ready
    healthy = healthy and not blocking
    if healthy:
        # Serving: what the log tails still say is history, not the cause of an outage.
        cand = _Candidate("healthy", None, 100)
        if isinstance(probe, dict):
            cand.add("probe /ready HTTP %s" % probe.get("status"))
        for summary in summaries:
            cand.add("pod %s %s: %s" % (summary["name"], summary["phase"], ", ".join(
                "%s %s ready=%s restartCount=%d" % (c["name"], c["state"], c["ready"], c["restart_count"])
                for c in summary["containers"])))
        for old in sorted(candidates.values(), key=lambda c: -c.score):
            cand.add("earlier signal, not current: %s (%s)" % (old.code, old.evidence[0] if old.evidence else ""))
        return dict(causes=[cand.result()], pods=summaries, events=recent)

    causes = sorted(candidates.values(), key=lambda c: (-c.score, CODES.index(c.code)))
    if not causes:
        cand = _Candidate("unknown", None, 0)
        if isinstance(probe, dict):
            cand.add("probe /ready HTTP %s: %s" % (probe.get("status"), _clip(str(probe.get("reason") or ""))))
        if not summaries:
            cand.add("no pods")
        for summary in summaries:
            cand.add("pod %s phase %s%s: %s" % (
                summary["name"], summary["phase"], " (being deleted)" if summary["deleting"] else "",
                "; ".join("%s %s ready=%s restartCount=%d" % (c["name"], c["state"], c["ready"], c["restart_count"])
                          for c in summary["containers"]) or "no container statuses"))
        for event in [e for e in recent if e.get("type") == "Warning"][-MAX_EVIDENCE_LINES:]:
            cand.add(event_words(event))
        causes = [cand]
    return dict(causes=[c.result() for c in causes], pods=summaries, events=recent)
