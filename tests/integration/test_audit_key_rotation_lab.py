"""alex_audit_key against the lab (issue 13, the audit HMAC key): a planned rotation under concurrent writers loses
no row and verifies across epochs (check, run, check, run); kill -9 of the module at each step leaves the old epoch
or the new one and a rerun completes it; a compromise rotation, then rows forged with the stolen key, are reported
exactly as unattested and hmac_mismatch; check mode changes no Secret and no table; no key at -vvv."""
import base64
import datetime
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring as akr
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_key, alex_audit_verify

from alexlab.testing import LabHandle

import audit_helpers as h
import playbooks

pytestmark = pytest.mark.lab
TENANTS = ["seed-001", "seed-002"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    handle = LabHandle.up(tmp_path_factory.mktemp("keylab"))
    handle.cli("seed-audit", "--tenants", "2", "--rows", "200")
    yield handle
    proc = handle.down()
    assert proc.returncode == 0, proc.stderr


def k8s_args(lab, **extra):
    info = lab.info
    args = dict(kubeconfig=info["kubeconfig"], namespace=info["namespace"], release=info["release"])
    args.update(extra)
    return args


def secret_state(lab):
    secret = lab.core().read_namespaced_secret(lab.info["release"], lab.info["namespace"])
    return secret.metadata.resource_version, dict(secret.data or {})


def keyring(lab):
    """The keyring of the main Secret (the single key audit-hmac-key before the first rotation)."""
    _rv, data = secret_state(lab)
    genesis = base64.b64decode(data["audit-hmac-key"])
    if "audit-hmac-keyring" not in data:
        return akr.Keyring.single(genesis)
    return akr.parse_keyring(base64.b64decode(data["audit-hmac-keyring"]), genesis)


def db_state(lab):
    """Every audit table byte for byte (md5 of the rows in key order) and every row version (ctid, xmin)."""
    conn = lab.client.connect()
    try:
        state = {"tables": h.table_state(conn), "versions": h.row_versions(conn)}
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), md5(coalesce(string_agg(t::text || ctid::text || xmin::text, E'\\n' "
                        "ORDER BY tenant_id, new_key_id), '')) FROM audit_key_rotations t")
            state["rotations"] = cur.fetchone()
        conn.rollback()
        return state
    finally:
        conn.close()


def verify_all(lab):
    res = h.run_module(alex_audit_verify, k8s_args(lab))
    assert "failed" not in res, res["msg"]
    return res


class Writers:
    """Threads writing audit rows through the API until stopped; keeps every (tenant, seq, row_hmac) answered 201."""

    def __init__(self, lab, tenants):
        self.lab, self.tenants = lab, tenants
        self.written = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(t,), daemon=True) for t in tenants]

    def run(self, tenant):
        while not self.stop.is_set():
            try:
                code, body = self.lab.api("POST", "/api/v1/tenants/%s/audit" % tenant,
                                          {"actor": "writer", "action": "doc.read", "payload": {"k": 1}}, timeout=5)
            except Exception:  # the API restarting: connection refused or reset; try again
                self.stop.wait(0.05)
                continue
            if code == 201:
                self.written.append((tenant, body["seq"], body["row_hmac"]))
            else:
                self.stop.wait(0.05)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def write_some(lab, count=3):
    """count rows per tenant through the API (waiting for it to serve again when it is restarting)."""
    for tenant in TENANTS:
        for _i in range(count):
            lab.client.wait_for("an audit write answered 201", lambda t=tenant: lab.api(
                "POST", "/api/v1/tenants/%s/audit" % t, {"actor": "lab-test", "action": "doc.read",
                                                         "payload": {}}, timeout=5)[0] == 201, 120)


