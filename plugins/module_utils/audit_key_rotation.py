# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit HMAC key rotation of alex_audit_key, in steps a rerun can resume: no Ansible imports.

1. The keyring in the release's main Secret gets a new active key (the old one retired or compromised),
   replaced with the resourceVersion it was read at. The new key carries the change reference, so a rerun
   finds the rotation it already made instead of making another.
2. The API is restarted; at start it writes, under the writers' lock, a rotation record for every tenant.
3. Every tenant with rows has a rotation record to the new key: the rotation is complete.

Whatever point a run is killed at, the Secret holds the old keyring or the new one, and every tenant is in
the old epoch or the new one; running again completes it. Nothing here ever returns a key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import os
import signal
import time

from ansible_collections.alexandria.ee.plugins.module_utils import audit_epochs as ae
from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring as akr
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store as st

# Tests only: kill this process (SIGKILL) at a named step, to prove a rerun completes the rotation.
KILL_HOOK = "ALEX_AUDIT_KEY_TEST_KILL_AT"
STEPS = ("after_secret", "after_restart")


def maybe_die(step):
    if os.environ.get(KILL_HOOK) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def secret_bytes(secret, name):
    data = (secret or {}).get("data") or {}
    if data.get(name) is None:
        return None
    try:
        return base64.b64decode(data[name], validate=True)
    except (binascii.Error, ValueError):
        raise akr.KeyringError("Secret key %r does not hold base64 data" % name)


def current_keyring(secret, key_name, keyring_name):
    """(Keyring, whether the Secret holds a keyring) from the main Secret; KeyringError when unusable."""
    genesis = secret_bytes(secret, key_name)
    text = secret_bytes(secret, keyring_name)
    if text:
        return akr.parse_keyring(text, genesis), True
    if not genesis:
        raise akr.KeyringError("the main Secret has neither %s nor %s: there is no audit key to rotate"
                               % (key_name, keyring_name))
    return akr.Keyring.single(genesis), False


def plan(keyring, change_ref):
    """What the keyring says about this change: ("rotate", None), ("done", new id) or ("superseded", new id)."""
    done = akr.rotation_for_change(keyring, change_ref)
    if done is None:
        return "rotate", None
    if done == keyring.active_id:
        return "done", done
    return "superseded", done


def public_keys(keyring):
    """Ids, fingerprints, statuses and times of every key: what check mode, diff and results show."""
    return sorted(keyring.public(), key=lambda e: (e.get("created_at") or "", e["id"]))


def rotation_state(cur, tables, key_id):
    """(tenants with rows, tenants whose chain has a rotation record to key_id)."""
    tenants = st.list_tenants(cur, tables)
    records = ae.load_rotations(cur, tables, tenants)
    rotated = sorted(t for t, recs in records.items() if any(r["new_key_id"] == key_id for r in recs))
    return tenants, rotated


def wait_rotated(connect, tables, key_id, timeout, interval=0.5, clock=time.monotonic, sleep=time.sleep):
    """Poll until every tenant with rows has its rotation record to key_id; (tenants, missing) at the end."""
    deadline = clock() + timeout
    while True:
        conn = connect()
        try:
            with conn.cursor() as cur:
                tenants, rotated = rotation_state(cur, tables, key_id)
            conn.rollback()
        finally:
            conn.close()
        missing = sorted(set(tenants) - set(rotated))
        if not missing or clock() >= deadline:
            return tenants, missing
        sleep(interval)


def summarize(results):
    """The verification across epochs, for people and the run record (no rows, no keys)."""
    kinds = {}
    for res in results.values():
        for seg in res["segments"]:
            kinds[seg["kind"]] = kinds.get(seg["kind"], 0) + seg["rows"]
    broken = sorted(t for t, r in results.items() if not r["verified"])
    return {
        "verified": not broken, "tenants": len(results), "rows": sum(r["rows"] for r in results.values()),
        "broken": broken, "rows_by_kind": kinds,
        "probable_causes": dict((t, results[t]["probable_cause"]) for t in broken),
        "epochs": dict((t, r.get("epochs", [])) for t, r in results.items()),
        "rotation_problems": dict((t, r["rotation_problems"]) for t, r in results.items()
                                  if r.get("rotation_problems")),
    }
