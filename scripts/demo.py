"""make demo: the runbook's three incidents, end to end, against a fresh built-in lab.

Starts a lab (`alexlab up`), then for each scenario breaks the lab the way the incident does, runs the
collection's playbook the way an SRE would (first diagnosis only, then with the gates opened), and shows
what the playbook reported (its set_stats summary). Stops the lab at the end, also on failure.
Exit status 0 only when every step ended as the runbook says it should.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
LAB_DIR = REPO / ".lab" / "demo"
CALLBACKS = REPO / "tests" / "integration" / "callback_plugins"


def say(text):
    print("\n=== %s" % text, flush=True)


def alexlab(*args, check=True):
    proc = subprocess.run([str(BIN / "alexlab")] + list(args) + ["--dir", str(LAB_DIR)], capture_output=True,
                          text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit("alexlab %s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout.strip()


def playbook(name, work, expect_ok=True, **extra):
    """Run alexandria.ee.<name> against the lab host; return its set_stats summary."""
    stats = pathlib.Path(work) / ("stats-%s.json" % name)
    extra_file = pathlib.Path(work) / "extra.json"
    extra_file.write_text(json.dumps(extra))
    os.chmod(extra_file, 0o600)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".venv" / "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
               ANSIBLE_CALLBACKS_ENABLED="alex_stats_json", ALEX_STATS_JSON=str(stats), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DISPLAY_SKIPPED_HOSTS="false", ANSIBLE_DISPLAY_OK_HOSTS="false")
    cmd = [str(BIN / "ansible-playbook"), "-i", str(pathlib.Path(work) / "inventory.yml"),
           "alexandria.ee." + name, "-e", "alex_target=alexandria", "-e", "@" + str(extra_file)]
    print("$ ansible-playbook alexandria.ee.%s %s" % (name, " ".join("-e %s=%s" % kv for kv in extra.items())),
          flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work, check=False)
    data = json.loads(stats.read_text()) if stats.exists() else {}
    failed = [t["msg"] for t in data.get("failed_tasks", [])]
    ok = proc.returncode == 0
    print("  -> %s%s" % ("ok" if ok else "stopped", (": " + failed[-1][:400]) if failed else ""))
    if ok != expect_ok:
        print(proc.stdout[-4000:])
        raise SystemExit("demo: alexandria.ee.%s %s unexpectedly" % (name, "failed" if expect_ok else "passed"))
    return (data.get("custom") or {}).get("_run", {})


def show(summary, key, fields):
    """Print the scenario's own summary fields and the run record every scenario leaves."""
    part = summary.get(key) or {}
    print("  summary: " + json.dumps(dict((f, part.get(f)) for f in fields if f in part), default=str)[:600])
    record = (summary.get("alexandria_ee") or {}).get("demo-lab") or {}
    if record:
        print("  run record: result=%s causes=%s plan_hash=%s\n              %s" % (
            record.get("result"), record.get("causes"), (record.get("plan_hash") or "")[:16],
            record.get("record_markdown")))
    return part


