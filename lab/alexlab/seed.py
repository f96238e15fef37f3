"""Fixtures: valid audit chains loaded fast with COPY FROM STDIN, and users of different ages.

Both write SQL directly (like a restore or a data import would), bypassing the API's quotas.
"""
import concurrent.futures
import json
import secrets
import time

from alexlab.common import LabError
from alexlab.labclient import LabClient
from alexlab.shared import audit_chain as ac
from alexlab.shared import audit_keyring as akr

ACTIONS = ("doc.read", "doc.write", "user.login", "user.logout", "policy.update")


class ChainSource:
    """A file-like object COPY reads from: one tenant's chain, generated as it is read."""

    BATCH = 2000

    def __init__(self, key, tenant_id, start_seq, prev_hmac, rows, first_epoch):
        self.hasher = ac.ChainHasher(key)
        self.tenant = ac.copy_escape(tenant_id)
        self.tenant_id = tenant_id
        self.seq, self.end = start_seq, start_seq + rows
        self.prev = prev_hmac
        self.epoch = first_epoch
        self.buffer = b""
        self._check_format()

    @staticmethod
    def _payload(seq):
        # jsonb's own text output for {"n": seq, "doc": seq % 1000}: keys by length, then bytes.
        return '{"n": %d, "doc": %d}' % (seq, seq % 1000)

    def _fields(self, seq):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(self.epoch + seq))
        return stamp, "user-%d" % (seq % 50), ACTIONS[seq % len(ACTIONS)], self._payload(seq)

    def _check_format(self):
        """The fast path below must print exactly what audit_chain's encoder prints."""
        stamp, actor, action, payload = self._fields(self.seq)
        expected = ac.row_message(self.tenant_id, self.seq, stamp, actor, action, {"n": self.seq, "doc": self.seq % 1000},
                                  self.prev)
        fast = ("%s\t%d\t%s\t%s\t%s\t%s\t%s" % (self.tenant, self.seq, stamp, actor, action, payload, self.prev)).encode()
        if fast != expected:
            raise RuntimeError("seed encoding drifted from audit_chain.row_message")

    def _generate(self):
        lines = []
        hexdigest = self.hasher.hexdigest
        tenant, prev, epoch = self.tenant, self.prev, self.epoch
        stop = min(self.seq + self.BATCH, self.end)
        for seq in range(self.seq, stop):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch + seq))
            message = "%s\t%d\t%s\tuser-%d\t%s\t{\"n\": %d, \"doc\": %d}\t%s" % (
                tenant, seq, stamp, seq % 50, ACTIONS[seq % 5], seq, seq % 1000, prev)
            encoded = message.encode("utf-8")
            prev = hexdigest(encoded)
            lines.append(encoded + b"\t" + prev.encode("ascii") + b"\n")
        self.seq, self.prev = stop, prev
        return b"".join(lines)

    def read(self, size=-1):
        while (size < 0 or len(self.buffer) < size) and self.seq < self.end:
            self.buffer += self._generate()
        if size < 0:
            size = len(self.buffer)
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return chunk

    def readline(self):  # pragma: no cover - COPY FROM only calls read()
        return self.read(8192)


def chain_tip(cur, key, tenant_id):
    """(next seq, prev_hmac) per the contract's writer rules."""
    cur.execute("SELECT (SELECT max(seq) FROM audit_logs WHERE tenant_id = %(t)s),"
                " (SELECT max(seq) FROM audit_quarantine WHERE tenant_id = %(t)s),"
                " (SELECT max(retired_last_seq) FROM audit_chain_anchors WHERE tenant_id = %(t)s)", {"t": tenant_id})
    last, quarantined, retired = cur.fetchone()
    next_seq = max(last or 0, quarantined or 0, retired or 0) + 1
    if last is not None and last == next_seq - 1:
        cur.execute("SELECT row_hmac FROM audit_logs WHERE tenant_id = %s AND seq = %s", (tenant_id, last))
        return next_seq, cur.fetchone()[0]
    columns = ("tenant_id", "resume_seq", "resume_prev_hmac", "retired_first_seq", "retired_last_seq", "retired_rows",
               "retired_sha256", "capture_sha256", "backup_sha256", "signoff", "reason", "anchor_hmac")
    cur.execute("SELECT %s FROM audit_chain_anchors WHERE tenant_id = %%s AND resume_seq = %%s" % ", ".join(columns),
                (tenant_id, next_seq))
    row = cur.fetchone()
    if row:
        valid, _invalid = ac.check_anchors(key, [dict(zip(columns, row))])
        if valid:
            return next_seq, valid[tenant_id][next_seq]["resume_prev_hmac"]
    return next_seq, ac.GENESIS


