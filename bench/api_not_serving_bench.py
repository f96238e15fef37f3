"""Benchmark of runbook Scenario 1 on the lab (not a test).

1. Wall time of the whole diagnosis: `ansible-playbook alexandria.ee.api_not_serving --check` from the process
   start to the summary (the set_stats task that records the diagnosis), and to the end of the run, on a healthy
   lab and under each fault.
2. Kubernetes API requests of one triage, counted twice: by the module's own counter and by counting the
   requests that leave the official client (kubernetes.client.rest.RESTClientObject.request), with the api
   container's log at 0, 10,000 and 200,000 lines (lines appended to the container's log file, which the lab's
   facade serves), and the bytes read.

Usage: .venv/bin/python bench/api_not_serving_bench.py [--runs 3] [--write]

With --write the figures replace the Scenario 1 section of docs/performance.md (between the
`api-not-serving-bench` markers); other sections are left alone.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CALLBACKS = os.path.join(REPO, "tests", "integration", "callback_plugins")
BEGIN, END = "<!-- api-not-serving-bench:begin -->", "<!-- api-not-serving-bench:end -->"
DIAGNOSIS_TASK = "Record the diagnosis in the run's stats (before any gate can stop the run)"
FAULTS = ("orchestrator-crash", "orchestrator-hang", "oom", "license-corrupt", "license-missing")


def alexlab(directory, *args):
    proc = subprocess.run([os.path.join(BIN, "alexlab")] + list(args) + ["--dir", directory], capture_output=True,
                          text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit("alexlab %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout


def run_playbook(lab, workdir, check=True):
    inventory = os.path.join(workdir, "inventory.yml")
    with open(inventory, "w", encoding="utf-8") as handle:
        handle.write("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                     "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
    variables = os.path.join(workdir, "vars.json")
    with open(variables, "w", encoding="utf-8") as handle:
        json.dump(dict(api_not_serving_base_url=lab["api_url"], api_not_serving_kubeconfig=lab["kubeconfig"],
                       api_not_serving_namespace=lab["namespace"], api_not_serving_release=lab["release"]), handle)
    stats = os.path.join(workdir, "stats.json")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".venv", "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
               ANSIBLE_CALLBACKS_ENABLED="alex_stats_json", ALEX_STATS_JSON=stats, ANSIBLE_NOCOLOR="1")
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, "alexandria.ee.api_not_serving",
            "-e", "@" + variables] + (["--check"] if check else [])
    started = time.time()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=workdir, check=False)
    total = time.time() - started
    with open(stats, encoding="utf-8") as handle:
        data = json.load(handle)
    ends = [t[2] for t in data["tasks"] if t[0].endswith(DIAGNOSIS_TASK) and t[2] is not None]
    if not ends:
        raise SystemExit("no diagnosis in the run: %s" % proc.stdout[-2000:])
    to_summary = data["started_epoch"] + ends[0] - started
    summary = data["custom"]["_run"]["api_not_serving"]
    return dict(rc=proc.returncode, total=total, to_summary=to_summary, cause=summary["cause"],
                k8s_requests=summary["k8s_requests"])


def count_requests(lab, tail_lines=50):
    """One triage in-process; requests counted where they leave the official client."""
    sys.path.insert(0, os.path.join(REPO, ".venv", "collections"))
    from kubernetes.client import rest
    from ansible_collections.alexandria.ee.plugins.module_utils.k8s_client import build_api_client
    from ansible_collections.alexandria.ee.plugins.module_utils.k8s_service import ReleaseService

    seen = []
    original = rest.RESTClientObject.request

    def counting(self, method, url, *args, **kwargs):
        seen.append((method, url.split("?")[0]))
        return original(self, method, url, *args, **kwargs)

    rest.RESTClientObject.request = counting
    try:
        service = ReleaseService(build_api_client({"kubeconfig": lab["kubeconfig"]}), lab["namespace"],
                                 lab["release"])
        started = time.monotonic()
        gathered = service.gather(lab["release"] + "-license", "license.blob", tail_lines=tail_lines)
        elapsed = time.monotonic() - started
    finally:
        rest.RESTClientObject.request = original
    log_bytes = sum(len(text or "") for pod in gathered["logs"].values() for entry in pod.values()
                    for text in (entry.get("current"), entry.get("previous")))
    return dict(module_count=service.requests, wire_count=len(seen), seconds=elapsed, log_bytes=log_bytes)


def grow_api_log(lab_dir, lab, lines):
    """Append lines to the current log file of the api container, as if it had logged them."""
    pod = lab["pod"]
    files = sorted(glob.glob(os.path.join(lab_dir, "pods", pod, "logs", "api", "*.log")),
                   key=lambda p: int(os.path.basename(p).split(".")[0]))
    line = "2026-11-27T10:00:00.000Z INFO  http: GET /license 200 1.2ms (benchmark filler line, %07d)\n"
    with open(files[-1], "a", encoding="utf-8") as handle:
        for start in range(0, lines, 10000):
            handle.write("".join(line % i for i in range(start, min(lines, start + 10000))))


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = re.findall(r"^model name\s*:\s*(.+)$", handle.read(), re.M)
        if names:
            cpu = "%s x %d" % (names[0].strip(), len(names))
    except OSError:
        pass
    return "%s, Python %s, %s" % (cpu, platform.python_version(), platform.system())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    lab_dir = tempfile.mkdtemp(prefix="alex-s1-bench-")
    workdir = tempfile.mkdtemp(prefix="alex-s1-bench-run-")
    rows, counts = [], []
    load_before = os.getloadavg()[0]
    alexlab(lab_dir, "up")
    try:
        for fault in (None,) + FAULTS:
            if fault:
                alexlab(lab_dir, "break", fault)
            with open(os.path.join(lab_dir, "lab.json"), encoding="utf-8") as handle:
                lab = json.load(handle)
            runs = [run_playbook(lab, workdir) for dummy in range(args.runs)]
            rows.append((fault or "healthy", runs))
            print("%-20s cause %-32s to summary %s s, whole run %s s, %d requests" % (
                fault or "healthy", runs[0]["cause"], [round(r["to_summary"], 2) for r in runs],
                [round(r["total"], 2) for r in runs], runs[0]["k8s_requests"]), flush=True)
            if fault:
                alexlab(lab_dir, "heal")
        with open(os.path.join(lab_dir, "lab.json"), encoding="utf-8") as handle:
            lab = json.load(handle)
        grown = 0
        for lines in (0, 10000, 200000):
            grow_api_log(lab_dir, lab, lines - grown)
            grown = lines
            result = count_requests(lab)
            counts.append((lines, result))
            print("api log +%d lines: %d requests (module), %d (wire), %d log bytes read, %.3f s" % (
                lines, result["module_count"], result["wire_count"], result["log_bytes"], result["seconds"]),
                flush=True)
    finally:
        alexlab(lab_dir, "down")
        shutil.rmtree(lab_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)

    load_after = os.getloadavg()[0]

    def med(values):
        return "%.1f" % statistics.median(values)

    lines = [BEGIN, "", "## Scenario 1: API not serving (`bench/api_not_serving_bench.py`)", "",
             "Measured on %s, %s, `--runs %d`, 1-minute load average %.1f before and %.1f after (other work"
             " shares the machine). Goal: the whole diagnosis in at most 10 s; a constant number of Kubernetes API"
             " requests, whatever the log length." % (machine(), time.strftime("%Y-%m-%d"), args.runs, load_before,
                                                      load_after), "",
             "Wall time of `ansible-playbook alexandria.ee.api_not_serving --check` on the lab, from the process"
             " start to the recorded diagnosis (the `set_stats` summary), and to the end of the run (plan"
             " printed); median of the runs (min-max):", "",
             "| lab state | first cause | to summary (s) | whole run (s) | Kubernetes API requests |",
             "| --- | --- | --- | --- | --- |"]
    for name, runs in rows:
        summary = [r["to_summary"] for r in runs]
        total = [r["total"] for r in runs]
        lines.append("| %s | `%s` | %s (%.1f-%.1f) | %s (%.1f-%.1f) | %d |" % (
            name, runs[0]["cause"], med(summary), min(summary), max(summary), med(total), min(total), max(total),
            runs[0]["k8s_requests"]))
    lines += ["", "Kubernetes API requests of one triage against the api container's log length (lines appended to"
              " its log file; `tailLines` 50, `limitBytes` 64 KiB), counted by the module and at the client's REST"
              " layer:", "",
              "| api log length | requests (module) | requests (client) | log bytes read | triage time (s) |",
              "| --- | --- | --- | --- | --- |"]
    for extra, result in counts:
        lines.append("| +%d lines | %d | %d | %d | %.3f |" % (
            extra, result["module_count"], result["wire_count"], result["log_bytes"], result["seconds"]))
    lines += ["", "Where the time goes: `ansible-playbook` start-up and one Python process per module (about 1 s of"
              " it importing the `kubernetes` client); under `orchestrator-hang` the API itself takes its 2 s"
              " orchestrator deadline to answer `/ready`. The request count is 1 pod list + 1 event list + 1"
              " Secret read + 1 log read per container + 1 previous-log read per restarted container: it depends on"
              " the number of pods and restarted containers, never on the log length.", "", END]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        path = os.path.join(REPO, "docs", "performance.md")
        try:
            with open(path, encoding="utf-8") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = "# Performance\n\nFigures of the benchmarks in `bench/`; each section is written by its script.\n\n"
        if BEGIN in current and END in current:
            current = current[:current.index(BEGIN)] + text.rstrip("\n") + current[current.index(END) + len(END):]
        else:
            current = current.rstrip("\n") + "\n\n" + text
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(current)
        print("wrote %s" % path)


if __name__ == "__main__":
    main()
