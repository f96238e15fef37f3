# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sinks that COPY streams into (anything with write(bytes)): pure, no database, no Ansible imports.

ScanSink verifies a tenant's eight-column COPY text lines as they arrive; HashSink hashes (and
may write) what COPY sends; LinesDigestSink hashes whole lines for audit_chain.retired_digest.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import collections
import hashlib
import itertools
import operator

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac

# Byte positions in a line "<7 fields>\t<prev_hmac: 64>\t<row_hmac: 64>\n" (see ScanSink._batch_is_clean).
_LAST_BYTE = operator.itemgetter(-1)
_ROW_HMAC_TAB = operator.itemgetter(-66)
_PREV_HMAC_TAB = operator.itemgetter(-131)
_MESSAGE = operator.itemgetter(slice(0, -66))
_ROW_HMAC = operator.itemgetter(slice(-65, -1))
_PREV_HMAC = operator.itemgetter(slice(-130, -66))
_NEWLINE = {10}
_TAB = {9}


class _LineSink:
    """Base of the COPY text sinks: psycopg2 writes one row per call; any other split works too."""

    def __init__(self):
        self._pending = b""

    def write(self, data):
        if not isinstance(data, bytes):
            data = data.encode("utf-8")
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            self._pending = data[cut:]
            data = data[:cut]
            if not data:
                return
        # COPY text escapes every CR and LF inside values, so only row ends remain.
        self.lines(data.splitlines())

    def lines(self, lines):
        raise NotImplementedError

    def finish(self):
        if self._pending:
            raise ac.AuditError("COPY output ended in the middle of a row")


class PadHasher:
    """HMAC-SHA256 from the key's precomputed inner and outer hashlib states (RFC 2104).

    The same digests as audit_chain.ChainHasher, about a third cheaper per message because
    only two hashlib states are copied (hmac.HMAC.copy builds a Python object each time).
    """

    def __init__(self, key):
        if isinstance(key, str):
            key = key.encode("utf-8")
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in bytearray(key)))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in bytearray(key)))

    def hexdigest(self, message):
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


