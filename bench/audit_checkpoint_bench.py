#!/usr/bin/env python
"""Benchmark of checkpointed, incremental audit-chain verification (issue 12; figures: docs/performance.md).

    .venv/bin/python bench/audit_checkpoint_bench.py [--rows 5000000[,1000000...]] [--tenants 4]
        [--new-rows 10000] [--repeat 5] [--dsn ADMIN_DSN] [--workdir DIR] [--json out.json] [--profile]

For each row count, on one real PostgreSQL (embedded pgserver unless --dsn), in one run:
  1. seed N rows over --tenants tenants (audit_chain_bench's generator and COPY loader);
  2. alex_audit_verify mode=full update_checkpoints=true checkpoint_dir=D (writes the checkpoints), timed,
     and once without any checkpoint option (the plain verification, for reference);
  3. append --new-rows valid rows, each tenant's chain continued from its last seq and row_hmac;
  4. --repeat rounds of: D restored to the checkpoints of step 2, then alex_audit_verify incremental
     (the default mode) and mode=full, both with update_checkpoints=true and D (so both read and write the
     checkpoints), each run as Ansible runs a module (its own process) after sync and a 1 s pause; the
     ratio incremental/full of each round, and their medians;
  5. where the incremental run's time goes: the module's elapsed_seconds against the outside wall clock,
     the same module on an empty database, `python -c 'import ...'` of its imports, and --repeat in-process
     runs with every phase timed (connect, checkpoint files, per-tenant queries, the COPY of the rows,
     writing the checkpoints; medians); EXPLAIN (ANALYZE, BUFFERS) of its per-tenant queries (pages
     touched, which does not depend on the machine's load); with --profile also a cProfile of one
     in-process run (top functions in the JSON);
  6. DirStore.load() and DirStore.write() of the tenants' checkpoints, timed directly (medians);
  7. peak RSS of every module run: largest process (wait4's ru_maxrss) and the process tree (psutil).
Never a test: timings depend on the machine.
"""
import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time

import psycopg2
from psycopg2 import sql

import audit_chain_bench as acb
from alexlab import pg as labpg
from alexlab.schema import create_audit_tables
from ansible.module_utils.testing import patch_module_args
from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint as cpk
from ansible_collections.alexandria.ee.plugins.module_utils import audit_module as am
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store as st
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_store as cps
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_verify as cv
from ansible_collections.alexandria.ee.plugins.module_utils import files
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_client
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

CP_KEY = "bench-checkpoint-key-7f3a9c0e5b1d42a8c6e0f9b3d7a1c5e2"
MODULE = "ansible_collections.alexandria.ee.plugins.modules.alex_audit_verify"
IDENTITY = {"namespace": k8s_client.DEFAULT_NAMESPACE, "release": k8s_client.DEFAULT_RELEASE}


def append_rows(dsn, tenants, total):
    """total new rows split over tenants, each continuing its tenant's chain (last seq and row_hmac)."""
    share, extra = divmod(total, len(tenants))
    started = time.monotonic()
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
        for index, tenant in enumerate(tenants):
            count = share + (1 if index < extra else 0)
            cur.execute("SELECT seq, row_hmac FROM audit_logs WHERE tenant_id = %s ORDER BY seq DESC LIMIT 1",
                        (tenant,))
            last_seq, last_hmac = cur.fetchone()
            cur.copy_expert("COPY audit_logs (tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, "
                            "row_hmac) FROM STDIN",
                            acb.Stream(acb.rows(tenant, count, start=last_seq + 1, prev=last_hmac)), size=1 << 20)
    conn.commit()
    conn.close()
    return time.monotonic() - started


def verify_args(dsn, cp_dir=None, **extra):
    args = {"dsn": dsn, "hmac_key": acb.KEY}
    if cp_dir:
        args.update(checkpoint_dir=cp_dir, checkpoint_key=CP_KEY)
    args.update(extra)
    return args


def run_verify(args, workdir):
    """One module run in its own process: {wall, elapsed (module's own), rss_mb, rss_tree_mb, result}."""
    wall, one, tree, res = acb.module("alex_audit_verify", args, workdir)
    return {"wall": wall, "elapsed": res["elapsed_seconds"], "rss_mb": one, "rss_tree_mb": tree, "result": res}


def restore(saved, cp_dir):
    """The checkpoint directory as step 2 left it (files copied with their modes)."""
    shutil.rmtree(cp_dir, ignore_errors=True)
    shutil.copytree(saved, cp_dir)


def python_imports(repeat):
    """Median wall seconds of a bare interpreter and of the module's imports, each its own process."""
    out = {}
    for label, code in (("python -c pass", "pass"),
                        ("import ansible.module_utils.basic", "import ansible.module_utils.basic"),
                        ("import psycopg2", "import psycopg2"),
                        ("import alex_audit_verify", "import " + MODULE)):
        times = []
        for _round in range(max(5, repeat)):
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.monotonic() - started)
        out[label] = round(acb.median(times), 3)
    return out


