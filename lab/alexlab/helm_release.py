"""The release's Helm history, kept as Helm 3 keeps it in the cluster, and the lab's chart.

Helm's Secret storage driver writes one Secret per revision: name `sh.helm.release.v1.<release>.v<revision>`,
type `helm.sh/release.v1`, labels `owner=helm`, `name`, `status`, `version` (plus `createdAt` / `modifiedAt`),
and `data.release` = base64 of gzip of the release's JSON. Kubernetes base64-encodes Secret data once more, so a
reader decodes base64 twice (docs/contract.md section 1, "Helm release history").

The lab's chart repository `alexandria/alexandria-ee` has three versions (CHARTS). Rendering one onto the
Deployment sets the images to its app version, the memory limits from the values, and the Helm labels. Chart
1.5.0 also renders a scheduler setting its orchestrator cannot load: the orchestrator panics at start before
its socket exists, as with `alexlab break orchestrator-crash` (`alexlab break bad-upgrade` deploys it).

Pure functions over plain dicts: the lab's fault writes through LabClient, the tests' stand-in helm
(tests/integration/helm_standin.py) through the official kubernetes client.
"""
import base64
import copy
import datetime
import gzip
import json
import time

CHART = "alexandria-ee"
REPO_CHART = "alexandria/alexandria-ee"
SECRET_TYPE = "helm.sh/release.v1"
SECRET_PREFIX = "sh.helm.release.v1."
STATE_FORMAT_ENV = "ALEX_SCHEDULER_STATE_FORMAT"
# The orchestrator of the lab loads these job state formats; any other value makes it panic at start.
LOADABLE_STATE_FORMATS = ("", "v1")

# chart version -> app version, and what else the chart renders.
CHARTS = {
    "1.4.0": {"app_version": "1.4.0"},
    "1.5.0": {"app_version": "1.5.0", "state_format": "v2"},  # the bad upgrade: its orchestrator crash-loops
    "1.5.1": {"app_version": "1.5.1"},
}
INSTALLED_CHART = "1.4.0"
BAD_CHART = "1.5.0"
DEFAULT_VALUES = {"resources": {"api": {"limits": {"memory": "512Mi"}},
                                "orchestrator": {"limits": {"memory": "128Mi"}}}}


class HelmError(Exception):
    """What helm would print after `Error: `."""


def helm_time(value=None):
    """Helm's timestamps: Go's RFC 3339 with fractional seconds."""
    value = value or datetime.datetime.now(datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def latest_chart():
    return sorted(CHARTS, key=lambda v: tuple(int(p) for p in v.split(".")))[-1]


# -- values ------------------------------------------------------------------------------------------------

def merge(base, override):
    """Helm's values coalescing: override wins, dicts merge key by key."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(text):
    """`--set a.b.c=v` as a nested dict, with helm's scalar types (true/false, integers)."""
    if "=" not in text:
        raise HelmError("failed parsing --set data: key %r has no value" % text)
    path, raw = text.split("=", 1)
    value = {"true": True, "false": False, "null": None}.get(raw, raw)
    if isinstance(value, str) and raw.lstrip("-").isdigit():
        value = int(raw)
    for key in reversed(path.split(".")):
        value = {key: value}
    return value


# -- the release record (Helm's JSON) ------------------------------------------------------------------------

def release_record(release, namespace, revision, chart_version, config, status, description, first_deployed,
                   last_deployed):
    if chart_version not in CHARTS:
        raise HelmError('chart "%s" version "%s" not found in %s repository' % (CHART, chart_version, REPO_CHART))
    app_version = CHARTS[chart_version]["app_version"]
    return {
        "name": release, "namespace": namespace, "version": revision,
        "info": {"first_deployed": first_deployed, "last_deployed": last_deployed, "deleted": "",
                 "description": description, "status": status,
                 "notes": "Alexandria EE %s is installed as %s." % (app_version, release)},
        "chart": {"metadata": {"name": CHART, "version": chart_version, "appVersion": app_version, "apiVersion": "v2",
                               "description": "Alexandria EE", "type": "application"},
                  "lock": None, "templates": [], "values": copy.deepcopy(DEFAULT_VALUES), "schema": None, "files": []},
        "config": copy.deepcopy(config or {}),
        "manifest": "---\n# Source: %s/templates/deployment.yaml\n# (rendered by the lab's chart %s)\n" % (
            CHART, chart_version),
    }


def encode_payload(record):
    """What Helm's Secret driver stores in data.release: base64 of gzip of the JSON (as text)."""
    raw = gzip.compress(json.dumps(record, sort_keys=True).encode("utf-8"), mtime=0)
    return base64.b64encode(raw).decode("ascii")


def decode_payload(text):
    raw = base64.b64decode(text)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw.decode("utf-8"))


def secret_name(release, revision):
    return "%s%s.v%d" % (SECRET_PREFIX, release, revision)