def main():
    if (LAB_DIR / "lab.json").exists():
        alexlab("down", check=False)
    shutil.rmtree(LAB_DIR, ignore_errors=True)  # a fresh deployment every time: no state from an earlier demo
    say("alexlab up: PostgreSQL, the API, the orchestrator and a Kubernetes API facade")
    print(alexlab("up"))
    # Inventory (0600: it holds the lab's secrets), run records and evidence stay in .lab/demo/runs to read.
    work = str(LAB_DIR / "runs")
    os.makedirs(work, mode=0o700, exist_ok=True)
    try:
        inv = pathlib.Path(work) / "inventory.yml"
        inv.write_text(alexlab("inventory", "--host", "demo-lab"))
        os.chmod(inv, 0o600)
        info = json.loads((LAB_DIR / "lab.json").read_text())

        say("Scenario 1: API not serving - the license Secret is corrupted (signature fails)")
        alexlab("break", "license-corrupt")
        print("  paged: start with the fleet health, which names the incident and the next command")
        health = playbook("health", work)
        state = (health.get("alexandria_ee") or {}).get("demo-lab") or {}
        print("  scenario: %s\n  next: %s" % (state.get("scenario"), state.get("next_command")))
        if state.get("scenario") != "license_renewal":
            raise SystemExit("demo: the fleet health did not name the license renewal: %s" % state)
        s1 = playbook("api_not_serving", work, expect_ok=False)
        cause = show(s1, "api_not_serving", ["result", "causes", "evidence"])
        print("  the playbook stops and points to the license playbook; applying a new blob:")
        blob = pathlib.Path(work) / "new.blob"
        blob.write_text(alexlab("license", "mint", "--seats", "25", "--tenants", "5", "--tier", "enterprise"))
        os.chmod(blob, 0o600)
        playbook("license_renewal", work, license_renewal_blob_file=str(blob))
        s1b = playbook("api_not_serving", work)
        show(s1b, "api_not_serving", ["result", "causes", "ready_after"])
        del cause

        say("Scenario 2: quota exceeded (HTTP 402) - every seat taken, five users idle for 120 days")
        alexlab("seed-users", "--inactive", "5", "--inactive-days", "120")
        alexlab("break", "seats-exhausted")
        playbook("quota_exceeded", work, expect_ok=False)
        print("  the max_deactivate gate refuses to touch more users than allowed:")
        playbook("quota_exceeded", work, expect_ok=False, quota_exceeded_free_seats=True,
                 quota_exceeded_max_deactivate=2)
        s2b = playbook("quota_exceeded", work, quota_exceeded_free_seats=True, quota_exceeded_max_deactivate=5)
        show(s2b, "quota_exceeded", ["exhausted", "result", "deactivated", "headroom"])

        say("Key rotation after compromise - the license issuer key leaked: trust the new key, apply, revoke the old")
        new_key = json.loads(alexlab("license", "issuer-key", "--name", "rotated"))
        old_key = json.loads(alexlab("license", "issuer-key", "--name", "issuer"))
        rotated_blob = pathlib.Path(work) / "rotated.blob"
        rotated_blob.write_text(alexlab("license", "mint", "--seats", "25", "--tenants", "5", "--tier", "enterprise",
                                        "--key", "rotated"))
        os.chmod(rotated_blob, 0o600)
        rotation = dict(key_rotation_target="license_issuer", key_rotation_reason="compromise",
                        key_rotation_compromised_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600)),
                        key_rotation_new_issuer_public_key=new_key["public_key_hex"],
                        key_rotation_license_blob_file=str(rotated_blob),
                        key_rotation_revoke_issuer_key_id=old_key["key_id"])
        print("  without a change reference and the confirmation, the gate stops it:")
        playbook("key_rotation", work, expect_ok=False, **rotation)
        rotated = playbook("key_rotation", work, key_rotation_change_ref="CHG-DEMO-0002", key_rotation_confirm=True,
                           **rotation)
        rotated = show(rotated, "key_rotation", ["changed", "ids_before", "ids_after", "verification"])
        if (rotated.get("verification") or {}).get("previous_blob_reason") != "revoked_issuer":
            raise SystemExit("demo: the blob signed by the revoked key is not refused: %s" % rotated)
        print("  the old key's blobs are now refused (revoked_issuer); /license serves the blob of the new key")

        say("Scenario 3: audit chain failure - rows 40-45 of tenant demo-001 edited in place")
        alexlab("seed-audit", "--tenants", "2", "--rows", "200", "--prefix", "demo")
        alexlab("break", "audit-tamper", "--tenant", "demo-001", "--seq", "40-45")
        evidence = str(LAB_DIR / "evidence")
        os.makedirs(evidence, mode=0o700, exist_ok=True)
        s3 = playbook("audit_chain_failure", work, expect_ok=False, audit_chain_evidence_dir=evidence)
        show(s3, "audit_chain", ["result", "scope", "gate"])
        s3b = playbook("audit_chain_failure", work, audit_chain_evidence_dir=evidence,
                       audit_chain_signoff="CR-DEMO-0001", audit_chain_confirm=True)
        show(s3b, "audit_chain", ["result", "retired", "anchors", "verified_after", "api_write_after"])

        say("The audit chain watch - signed checkpoints outside the database, then the newest rows of demo-002 cut")
        watch = playbook("audit_chain_watch", work)
        show(watch, "audit_chain_watch", ["verified", "tenants", "rows_read", "advanced"])
        alexlab("break", "audit-delete", "--tenant", "demo-002", "--seq", "198-200")
        print("  three rows deleted in SQL: the chain that is left still verifies on its own")
        caught = playbook("audit_chain_watch", work, expect_ok=False)
        show(caught, "audit_chain_watch", ["verified", "broken", "rows_read", "advanced"])
        scope = (((caught.get("alexandria_ee") or {}).get("demo-lab") or {}).get("scope") or {}).get("segments", {})
        if scope.get("demo-002") != [{"first_seq": 198, "last_seq": 200, "rows": 3, "kind": "truncated"}]:
            raise SystemExit("demo: the watch did not name the cut tail: %s" % scope)
        print("  the watch names it: demo-002 truncated seq 198-200 (probable cause tail_truncation)")
        del info
    finally:
        say("alexlab down")
        print(alexlab("down", check=False))
    print("\ndemo: all three runbook scenarios, a key rotation and the audit chain watch ran end to end against the "
          "lab; run records in %s" % os.path.join(work, "alexandria-reports"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