def epoch_key(cur, keyring, tenant_id):
    """The key of the tenant's current key epoch (its last rotation record's, or the genesis key)."""
    cur.execute("SELECT " + ", ".join(akr.ROTATION_COLUMNS) + " FROM audit_key_rotations WHERE tenant_id = %s",
                (tenant_id,))
    records = {tenant_id: [dict(zip(akr.ROTATION_COLUMNS, row)) for row in cur.fetchall()]}
    epoch = akr.EpochKeys(keyring, records).tenant(tenant_id).epochs[-1]
    if epoch.key is None:
        raise LabError("tenant %r is in the epoch of key %s, which is not in the keyring" % (tenant_id, epoch.key_id))
    return epoch.key


def lab_keyring(client):
    """The keyring of the main Secret (or the single key audit-hmac-key)."""
    genesis = client.secret_value(client.release, "audit-hmac-key") or client.info["hmac_key"].encode("utf-8")
    text = client.secret_value(client.release, "audit-hmac-keyring")
    return akr.parse_keyring(text, genesis) if text else akr.Keyring.single(genesis)


def seed_tenant(client, keyring, tenant_id, rows):
    conn = client.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(ac.TENANT_LOCK_SQL, (tenant_id,))
            cur.execute("INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                        (tenant_id, "seeded tenant %s" % tenant_id))
            key = epoch_key(cur, keyring, tenant_id)
            start, prev = chain_tip(cur, key, tenant_id)
            source = ChainSource(key, tenant_id, start, prev, rows, int(time.time()) - rows - start - 60)
            cur.copy_expert("COPY audit_logs (tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac) "
                            "FROM STDIN", source, size=1 << 20)
        conn.commit()
    finally:
        conn.close()
    return tenant_id, start, start + rows - 1


def cmd_seed_audit(args):
    if args.tenants < 1 or args.rows < 1 or args.workers < 1:
        raise LabError("--tenants, --rows and --workers must be at least 1")
    client = LabClient(args.dir)
    key = lab_keyring(client)
    tenants = ["%s-%03d" % (args.prefix, i) for i in range(1, args.tenants + 1)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(args.workers, len(tenants))) as pool:
        done = list(pool.map(lambda t: seed_tenant(client, key, t, args.rows), tenants))
    elapsed = time.monotonic() - started
    for tenant_id, first, last in done:
        print("seeded tenant %s: seq %d-%d" % (tenant_id, first, last))
    print("seeded %d rows for %d tenants in %.1fs" % (args.rows * len(tenants), len(tenants), elapsed))
    return 0


def cmd_seed_users(args):
    if min(args.active, args.inactive, args.never_active) < 0 or args.inactive_days < 1:
        raise LabError("counts must not be negative and --inactive-days must be at least 1")
    client = LabClient(args.dir)
    tag = secrets.token_hex(2)
    conn = client.connect()
    result = {"active": [], "inactive": [], "never_active": []}
    try:
        with conn.cursor() as cur:
            tenant = args.tenant
            if tenant is None:
                cur.execute('SELECT id FROM tenants ORDER BY id COLLATE "C" LIMIT 1')
                row = cur.fetchone()
                tenant = row[0] if row else "lab"
            cur.execute("INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING", (tenant, tenant))
            plan = [("active", args.active, "now() - interval '30 days'", "now() - make_interval(mins => %(i)s)"),
                    ("inactive", args.inactive, "now() - make_interval(days => %(d)s + 30)",
                     "now() - make_interval(days => %(d)s, mins => %(i)s)"),
                    ("never_active", args.never_active, "now() - make_interval(days => %(d)s + 30)", "NULL")]
            for kind, count, created, last_active in plan:
                for index in range(count):
                    cur.execute("INSERT INTO users (username, tenant_id, created_at, last_active_at) VALUES "
                                "(%(u)s, %(t)s, " + created + ", " + last_active + ") RETURNING id",
                                {"u": "%s-%s-%03d" % (kind.replace("_", "-"), tag, index), "t": tenant,
                                 "d": args.inactive_days, "i": index})
                    result[kind].append(cur.fetchone()[0])
        conn.commit()
    finally:
        conn.close()
    result["tenant_id"] = tenant
    print(json.dumps(result, sort_keys=True))
    return 0
