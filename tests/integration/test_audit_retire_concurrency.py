"""The retirement as its own process: kill -9 in the middle leaves every table as it was; writers
running all along lose nothing, fail nothing, and the chain verifies afterwards."""
import os
import signal
import threading
import time

import pytest

from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_verify

import audit_helpers as h
from test_audit_retire import prepare

APP = "alexandria.ee audit"


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def backend_moved_rows_and_waits(conn):
    """pid of the retire's backend once it holds the quarantine insert lock and waits on a lock."""
    with conn.cursor() as cur:
        cur.execute("SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                    "WHERE a.application_name = %s AND a.wait_event_type = 'Lock' AND l.granted "
                    "AND l.relation = 'audit_quarantine'::regclass AND l.mode = 'RowExclusiveLock'", (APP,))
        row = cur.fetchone()
    conn.rollback()
    return row[0] if row else None


def backend_gone(conn, pid):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        gone = cur.fetchone()[0] == 0
    conn.rollback()
    return gone


def test_kill_9_after_the_move_leaves_every_table_as_it_was(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 5000) + h.rows_for("other", 100))
    h.tamper(conn, "acme", range(1000, 1100))
    h.delete(conn, "acme", range(3000, 3010))
    args = prepare(pg_dsn, tmp_path, "acme")
    before = h.table_state(conn)
    blocker = h.connect(pg_dsn)
    with blocker.cursor() as cur:
        # SELECTs pass, the anchor INSERT (after the rows were moved) waits
        cur.execute("LOCK TABLE audit_chain_anchors IN SHARE MODE")
    proc = h.run_module_process("alex_audit_retire", args, args_path=str(tmp_path / "args.json"),
                                start_new_session=True)
    watcher = h.connect(pg_dsn)
    try:
        pid = wait_for(lambda: backend_moved_rows_and_waits(watcher), "the retire to move rows and wait")
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        blocker.rollback()
    wait_for(lambda: backend_gone(watcher, pid), "the killed session's backend to end")
    assert h.table_state(conn) == before
    res = h.run_module(alex_audit_verify, dict(dsn=pg_dsn, hmac_key=h.KEY, tenants=["acme"]))
    assert [(s["first_seq"], s["kind"]) for s in res["tenants"]["acme"]["segments"]] == [
        (1000, "hmac_mismatch"), (3000, "seq_gap")]


def test_kill_9_at_any_moment_is_all_or_nothing(pg_dsn, tmp_path):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 60000))
    bad = list(range(20000, 25000)) + list(range(40000, 45000))
    h.tamper(conn, "acme", bad)
    args = prepare(pg_dsn, tmp_path, "acme")
    before = h.table_state(conn)
    watcher = h.connect(pg_dsn)
    outcomes = []
    for delay in (0.2, 0.5, 0.8, 1.1, 1.4, 2.5):
        proc = h.run_module_process("alex_audit_retire", args, args_path=str(tmp_path / "args.json"),
                                    start_new_session=True)
        time.sleep(delay)
        finished = proc.poll() is not None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        wait_for(lambda: not backend_busy(watcher), "the killed session's backends to end")
        state = h.table_state(conn)
        if state == before:
            outcomes.append("before")
            continue
        # committed: then completely
        res = h.run_module(alex_audit_verify, dict(dsn=pg_dsn, hmac_key=h.KEY))
        assert res["verified"] is True
        assert state["quarantine"][0] == len(bad) and state["anchors"][0] == 2
        assert state["logs"][0] == 60000 - len(bad)
        outcomes.append("after" + (" (had finished)" if finished else ""))
        restored = h.run_module(alex_audit_backup, dict(dsn=pg_dsn, dest=args["backup"], state="restored"))
        assert restored["changed"] and h.table_state(conn) == before
    assert "before" in outcomes, outcomes


def backend_busy(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP,))
        busy = cur.fetchone()[0]
    conn.rollback()
    return busy


@pytest.mark.parametrize("lock_verify", ["incremental", "full"])
def test_writers_wait_lose_nothing_and_the_chain_verifies(pg_dsn, tmp_path, lock_verify):
    conn = h.setup_tables(pg_dsn)
    h.load(conn, h.rows_for("acme", 40000) + h.rows_for("other", 1000))
    h.tamper(conn, "acme", list(range(5000, 6000)) + [30000])
    h.delete(conn, "acme", range(12000, 12050))
    args = dict(prepare(pg_dsn, tmp_path, "acme"), lock_verify=lock_verify)
    stop = threading.Event()
    written = {"acme": [], "other": []}
    failures = []

    def writer(tenant, n):
        wconn = h.connect(pg_dsn)
        try:
            while not stop.is_set():
                try:
                    seq = h.write_audit(wconn, tenant, "concurrent.%d" % n)
                    written[tenant].append((seq, time.monotonic()))
                except Exception as exc:  # any failure is a lost write
                    failures.append(repr(exc))
                    wconn.rollback()
        finally:
            wconn.close()

    threads = [threading.Thread(target=writer, args=(t, i)) for i, t in enumerate(["acme", "acme", "other"])]
    for t in threads:
        t.start()
    time.sleep(0.3)
    started = time.monotonic()
    proc = h.run_module_process("alex_audit_retire", args, args_path=str(tmp_path / "args.json"))
    out, err = proc.communicate(timeout=300)
    ended = time.monotonic()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert proc.returncode == 0, err
    result = h.json.loads(out)
    assert result["changed"] is True and result["msg"].startswith("audit chain anchor reset"), result
    assert failures == []
    during = [s for s, at in written["acme"] if started <= at <= ended]
    assert during, "no write happened while the retirement ran"
    # no write lost: every seq a writer got back is in the table, once
    with conn.cursor() as cur:
        cur.execute("SELECT seq FROM audit_logs WHERE tenant_id = 'acme' AND action LIKE 'concurrent.%%'")
        stored = sorted(r[0] for r in cur.fetchall())
    conn.rollback()
    assert stored == sorted(s for s, _at in written["acme"])
    assert len(set(stored)) == len(stored)
    res = h.run_module(alex_audit_verify, dict(dsn=pg_dsn, hmac_key=h.KEY))
    assert res["verified"] is True, res["scope"]
    assert res["tenants"]["acme"]["rows"] == 40000 - 1001 - 50 + len(stored)