def test_planned_rotation_four_steps_under_concurrent_writers(lab, tmp_path):
    genesis = base64.b64decode(secret_state(lab)[1]["audit-hmac-key"])
    args = k8s_args(lab, reason="planned", change_ref="CHG-2026-0142")
    secret_before, db_before = secret_state(lab), db_state(lab)
    # 1. check mode: says what it would do, changes no Secret and no table, byte for byte
    check = h.run_module(alex_audit_key, args, check_mode=True, diff=True)
    assert check["changed"] and check["state"] == "rotate" and check["key_id_after"] is None, check
    assert check["key_id_before"] == akr.key_id(genesis) and check["restarted"] and check["secret_written"]
    assert sorted(check["tenants_missing"]) == TENANTS
    assert [k["id"] for k in check["diff"]["after"]["keys"]] == [akr.key_id(genesis), None]
    assert secret_state(lab) == secret_before and db_state(lab) == db_before
    # 2. the real run while writers write to both tenants through the API
    with Writers(lab, TENANTS) as writers:
        run = h.run_module(alex_audit_key, args, diff=True)
        seen_after_rotation = len(writers.written)
        writers.stop.wait(1.0)
    assert "failed" not in run, run["msg"]
    assert run["changed"] and run["restarted"] and run["tenants_missing"] == []
    assert sorted(run["tenants_rotated"]) == TENANTS
    new_id = run["key_id_after"]
    ring = keyring(lab)
    assert ring.active_id == new_id and ring.keys[akr.key_id(genesis)]["status"] == "retired"
    assert len(ring.key(new_id)) == 32 and ring.keys[new_id]["change_ref"] == "CHG-2026-0142"
    assert run["fingerprint_after"] == akr.key_fingerprint(ring.key(new_id))
    assert run["verification"]["verified"], run["verification"]
    # No row lost: every write the API acknowledged is in the table with the HMAC it answered.
    assert writers.written and len(writers.written) >= seen_after_rotation
    rows = dict(((t, s), hm) for t, s, hm in lab.sql(
        "SELECT tenant_id, seq, row_hmac FROM audit_logs WHERE tenant_id = ANY(%s)", (TENANTS,)))
    assert all(rows.get((t, s)) == hm for t, s, hm in writers.written)
    records = lab.sql("SELECT tenant_id, first_seq, reason, old_key_hmac <> '' FROM audit_key_rotations "
                      "WHERE new_key_id = %s ORDER BY tenant_id", (new_id,))
    assert [(r[0], r[2], r[3]) for r in records] == [(t, "planned", True) for t in TENANTS]
    res = verify_all(lab)
    assert res["verified"], res["msg"]
    for tenant, first_seq, _reason, _signed in records:
        epochs = res["tenants"][tenant]["epochs"]
        assert epochs[-1] == {"first_seq": first_seq, "last_seq": None, "key_id": new_id, "status": "active"}
        assert epochs[-2]["last_seq"] == first_seq - 1
    assert "audit key rotated: tenant=\"seed-001\"" in lab.logs("api")
    # 3. check mode again, 4. the real run again: nothing to do, nothing written
    secret_done, db_done = secret_state(lab), db_state(lab)
    for check_mode in (True, False):
        again = h.run_module(alex_audit_key, args, check_mode=check_mode, diff=True)
        assert not again["changed"] and again["state"] == "done" and "diff" not in again, again
        assert again["key_id_after"] == new_id and again["key_id_before"] == akr.key_id(genesis)
    assert secret_state(lab) == secret_done and db_state(lab) == db_done
    for result in (check, run):
        text = json.dumps(result)
        for key in ring.secrets():
            for form in akr.shown_forms(key):
                assert form not in text


