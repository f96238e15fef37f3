#!/usr/bin/env python
"""Benchmark of the audit-chain modules against psql, on one real PostgreSQL (figures: docs/performance.md).

    .venv/bin/python bench/audit_chain_bench.py [--rows 1000000] [--tenants 4] [--big-rows 5000000]
        [--retire-rows 1000000 --bad-rows 10000] [--repeat 3] [--dsn ADMIN_DSN] [--workdir DIR] [--json out.json]

In one run, on the same rows:
  * psql  \\copy (SELECT * FROM audit_logs ORDER BY tenant_id, seq) TO file CSV HEADER   (the baseline)
  * alex_audit_verify of all tenants, run as Ansible runs a module (its own process)
  * alex_audit_export selection=all of all tenants: once with tenants=[...] (one run, one file per tenant,
    as the audit_chain role calls it), and once per tenant with tenant=<t>; together the same rows as psql's
  * --repeat rounds of these (default 3), each round psql first, each step after os.sync() and a 1 s pause;
    the medians of the ratios are reported
  * peak RSS of the largest process of each module run (the kernel's ru_maxrss, from wait4) and of the
    module and its worker processes together (sampled with psutil every 100 ms)
  * with --big-rows: verify and export again on that many rows, to show memory is flat in row count
  * with --retire-rows: one tenant of that many rows with --bad-rows tampered rows: capture, backup,
    then alex_audit_retire, reporting how long it held the writers' lock (incremental and full)
Never a test: timings depend on the machine.
"""
import argparse
import datetime
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import psycopg2

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "lab"))

from alexlab import pg as labpg  # noqa: E402
from alexlab.schema import create_audit_tables  # noqa: E402
from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac  # noqa: E402

KEY = "bench-hmac-key-0c1e2b7d9a4f"
CSV_HEADER = b"tenant_id,seq,occurred_at,actor,action,payload,prev_hmac,row_hmac"
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def rows(tenant, count, start=1, prev=ac.GENESIS):
    """Realistic rows (about 460 bytes each as CSV) generated without building the whole chain in memory.

    start and prev continue a chain: the next seq and the row_hmac of the tenant's last row.
    """
    hasher = ac.ChainHasher(KEY)
    tenant_field = ac.copy_escape(tenant)
    for seq in range(start, start + count):
        occurred = ac.format_timestamptz(T0 + datetime.timedelta(seconds=seq, microseconds=(seq * 7919) % 1000000))
        payload = ac.jsonb_text({"ip": "10.%d.%d.%d" % (seq % 250, seq % 199, seq % 97), "doc": "/documents/%d/report-%d.pdf"
                                 % (seq % 1000, seq), "agent": AGENT, "bytes": seq * 37 % 100000, "ok": seq % 5 != 0,
                                 "tags": ["finance", "q%d" % (seq % 4 + 1)]})
        actor = "user-%d@example.com" % (seq % 5000)
        action = ("document.read", "document.write", "user.login", "share.create")[seq % 4]
        message = "\t".join([tenant_field, str(seq), occurred, actor, action, ac.copy_escape(payload), prev])
        digest = hasher.hexdigest(message.encode("utf-8"))
        yield (message + "\t" + digest + "\n").encode("utf-8")
        prev = digest


class Stream:
    """File-like over a generator of COPY lines (for copy_expert FROM STDIN)."""

    def __init__(self, lines):
        self._lines = lines
        self._buf = b""

    def read(self, size=-1):
        out = [self._buf]
        total = len(self._buf)
        for line in self._lines:
            out.append(line)
            total += len(line)
            if size > 0 and total >= size:
                break
        data = b"".join(out)
        self._buf = b""
        return data

    readline = read


def load_tenant(args):
    dsn, tenant, count = args
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
        cur.copy_expert("COPY audit_logs (tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac) "
                        "FROM STDIN", Stream(rows(tenant, count)), size=1 << 20)
    conn.commit()
    conn.close()
    return count


def load(dsn, tenants, per_tenant):
    conn = psycopg2.connect(dsn)
    create_audit_tables(conn)
    conn.close()
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(load_tenant, [(dsn, t, per_tenant) for t in tenants])
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE audit_logs")
    conn.close()
    return time.monotonic() - started


def tool(name):
    import importlib.util
    spec = importlib.util.find_spec("pgserver")
    path = os.path.join(os.path.dirname(spec.origin), "pginstall", "bin", name)
    return path if os.path.exists(path) else shutil.which(name)


