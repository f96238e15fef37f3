# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-operation PostgreSQL backup of runbook scenario 3 and its restore: no Ansible imports.

A backup is ``pg_dump --format=custom`` run on a snapshot this code exported, so the row count
and fingerprint recorded for each audit table in the manifest describe exactly the rows in
the dump. It is verified by reading it back (``pg_restore --list`` must list the dump's header
and a TABLE DATA entry for every audit table) and by its SHA-256, never by an exit code alone.

The restore (the runbook's Rollback) replaces the rows of the audit tables with the dump's, in
one transaction, and checks the restored rows against the manifest's fingerprints before
committing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import shutil
import subprocess

from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files
from ansible_collections.alexandria.ee.plugins.module_utils import pg

try:
    import psycopg2
    import psycopg2.extensions
    from psycopg2 import sql
except ImportError:  # pg.connect reports it
    psycopg2 = None

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class BackupError(audit_store.AuditError):
    """A backup or restore failure, phrased for an operator."""


def binary_version(path):
    """(major, text) of a PostgreSQL client binary, or None when it does not run."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out.stdout or "")
    if out.returncode != 0 or not match:
        return None
    return int(match.group(1)), out.stdout.strip()


def candidate_dirs():
    """Directories that may hold pg_dump: PATH, distribution layouts, the pgserver wheel."""
    dirs = []
    found = shutil.which("pg_dump")
    if found:
        dirs.append(os.path.dirname(os.path.realpath(found)))
    patterns = ["/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin",
                "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin"]
    for pattern in patterns:
        dirs.extend(sorted(glob.glob(pattern)))
    try:
        import importlib.util
        spec = importlib.util.find_spec("pgserver")
        if spec is not None and spec.origin:
            dirs.append(os.path.join(os.path.dirname(spec.origin), "pginstall", "bin"))
    except (ImportError, ValueError):
        pass
    unique = []
    for directory in dirs:
        if directory not in unique and os.path.isfile(os.path.join(directory, "pg_dump")):
            unique.append(directory)
    return unique


def find_tools(server_major, pg_dump_path=None, pg_restore_path=None):
    """{"pg_dump": path, "pg_restore": path, "major": int, "version": text} able to dump server_major.

    pg_dump refuses a server newer than itself: the closest major >= the server's wins.
    """
    if pg_dump_path:
        version = binary_version(pg_dump_path)
        if version is None:
            raise BackupError("pg_dump_path %s does not run (pg_dump --version failed)" % pg_dump_path)
        if version[0] < server_major:
            raise BackupError("pg_dump_path %s is version %d, older than the server (%d): it would refuse to dump it"
                              % (pg_dump_path, version[0], server_major))
        restore = pg_restore_path or os.path.join(os.path.dirname(pg_dump_path), "pg_restore")
        return {"pg_dump": pg_dump_path, "pg_restore": restore, "major": version[0], "version": version[1]}
    seen = []
    best = None
    for directory in candidate_dirs():
        path = os.path.join(directory, "pg_dump")
        version = binary_version(path)
        if version is None:
            continue
        seen.append("%s (%d)" % (path, version[0]))
        if version[0] >= server_major and (best is None or version[0] < best[1]):
            best = (path, version[0], version[1])
    if best is None:
        raise BackupError("no pg_dump of version %d or newer found (server is %d; found: %s); install one or set "
                          "pg_dump_path" % (server_major, server_major, ", ".join(seen) or "none"))
    restore = pg_restore_path or os.path.join(os.path.dirname(best[0]), "pg_restore")
    return {"pg_dump": best[0], "pg_restore": restore, "major": best[1], "version": best[2]}


def libpq_environment(dsn, kwargs):
    """(conninfo without password, env) for client binaries: the password only travels in PGPASSWORD."""
    params = psycopg2.extensions.parse_dsn(dsn) if dsn else {}
    params.update(pg.with_tls_default(dsn, kwargs))  # the same certificate check as the module's own connection
    params.pop("connect_timeout", None)
    params.pop("application_name", None)
    env = dict(os.environ)
    for name in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS"):
        env.pop(name, None)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = password
    params["application_name"] = "alexandria.ee backup"
    return psycopg2.extensions.make_dsn(**params), env


def _run(argv, env, secrets, what, timeout=None):
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackupError("%s could not run: %s" % (what, exc.__class__.__name__))
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BackupError(audit_store_mask("%s failed (exit %d): %s" % (what, proc.returncode, " / ".join(err[-3:])),
                                           secrets))
    return proc


def audit_store_mask(text, secrets):
    for secret in sorted(secrets or (), key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


def audit_table_set(cur, tables):
    """[(identifier, name)] of the audit tables: the three, and the key rotation records where the deployment has
    them (docs/contract.md, "Key epochs"): without them a restored chain could not tell its epochs apart."""
    found = [(tables.logs, tables.table), (tables.anchors, tables.anchor_table),
             (tables.quarantine, tables.quarantine_table)]
    cur.execute("SELECT to_regclass(%s)", (tables.rotations.as_string(cur),))
    if cur.fetchone()[0] is not None:
        found.append((tables.rotations, tables.rotation_table))
    return found


def table_names(tables, counted=None):
    """The table names a backup holds: those its manifest's table_rows count (older manifests: the three)."""
    counted = counted or {}
    names = [tables.table, tables.anchor_table, tables.quarantine_table]
    if "%s.%s" % (tables.schema, tables.rotation_table) in counted:
        names.append(tables.rotation_table)
    return names


def table_fingerprints(cur, tables):
    """{"schema.table": {"rows": n, "fingerprint": text}} of the audit tables (audit_table_set)."""
    out = {}
    for ident, name in audit_table_set(cur, tables):
        cur.execute(sql.SQL("SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text "
                            "FROM {} t").format(ident))
        rows, fingerprint = cur.fetchone()
        out["%s.%s" % (tables.schema, name)] = {"rows": int(rows), "fingerprint": fingerprint}
    return out


def _sanitize(name):
    # pg_restore --list prints names with newlines replaced by spaces
    return name.replace("\r", " ").replace("\n", " ")


def restore_list(pg_restore, path, tables, secrets=(), names=None):
    """Read the dump back with pg_restore --list; BackupError unless it lists the audit tables' data."""
    proc = _run([pg_restore, "--list", path], None, secrets, "pg_restore --list")
    text = proc.stdout.decode("utf-8", "replace")
    if "; Archive created at" not in text or "Dumped from database version" not in text:
        raise BackupError("pg_restore --list of %s shows no archive header: the dump is not readable" % path)
    entries = [line for line in text.splitlines() if line and not line.startswith(";")]
    data = [line for line in entries if " TABLE DATA " in line]
    missing = []
    for name in names or table_names(tables):
        needle = " TABLE DATA %s %s " % (_sanitize(tables.schema), _sanitize(name))
        if not any(needle in line for line in data):
            missing.append("%s.%s" % (tables.schema, name))
    if missing:
        raise BackupError("the dump %s has no TABLE DATA for %s" % (path, ", ".join(missing)))
    return {"entries": len(entries), "table_data_entries": len(data)}


def dump_table_patterns(tables, names=None):
    """pg_dump --table arguments naming exactly the audit tables (double quotes make each name literal)."""
    def literal(name):
        return '"%s"' % name.replace('"', '""')
    return ["--table=%s.%s" % (literal(tables.schema), literal(name)) for name in names or table_names(tables)]


def take_backup(conn, tables, dsn, kwargs, dest, tools, secrets=(), only_audit_tables=False):
    """Dump the database into a temp file beside dest; returns (tmp_path, manifest). Caller renames."""
    with conn.cursor() as cur:
        audit_store.check_tables(cur, tables, ("logs", "anchors", "quarantine"))
    conninfo, env = libpq_environment(dsn, kwargs)
    fd, tmp = files.mkstemp_beside(dest)
    os.close(fd)
    try:
        with audit_store.SnapshotTransaction(conn, export=True) as txn:
            with conn.cursor() as cur:
                identity = audit_store.database_identity(cur)
                counts = table_fingerprints(cur, tables)
            started = audit_store.utc_now()
            names = table_names(tables, counts)
            scope = dump_table_patterns(tables, names) if only_audit_tables else []
            _run([tools["pg_dump"], "--format=custom", "--no-password", "--snapshot=" + txn.snapshot,
                  "--file=" + tmp, "--dbname=" + conninfo] + scope, env, secrets, "pg_dump")
        with open(tmp, "rb") as handle:
            if handle.read(5) != b"PGDMP":
                raise BackupError("pg_dump wrote no custom-format archive")
        listing = restore_list(tools["pg_restore"], tmp, tables, secrets, names)
        digest, size = audit_ranges.sha256_file(tmp)
    except BaseException:
        files.unlink_quietly(tmp)
        raise
    manifest = {
        "format": audit_ranges.BACKUP_FORMAT,
        "file": os.path.basename(dest),
        "sha256": digest,
        "bytes": size,
        "created_at": audit_store.rfc3339(started),
        "database": identity,
        "tables": tables.describe(),
        "table_rows": counts,
        "pg_dump": {"path": tools["pg_dump"], "version": tools["version"]},
        "dump_scope": "audit_tables" if only_audit_tables else "database",
        "restore_list": listing,
        "verified": True,
        "verified_by": "pg_restore --list lists the archive header and TABLE DATA of every audit table; sha256",
    }
    return tmp, manifest


def backup_problems(manifest, path, identity, tables, max_age_seconds, now=None, tools=None):
    """Why a backup manifest does not allow a retirement now (list of words; empty when it does)."""
    if not isinstance(manifest, dict) or manifest.get("format") != audit_ranges.BACKUP_FORMAT:
        return ["the backup manifest is not an %s manifest" % audit_ranges.BACKUP_FORMAT]
    problems = []
    if not audit_store.same_database(manifest.get("database"), identity):
        problems.append("the backup is of another database")
    if manifest.get("tables") != tables.describe():
        problems.append("the backup manifest names other tables")
    if manifest.get("verified") is not True:
        problems.append("the backup was not verified readable")
    try:
        created = audit_store.parse_rfc3339(manifest.get("created_at") or "")
        age = ((now or audit_store.utc_now()) - created).total_seconds()
        if age > max_age_seconds:
            problems.append("the backup is %d s old, older than max_backup_age (%d s): take a new one right before "
                            "the retirement" % (age, max_age_seconds))
        elif age < -300:
            problems.append("the backup's created_at is in the future")
    except ValueError:
        problems.append("the backup manifest has no valid created_at")
    try:
        digest, size = audit_ranges.sha256_file(path)
        if digest != manifest.get("sha256") or size != manifest.get("bytes"):
            problems.append("the backup file %s does not match its manifest's sha256" % path)
        elif tools is not None:
            try:
                restore_list(tools["pg_restore"], path, tables, names=table_names(tables, manifest.get("table_rows")))
            except BackupError as exc:
                problems.append(str(exc))
    except (IOError, OSError) as exc:
        problems.append("the backup file %s cannot be read (%s)" % (path, exc.__class__.__name__))
    return problems


class _CopyBlock:
    """File-like over one COPY data block of a pg_restore script: the lines up to the \\. terminator."""

    def __init__(self, stream):
        self._stream = stream
        self.done = False
        self.lines = 0

    def read(self, size=-1):
        if self.done:
            return b""
        out = []
        total = 0
        while size < 0 or total < size:
            line = self._stream.readline()
            if not line:
                raise BackupError("the dump's COPY data ended without its terminator")
            if line in (b"\\.\n", b"\\.\r\n"):
                self.done = True
                break
            out.append(line)
            total += len(line)
            self.lines += 1
        return b"".join(out)


_COPY_LINE = re.compile(rb"^COPY .* \(([^()]*)\) FROM stdin;\r?\n$")


def _restore_table(cur, pg_restore, path, schema, name, ident, secrets):
    """Load one table's rows from the dump into ident (already emptied); returns the rows loaded."""
    argv = [pg_restore, "--data-only", "--schema=" + schema, "--table=" + name, "--file=-", path]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise BackupError("pg_restore could not run: %s" % exc.__class__.__name__)
    loaded = None
    try:
        for line in iter(proc.stdout.readline, b""):
            match = _COPY_LINE.match(line)
            if match and loaded is None:
                columns = [c.strip().strip('"') for c in match.group(1).decode("utf-8").split(",")]
                if sorted(columns) != sorted(_expected_columns(cur, ident)):
                    raise BackupError("the dump's columns of %s.%s differ from the table's" % (schema, name))
                block = _CopyBlock(proc.stdout)
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    ident, sql.SQL(", ").join(sql.Identifier(c) for c in columns))
                cur.copy_expert(statement.as_string(cur), block)
                if not block.done:
                    raise BackupError("the dump's COPY data of %s.%s was not read to its end" % (schema, name))
                loaded = block.lines
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise BackupError(audit_store_mask("pg_restore of %s.%s failed (exit %d): %s" % (schema, name, code, err),
                                           secrets))
    if loaded is None:
        raise BackupError("the dump holds no data for %s.%s" % (schema, name))
    return loaded


