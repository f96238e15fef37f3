# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing capture files (the runbook's capture step): no Ansible imports.

COPY goes straight into each file: psycopg2 hands the rows to the file object's C write(),
so no Python runs per row. Several sessions reading one exported snapshot copy at the same
time, in threads (libpq waits for data with the GIL released). A tenant is one unit of work;
when there are fewer tenants than sessions, a long single range is cut in two and the second
half goes to a side file that is appended afterwards. Whoever finishes a file's last part
appends, fsyncs and hashes it (read back from the page cache) while the other sessions go on
copying. Every file holds exactly the bytes of one COPY of its ranges.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import threading

from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import files

# A single range at least this long may be cut in two (see write_captures).
PARALLEL_EXPORT_MIN_ROWS = 100000
# Buffer of the capture files: psycopg2 hands COPY over a row at a time.
CAPTURE_BUFFER = 1 << 20


def capture_file_name(tenant_id):
    """Name of a tenant's capture in a capture directory: readable, and unique per tenant id."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", tenant_id)[:40]
    return "capture-%s-%s.csv" % (safe, hashlib.sha1(tenant_id.encode("utf-8")).hexdigest()[:10])


def _append_file(path, side):
    """Append side's bytes to path, in the kernel where it can."""
    with open(path, "ab") as out, open(side, "rb") as part:
        size = os.fstat(part.fileno()).st_size
        copied = 0
        copy_range = getattr(os, "copy_file_range", None)
        try:
            while copy_range is not None and copied < size:
                step = copy_range(part.fileno(), out.fileno(), size - copied)
                if step == 0:
                    break
                copied += step
        except OSError:  # another file system or kernel: copy in user space from where it stopped
            pass
        part.seek(copied)
        out.seek(0, os.SEEK_END)
        while True:
            chunk = part.read(CAPTURE_BUFFER)
            if not chunk:
                break
            out.write(chunk)


def _finish(path):
    """fsync path and return (sha256, bytes) of what it holds."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
    return audit_ranges.sha256_file(path)


class _Part(object):
    def __init__(self, job, index, tenant_id, ranges, path, header):
        self.job = job
        self.index = index
        self.tenant_id = tenant_id
        self.ranges = ranges
        self.path = path
        self.header = header

    @property
    def size(self):
        return sum(high - low + 1 for low, high in self.ranges)


class _Capture(object):
    """Shared state of one write_captures call."""

    def __init__(self, tables):
        self.tables = tables
        self.parts = []
        self.pending = {}
        self.rows = {}
        self.results = {}
        self.errors = []
        self.lock = threading.Lock()

    def run_part(self, cur, part):
        with open(part.path, "wb", buffering=CAPTURE_BUFFER) as handle:
            rows = audit_ranges.copy_ranges(cur, self.tables, part.tenant_id, part.ranges, handle, "csv",
                                            header=part.header)
        with self.lock:
            self.rows[part.job] = self.rows.get(part.job, 0) + rows
            self.pending[part.job] -= 1
            last = self.pending[part.job] == 0
        if last:
            self.finish_job(part.job)

    def finish_job(self, job):
        parts = sorted((p for p in self.parts if p.job == job), key=lambda p: p.index)
        for part in parts[1:]:
            _append_file(parts[0].path, part.path)
            files.unlink_quietly(part.path)
        digest, size = _finish(parts[0].path)
        self.results[job] = (parts[0].path, digest, size, self.rows[job])

    def worker(self, cur, queue):
        while True:
            with self.lock:
                if self.errors or not queue:
                    return
                part = queue.pop(0)
            try:
                self.run_part(cur, part)
            except BaseException as exc:  # re-raised by write_captures in the caller's thread
                with self.lock:
                    self.errors.append(exc)
                return


def _session_worker(capture, connect, snapshot, queue):
    conn = None
    try:
        conn = audit_store.connect_to_snapshot(connect, snapshot)
        with conn.cursor() as cur:
            capture.worker(cur, queue)
    except BaseException as exc:
        with capture.lock:
            capture.errors.append(exc)
    finally:
        if conn is not None:
            conn.close()


def write_captures(cur, tables, jobs, connect=None, snapshot=None, sessions=1):
    """Capture jobs [(tenant_id, ranges, dest), ...] into 0600 temp files beside their dests.

    Returns [(tmp_path, sha256, bytes, rows), ...] in the order of jobs; rows is what the server
    reported COPYing. cur's transaction holds the snapshot; with connect, snapshot (exported by
    that transaction) and sessions > 1, up to that many sessions copy at the same time. On any
    error every temp file is removed and the error raised.
    """
    capture = _Capture(tables)
    parallel = bool(connect and snapshot and sessions > 1)
    split = parallel and len(jobs) < sessions
    try:
        for job, (tenant_id, ranges, dest) in enumerate(jobs):
            fd, tmp = files.mkstemp_beside(dest)
            os.close(fd)
            capture.parts.append(_Part(job, 0, tenant_id, ranges, tmp, True))
            if split and len(ranges) == 1 and ranges[0][1] - ranges[0][0] + 1 >= PARALLEL_EXPORT_MIN_ROWS:
                low, high = ranges[0]
                middle = low + (high - low) // 2
                capture.parts[-1].ranges = [[low, middle]]
                fd, side = files.mkstemp_beside(dest + ".part2")
                os.close(fd)
                capture.parts.append(_Part(job, 1, tenant_id, [[middle + 1, high]], side, False))
            capture.pending[job] = sum(1 for p in capture.parts if p.job == job)
        # Longest first, so the sessions finish at about the same time.
        queue = sorted(capture.parts, key=lambda p: -p.size)
        threads = []
        if parallel:
            for _n in range(min(sessions, len(queue)) - 1):
                thread = threading.Thread(target=_session_worker, args=(capture, connect, snapshot, queue))
                thread.start()
                threads.append(thread)
        try:
            capture.worker(cur, queue)
        finally:
            for thread in threads:
                thread.join()
        if capture.errors:
            raise capture.errors[0]
        return [capture.results[job] for job in range(len(jobs))]
    except BaseException:
        for part in capture.parts:
            files.unlink_quietly(part.path)
        raise