def empty_database(admin, workdir, repeat):
    """The incremental run with a checkpoint store on a database whose tables are empty: the fixed cost."""
    dsn = labpg.create_database(admin, prefix="bench")
    try:
        conn = psycopg2.connect(dsn)
        create_audit_tables(conn)
        conn.close()
        cp_dir = os.path.join(workdir, "cp-empty")
        os.makedirs(cp_dir, mode=0o700, exist_ok=True)
        runs = []
        for _round in range(max(5, repeat)):
            acb.settle()
            runs.append(run_verify(verify_args(dsn, cp_dir, update_checkpoints=True), workdir))
    finally:
        labpg.drop_database(admin, dsn)
    return {"wall": round(acb.median([r["wall"] for r in runs]), 3),
            "elapsed": round(acb.median([r["elapsed"] for r in runs]), 3),
            "rss_mb": round(max(r["rss_mb"] for r in runs), 1)}


# Every function the incremental run spends time in, by phase (inclusive times; some nest, see PHASES).
TIMED = [
    (alex_audit_verify, "main", "module main()"),
    (psycopg2, "connect", "connect"),
    (st, "database_identity", "database identity"),
    (am, "checkpoint_stores", "open stores"),
    (cps.DirStore, "load", "DirStore.load (read checkpoint files)"),
    (st.SnapshotTransaction, "__enter__", "snapshot begin"),
    (st.SnapshotTransaction, "__exit__", "snapshot end"),
    (st, "check_tables", "check_tables"),
    (st, "list_tenants", "list_tenants"),
    (cv, "resolve", "resolve (check signatures)"),
    (cpk, "check", "checkpoint signature check"),
    (cv, "verify", "checkpoint_verify.verify"),
    (st, "load_anchors", "load_anchors"),
    (st, "tenant_bounds", "tenant_bounds"),
    (cv, "row_at", "row at checkpoint seq"),
    (st, "scan_tenants", "scan_tenants"),
    (st, "previous_row", "previous_row"),
    (st, "copy_to", "COPY of the rows + HMAC check"),
    (cv, "new_checkpoints", "new_checkpoints (row + sign)"),
    (cv, "advance", "advance (write checkpoints)"),
    (cps.DirStore, "write", "DirStore.write"),
    (files, "write_bytes_atomic", "file write + fsync"),
    (cps, "_fsync_dir", "directory fsync"),
]


@contextlib.contextmanager
def timed_functions(table):
    """Wrap each (owner, name) so its calls and inclusive seconds add up in table[label]."""
    saved = []
    for owner, name, label in TIMED:
        original = getattr(owner, name)
        table[label] = {"calls": 0, "seconds": 0.0}

        def wrapper(*args, _original=original, _entry=table[label], **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                _entry["calls"] += 1
                _entry["seconds"] += time.perf_counter() - started
        saved.append((owner, name, original))
        setattr(owner, name, wrapper)
    try:
        yield table
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def in_process(args):
    """Run the module's main() in this process (imports already done); returns its JSON result."""
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        try:
            alex_audit_verify.main()
        except SystemExit:
            pass
    text = out.getvalue()
    return json.loads(text[text.index("{"):])


def phases(dsn, saved, cp_dir, new_rows, tenants, repeat, profile):
    """Phase times of repeat in-process incremental runs (medians; and a cProfile of another with --profile)."""
    runs = []
    for _round in range(repeat):
        restore(saved, cp_dir)
        acb.settle()
        table = {}
        with timed_functions(table):
            res = in_process(verify_args(dsn, cp_dir, update_checkpoints=True))
        check_incremental(res, new_rows, tenants)
        runs.append((table, res["elapsed_seconds"]))
    out = {"rounds": repeat, "elapsed": acb.median([elapsed for _table, elapsed in runs]), "phases": {}}
    for _owner, _name, label in TIMED:
        out["phases"][label] = {"calls": runs[0][0][label]["calls"],
                                "ms": round(acb.median([t[label]["seconds"] for t, _e in runs]) * 1000, 2),
                                "ms_min": round(min(t[label]["seconds"] for t, _e in runs) * 1000, 2),
                                "ms_max": round(max(t[label]["seconds"] for t, _e in runs) * 1000, 2)}
    if profile:
        restore(saved, cp_dir)
        acb.settle()
        prof = cProfile.Profile()
        prof.enable()
        res = in_process(verify_args(dsn, cp_dir, update_checkpoints=True))
        prof.disable()
        check_incremental(res, new_rows, tenants)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
        out["profile_tottime"] = text.getvalue().splitlines()
    return out


def buffers(dsn, saved, tenant):
    """EXPLAIN (ANALYZE, BUFFERS) of the incremental run's queries for one tenant: pages touched, by query.

    Load-independent evidence that none of them grows with the table: index lookups touch a few pages
    whatever the row count, and the range scan touches the pages of the new rows.
    """
    docs = dict((e.doc["tenant_id"], e.doc) for e in cps.DirStore(saved, IDENTITY).load().values())
    seq = docs[tenant]["last_seq"]
    logs = st.AuditTables().logs
    queries = {
        "tenant_bounds": (sql.SQL("SELECT min(seq), max(seq) FROM {} WHERE tenant_id = %s").format(logs),
                          (tenant,)),
        "row at checkpoint seq": (sql.SQL("SELECT row_hmac, occurred_at::text FROM {} WHERE tenant_id = %s "
                                          "AND seq = %s").format(logs), (tenant, seq)),
        "previous_row": (sql.SQL("SELECT seq, row_hmac FROM {} WHERE tenant_id = %s AND seq < %s ORDER BY seq "
                                 "DESC LIMIT 1").format(logs), (tenant, seq)),
        "range scan (the COPY's query)": (sql.SQL("SELECT {} FROM {} WHERE tenant_id = %s AND seq BETWEEN %s "
                                                  "AND %s ORDER BY seq").format(st._columns(), logs),
                                          (tenant, seq, 2 ** 62)),
    }
    out = {}
    conn = st.tune_session(psycopg2.connect(dsn))
    try:
        with conn.cursor() as cur:
            for label, query in queries.items():
                cur.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query[0], query[1])
                plan = cur.fetchone()[0][0]
                top = plan["Plan"]
                out[label] = {"pages": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
                              "rows": top.get("Actual Rows"), "ms": round(plan["Execution Time"], 3),
                              "node": top["Node Type"]}
        conn.rollback()
    finally:
        conn.close()
    return out


