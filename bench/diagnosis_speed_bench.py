"""How long one diagnosis takes, against the floor of ansible-playbook itself (issue 14, part 4). Not a test.

On one lab, in each round and in the same order, with the same inventory host:
  * a playbook of 10 ansible.builtin.ping tasks (the floor: start-up, inventory, 10 tasks);
  * ansible-playbook alexandria.ee.api_not_serving --check on a healthy lab;
  * alexandria.ee.health (one deployment) on a healthy lab;
  * then the orchestrator crash-looping (alexlab break orchestrator-crash): api_not_serving --check and health.
Reports medians over --rounds and each run's ratio to the ping playbook of the same round, and where the crashed
diagnosis spends its time (per-task wall times from bench/callback_plugins/task_times.py, medians).

    .venv/bin/python bench/diagnosis_speed_bench.py [--rounds 5] [--json out.json]
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
PING = "- name: Ten pings\n  hosts: alexandria\n  connection: local\n  gather_facts: false\n  tasks:\n" + "".join(
    "    - name: Ping %d\n      ansible.builtin.ping:\n" % i for i in range(10))


def alexlab(directory, *args):
    proc = subprocess.run([os.path.join(BIN, "alexlab")] + list(args) + ["--dir", directory], capture_output=True,
                          text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit("alexlab %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout


def run(workdir, target, *args):
    """(wall seconds, rc, per-task times) of one ansible-playbook run."""
    times = os.path.join(workdir, "times.json")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_CALLBACKS_ENABLED="task_times", ALEX_TASK_TIMES=times, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(workdir, "ansible-tmp"))
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(workdir, "inventory.json"), target,
            "-e", "alex_target=alexandria", "-e", "alex_report_dir=" + os.path.join(workdir, "reports")] + list(args)
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=workdir, timeout=600, check=False)
    wall = time.monotonic() - started
    with open(times) as handle:
        return wall, proc.returncode, json.load(handle)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="alex-diag-bench-")
    lab_dir = os.path.join(work, "lab")
    alexlab(lab_dir, "up")
    try:
        alexlab(lab_dir, "seed-audit", "--tenants", "2", "--rows", "500")
        inventory = json.loads(alexlab(lab_dir, "inventory", "--host", "bench"))
        with open(os.path.join(work, "inventory.json"), "w") as handle:
            json.dump(inventory, handle)
        ping = os.path.join(work, "ping.yml")
        with open(ping, "w") as handle:
            handle.write(PING)
        runs = {}
        tasks = {}
        for state in ("healthy", "crashed"):
            if state == "crashed":
                alexlab(lab_dir, "break", "orchestrator-crash")
            for _round in range(args.rounds):
                for name, target, extra in (("ping", ping, ()),
                                            ("api_not_serving --check", "alexandria.ee.api_not_serving", ("--check",)),
                                            ("health", "alexandria.ee.health", ())):
                    wall, rc, times = run(work, target, *extra)
                    runs.setdefault((state, name), []).append(wall)
                    if state == "crashed" and name != "ping":
                        for entry in times:
                            tasks.setdefault((name, entry["task"]), []).append(entry["seconds"])
                    if rc not in (0, 2):
                        raise SystemExit("%s (%s) exited %d" % (name, state, rc))
        report = {"rounds": args.rounds, "load": os.getloadavg(), "cpus": os.cpu_count(), "runs": {}, "tasks": {}}
        for (state, name), walls in sorted(runs.items()):
            pings = runs[(state, "ping")]
            ratios = [w / p for w, p in zip(walls, pings)]
            report["runs"]["%s: %s" % (state, name)] = {
                "median_s": round(statistics.median(walls), 2), "min_s": round(min(walls), 2),
                "max_s": round(max(walls), 2), "median_ratio_to_ping": round(statistics.median(ratios), 2)}
        for (name, task), secs in sorted(tasks.items(), key=lambda kv: -statistics.median(kv[1])):
            report["tasks"].setdefault(name, []).append({"task": task, "median_s": round(statistics.median(secs), 3)})
        for name in report["tasks"]:
            report["tasks"][name] = report["tasks"][name][:8]
        print(json.dumps(report, indent=2))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(report, handle, indent=2)
    finally:
        alexlab(lab_dir, "down")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