class ScanSink(_LineSink):
    """Verifies eight-column COPY text lines of one tenant as they stream.

    Rows are gathered BATCH_ROWS at a time, few enough to stay in the CPU cache. A batch in
    which every row is the common case (the next seq, its HMAC right, its link right) is
    checked by C-level map() passes and list comparisons, with no Python bytecode per row:
    that is what lets verification cost less than reading the rows out. Any other batch (a
    failure, a gap, a partial row, several rows in one write) goes row by row through the line
    splitter and TenantScan.feed, which owns the classification rules.
    """

    BATCH_ROWS = 512

    def __init__(self, key, scan):
        super(ScanSink, self).__init__()
        self._hasher = hasher = PadHasher(key)
        state = type(hasher.inner)
        self._copy, self._update, self._digest = state.copy, state.update, state.digest
        self.scan = scan
        self._last_seq = scan.last_seq
        self._last_hmac = scan.last_row_hmac.encode("ascii")
        self._fast = 0
        self.clean_batches = 0
        self.first_seq = None
        self._seq_start = len(ac.copy_escape(scan.tenant_id).encode("utf-8")) + 1
        self._batch = []

    def write(self, data):
        batch = self._batch
        batch.append(data)
        if len(batch) >= self.BATCH_ROWS:
            self._flush()

    def _flush(self):
        batch = self._batch
        if not batch:
            return
        self._batch = []
        if self._pending or not self._batch_is_clean(batch):
            for data in batch:
                _LineSink.write(self, data)

    def _batch_is_clean(self, batch):
        """True (and the state advanced) when every item is one whole row that verifies and links."""
        n = len(batch)
        first = self._last_seq + 1
        start = self._seq_start
        try:
            # Each item ends its row, and its last two fields have exactly 64 bytes. An item holding
            # more than one row fails its HMAC below: its message would span rows.
            if not (set(map(_LAST_BYTE, batch)) == _NEWLINE and set(map(_ROW_HMAC_TAB, batch)) == _TAB
                    and set(map(_PREV_HMAC_TAB, batch)) == _TAB):
                return False
            # Rows come in seq order and (tenant_id, seq) is the key, so n rows from first to
            # first + n - 1 are exactly those seqs. (A duplicated row would fail its link below.)
            if (int(batch[0][start:batch[0].index(9, start)]) != first
                    or int(batch[-1][start:batch[-1].index(9, start)]) != first + n - 1):
                return False
        except (IndexError, TypeError, ValueError):  # a short line, text instead of bytes, no seq
            return False
        copy, update, digest = self._copy, self._update, self._digest
        inners = list(map(copy, itertools.repeat(self._hasher.inner, n)))
        collections.deque(map(update, inners, map(_MESSAGE, batch)), 0)
        outers = list(map(copy, itertools.repeat(self._hasher.outer, n)))
        collections.deque(map(update, outers, map(digest, inners)), 0)
        stored = list(map(_ROW_HMAC, batch))
        if list(map(binascii.hexlify, map(digest, outers))) != stored:
            return False
        prevs = list(map(_PREV_HMAC, batch))
        if prevs[0] != self._last_hmac or prevs[1:] != stored[:-1]:
            return False
        if self.first_seq is None:
            self.first_seq = first
        self._fast += n
        self.clean_batches += 1
        self._last_seq = first + n - 1
        self._last_hmac = stored[-1]
        return True

    def lines(self, lines):
        hexdigest = self._hasher.hexdigest
        last_seq = self._last_seq
        last_hmac = self._last_hmac
        fast = 0
        scan = self.scan
        for line in lines:
            fields = line.split(b"\t")
            if len(fields) != 8:
                raise ac.AuditError("unexpected COPY line with %d fields (the table must have the contract's columns)"
                                    % len(fields))
            stored = fields[7]
            ok = hexdigest(line[:len(line) - len(stored) - 1]).encode("ascii") == stored
            seq = int(fields[1])
            if ok and seq == last_seq + 1 and fields[6] == last_hmac:
                fast += 1
            else:
                scan.last_seq = last_seq
                scan.last_row_hmac = last_hmac.decode("ascii", "replace")
                scan.feed(seq, ok, fields[6].decode("ascii", "replace"), stored.decode("ascii", "replace"))
            last_seq = seq
            last_hmac = stored
        self._fast += fast
        self._last_seq = last_seq
        self._last_hmac = last_hmac
        if self.first_seq is None and lines:
            self.first_seq = int(lines[0].split(b"\t", 2)[1])

    def finish(self):
        self._flush()
        super(ScanSink, self).finish()
        scan = self.scan
        scan.rows += self._fast
        scan.valid_rows += self._fast
        self._fast = 0
        scan.last_seq = self._last_seq
        scan.last_row_hmac = self._last_hmac.decode("ascii", "replace")
        return scan


class HashSink:
    """Hashes (and optionally writes) what COPY sends; counts bytes. Writes are batched."""

    def __init__(self, fileobj=None, batch=1 << 20):
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.writes = 0
        self._file = fileobj
        self._buf = []
        self._size = 0
        self._batch = batch

    def write(self, data):
        if not isinstance(data, bytes):
            data = data.encode("utf-8")
        self._buf.append(data)
        self._size += len(data)
        self.writes += 1
        if self._size >= self._batch:
            self.flush()

    def flush(self):
        if self._buf:
            chunk = b"".join(self._buf)
            self._buf = []
            self._size = 0
            self.sha256.update(chunk)
            self.bytes += len(chunk)
            if self._file is not None:
                self._file.write(chunk)

    def hexdigest(self):
        self.flush()
        return self.sha256.hexdigest()


class LinesDigestSink(_LineSink):
    """SHA-256 of full COPY text lines each ending in a newline (audit_chain.retired_digest)."""

    def __init__(self):
        super(LinesDigestSink, self).__init__()
        self.sha256 = hashlib.sha256()
        self.count = 0

    def lines(self, lines):
        for line in lines:
            self.sha256.update(line)
            self.sha256.update(b"\n")
            self.count += 1