def check_incremental(res, new_rows, tenants):
    """The incremental run read exactly the new rows plus each tenant's checkpoint row, and advanced."""
    assert res["verified"], res["msg"]
    assert all(t["mode"] == "incremental" for t in res["tenants"].values()), res["tenants"]
    assert res["rows_read"] == new_rows + len(tenants), res["rows_read"]
    assert res["checkpoints"]["written"] == {"dir": sorted(tenants)}, res["checkpoints"]


def store_times(saved, workdir, loads=200, writes=20):
    """DirStore.load() and DirStore.write() (every tenant's file rewritten) on a copy of the checkpoints."""
    root = os.path.join(workdir, "cp-store-bench")
    restore(saved, root)
    store = cps.DirStore(root, IDENTITY)
    entries = store.load()
    docs = dict((name, entry.doc) for name, entry in entries.items())
    load_s = []
    for _round in range(loads):
        started = time.perf_counter()
        store.load()
        load_s.append(time.perf_counter() - started)
    write_s = []
    for _round in range(writes):
        started = time.perf_counter()
        store.write(docs, lambda _name, _current: True)
        write_s.append(time.perf_counter() - started)
    check_s = []
    for _round in range(loads):
        started = time.perf_counter()
        for entry in entries.values():
            assert not cpk.check(CP_KEY, entry.doc, IDENTITY, entry.doc["tenant_id"])
        check_s.append(time.perf_counter() - started)
    sizes = [os.path.getsize(os.path.join(store.dir, n)) for n in entries]
    shutil.rmtree(root)
    return {"files": len(entries), "file_bytes": sizes, "load_ms": round(acb.median(load_s) * 1000, 3),
            "write_ms": round(acb.median(write_s) * 1000, 2), "write_ms_max": round(max(write_s) * 1000, 2),
            "check_signatures_ms": round(acb.median(check_s) * 1000, 3)}


