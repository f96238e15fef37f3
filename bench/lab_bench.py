"""Benchmark of the lab (not a test): `alexlab up` to ready, and seed-audit of 4 x 250,000 rows.

Usage: .venv/bin/python bench/lab_bench.py [--runs 5] [--tenants 4] [--rows 250000] [--write]

With --write the figures replace the lab section of docs/performance.md (between the
`lab-bench` markers); other sections of that file are left alone.
"""
import argparse
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
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALEXLAB = os.path.join(os.path.dirname(sys.executable), "alexlab")
BEGIN, END = "<!-- lab-bench:begin -->", "<!-- lab-bench:end -->"


def alexlab(*args):
    started = time.monotonic()
    proc = subprocess.run([ALEXLAB] + list(args), capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("alexlab %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return elapsed, proc.stdout


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = re.findall(r"^model name\s*:\s*(.+)$", handle.read(), re.M)
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            mem_kb = int(re.search(r"MemTotal:\s+(\d+)", handle.read()).group(1))
        memory = "%.0f GiB RAM" % (mem_kb / 1048576.0)
    except (OSError, AttributeError):
        memory = "unknown RAM"
    return "%s, %d cores (os.cpu_count), %s, Linux %s, Python %s" % (
        cpu, os.cpu_count(), memory, platform.release(), platform.python_version())


def summary(values):
    return "min %.2f s, median %.2f s, max %.2f s (%d runs)" % (
        min(values), statistics.median(values), max(values), len(values))


def main():
    parser = argparse.ArgumentParser(description="Benchmark of the lab")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--rows", type=int, default=250000)
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    base = tempfile.mkdtemp(prefix="alexlab-bench-")
    lab = os.path.join(base, "lab")
    fresh, reused = [], []
    try:
        for _run in range(args.runs):
            shutil.rmtree(lab, ignore_errors=True)
            fresh.append(alexlab("up", "--dir", lab)[0])
            alexlab("down", "--dir", lab)
        for _run in range(args.runs):
            reused.append(alexlab("up", "--dir", lab)[0])
            alexlab("down", "--dir", lab)
        alexlab("up", "--dir", lab)
        seed_s, out = alexlab("seed-audit", "--dir", lab, "--tenants", str(args.tenants), "--rows", str(args.rows))
        rows = args.tenants * args.rows
        with open(os.path.join(lab, "lab.json"), encoding="utf-8") as handle:
            info = json.load(handle)
        request = urllib.request.Request(info["api_url"] + "/admin/v1/audit/verify", data=b"{}", method="POST",
                                         headers={"Authorization": "Bearer " + info["admin_token"]})
        started = time.monotonic()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=900) as resp:
            report = json.load(resp)
        verify_s = time.monotonic() - started
        assert report["verified"], "seeded chains must verify"
        alexlab("down", "--dir", lab)
    finally:
        if os.path.exists(os.path.join(lab, "lab.json")):
            subprocess.run([ALEXLAB, "down", "--dir", lab], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)

    section = "\n".join([
        BEGIN,
        "## Lab (`alexlab`)",
        "",
        "Measured with `.venv/bin/python bench/lab_bench.py --runs %d --tenants %d --rows %d --write` on %s, %s." % (
            args.runs, args.tenants, args.rows, machine(), time.strftime("%Y-%m-%d")),
        "",
        "| what | goal | measured |",
        "| --- | --- | --- |",
        "| `alexlab up` to `/ready` 200 and the pod Ready, fresh directory (initdb included) | < 5 s | %s |"
        % summary(fresh),
        "| `alexlab up` again on the same directory (PostgreSQL data kept) | < 5 s | %s |" % summary(reused),
        "| `alexlab seed-audit --tenants %d --rows %d` (%d rows, COPY, HMAC per row) | < 60 s | %.1f s (%.0f rows/s) |"
        % (args.tenants, args.rows, rows, seed_s, rows / seed_s),
        "| `POST /admin/v1/audit/verify` over those %d rows (streamed COPY, one pass) | - | %.1f s |" % (rows, verify_s),
        "",
        "`up` times include starting PostgreSQL (embedded), the supervisor, both containers, and waiting for the",
        "readiness probe; `seed-audit` runs two tenants at a time (`--workers 2`). One-minute load average when",
        "the run started: %.2f, when it ended: %.2f (other work on the machine shows up in these figures)." % (
            load_before, os.getloadavg()[0]),
        END,
    ])
    print(section)
    if args.write:
        path = os.path.join(REPO, "docs", "performance.md")
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Performance\n"
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: section, text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
