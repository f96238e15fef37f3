"""A stand-in for the helm binary in the tests (no helm can be had on these machines).

    helm = make_helm_standin(tmp_path, lab)                          # tmp_path/helm, executable
    helm = make_helm_standin(tmp_path, lab, rollback_error="...")     # a failure mode
    calls(helm)                                                       # the argv of each call, in order

The script's shebang is this Python; it logs each argv as one JSON line to `helm-calls.jsonl` next to it, then
acts on the lab as Helm 3 would, through the official kubernetes client and the lab's kubeconfig: it reads and
writes the release's history Secrets (`sh.helm.release.v1.<release>.v<revision>`, lab/alexlab/helm_release.py)
and renders the lab's chart onto the Deployment.

- `version --short`
- `history <release> --namespace NS [--output json]`
- `upgrade <release> alexandria/alexandria-ee --namespace NS [--version V] [--values F]... [--set k=v]...
  [--reuse-values] [--reset-values] [--wait] [--timeout T]`: revision N+1 (pending-upgrade, then deployed), the
  revisions that were deployed superseded, the Deployment as chart V renders the values (no --version: the
  newest chart, as helm does). With --wait a rollout that does not become ready fails the upgrade as helm does
  (revision failed, the previous one left deployed, `Error: UPGRADE FAILED: context deadline exceeded`).
- `rollback <release> [<revision>] --namespace NS [--wait] [--timeout T]`: revision N+1 with the target's chart
  and values, description `Rollback to <revision>`, the Deployment rendered from it, every deployed revision
  superseded; `Error: release has no <revision> version` (exit 1, nothing changed) when the target is gone.

One difference from helm, so that no test sits out a timeout: --wait gives up as soon as the new pod's
container is in CrashLoopBackOff, with helm's timeout error (helm would keep waiting until --timeout).

Failure modes (keyword arguments): broken_charts (chart versions whose orchestrator crash-loops, besides the
catalogue's 1.5.0), rollback_error / upgrade_error (the command fails before changing anything: `Error: <text>`
on stderr, exit 1), version (what `version --short` prints), prune_revisions (history revisions deleted at
the first call, `version --short` included, as a concurrent `helm upgrade --history-max` would prune them).
"""
import copy
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = '''#!{python}
import sys
sys.path.insert(0, {here!r})
import helm_standin
sys.exit(helm_standin.main({config!r}, sys.argv[1:]))
'''


def make_helm_standin(tmp_path, lab, **failure_modes):
    """Write tmp_path/helm (the stand-in) for this lab; returns its path as a string."""
    unknown = set(failure_modes) - {"broken_charts", "rollback_error", "upgrade_error", "version", "prune_revisions"}
    if unknown:
        raise TypeError("unknown failure modes: %s" % ", ".join(sorted(unknown)))
    info = lab.info
    config = os.path.join(str(tmp_path), "helm-standin.json")
    with open(config, "w", encoding="utf-8") as handle:
        json.dump(dict(failure_modes, kubeconfig=info["kubeconfig"], namespace=info["namespace"], release=info["release"],
                       log=os.path.join(str(tmp_path), "helm-calls.jsonl"),
                       broken_charts=list(failure_modes.get("broken_charts") or ())), handle)
    path = os.path.join(str(tmp_path), "helm")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(LAUNCHER.format(python=sys.executable, here=HERE, config=config))
    os.chmod(path, 0o755)
    return path