def measure(admin, count, tenant_count, new_rows, repeat, workdir, profile):
    dsn = labpg.create_database(admin, prefix="bench")
    tenants = ["tenant-%02d" % (i + 1) for i in range(tenant_count)]
    out = {"rows": count, "tenants": tenant_count, "new_rows": new_rows, "uptime_before": uptime()}
    try:
        out["seed_seconds"] = round(acb.load(dsn, tenants, count // tenant_count), 1)
        print("seeded %d rows in %.1fs" % (count, out["seed_seconds"]), flush=True)
        cp_dir = os.path.join(workdir, "checkpoints")
        saved = os.path.join(workdir, "checkpoints-after-full")
        for path in (cp_dir, saved):
            shutil.rmtree(path, ignore_errors=True)
        os.makedirs(cp_dir, mode=0o700)
        acb.settle()
        first = run_verify(verify_args(dsn, cp_dir, mode="full", update_checkpoints=True), workdir)
        assert first["result"]["verified"] and first["result"]["checkpoints"]["written"] == {"dir": tenants}
        assert cps.DirStore(cp_dir, IDENTITY).describe() in first["result"]["checkpoints"]["stores"]
        shutil.copytree(cp_dir, saved)
        acb.settle()
        plain = run_verify(verify_args(dsn), workdir)
        assert plain["result"]["verified"]
        out["checkpoint_full"] = summary(first)
        out["plain_full"] = summary(plain)
        print(json.dumps({"checkpoint_full": out["checkpoint_full"], "plain_full": out["plain_full"]}), flush=True)
        out["append_seconds"] = round(append_rows(dsn, tenants, new_rows), 3)
        rounds = []
        for _round in range(repeat):
            restore(saved, cp_dir)
            acb.settle()
            inc = run_verify(verify_args(dsn, cp_dir, update_checkpoints=True), workdir)
            check_incremental(inc["result"], new_rows, tenants)
            restore(saved, cp_dir)
            acb.settle()
            full = run_verify(verify_args(dsn, cp_dir, mode="full", update_checkpoints=True), workdir)
            assert full["result"]["verified"] and full["result"]["rows_read"] == count + new_rows
            assert full["result"]["checkpoints"]["written"] == {"dir": tenants}
            entry = {"incremental": summary(inc), "full": summary(full),
                     "ratio_wall": round(inc["wall"] / full["wall"], 4),
                     "ratio_elapsed": round(inc["elapsed"] / full["elapsed"], 4),
                     "load_average": round(os.getloadavg()[0], 2)}
            rounds.append(entry)
            print(json.dumps(entry), flush=True)
        out["rounds"] = rounds
        out["median"] = dict(
            (key, round(acb.median([fn(r) for r in rounds]), 4)) for key, fn in (
                ("incremental_wall", lambda r: r["incremental"]["wall"]),
                ("incremental_elapsed", lambda r: r["incremental"]["elapsed"]),
                ("full_wall", lambda r: r["full"]["wall"]), ("full_elapsed", lambda r: r["full"]["elapsed"]),
                ("ratio_wall", lambda r: r["ratio_wall"]), ("ratio_elapsed", lambda r: r["ratio_elapsed"])))
        out["peak_rss_mb"] = dict((mode, {"largest": max(r[mode]["rss_mb"] for r in rounds),
                                          "tree": max(r[mode]["rss_tree_mb"] for r in rounds)})
                                  for mode in ("incremental", "full"))
        out["in_process"] = phases(dsn, saved, cp_dir, new_rows, tenants, repeat, profile)
        out["buffers"] = buffers(dsn, saved, tenants[0])
        out["store"] = store_times(saved, workdir)
        out["uptime_after"] = uptime()
        print(json.dumps(dict((k, v) for k, v in out.items() if k not in ("rounds", "in_process"))), flush=True)
        print(json.dumps(out["in_process"]["phases"]), flush=True)
        print(json.dumps(out["buffers"]), flush=True)
    finally:
        labpg.drop_database(admin, dsn)
    return out


def summary(run):
    res = run["result"]
    return {"wall": round(run["wall"], 3), "elapsed": run["elapsed"], "rss_mb": round(run["rss_mb"], 1),
            "rss_tree_mb": round(run["rss_tree_mb"], 1), "rows_read": res["rows_read"],
            "processes": res["processes"]}


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="5000000", help="row counts, comma-separated (one set each)")
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--new-rows", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of incremental and full (medians reported)")
    parser.add_argument("--dsn", help="admin DSN of a server to create databases on (default: an embedded one)")
    parser.add_argument("--workdir")
    parser.add_argument("--json")
    parser.add_argument("--profile", action="store_true", help="also cProfile one in-process incremental run")
    args = parser.parse_args()
    counts = [int(c) for c in args.rows.split(",")]
    workdir = args.workdir or tempfile.mkdtemp(prefix="alex-cp-bench-")
    os.makedirs(workdir, exist_ok=True)
    datadir = None
    admin = args.dsn
    if not admin:
        datadir = os.path.join(workdir, "pgdata")
        admin, _pid = labpg.start_embedded(datadir)
    report = {"machine": acb.machine(), "sets": []}
    print(json.dumps(report["machine"]), flush=True)
    try:
        report["python_imports"] = python_imports(args.repeat)
        report["empty_database"] = empty_database(admin, workdir, args.repeat)
        print(json.dumps({"python_imports": report["python_imports"], "empty_database": report["empty_database"]}),
              flush=True)
        for count in counts:
            report["sets"].append(measure(admin, count, args.tenants, args.new_rows, args.repeat, workdir,
                                          args.profile))
    finally:
        if datadir:
            labpg.stop_embedded(datadir)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)  # the embedded server's data: gigabytes at 5M rows
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
