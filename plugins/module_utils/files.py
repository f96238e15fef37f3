# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side files: written whole or not at all (temp file in the same directory, fsync, rename)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile


def mkstemp_beside(path, mode=0o600):
    """(fd, temp path) of a new hidden file in path's directory, for a later rename onto path."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.fchmod(fd, mode)
    return fd, tmp


def unlink_quietly(path):
    """Remove path if it is there (clean-up on a failure path: never raises)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def ensure_dir(path, mode=0o700):
    """Create path (and parents) when missing; several hosts of one run (forks) may race to create it."""
    if os.path.isdir(path):
        return
    try:
        os.makedirs(path, mode)
    except OSError:
        if not os.path.isdir(path):
            raise


def write_bytes_atomic(path, data, mode=0o600):
    """Replace path with data; a crash leaves the old file or the new one, never half of one."""
    fd, tmp = mkstemp_beside(path, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise


def write_text_atomic(path, text, mode=0o600):
    write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_json_atomic(path, data, mode=0o600):
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", mode)


def read_json(path):
    with open(path, "r") as handle:
        return json.load(handle)