def run_measured(argv, env=None, sample_every=0.1):
    """(seconds, peak RSS of the largest process in MB, peak RSS summed over the tree in MB, stdout).

    The largest process's peak comes from the kernel (wait4's ru_maxrss covers the process and every
    descendant it waited for), so it costs nothing while the command runs. The tree sum is sampled with
    psutil every sample_every seconds: each sample scans /proc (about 1.3 ms here), so sampling every
    20 ms, as this bench first did, took some 7% of a core from the command being timed.
    """
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(proc.pid)
    peak_sum = [0]
    out_chunks = []
    done = threading.Event()

    def reader():
        out_chunks.append(proc.stdout.read())

    def sampler():
        while not done.wait(sample_every):
            try:
                sizes = []
                for p in [root] + root.children(recursive=True):
                    try:
                        sizes.append(p.memory_info().rss)
                    except psutil.Error:
                        pass
                peak_sum[0] = max(peak_sum[0], sum(sizes))
            except psutil.Error:
                pass
    threads = [threading.Thread(target=reader), threading.Thread(target=sampler)]
    for thread in threads:
        thread.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    done.set()
    for thread in threads:
        thread.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit("%s failed: %s %s" % (argv[:3], out_chunks[0][-2000:], err[-2000:]))
    peak_one = usage.ru_maxrss * 1024  # kilobytes on Linux
    return elapsed, peak_one / 1e6, max(peak_sum[0], peak_one) / 1e6, out_chunks[0].decode("utf-8", "replace")


def module(name, args, workdir):
    path = os.path.join(workdir, "args-%s.json" % name)
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    elapsed, one, total, out = run_measured([sys.executable, "-m",
                                             "ansible_collections.alexandria.ee.plugins.modules." + name, path])
    result = json.loads(out[out.index("{"):])
    if result.get("failed"):
        raise SystemExit("%s failed: %s" % (name, result.get("msg")))
    return elapsed, one, total, result


def psql_copy(dsn, dest):
    query = "\\copy (SELECT * FROM audit_logs ORDER BY tenant_id, seq) TO '%s' CSV HEADER" % dest
    return run_measured([tool("psql"), "-X", "-q", "-d", dsn, "-c", query])


def export_all_tenants(dsn, tenants, workdir):
    """alex_audit_export tenants=[...] selection=all: one module run, one file per tenant."""
    dest = os.path.join(workdir, "captures")
    os.makedirs(dest, exist_ok=True)
    seconds, one, _sum, res = module("alex_audit_export", {"dsn": dsn, "tenants": tenants, "selection": "all",
                                                           "dest": dest}, workdir)
    shutil.rmtree(dest)
    return seconds, one, sum(c["bytes"] for c in res["captures"])


def export_each_tenant(dsn, tenants, workdir):
    """alex_audit_export tenant=<t> selection=all, once per tenant (as a loop over the module would)."""
    total = peak = size = 0
    for tenant in tenants:
        dest = os.path.join(workdir, "export-%s.csv" % tenant)
        seconds, one, _sum, res = module("alex_audit_export", {"dsn": dsn, "tenant": tenant, "selection": "all",
                                                               "dest": dest}, workdir)
        total += seconds
        peak = max(peak, one)
        size += res["bytes"]
        os.unlink(dest)
        os.unlink(dest + ".manifest.json")
    return total, peak, size


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def settle():
    """Flush dirty pages and pause, so one step's writeback (psql's and export's files) does not land on the next."""
    os.sync()
    time.sleep(1.0)


def measure_set(label, dsn, tenants, workdir, report, repeat):
    """repeat rounds of: psql, verify, export (one run), export (a run per tenant); ratios per round."""
    rounds = []
    peak = {"verify": 0, "verify_tree": 0, "export": 0, "export_each": 0}
    rows = processes = None
    for _round in range(repeat):
        out = os.path.join(workdir, "psql.csv")
        settle()
        psql_s, _rss, _sum, _out = psql_copy(dsn, out)
        size = os.path.getsize(out)
        os.unlink(out)
        settle()
        verify_s, verify_one, verify_sum, res = module("alex_audit_verify", {"dsn": dsn, "hmac_key": KEY}, workdir)
        assert res["verified"], res["scope"]
        rows = sum(t["rows"] for t in res["tenants"].values())
        processes = res.get("processes")
        settle()
        export_s, export_one, export_bytes = export_all_tenants(dsn, tenants, workdir)
        settle()
        each_s, each_one, each_bytes = export_each_tenant(dsn, tenants, workdir)
        assert export_bytes == each_bytes == size + (len(tenants) - 1) * (len(CSV_HEADER) + 1), \
            (export_bytes, each_bytes, size)
        peak["verify"] = max(peak["verify"], verify_one)
        peak["verify_tree"] = max(peak["verify_tree"], verify_sum)
        peak["export"] = max(peak["export"], export_one)
        peak["export_each"] = max(peak["export_each"], each_one)
        entry = {"psql_seconds": round(psql_s, 2), "verify_seconds": round(verify_s, 2),
                 "verify_ratio": round(verify_s / psql_s, 2), "export_seconds": round(export_s, 2),
                 "export_ratio": round(export_s / psql_s, 2), "export_each_seconds": round(each_s, 2),
                 "export_each_ratio": round(each_s / psql_s, 2), "load_average": round(os.getloadavg()[0], 2)}
        rounds.append(entry)
        print(json.dumps(entry), flush=True)
    summary = {"label": label, "rows": rows, "csv_bytes": size, "verify_processes": processes, "rounds": rounds,
               "verify_peak_rss_mb": round(peak["verify"], 1), "verify_peak_rss_tree_mb": round(peak["verify_tree"], 1),
               "export_peak_rss_mb": round(peak["export"], 1), "export_each_peak_rss_mb": round(peak["export_each"], 1)}
    for key in ("psql_seconds", "verify_ratio", "export_ratio", "export_each_ratio"):
        summary["median_" + key] = round(median([r[key] for r in rounds]), 2)
    report["sets"].append(summary)
    print(json.dumps(dict((k, v) for k, v in summary.items() if k != "rounds")), flush=True)


