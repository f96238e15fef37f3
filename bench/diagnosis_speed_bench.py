"""How long one diagnosis takes, against the floor of ansible-playbook itself (issue 14, part 4). Not a test.

On one lab, with one inventory host, for the healthy lab and then each fault state runbook Scenario 1 covers
(alexlab break orchestrator-crash, orchestrator-hang, oom, license-corrupt, license-missing), each round runs:
  * a playbook of 10 ansible.builtin.ping tasks (the floor: start-up, inventory, 10 tasks);
  * ansible-playbook alexandria.ee.api_not_serving --check;
  * alexandria.ee.health (one deployment, read-only).
With --baseline REF the two playbooks also run from the collection as it is at git REF (extracted to a temp
dir), interleaved in the same rounds, so before and after are measured against the same ping runs.
Reports medians over --rounds, each run's ratio to the ping playbook of the same round, and per-task wall times
(bench/callback_plugins/task_times.py, medians) of this tree's runs.

    .venv/bin/python bench/diagnosis_speed_bench.py [--rounds 5] [--baseline main] [--states healthy,oom]
        [--json out.json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CALLBACKS = os.path.join(REPO, "bench", "callback_plugins")
STATES = ("healthy", "orchestrator-crash", "orchestrator-hang", "oom", "license-corrupt", "license-missing")
PLAYBOOKS = (("api_not_serving --check", "alexandria.ee.api_not_serving", ("--check",)),
             ("health", "alexandria.ee.health", ()))
PING = "- name: Ten pings\n  hosts: alexandria\n  connection: local\n  gather_facts: false\n  tasks:\n" + "".join(
    "    - name: Ping %d\n      ansible.builtin.ping:\n" % i for i in range(10))


def alexlab(directory, *args):
    proc = subprocess.run([os.path.join(BIN, "alexlab")] + list(args) + ["--dir", directory], capture_output=True,
                          text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit("alexlab %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout


def extract_collection(ref, root):
    """The collection as it is at git ref, as ROOT/ansible_collections/alexandria/ee; returns ROOT."""
    dest = os.path.join(root, "ansible_collections", "alexandria", "ee")
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return root


def run(workdir, collections, target, *args):
    """(wall seconds, rc, per-task times, output) of one ansible-playbook run."""
    times = os.path.join(workdir, "times.json")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections,
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_CALLBACKS_ENABLED="task_times", ALEX_TASK_TIMES=times, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(workdir, "ansible-tmp"))
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(workdir, "inventory.json"), target,
            "-e", "alex_target=alexandria", "-e", "alex_report_dir=" + os.path.join(workdir, "reports")] + list(args)
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=workdir, timeout=600, check=False)
    wall = time.monotonic() - started
    with open(times) as handle:
        return wall, proc.returncode, json.load(handle), proc.stdout


def one_state(work, state, rounds, variants, runs, tasks):
    ping = os.path.join(work, "ping.yml")
    for round_no in range(rounds):
        wall, _rc, _times, _out = run(work, variants[0][1], ping)
        runs.setdefault((state, "ping", ""), []).append(wall)
        # Alternate which variant goes first, so neither always follows the ping run.
        order = variants if round_no % 2 == 0 else list(reversed(variants))
        for name, target, extra in PLAYBOOKS:
            for variant, collections in order:
                wall, rc, times, out = run(work, collections, target, *extra)
                if rc not in (0, 2):
                    raise SystemExit("%s (%s, %s) exited %d:\n%s" % (name, state, variant, rc, out[-3000:]))
                runs.setdefault((state, name, variant), []).append(wall)
                if variant == "this tree":
                    for entry in times:
                        tasks.setdefault((state, name, entry["task"]), []).append(entry["seconds"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="git ref to measure against in the same rounds (e.g. main)")
    parser.add_argument("--states", default=",".join(STATES), help="comma-separated, from: " + ", ".join(STATES))
    parser.add_argument("--json")
    args = parser.parse_args()
    states = [s for s in args.states.split(",") if s]
    unknown = sorted(set(states) - set(STATES))
    if unknown:
        raise SystemExit("unknown state(s): %s" % ", ".join(unknown))
    work = tempfile.mkdtemp(prefix="alex-diag-bench-")
    lab_dir = os.path.join(work, "lab")
    variants = [("this tree", os.path.join(REPO, ".venv", "collections"))]
    if args.baseline:
        variants.append((args.baseline, extract_collection(args.baseline, os.path.join(work, "baseline"))))
    loads = [os.getloadavg()[0]]
    alexlab(lab_dir, "up")
    try:
        alexlab(lab_dir, "seed-audit", "--tenants", "2", "--rows", "500")
        inventory = json.loads(alexlab(lab_dir, "inventory", "--host", "bench"))
        with open(os.path.join(work, "inventory.json"), "w") as handle:
            json.dump(inventory, handle)
        with open(os.path.join(work, "ping.yml"), "w") as handle:
            handle.write(PING)
        runs, tasks = {}, {}
        for state in states:
            if state != "healthy":
                alexlab(lab_dir, "break", state)
            one_state(work, state, args.rounds, variants, runs, tasks)
            loads.append(os.getloadavg()[0])
            if state != "healthy":
                alexlab(lab_dir, "heal")
        report = {"rounds": args.rounds, "load_1min": loads, "cpus": os.cpu_count(),
                  "variants": [v for v, _c in variants], "runs": [], "tasks": {}}
        for state in states:
            pings = runs[(state, "ping", "")]
            report["runs"].append({"state": state, "run": "ping", "median_s": round(statistics.median(pings), 2),
                                   "min_s": round(min(pings), 2), "max_s": round(max(pings), 2)})
            for name, _target, _extra in PLAYBOOKS:
                for variant, _c in variants:
                    walls = runs[(state, name, variant)]
                    ratios = [w / p for w, p in zip(walls, pings)]
                    report["runs"].append({
                        "state": state, "run": name, "variant": variant,
                        "median_s": round(statistics.median(walls), 2), "min_s": round(min(walls), 2),
                        "max_s": round(max(walls), 2), "median_ratio_to_ping": round(statistics.median(ratios), 2)})
        for (state, name, task), secs in sorted(tasks.items(), key=lambda kv: -statistics.median(kv[1])):
            report["tasks"].setdefault("%s: %s" % (state, name), []).append(
                {"task": task, "median_s": round(statistics.median(secs), 3)})
        for key in report["tasks"]:
            report["tasks"][key] = report["tasks"][key][:8]
        print(json.dumps(report, indent=2))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(report, handle, indent=2)
    finally:
        alexlab(lab_dir, "down")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
