"""The API's database work: users, tenants, quotas, audit writes and verification.

Every session pins TimeZone=UTC and DateStyle=ISO, YMD (contract section 4). The audit
message is never rebuilt from Python values: the server renders `payload::jsonb::text` and
the timestamp, and the tip is checked on the exact COPY text PostgreSQL prints.
"""
import contextlib
import hmac
import io
import json
import os
import threading

import psycopg2

from alexlab.shared import audit_chain as ac
from alexlab.shared import audit_keyring as akr

SESSION_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c statement_timeout=15000"
QUOTA_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('alexandria.quota', 0))"
AUDIT_COLUMNS = "tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac"
ROTATION_COLUMNS = akr.ROTATION_COLUMNS
ANCHOR_COLUMNS = ("tenant_id", "resume_seq", "resume_prev_hmac", "retired_first_seq", "retired_last_seq",
                  "retired_rows", "retired_sha256", "capture_sha256", "backup_sha256", "signoff", "reason",
                  "anchor_hmac")


class NotFound(Exception):
    pass


class Exists(Exception):
    pass


class QuotaExceeded(Exception):
    def __init__(self, quota, current, maximum):
        super().__init__(quota)
        self.body = {"error": "quota_exceeded", "quota": quota, "current": current, "max": maximum}


class ChainBroken(Exception):
    def __init__(self, tenant_id, seq, kind):
        super().__init__("audit chain broken")
        self.tenant_id, self.seq, self.kind = tenant_id, seq, kind