def calls(helm):
    """The argv of each call of the stand-in at path `helm`, oldest first."""
    log = os.path.join(os.path.dirname(str(helm)), "helm-calls.jsonl")
    if not os.path.exists(log):
        return []
    with open(log, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# -- the stand-in itself --------------------------------------------------------------------------------------

class Usage(Exception):
    pass


def parse(argv, flags, repeated=(), switches=()):
    """(positionals, options) of a helm command line."""
    positionals, options = [], {name: [] for name in repeated}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("--") and "=" in arg:
            arg, value = arg.split("=", 1)
            argv = argv[:index] + [arg, value] + argv[index + 1:]
        if arg in ("-n",):
            arg = "--namespace"
        if arg in ("-o",):
            arg = "--output"
        if arg in switches:
            options[arg] = True
        elif arg in flags or arg in repeated:
            if index + 1 >= len(argv):
                raise Usage('flag needs an argument: %s' % arg)
            if arg in repeated:
                options[arg].append(argv[index + 1])
            else:
                options[arg] = argv[index + 1]
            index += 1
        elif arg.startswith("-"):
            raise Usage("unknown flag: %s" % arg)
        else:
            positionals.append(arg)
        index += 1
    return positionals, options


def duration(text):
    """Seconds of a Go duration (helm's --timeout: 5m, 30s, 1m30s)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text or "")
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Usage('invalid argument "%s" for "--timeout" flag: time: missing unit in duration "%s"' % (text, text))
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


class Cluster:
    """The release's history Secrets and Deployment, through the official client."""

    def __init__(self, kubeconfig, context, namespace, release):
        import kubernetes
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=config)
        client = kubernetes.client.ApiClient(config)
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)
        self.namespace, self.release = namespace, release

    def secrets(self):
        resp = self.core.list_namespaced_secret(self.namespace, label_selector="owner=helm,name=%s" % self.release,
                                                _preload_content=False)
        items = json.loads(resp.data)["items"]
        return sorted(items, key=lambda s: int(s["metadata"]["labels"]["version"]))

    def create(self, helm_release, record):
        self.core.create_namespaced_secret(self.namespace, helm_release.secret_obj(record))

    def update(self, helm_release, record):
        name = helm_release.secret_name(self.release, record["version"])
        resp = self.core.read_namespaced_secret(name, self.namespace, _preload_content=False)
        self.core.replace_namespaced_secret(name, self.namespace, helm_release.restamp(json.loads(resp.data), record))

    def deployment(self):
        resp = self.apps.read_namespaced_deployment(self.release, self.namespace, _preload_content=False)
        return json.loads(resp.data)

    def replace_deployment(self, body):
        self.apps.replace_namespaced_deployment(self.release, self.namespace, body)

    def wait(self, seconds):
        """True once the Deployment's new pods are ready; False on timeout or a new pod crash-looping."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            dep = self.deployment()
            status, wanted = dep.get("status") or {}, dep["spec"].get("replicas", 1)
            rolled = status.get("observedGeneration", 0) >= dep["metadata"]["generation"] and \
                status.get("updatedReplicas", 0) == wanted
            if rolled and status.get("readyReplicas", 0) == wanted:
                return True
            if rolled and self.crash_looping():
                return False
            time.sleep(0.2)
        return False

    def crash_looping(self):
        resp = self.core.list_namespaced_pod(self.namespace, label_selector="app.kubernetes.io/instance=%s" % self.release,
                                             _preload_content=False)
        for pod in json.loads(resp.data)["items"]:
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                if ((status.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                    return True
        return False


def write_new(config, cluster, helm_release, record, superseded, wait, timeout, verb):
    """Helm's order: the new revision pending, the resources, then (after --wait) deployed and superseded."""
    pending = copy.deepcopy(record)
    pending["info"]["status"] = "pending-upgrade" if verb == "Upgrade" else "pending-rollback"
    cluster.create(helm_release, pending)
    cluster.replace_deployment(helm_release.render(cluster.deployment(), record, tuple(config["broken_charts"])))
    if wait and not cluster.wait(timeout):
        failed = helm_release.fail(record, "context deadline exceeded", verb if verb == "Upgrade" else "Release")
        cluster.update(helm_release, failed)
        return False
    for old in superseded:
        cluster.update(helm_release, old)
    cluster.update(helm_release, record)
    return True


def prune(cluster, helm_release, revisions):
    """Delete these history revisions, as a concurrent `helm upgrade --history-max` would."""
    for revision in revisions:
        try:
            cluster.core.delete_namespaced_secret(helm_release.secret_name(cluster.release, revision), cluster.namespace)
        except Exception as exc:  # already gone
            if getattr(exc, "status", None) != 404:
                raise