def run_killed(lab, tmp_path, step, change_ref):
    env = dict(os.environ, **{"ALEX_AUDIT_KEY_TEST_KILL_AT": step})
    proc = h.run_module_process("alex_audit_key", k8s_args(lab, reason="planned", change_ref=change_ref),
                                env=env, args_path=str(tmp_path / ("args-%s.json" % step)))
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("step", ["after_secret", "after_restart"])
def test_kill_9_at_each_step_then_a_rerun_completes(lab, tmp_path, step):
    before = keyring(lab)
    change_ref = "CHG-kill-%s" % step
    run_killed(lab, tmp_path, step, change_ref)
    ring = keyring(lab)
    new_id = akr.rotation_for_change(ring, change_ref)
    assert new_id == ring.active_id and new_id != before.active_id
    assert ring.keys[before.active_id]["status"] == "retired"
    # Old epoch or new one, never between: the chain verifies as it is, with the keyring of the Secret.
    write_some(lab, 1)
    res = verify_all(lab)
    assert res["verified"], res["msg"]
    done = h.run_module(alex_audit_key, k8s_args(lab, reason="planned", change_ref=change_ref))
    assert "failed" not in done, done["msg"]
    assert done["state"] == "done" and done["tenants_missing"] == [] and done["verification"]["verified"]
    assert done["key_id_before"] == before.active_id and done["key_id_after"] == new_id
    if step == "after_secret":
        assert done["changed"] and done["restarted"] and sorted(done["tenants_rotated"]) == TENANTS
    again = h.run_module(alex_audit_key, k8s_args(lab, reason="planned", change_ref=change_ref))
    assert not again["changed"] and again["state"] == "done"
    assert [r[0] for r in lab.sql("SELECT tenant_id FROM audit_key_rotations WHERE new_key_id = %s "
                                  "ORDER BY tenant_id", (new_id,))] == TENANTS


def epoch_rows(lab, tenant, key_id):
    """(first, last, rows) of the tenant's rows in the epoch of key_id."""
    [(first,)] = lab.sql("SELECT first_seq FROM audit_key_rotations WHERE tenant_id = %s AND new_key_id = %s",
                         (tenant, key_id))
    [(end,)] = lab.sql("SELECT old_last_seq FROM audit_key_rotations WHERE tenant_id = %s AND old_key_id = %s",
                       (tenant, key_id))
    [(rows, low, high)] = lab.sql("SELECT count(*), min(seq), max(seq) FROM audit_logs WHERE tenant_id = %s "
                                  "AND seq BETWEEN %s AND %s", (tenant, first, end))
    return low, high, rows


def test_compromise_then_forged_rows_are_reported_exactly(lab, tmp_path):
    write_some(lab, 4)  # rows signed with the key about to leak
    stolen = keyring(lab).active_id
    leaked_at = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    bad = h.run_module(alex_audit_key, k8s_args(lab, reason="compromise", change_ref="INC-2026-0077"))
    assert bad.get("failed") and "reason=compromise needs compromised_at" in bad["msg"]
    run = h.run_module(alex_audit_key, k8s_args(lab, reason="compromise", change_ref="INC-2026-0077",
                                                compromised_at=leaked_at))
    assert "failed" not in run, run["msg"]
    ring = keyring(lab)
    assert ring.keys[stolen]["status"] == "compromised" and ring.keys[stolen]["compromised_at"] == leaked_at
    assert lab.sql("SELECT DISTINCT reason, old_key_hmac FROM audit_key_rotations WHERE old_key_id = %s",
                   (stolen,)) == [("compromise", "")]
    # No checkpoint was taken before the leak: nothing outside the log vouches for the stolen key's epoch.
    expected = {}
    for tenant in TENANTS:
        low, high, rows = epoch_rows(lab, tenant, stolen)
        expected[tenant] = [{"first_seq": low, "last_seq": high, "rows": rows, "kind": "unattested"}]
    assert run["verification"]["rows_by_kind"] == {"unattested": sum(s[0]["rows"] for s in expected.values())}
    # The attacker appends rows signed with the stolen key, after the rotation point.
    proc = lab.cli("break", "forge-compromised-key", "--tenant", "seed-001")
    assert "forged with compromised key %s" % stolen in proc.stdout
    record = json.load(open(os.path.join(lab.dir, "faults", "forge-compromised-key.json")))
    [entry] = record["entries"]
    res = verify_all(lab)
    assert res["tenants"]["seed-001"]["segments"] == expected["seed-001"] + [
        {"first_seq": entry["first"], "last_seq": entry["last"], "rows": 3, "kind": "hmac_mismatch"}]
    assert res["tenants"]["seed-002"]["segments"] == expected["seed-002"]
    assert res["tenants"]["seed-002"]["probable_cause"] == "compromised_key"
    assert res["tenants"]["seed-001"]["probable_cause"] == "direct_db_edit"
    lab.cli("heal", "forge-compromised-key")
    res = verify_all(lab)
    assert [s["kind"] for s in res["tenants"]["seed-001"]["segments"]] == ["unattested"]