def rfc3339(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


class Db:
    """A small pool of pinned sessions; a broken connection is dropped, never reused."""

    def __init__(self, dsn, max_idle=8):
        self.dsn = dsn
        self.max_idle = max_idle
        self._idle = []
        self._lock = threading.Lock()

    def _connect(self):
        return psycopg2.connect(self.dsn, options=SESSION_OPTIONS, connect_timeout=3,
                                application_name="alexandria-api")

    @contextlib.contextmanager
    def conn(self):
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok and not conn.closed and conn.status == psycopg2.extensions.STATUS_READY:
                with self._lock:
                    if len(self._idle) < self.max_idle:
                        self._idle.append(conn)
                        conn = None
            if conn is not None:
                try:
                    if not conn.closed:
                        conn.rollback()
                    conn.close()
                except psycopg2.Error:
                    pass

    def ping(self):
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
            conn.rollback()

    # -- users and tenants -------------------------------------------------------------

    def counts(self):
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT (SELECT count(*) FROM users WHERE status = 'active'), (SELECT count(*) FROM tenants)")
            seats, tenants = cur.fetchone()
            conn.rollback()
        return seats, tenants

    @staticmethod
    def _user(row):
        return {"id": row[0], "username": row[1], "tenant_id": row[2], "status": row[3],
                "created_at": rfc3339(row[4]), "last_active_at": rfc3339(row[5])}

    USER_SELECT = "SELECT id, username, tenant_id, status, created_at, last_active_at FROM users"

    def list_users(self, status=None):
        with self.conn() as conn, conn.cursor() as cur:
            if status:
                cur.execute(self.USER_SELECT + " WHERE status = %s ORDER BY id", (status,))
            else:
                cur.execute(self.USER_SELECT + " ORDER BY id")
            rows = cur.fetchall()
            conn.rollback()
        return [self._user(r) for r in rows]

    def deactivate(self, user_id):
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET status = 'deactivated' WHERE id = %s AND status = 'active' "
                        "RETURNING id, username, tenant_id, status, created_at, last_active_at", (user_id,))
            row = cur.fetchone()
            changed = row is not None
            if row is None:
                cur.execute(self.USER_SELECT + " WHERE id = %s", (user_id,))
                row = cur.fetchone()
            conn.commit()
        if row is None:
            raise NotFound()
        return self._user(row), changed

    def activity(self, user_id):
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET last_active_at = now() WHERE id = %s "
                        "RETURNING id, username, tenant_id, status, created_at, last_active_at", (user_id,))
            row = cur.fetchone()
            if row is not None:
                cur.execute("UPDATE tenants SET last_active_at = now() WHERE id = %s", (row[2],))
            conn.commit()
        if row is None:
            raise NotFound()
        return self._user(row)

    def create_user(self, username, tenant_id, max_seats):
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute(QUOTA_LOCK_SQL)
            cur.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,))
            if cur.fetchone() is None:
                raise NotFound()
            cur.execute("SELECT 1 FROM users WHERE tenant_id = %s AND username = %s", (tenant_id, username))
            if cur.fetchone() is not None:
                raise Exists()
            cur.execute("SELECT count(*) FROM users WHERE status = 'active'")
            current = cur.fetchone()[0]
            if current >= max_seats:
                raise QuotaExceeded("seats", current, max_seats)
            cur.execute("INSERT INTO users (username, tenant_id) VALUES (%s, %s) "
                        "RETURNING id, username, tenant_id, status, created_at, last_active_at", (username, tenant_id))
            row = cur.fetchone()
            conn.commit()
        return self._user(row)

    TENANT_SELECT = (
        "SELECT t.id, t.name, t.created_at, t.last_active_at,"
        " (SELECT count(*) FROM users u WHERE u.tenant_id = t.id),"
        " (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.status = 'active'),"
        " (SELECT count(*) FROM audit_logs a WHERE a.tenant_id = t.id)"
        " FROM tenants t")

    @staticmethod
    def _tenant(row):
        return {"id": row[0], "name": row[1], "created_at": rfc3339(row[2]), "last_active_at": rfc3339(row[3]),
                "users": row[4], "active_users": row[5], "audit_rows": row[6]}

    def list_tenants(self):
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute(self.TENANT_SELECT + ' ORDER BY t.id COLLATE "C"')
            rows = cur.fetchall()
            conn.rollback()
        return [self._tenant(r) for r in rows]

    def create_tenant(self, tenant_id, name, max_tenants):
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute(QUOTA_LOCK_SQL)
            cur.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,))
            if cur.fetchone() is not None:
                raise Exists()
            cur.execute("SELECT count(*) FROM tenants")
            current = cur.fetchone()[0]
            if current >= max_tenants:
                raise QuotaExceeded("tenants", current, max_tenants)
            cur.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", (tenant_id, name))
            cur.execute(self.TENANT_SELECT + " WHERE t.id = %s", (tenant_id,))
            row = cur.fetchone()
            conn.commit()
        return self._tenant(row)

    # -- audit ---------------------------------------------------------------------------

    @staticmethod
    def _anchors(cur, tenant_id=None):
        query = "SELECT %s FROM audit_chain_anchors" % ", ".join(ANCHOR_COLUMNS)
        if tenant_id is None:
            cur.execute(query)
        else:
            cur.execute(query + " WHERE tenant_id = %s", (tenant_id,))
        return [dict(zip(ANCHOR_COLUMNS, row)) for row in cur.fetchall()]

    @staticmethod
    def _rotations(cur, tenant_id):
        cur.execute("SELECT " + ", ".join(ROTATION_COLUMNS) + " FROM audit_key_rotations WHERE tenant_id = %s",
                    (tenant_id,))
        return {tenant_id: [dict(zip(ROTATION_COLUMNS, row)) for row in cur.fetchall()]}

    @staticmethod
    def _next(cur, tenant_id, keys, anchors, check_tip):
        """(next seq, its prev_hmac, anchor resume seq or None) per the contract's writer rules, lock held."""
        cur.execute(
            "SELECT (SELECT max(seq) FROM audit_logs WHERE tenant_id = %(t)s),"
            " (SELECT max(seq) FROM audit_quarantine WHERE tenant_id = %(t)s),"
            " (SELECT max(retired_last_seq) FROM audit_chain_anchors WHERE tenant_id = %(t)s)", {"t": tenant_id})
        last_seq, quarantined, retired = cur.fetchone()
        tip = None
        if last_seq is not None:
            tip = Db._check_tip(cur, keys, tenant_id, anchors, check_tip)
        next_seq = max(last_seq or 0, quarantined or 0, retired or 0) + 1
        if tip is not None and tip[0] == next_seq - 1:
            return next_seq, tip[1], None
        if next_seq in anchors:
            return next_seq, anchors[next_seq]["resume_prev_hmac"], next_seq
        return next_seq, ac.GENESIS, None

    def _rotate_locked(self, cur, keyring, tenant_id, keys):
        """Write the tenant's rotation record when its current epoch is not the active key's (lock held).

        The record commits to the seq and prev_hmac the next row gets, so no row can fall between two epochs.
        Returns the record written, or None.
        """
        current = keys.tenant(tenant_id).epochs[-1]
        if current.key_id == keyring.active_id:
            return None
        anchors = ac.check_anchors(keys, self._anchors(cur, tenant_id))[0].get(tenant_id, {})
        next_seq, prev, _resumed = self._next(cur, tenant_id, keys, anchors, check_tip=False)
        old = keyring.keys.get(current.key_id) or {}
        reason = "planned" if old.get("status") == "retired" and old.get("reason") != "compromise" else "compromise"
        cur.execute("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        record = {"tenant_id": tenant_id, "first_seq": next_seq, "old_key_id": current.key_id,
                  "new_key_id": keyring.active_id, "reason": reason, "old_last_seq": next_seq - 1,
                  "old_last_row_hmac": prev, "rotated_at": cur.fetchone()[0]}
        record = akr.sign_rotation(record, keyring.key(keyring.active_id), old.get("key"))
        cur.execute("INSERT INTO audit_key_rotations (" + ", ".join(ROTATION_COLUMNS) + ") VALUES (" +
                    ", ".join(["%s"] * len(ROTATION_COLUMNS)) + ")", tuple(record[c] for c in ROTATION_COLUMNS))
        return record

    def rotate_all(self, keyring):
        """At start: a rotation record for every tenant (with rows, or in the tenants table) not yet on the active key."""
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM tenants UNION SELECT DISTINCT tenant_id FROM audit_logs")
            tenants = sorted(row[0] for row in cur.fetchall())
            conn.rollback()
        written = []
        for tenant_id in tenants:
            with self.conn() as conn, conn.cursor() as cur:
                cur.execute(ac.TENANT_LOCK_SQL, (tenant_id,))
                keys = akr.EpochKeys(keyring, self._rotations(cur, tenant_id))
                record = self._rotate_locked(cur, keyring, tenant_id, keys)
                conn.commit()
            if record:
                written.append(record)
        return written

    def audit_write(self, keyring, tenant_id, actor, action, payload_json):
        """Append one row under the tenant's writer lock, with the keyring's active key.

        Returns (seq, row_hmac, anchor resume seq or None, rotation record written or None).
        """
        hasher = ac.ChainHasher(keyring.key(keyring.active_id))
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute(ac.TENANT_LOCK_SQL, (tenant_id,))
            cur.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,))
            if cur.fetchone() is None:
                raise NotFound()
            keys = akr.EpochKeys(keyring, self._rotations(cur, tenant_id))
            rotated = self._rotate_locked(cur, keyring, tenant_id, keys)
            if rotated:
                keys = akr.EpochKeys(keyring, self._rotations(cur, tenant_id))
            anchors = ac.check_anchors(keys, self._anchors(cur, tenant_id))[0].get(tenant_id, {})
            next_seq, prev, resumed = self._next(cur, tenant_id, keys, anchors, check_tip=True)
            cur.execute("SELECT %s::jsonb::text, clock_timestamp()::text", (payload_json,))
            payload_text, occurred_text = cur.fetchone()
            message = ac.row_message(tenant_id, next_seq, occurred_text, actor, action, payload_text, prev)
            digest = hasher.hexdigest(message)
            cur.execute("INSERT INTO audit_logs (" + AUDIT_COLUMNS + ") VALUES "
                        "(%s, %s, %s::timestamptz, %s, %s, %s::jsonb, %s, %s)",
                        (tenant_id, next_seq, occurred_text, actor, action, payload_text, prev, digest))
            cur.execute("UPDATE tenants SET last_active_at = now() WHERE id = %s", (tenant_id,))
            conn.commit()
        return next_seq, digest, resumed, rotated

    @staticmethod
    def _copy(cur, query, params, sink):
        cur.copy_expert(cur.mogrify(query, params).decode("utf-8"), sink)

    @staticmethod
    def _check_tip(cur, keys, tenant_id, anchors, check=True):
        """Verify the last row's HMAC (with its epoch's key) and its link; returns (seq, row_hmac) or raises ChainBroken.

        check=False only reads the tip (a rotation record commits to what is there, verified or not).
        """
        buf = io.BytesIO()
        Db._copy(cur, "COPY (SELECT " + AUDIT_COLUMNS + " FROM audit_logs WHERE tenant_id = %s "
                 "ORDER BY seq DESC LIMIT 2) TO STDOUT", (tenant_id,), buf)
        lines = buf.getvalue().splitlines()
        _t, seq, message, prev, stored = ac.split_copy_line(lines[0])
        if not check:
            return seq, stored.decode("ascii")
        key = keys.key_for(tenant_id, seq)
        if key is None:
            raise ChainBroken(tenant_id, seq, akr.KIND_UNKNOWN_KEY)
        if not hmac.compare_digest(ac.ChainHasher(key).hexdigest(message).encode("ascii"), stored):
            raise ChainBroken(tenant_id, seq, ac.KIND_HMAC)
        expected = None
        if seq == 1:
            expected = ac.GENESIS.encode("ascii")
        elif len(lines) > 1 and ac.split_copy_line(lines[1])[1] == seq - 1:
            expected = ac.split_copy_line(lines[1])[4]
        elif seq in anchors:
            expected = anchors[seq]["resume_prev_hmac"].encode("ascii")
        if expected is not None and prev != expected:
            raise ChainBroken(tenant_id, seq, ac.KIND_LINK)
        return seq, stored.decode("ascii")

    def verify_all(self, keyring):
        """Verify every tenant from PostgreSQL's COPY text, streamed (no table held in memory), each key epoch
        with its own key.

        Returns (results {tenant: result}, valid anchors [dict], invalid anchors [dict]).
        """
        with self.conn() as conn, conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SET LOCAL statement_timeout = 0")
            cur.execute("SELECT " + ", ".join(ROTATION_COLUMNS) + " FROM audit_key_rotations")
            records = {}
            for row in cur.fetchall():
                records.setdefault(row[0], []).append(dict(zip(ROTATION_COLUMNS, row)))
            key = akr.EpochKeys(keyring, records)
            valid, invalid = ac.check_anchors(key, self._anchors(cur))
            read_fd, write_fd = os.pipe()
            failure = []

            def produce():
                try:
                    with os.fdopen(write_fd, "wb", buffering=1 << 20) as sink:
                        cur.copy_expert("COPY (SELECT " + AUDIT_COLUMNS + " FROM audit_logs "
                                        "ORDER BY tenant_id, seq) TO STDOUT", sink)
                except Exception as exc:  # re-raised below, in the caller's thread
                    failure.append(exc)

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            with os.fdopen(read_fd, "rb", buffering=1 << 20) as source:
                results = ac.verify_copy_lines(key, (line[:-1] for line in source), valid)
            producer.join()
            conn.rollback()
        if failure:
            raise failure[0]
        anchors = [a for per in valid.values() for a in per.values()]
        return results, anchors, invalid


def payload_json(value):
    """The request's payload as JSON text for the server to render as jsonb."""
    return json.dumps(value, ensure_ascii=False)


def anchor_key(anchor):
    return (anchor["tenant_id"], int(anchor["resume_seq"]))


def tenant_words(tenant_id):
    return json.dumps(tenant_id, ensure_ascii=False)