def _expected_columns(cur, ident):
    cur.execute(sql.SQL("SELECT * FROM {} WHERE false").format(ident))
    return [d[0] for d in cur.description]


def restore_audit_tables(conn, tables, manifest, path, tools, secrets=(), lock_timeout="30s"):
    """Replace the audit tables' rows with the dump's, in one transaction; verified before commit.

    Writers wait on the table lock (they do not fail) and continue on the restored rows.
    Returns {"table_rows": {...}} as restored.
    """
    conn.rollback()
    conn.set_session(isolation_level="READ COMMITTED", readonly=False)
    restored_names = table_names(tables, manifest.get("table_rows"))
    # The tables the backup holds are replaced; rotation records newer than a backup taken without them stay.
    try:
        with conn.cursor() as cur:
            idents = [(ident, name) for ident, name in audit_table_set(cur, tables) if name in restored_names]
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.SQL(", ").join(i for i, _n in idents)))
            cur.execute("SELECT set_config('lock_timeout', '0', true)")
            cur.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(i for i, _n in idents)))
            for ident, name in idents:
                _restore_table(cur, tools["pg_restore"], path, tables.schema, name, ident, secrets)
            restored = dict((key, value) for key, value in table_fingerprints(cur, tables).items()
                            if key.split(".", 1)[1] in restored_names)
            if restored != manifest.get("table_rows"):
                raise BackupError("the restored rows do not match the backup manifest (%s vs %s); rolled back"
                                  % (restored, manifest.get("table_rows")))
        conn.commit()
    except BaseException:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass
        raise
    return {"table_rows": restored}