def retire_lock(dsn, count, bad, workdir, report):
    conn = psycopg2.connect(dsn)
    create_audit_tables(conn)
    conn.close()
    load_tenant((dsn, "big", count))
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE audit_logs")
        # bad rows in ten runs spread over the chain
        step = count // 10
        per = bad // 10
        for i in range(10):
            low = i * step + step // 2
            cur.execute("UPDATE audit_logs SET payload = payload || '{\"tampered\": true}' WHERE tenant_id = 'big' "
                        "AND seq BETWEEN %s AND %s", (low, low + per - 1))
    conn.close()
    base = {"dsn": dsn, "hmac_key": KEY}
    capture = os.path.join(workdir, "capture-big.csv")
    backup = os.path.join(workdir, "pre-retire.dump")
    seconds, _one, _sum, res = module("alex_audit_export", dict(base, tenant="big", dest=capture, force=True), workdir)
    entry = {"tenant_rows": count, "bad_rows": res["rows"], "capture_seconds": round(seconds, 2)}
    seconds, _one, _sum, res = module("alex_audit_backup", {"dsn": dsn, "dest": backup, "force": True}, workdir)
    entry.update(backup_seconds=round(seconds, 2), backup_bytes=res["backup"]["bytes"])
    for mode in ("incremental", "full"):
        args = dict(base, tenant="big", capture=capture, backup=backup, compliance_signoff="BENCH-1",
                    lock_verify=mode, max_backup_age="1d")
        seconds, one, total, res = module("alex_audit_retire", args, workdir)
        assert res["changed"] and res["moved"] == bad, res
        entry["retire_%s" % mode] = {"seconds": round(seconds, 2), "lock_seconds": res["lock_seconds"],
                                     "lock_phases": res["lock_phases"],
                                     "moved": res["moved"], "anchors": len(res["anchors"]),
                                     "peak_rss_mb": round(one, 1), "peak_rss_tree_mb": round(total, 1)}
        if mode == "incremental":
            module("alex_audit_backup", {"dsn": dsn, "dest": backup, "state": "restored"}, workdir)
    report["retire"] = entry
    print(json.dumps(entry), flush=True)


def machine():
    psql = subprocess.run([tool("psql"), "--version"], capture_output=True, text=True, check=False)
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1), "psql": psql.stdout.strip(),
            "load_average": os.getloadavg()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000000)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--big-rows", type=int, default=0)
    parser.add_argument("--retire-rows", type=int, default=0)
    parser.add_argument("--bad-rows", type=int, default=10000)
    parser.add_argument("--dsn", help="admin DSN of a server to create databases on (default: an embedded one)")
    parser.add_argument("--workdir")
    parser.add_argument("--json")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of psql, verify and export (medians reported)")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="alex-bench-")
    os.makedirs(workdir, exist_ok=True)
    datadir = None
    admin = args.dsn
    if not admin:
        datadir = os.path.join(workdir, "pgdata")
        admin, _pid = labpg.start_embedded(datadir)
    report = {"machine": machine(), "sets": []}
    print(json.dumps(report["machine"]), flush=True)
    created = []
    try:
        for count in [args.rows] + ([args.big_rows] if args.big_rows else []):
            dsn = labpg.create_database(admin, prefix="bench")
            created.append(dsn)
            tenants = ["tenant-%02d" % (i + 1) for i in range(args.tenants)]
            seconds = load(dsn, tenants, count // args.tenants)
            print("loaded %d rows in %.1fs" % (count, seconds), flush=True)
            measure_set("%d rows, %d tenants" % (count, args.tenants), dsn, tenants, workdir, report, args.repeat)
            labpg.drop_database(admin, dsn)
            created.remove(dsn)
        if args.retire_rows:
            dsn = labpg.create_database(admin, prefix="bench")
            created.append(dsn)
            retire_lock(dsn, args.retire_rows, args.bad_rows, workdir, report)
    finally:
        for dsn in created:
            labpg.drop_database(admin, dsn)
        if datadir:
            labpg.stop_embedded(datadir)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
