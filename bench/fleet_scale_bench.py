"""What each added deployment costs (issue 14, part 5). Not a test.

Starts the largest fleet of labs asked for (default 8; each lab its own directory under the system temp dir
and its own free ports, one embedded PostgreSQL each), builds one inventory with one host per lab
(`alexlab inventory`), and for each fleet size (default 1, 4, 8: the first N labs) runs, --rounds times and with
--forks N:
  * a play with no tasks (the floor: interpreter start-up, imports, inventory, one fork per host);
  * alexandria.ee.health (read-only), alexandria.ee.api_not_serving --check, alexandria.ee.quota_exceeded --check.
For each run it records the wall time, the CPU time of ansible-playbook and everything it started
(RUSAGE_CHILDREN), the CPU time the labs' own processes spent (the API, the Kubernetes facade, PostgreSQL),
the per-task wall times (bench/callback_plugins/task_times.py) and the Kubernetes requests each lab's facade
served (its /metrics, read before and after).

Then it measures the parts a module run is made of: a bare Python start, `import ansible.module_utils.basic`,
`import kubernetes.client`, and the labs' latency (GET /ready on the API, a pod list through the facade), and
puts a per-deployment breakdown next to the measured cost. Every lab is stopped at the end, also on error or
Ctrl-C.

    .venv/bin/python bench/fleet_scale_bench.py [--sizes 1,4,8] [--rounds 3] [--json out.json]
"""
import argparse
import json
import os
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CALLBACKS = os.path.join(REPO, "bench", "callback_plugins")
PLAYBOOKS = (("health", "alexandria.ee.health", ()),
             ("api_not_serving --check", "alexandria.ee.api_not_serving", ("--check",)),
             ("quota_exceeded --check", "alexandria.ee.quota_exceeded", ("--check",)))
EMPTY = "- name: Nothing\n  hosts: alexandria\n  connection: local\n  gather_facts: false\n  tasks: []\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def alexlab(directory, *args, timeout=300):
    proc = subprocess.run([os.path.join(BIN, "alexlab")] + list(args) + ["--dir", directory], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError("alexlab %s --dir %s failed: %s" % (" ".join(args), directory, proc.stderr.strip()))
    return proc.stdout


class Lab:
    def __init__(self, directory):
        self.dir = directory
        self.info = None
        self._ssl = None

    def up(self):
        alexlab(self.dir, "up")
        with open(os.path.join(self.dir, "lab.json")) as handle:
            self.info = json.load(handle)
        self._ssl = ssl.create_default_context(cafile=self.info["k8s_ca"])

    def _k8s_get(self, path):
        request = urllib.request.Request(self.info["k8s_url"] + path,
                                         headers={"Authorization": "Bearer " + self.info["k8s_token"]})
        with urllib.request.urlopen(request, context=self._ssl, timeout=30) as resp:
            return resp.read()

    def k8s_requests(self):
        """{(method, resource, subresource): count} the facade served since it started (its /metrics)."""
        counts = {}
        for line in self._k8s_get("/metrics").decode().splitlines():
            if line.startswith("apiserver_request_total{"):
                labels, value = line[len("apiserver_request_total{"):].rsplit("} ", 1)
                fields = dict(part.split("=", 1) for part in labels.split(","))
                key = tuple(fields[k].strip('"') for k in ("method", "resource", "subresource"))
                counts[key] = int(value)
        return counts

    def cpu_seconds(self):
        """CPU time (user + sys, with reaped children) of the lab's processes: API, orchestrator, the supervisor
        (which serves the Kubernetes facade), PostgreSQL (its finished backends included)."""
        total = 0.0
        for entry in self.info["pids"].values():
            try:
                with open("/proc/%d/stat" % entry["pid"]) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += sum(int(v) for v in fields[11:15]) / CLK_TCK
            except (OSError, IndexError, ValueError):
                pass
        return total

    def latency(self, rounds=20):
        """Median seconds of GET /ready on the API and of a pod list through the facade (one connection each)."""
        api, k8s = [], []
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        selector = "/api/v1/namespaces/%s/pods?labelSelector=app.kubernetes.io%%2Finstance%%3D%s" % (
            self.info["namespace"], self.info["release"])
        for _round in range(rounds):
            started = time.monotonic()
            with opener.open(self.info["api_url"] + "/ready", timeout=30) as resp:
                resp.read()
            api.append(time.monotonic() - started)
            started = time.monotonic()
            self._k8s_get(selector)
            k8s.append(time.monotonic() - started)
        return statistics.median(api), statistics.median(k8s)


def delta(after, before):
    return dict((k, v - before.get(k, 0)) for k, v in after.items() if v - before.get(k, 0))


def run_playbook(work, inventory, forks, target, *args):
    times = os.path.join(work, "times.json")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_CALLBACKS_ENABLED="task_times", ALEX_TASK_TIMES=times, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(work, "ansible-tmp"))
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, target, "--forks", str(forks),
            "-e", "alex_target=alexandria", "-e", "alex_report_dir=" + os.path.join(work, "reports")] + list(args)
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=work, timeout=1200, check=False)
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    with open(times) as handle:
        tasks = json.load(handle)
    return proc, wall, cpu, tasks