def cmd_upgrade(config, cluster, helm_release, positionals, options):
    import yaml
    if len(positionals) != 2:
        raise Usage('"helm upgrade" requires 2 arguments')
    if positionals[1] != helm_release.REPO_CHART:
        raise helm_release.HelmError('repo %s not found' % positionals[1].split("/")[0])
    if config.get("upgrade_error"):
        raise helm_release.HelmError(config["upgrade_error"])
    values = {}
    for path in options["--values"]:
        with open(path, encoding="utf-8") as handle:
            values = helm_release.merge(values, yaml.safe_load(handle) or {})
    for text in options["--set"]:
        values = helm_release.merge(values, helm_release.parse_set(text))
    records = [helm_release.record_of(s) for s in cluster.secrets()]
    chart_version = options.get("--version") or helm_release.latest_chart()
    record, superseded = helm_release.upgrade(records, cluster.release, cluster.namespace, chart_version, values,
                                              reuse_values=options.get("--reuse-values", False),
                                              reset_values=options.get("--reset-values", False))
    if not write_new(config, cluster, helm_release, record, superseded, options.get("--wait"),
                     duration(options.get("--timeout", "5m")), "Upgrade"):
        raise helm_release.HelmError("UPGRADE FAILED: context deadline exceeded")
    print('Release "%s" has been upgraded. Happy Helming!\nNAME: %s\nLAST DEPLOYED: %s\nNAMESPACE: %s\n'
          'STATUS: deployed\nREVISION: %d' % (
              cluster.release, cluster.release, record["info"]["last_deployed"], cluster.namespace, record["version"]))


def cmd_rollback(config, cluster, helm_release, positionals, options):
    if not 1 <= len(positionals) <= 2:
        raise Usage('"helm rollback" requires 1 or 2 arguments')
    if config.get("rollback_error"):
        raise helm_release.HelmError(config["rollback_error"])
    target = 0
    if len(positionals) == 2:
        if not positionals[1].isdigit():
            raise helm_release.HelmError('invalid revision number "%s"' % positionals[1])
        target = int(positionals[1])
    records = [helm_release.record_of(s) for s in cluster.secrets()]
    record, superseded = helm_release.rollback(records, cluster.release, target)
    if not write_new(config, cluster, helm_release, record, superseded, options.get("--wait"),
                     duration(options.get("--timeout", "5m")), "Rollback"):
        raise helm_release.HelmError("release %s failed: context deadline exceeded" % cluster.release)
    print("Rollback was a success! Happy Helming!")


def cmd_history(cluster, helm_release, options):
    rows = []
    for secret in cluster.secrets():
        record = helm_release.record_of(secret)
        rows.append({"revision": record["version"], "updated": record["info"]["last_deployed"],
                     "status": record["info"]["status"],
                     "chart": "%s-%s" % (record["chart"]["metadata"]["name"], record["chart"]["metadata"]["version"]),
                     "app_version": record["chart"]["metadata"]["appVersion"],
                     "description": record["info"]["description"]})
    if not rows:
        raise helm_release.HelmError("release: not found")
    if options.get("--output") == "json":
        print(json.dumps(rows))
    else:
        print("REVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION\tDESCRIPTION")
        for row in rows:
            print("%(revision)d\t%(updated)s\t%(status)s\t%(chart)s\t%(app_version)s\t%(description)s" % row)


def main(config_path, argv):
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    with open(config["log"], "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    from alexlab import helm_release
    try:
        if argv[:1] == ["version"]:
            if config.get("prune_revisions"):
                prune(Cluster(config["kubeconfig"], None, config["namespace"], config["release"]), helm_release,
                      config["prune_revisions"])
            print(config.get("version") or "v3.16.2+gstandin")
            return 0
        command = argv[0] if argv else ""
        if command not in ("upgrade", "rollback", "history"):
            raise Usage('unknown command "%s" for "helm"' % command)
        positionals, options = parse(argv[1:], flags=("--namespace", "--version", "--timeout", "--output",
                                                      "--kubeconfig", "--kube-context"),
                                     repeated=("--values", "--set"),
                                     switches=("--wait", "--reuse-values", "--reset-values", "--install"))
        if not positionals:
            raise Usage('"helm %s" requires a release name' % command)
        cluster = Cluster(options.get("--kubeconfig") or config["kubeconfig"], options.get("--kube-context"),
                          options.get("--namespace", "default"), positionals[0])
        prune(cluster, helm_release, config.get("prune_revisions") or ())
        if command == "upgrade":
            cmd_upgrade(config, cluster, helm_release, positionals, options)
        elif command == "rollback":
            cmd_rollback(config, cluster, helm_release, positionals, options)
        else:
            cmd_history(cluster, helm_release, options)
        return 0
    except (Usage, helm_release.HelmError) as exc:
        sys.stderr.write("Error: %s\n" % exc)
        return 1