def test_no_key_at_vvv(lab, tmp_path):
    """The module and the verifier through ansible-playbook -vvv: key ids and fingerprints only, never a key."""
    playbook = tmp_path / "keys.yml"
    info = lab.info
    playbook.write_text("""---
- name: Audit key at -vvv
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Rotate (check mode)
      alexandria.ee.alex_audit_key:
        kubeconfig: %(kubeconfig)s
        namespace: %(namespace)s
        release: %(release)s
        reason: planned
        change_ref: CHG-vvv
      check_mode: true
      diff: true
    - name: Verify with the keyring of the Secret
      alexandria.ee.alex_audit_verify:
        kubeconfig: %(kubeconfig)s
        namespace: %(namespace)s
        release: %(release)s
""" % info)
    env = playbooks.ansible_env(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook),
                           "-i", str(playbooks.local_inventory(tmp_path)), "-vvv"],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    ring = keyring(lab)
    assert ring.active_id in output
    for key in ring.secrets():
        for form in akr.shown_forms(key):
            assert form not in output
    assert info["hmac_key"] not in output and "key_b64" not in output


ROLE_PLAY = """---
- name: The audit_hmac tasks of role key_rotation, as main.yml includes them after its gates
  hosts: localhost
  gather_facts: false
  vars:
    key_rotation_plan: []
    key_rotation_log: {observed: [], decisions: [], actions: []}
    key_rotation_result: {}
    key_rotation_dsn: ""
    key_rotation_kubeconfig: %(kubeconfig)s
    key_rotation_context: ""
    key_rotation_namespace: %(namespace)s
    key_rotation_release: %(release)s
    key_rotation_reason: planned
    key_rotation_change_ref: CHG-role-1
    key_rotation_compromised_at: ""
    key_rotation_wait_timeout: 120
  tasks:
    - name: Rotate the audit HMAC key
      ansible.builtin.include_tasks: %(tasks)s
    - name: Publish the result
      ansible.builtin.set_stats:
        data:
          result: "{{ key_rotation_result }}"
          plan: "{{ key_rotation_plan }}"
          log: "{{ key_rotation_log }}"
"""


def test_role_tasks_check_run_check_run(lab, tmp_path):
    info = dict(lab.info, tasks=os.path.join(h.REPO, "roles", "key_rotation", "tasks", "audit_hmac.yml"))
    play = tmp_path / "role.yml"
    play.write_text(ROLE_PLAY % info)
    inventory = playbooks.local_inventory(tmp_path)
    before = keyring(lab).active_id
    outcomes = []
    for index, check in enumerate((True, False, True, False)):
        stats = tmp_path / ("stats-%d.json" % index)
        env = playbooks.ansible_env(stats=stats, ANSIBLE_LOCALHOST_WARNING="false",
                                    ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play), "-i", str(inventory)]
        proc = subprocess.run(argv + (["--check"] if check else []), env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        outcomes.append(playbooks.Run(proc, stats).custom)
    plans = [o["plan"] for o in outcomes]
    assert plans[0] == plans[1], "the rehearsal's plan is the real run's (same plan hash)"
    assert plans[0][0]["key_id_before"] == before and plans[0][0]["change"] is True
    results = [o["result"] for o in outcomes]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["ids_after"] == [] and results[1]["ids_before"] == [before]
    new_id = keyring(lab).active_id
    assert results[1]["ids_after"] == [new_id] and results[3]["ids_after"] == [new_id]
    # After the compromise test of this module, the stolen key's epoch stays unattested (no checkpoint before it).
    assert set(results[1]["verification"]["rows_by_kind"]) <= {"unattested"}
    assert sorted(results[1]["tenants_rotated"]) == TENANTS
    assert results[1]["target"] == "audit_hmac" and results[1]["fingerprints_after"][0].startswith(new_id)
    assert outcomes[1]["log"]["actions"][0]["done"] is True and outcomes[3]["log"]["actions"][0]["done"] is False