def python_costs(rounds=7):
    """Median seconds of: a bare interpreter, + ansible.module_utils.basic, + kubernetes.client."""
    def timed(code):
        walls = []
        for _round in range(rounds):
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", code], check=True)
            walls.append(time.monotonic() - started)
        return statistics.median(walls)
    bare = timed("pass")
    basic = timed("import ansible.module_utils.basic")
    k8s = timed("import ansible.module_utils.basic, kubernetes.client, kubernetes.config")
    return {"python_start_s": round(bare, 3), "module_utils_basic_import_s": round(basic - bare, 3),
            "kubernetes_import_s": round(k8s - basic, 3)}


def write_inventory(work, labs, count):
    hosts = {}
    for index, lab in enumerate(labs[:count]):
        one = json.loads(alexlab(lab.dir, "inventory", "--host", "lab%02d" % (index + 1)))
        hosts.update(one["all"]["children"]["alexandria"]["hosts"])
    path = os.path.join(work, "inventory-%d.json" % count)
    with open(path, "w") as handle:
        json.dump({"all": {"children": {"alexandria": {"hosts": hosts}}}}, handle)
    os.chmod(path, 0o600)
    return path


def measure(work, labs, sizes, rounds):
    empty = os.path.join(work, "empty.yml")
    with open(empty, "w") as handle:
        handle.write(EMPTY)
    results = []
    for count in sizes:
        fleet = labs[:count]
        inventory = write_inventory(work, labs, count)
        for name, target, extra in (("empty play", empty, ()),) + PLAYBOOKS:
            samples = []
            for _round in range(rounds):
                requests_before = [lab.k8s_requests() for lab in fleet]
                lab_cpu_before = sum(lab.cpu_seconds() for lab in fleet)
                proc, wall, cpu, tasks = run_playbook(work, inventory, count, target, *extra)
                lab_cpu = sum(lab.cpu_seconds() for lab in fleet) - lab_cpu_before
                requests = [delta(lab.k8s_requests(), before) for lab, before in zip(fleet, requests_before)]
                if proc.returncode not in (0, 2):
                    raise RuntimeError("%s with %d labs exited %d:\n%s" % (
                        name, count, proc.returncode, proc.stdout[-3000:]))
                # Requests of the /metrics reads themselves are not counted by the facade; the rest are the run's.
                per_lab = [sum(r.values()) for r in requests]
                samples.append({"wall_s": wall, "cpu_s": cpu, "lab_cpu_s": lab_cpu, "k8s_requests": per_lab,
                                "k8s_by_kind": requests[0],
                                # With one host, a module task that ran (skipped ones take a few ms).
                                "module_runs": [t["action"] for t in tasks if t["seconds"] > 0.15 and
                                                t["action"].startswith(("alexandria.ee.alex_", "ansible.builtin.ping",
                                                                        "ansible.builtin.command"))]
                                if count == 1 else None,
                                "tasks": tasks})
            results.append(summarize(name, count, samples))
            print("%-26s %d lab(s): wall %.2f s, CPU %.2f s, labs' CPU %.2f s, K8s requests per lab %s" % (
                name, count, results[-1]["wall_s"], results[-1]["cpu_s"], results[-1]["lab_cpu_s"],
                results[-1]["k8s_requests_per_lab"]), flush=True)
    return results


