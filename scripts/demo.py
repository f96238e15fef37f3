"""make demo: until the lab and the scenario playbooks land, an honest small demo of the foundation.

It starts a throwaway real PostgreSQL, writes two tenants' audit chains per docs/contract.md, edits
rows in place and deletes others as an incident would, and verifies the chains straight from
PostgreSQL's COPY text output, printing the scope the runbook's "determine scope" step wants.
"""
import datetime
import io
import json
import os
import sys
import tempfile

import psycopg2

from alexlab import pg as labpg
from alexlab.schema import create_audit_tables
from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac

KEY = "demo-hmac-key"


def load(cur, tenant, n):
    start = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    rows = [dict(occurred_at=start + datetime.timedelta(seconds=i), actor="user%d" % (i % 7), action="doc.read",
                 payload={"doc": i}) for i in range(n)]
    buf = io.BytesIO()
    for r in ac.build_chain(KEY, tenant, rows):
        buf.write(ac.copy_line(tenant, r["seq"], r["occurred_at"], r["actor"], r["action"], r["payload"],
                               r["prev_hmac"], r["row_hmac"]) + b"\n")
    buf.seek(0)
    cur.copy_expert("COPY audit_logs FROM STDIN", buf)


def main():
    admin = os.environ.get("ALEX_TEST_DSN")
    datadir = None
    if not admin:
        datadir = tempfile.mkdtemp(prefix="alex-demo-pg-")
        admin, _pid = labpg.start_embedded(datadir)
    dsn = labpg.create_database(admin, prefix="demo")
    try:
        conn = psycopg2.connect(dsn)
        create_audit_tables(conn)
        with conn, conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
            load(cur, "acme", 5000)
            load(cur, "globex", 5000)
            print("wrote 2 tenants x 5000 chained rows")
            cur.execute("UPDATE audit_logs SET payload = '{\"doc\": -1}' WHERE tenant_id = 'acme' AND seq BETWEEN 100 AND 110")
            cur.execute("DELETE FROM audit_logs WHERE tenant_id = 'globex' AND seq BETWEEN 4000 AND 4099")
            print("incident: acme rows 100-110 edited in place, globex rows 4000-4099 deleted")
            buf = io.BytesIO()
            cur.copy_expert("COPY (SELECT tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac "
                            "FROM audit_logs ORDER BY tenant_id, seq) TO STDOUT", buf)
        result = ac.verify_copy_lines(KEY, buf.getvalue().splitlines())
        print(json.dumps(result, indent=2))
        ok = (result["acme"]["segments"] == [{"first_seq": 100, "last_seq": 110, "rows": 11, "kind": "hmac_mismatch"}]
              and result["globex"]["segments"] == [{"first_seq": 4000, "last_seq": 4099, "rows": 100, "kind": "seq_gap"}])
        print("scope found exactly" if ok else "UNEXPECTED SCOPE")
        conn.close()
        return 0 if ok else 1
    finally:
        labpg.drop_database(admin, dsn)
        if datadir:
            labpg.stop_embedded(datadir)


if __name__ == "__main__":
    sys.exit(main())