def secret_obj(record, created=None):
    """The Secret Helm writes for a release record (the data base64-encoded once more, as Kubernetes stores it)."""
    stamp = str(int(created if created is not None else time.time()))
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(record["name"], record["version"]), "namespace": record["namespace"],
                         "labels": {"name": record["name"], "owner": "helm", "status": record["info"]["status"],
                                    "version": str(record["version"]), "createdAt": stamp}},
            "data": {"release": base64.b64encode(encode_payload(record).encode("ascii")).decode("ascii")}}


def record_of(secret):
    """The release record of a history Secret as the API returns it."""
    return decode_payload(base64.b64decode(secret["data"]["release"]).decode("ascii"))


def restamp(secret, record):
    """The Secret after Helm's driver updated its record (status label, modifiedAt)."""
    out = copy.deepcopy(secret)
    out["metadata"]["labels"]["status"] = record["info"]["status"]
    out["metadata"]["labels"]["modifiedAt"] = str(int(time.time()))
    out["data"] = {"release": base64.b64encode(encode_payload(record).encode("ascii")).decode("ascii")}
    return out


# -- rendering the chart onto the Deployment ----------------------------------------------------------------

def render(deployment, record, broken_charts=()):
    """The Deployment as the record's chart and values render it (a copy). broken_charts: chart versions whose
    orchestrator crash-loops besides the catalogue's own."""
    dep = copy.deepcopy(deployment)
    chart = record["chart"]["metadata"]
    values = merge(DEFAULT_VALUES, record.get("config"))
    labels = dep["metadata"].setdefault("labels", {})
    labels.update({"helm.sh/chart": "%s-%s" % (CHART, chart["version"]), "app.kubernetes.io/version":
                   chart["appVersion"], "app.kubernetes.io/managed-by": "Helm"})
    dep["metadata"].setdefault("annotations", {}).update({
        "meta.helm.sh/release-name": record["name"], "meta.helm.sh/release-namespace": record["namespace"]})
    state_format = CHARTS.get(chart["version"], {}).get("state_format")
    if chart["version"] in broken_charts:
        state_format = state_format or "v2"
    for container in dep["spec"]["template"]["spec"]["containers"]:
        name = container["name"]
        container["image"] = "alexandria/%s:%s" % (name, chart["appVersion"])
        memory = (((values.get("resources") or {}).get(name) or {}).get("limits") or {}).get("memory")
        if memory:
            container.setdefault("resources", {}).setdefault("limits", {})["memory"] = str(memory)
        if name == "orchestrator":
            env = [e for e in container.get("env") or [] if e.get("name") != STATE_FORMAT_ENV]
            if state_format:
                env.append({"name": STATE_FORMAT_ENV, "value": state_format})
            container["env"] = env
    return dep


# -- what helm upgrade and helm rollback write --------------------------------------------------------------

def newest(records):
    return max(records, key=lambda r: r["version"]) if records else None


def superseded(records):
    """The records Helm marks superseded when a new revision is deployed: every one still deployed."""
    out = []
    for record in records:
        if record["info"]["status"] == "deployed":
            changed = copy.deepcopy(record)
            changed["info"]["status"] = "superseded"
            out.append(changed)
    return out


def upgrade(records, release, namespace, chart_version, config, reuse_values=False, reset_values=False, now=None):
    """The new record of `helm upgrade` (status deployed, description "Upgrade complete") and the records it
    supersedes. Values as Helm 3 takes them: --reuse-values merges onto the last release's, no values at all
    reuses them, otherwise the values given replace them."""
    last = newest(records)
    if last is None:
        raise HelmError('"%s" has no deployed releases' % release)
    if reuse_values:
        config = merge(last.get("config") or {}, config)
    elif not reset_values and not config:
        config = copy.deepcopy(last.get("config") or {})
    stamp = now or helm_time()
    first = min(records, key=lambda r: r["version"])["info"]["first_deployed"]
    record = release_record(release, namespace, last["version"] + 1, chart_version, config, "deployed",
                            "Upgrade complete", first, stamp)
    return record, superseded(records)


def rollback(records, release, target, now=None):
    """The new record of `helm rollback <release> <target>` and the records it supersedes; HelmError in
    Helm's words when there is no release or no such revision."""
    last = newest(records)
    if last is None:
        raise HelmError("release: not found")
    target = target or last["version"] - 1
    previous = [r for r in records if r["version"] == target]
    if not previous:
        raise HelmError("release has no %d version" % target)
    source = previous[0]
    record = copy.deepcopy(source)
    record["version"] = last["version"] + 1
    record["info"].update(first_deployed=last["info"]["first_deployed"], last_deployed=now or helm_time(),
                          status="deployed", description="Rollback to %d" % target)
    return record, superseded(records)


def fail(record, why, verb="Upgrade"):
    failed = copy.deepcopy(record)
    failed["info"]["status"] = "failed"
    failed["info"]["description"] = '%s "%s" failed: %s' % (verb, record["name"], why)
    return failed