def kind_label(key):
    method, res, sub = key
    return "%s %s%s" % (method, res or "(discovery)", "/" + sub if sub else "")


def summarize(name, count, samples):
    def med(key):
        return round(statistics.median(s[key] for s in samples), 2)
    per_lab = sorted(set(n for s in samples for n in s["k8s_requests"]))
    task_medians = {}
    for sample in samples:
        for entry in sample["tasks"]:
            task_medians.setdefault(entry["task"], []).append(entry["seconds"])
    top = sorted(((round(statistics.median(v), 3), k) for k, v in task_medians.items()), reverse=True)[:6]
    return {"run": name, "labs": count, "wall_s": med("wall_s"), "cpu_s": med("cpu_s"), "lab_cpu_s": med("lab_cpu_s"),
            "walls": [round(s["wall_s"], 2) for s in samples], "k8s_requests_per_lab": per_lab,
            "k8s_by_kind_lab1": dict((kind_label(k), v) for k, v in sorted(samples[-1]["k8s_by_kind"].items())),
            "module_runs_one_host": samples[-1]["module_runs"],
            "slowest_tasks": [{"task": t, "median_s": s} for s, t in top]}


def per_added(results, sizes):
    rows = []
    small, large = min(sizes), max(sizes)
    for name in sorted(set(r["run"] for r in results)):
        by = dict((r["labs"], r) for r in results if r["run"] == name)
        if large == small:
            continue
        added = large - small
        rows.append({"run": name, "wall_per_added_s": round((by[large]["wall_s"] - by[small]["wall_s"]) / added, 2),
                     "cpu_per_added_s": round((by[large]["cpu_s"] - by[small]["cpu_s"]) / added, 2),
                     "lab_cpu_per_added_s": round((by[large]["lab_cpu_s"] - by[small]["lab_cpu_s"]) / added, 2),
                     "k8s_requests_per_lab": dict((n, by[n]["k8s_requests_per_lab"]) for n in sorted(by))})
    return rows


def interrupted(*_args):
    raise KeyboardInterrupt()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    sizes = sorted(set(int(n) for n in args.sizes.split(",")))
    if not sizes or sizes[0] < 1:
        raise SystemExit("--sizes: positive counts, e.g. 1,4,8")
    # SIGTERM (timeout, a CI cancel) unwinds like Ctrl-C, so the finally below stops every lab.
    signal.signal(signal.SIGTERM, interrupted)
    work = tempfile.mkdtemp(prefix="alex-fleet-bench-")
    labs = [Lab(os.path.join(work, "lab%02d" % (i + 1))) for i in range(max(sizes))]
    started_labs = []
    loads = [os.getloadavg()]
    try:
        for lab in labs:
            started_labs.append(lab)
            lab.up()
            alexlab(lab.dir, "seed-audit", "--tenants", "2", "--rows", "250")
        costs = python_costs()
        api_latency, k8s_latency = labs[0].latency()
        costs.update(api_ready_request_s=round(api_latency, 4), k8s_pod_list_request_s=round(k8s_latency, 4))
        idle_before = labs[0].k8s_requests()
        time.sleep(5)
        costs["k8s_requests_idle_5s"] = sum(delta(labs[0].k8s_requests(), idle_before).values())
        loads.append(os.getloadavg())
        results = measure(work, labs, sizes, args.rounds)
        loads.append(os.getloadavg())
        report = {"sizes": sizes, "rounds": args.rounds, "cpus": os.cpu_count(), "load_1_5_15": loads,
                  "costs": costs, "results": results, "per_added_deployment": per_added(results, sizes)}
        print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(report, handle, indent=2)
    finally:
        for lab in started_labs:
            try:
                alexlab(lab.dir, "down", timeout=120)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print("could not stop %s: %s" % (lab.dir, exc), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
