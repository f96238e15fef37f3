"""`alexlab break bad-upgrade`: a Helm upgrade to the lab's chart 1.5.0, whose orchestrator crash-loops.

It does what `helm upgrade alexandria-ee alexandria/alexandria-ee --version 1.5.0 --reuse-values` does to the
cluster: a new history Secret (revision N+1, deployed, chart alexandria-ee-1.5.0, app version 1.5.0), the
revision that was deployed marked superseded, and the Deployment as chart 1.5.0 renders it. `heal` puts the
history Secrets back as they were and renders the Deployment from the revision that was deployed.
"""
import copy
import urllib.parse

from alexlab import helm_release
from alexlab.common import LabError


def history_path(client):
    return client.ns_path("secrets") + "?labelSelector=" + urllib.parse.quote("owner=helm,name=" + client.release)


def history(client):
    """(records, secrets) of the release's history, oldest first."""
    reply = client.kube_ok("GET", history_path(client))
    secrets = sorted(reply.get("items") or [], key=lambda s: int(s["metadata"]["labels"].get("version") or 0))
    return [helm_release.record_of(s) for s in secrets], secrets


def write_history(client, new_record, changed_records, secrets):
    by_version = dict((int(s["metadata"]["labels"]["version"]), s) for s in secrets)
    client.kube_ok("POST", client.ns_path("secrets"), helm_release.secret_obj(new_record))
    for record in changed_records:
        body = helm_release.restamp(by_version[record["version"]], record)
        client.kube_ok("PUT", client.ns_path("secrets", body["metadata"]["name"]), body)


def render_deployment(client, record):
    dep = client.deployment()
    client.kube_ok("PUT", client.ns_path("deployments", client.release, "apps"), helm_release.render(dep, record))


def break_bad_upgrade(client, record_fault):
    records, secrets = history(client)
    if not records:
        raise LabError("the release has no Helm history to upgrade (no Secret with labels owner=helm,name=%s)"
                       % client.release)
    current = helm_release.newest(records)
    if current["chart"]["metadata"]["version"] == helm_release.BAD_CHART:
        raise LabError("revision %d already runs chart %s-%s" % (
            current["version"], helm_release.CHART, helm_release.BAD_CHART))
    saved = []
    for secret in secrets:
        kept = copy.deepcopy(secret)
        kept["metadata"].pop("resourceVersion", None)
        saved.append(kept)
    record_fault({"secrets": saved, "last_revision": current["version"]})
    new, changed = helm_release.upgrade(records, client.release, client.namespace, helm_release.BAD_CHART, {},
                                        reuse_values=True)
    write_history(client, new, changed, secrets)
    render_deployment(client, new)
    return new


def heal_bad_upgrade(client, saved):
    _records, secrets = history(client)
    for secret in secrets:
        if int(secret["metadata"]["labels"].get("version") or 0) > saved["last_revision"]:
            client.kube_ok("DELETE", client.ns_path("secrets", secret["metadata"]["name"]), ok=(200, 404))
    present = set(s["metadata"]["name"] for s in secrets)
    for secret in saved["secrets"]:
        name = secret["metadata"]["name"]
        if name in present:
            client.kube_ok("PUT", client.ns_path("secrets", name), secret)
        else:
            body = copy.deepcopy(secret)
            for key in ("uid", "creationTimestamp"):
                body["metadata"].pop(key, None)
            client.kube_ok("POST", client.ns_path("secrets"), body)
    records = [helm_release.record_of(s) for s in saved["secrets"]]
    deployed = [r for r in records if r["info"]["status"] == "deployed"] or records
    render_deployment(client, helm_release.newest(deployed))
