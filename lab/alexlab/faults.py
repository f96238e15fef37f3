"""`alexlab break FAULT` and `alexlab heal [FAULT]`: real faults, injected through real channels.

Each active fault is DIR/faults/<fault>.json, holding what heal needs to undo it. `break`
returns once the symptom is observable (unless --no-wait); `heal` once the lab is healthy again.
"""
import base64
import os
import re
import secrets

from alexlab import helm_fault
from alexlab import keys as labkeys
from alexlab.common import LabError, parse_quantity, read_json, rfc3339, write_json
from alexlab.labclient import LabClient
from alexlab.shared import audit_chain as ac

FAULTS = ("orchestrator-crash", "orchestrator-hang", "oom", "license-corrupt", "license-missing", "license-expired",
          "seats-exhausted", "tenants-exhausted", "audit-tamper", "audit-delete", "audit-key-mismatch", "rbac-deny",
          "forge-compromised-key", "bad-upgrade")
FORGED_ROWS = 3
LICENSE_FAULTS = ("license-corrupt", "license-missing", "license-expired")
PROCESS_AND_SECRET_FAULTS = ("orchestrator-crash", "orchestrator-hang", "oom", "rbac-deny", "audit-key-mismatch",
                             "bad-upgrade") + LICENSE_FAULTS
COLUMNS = "tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac"


def _path(layout, name):
    return os.path.join(layout.faults, name + ".json")


def active(layout):
    found = []
    for name in FAULTS:
        record = read_json(_path(layout, name))
        if record:
            found.append((record.get("injected_at", ""), name))
    return [name for _stamp, name in sorted(found)]


def _record(layout, name, data):
    os.makedirs(layout.faults, exist_ok=True)
    write_json(_path(layout, name), dict(data, fault=name, injected_at=data.get("injected_at") or rfc3339()))


def _forget(layout, name):
    try:
        os.unlink(_path(layout, name))
    except FileNotFoundError:
        pass


def parse_seq(text):
    match = re.match(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$", text or "")
    if not match:
        raise LabError("--seq must be A-B or N with positive integers, not %r" % (text or ""))
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if first < 1 or last < first:
        raise LabError("--seq %s is not a range: it needs 1 <= A <= B" % text)
    return first, last


def ready_check(client, check, words):
    def predicate():
        code, body = client.ready(timeout=5)
        return code == 503 and isinstance(body, dict) and words in str(body.get("checks", {}).get(check, ""))
    return predicate


# -- break ---------------------------------------------------------------------------------------

def break_orchestrator(client, args, name):
    _record(client.layout, name, {})
    if name == "orchestrator-crash":
        return ready_check(client, "orchestrator", "orchestrator.sock"), "the orchestrator crash-loops, socket gone"
    return ready_check(client, "orchestrator", "context deadline exceeded"), "orchestrator health checks time out"


def orchestrator_limit(client):
    for container in client.deployment()["spec"]["template"]["spec"]["containers"]:
        if container["name"] == "orchestrator":
            return parse_quantity(((container.get("resources") or {}).get("limits") or {}).get("memory") or "0")
    return 0


def break_oom(client, args, name):
    limit = orchestrator_limit(client)
    if args.working_set:
        try:
            working_set = parse_quantity(args.working_set)
        except ValueError:
            raise LabError("--working-set %r is not a memory quantity like 192Mi" % args.working_set)
    elif limit:
        working_set = int(limit * 1.25)
    else:
        raise LabError("the orchestrator has no memory limit to exceed; pass --working-set")
    _record(client.layout, name, {"working_set_bytes": working_set})

    def oom_killed():
        status = client.container_status("orchestrator")
        return bool(status) and (status.get("lastState") or {}).get("terminated", {}).get("reason") == "OOMKilled"
    return oom_killed, "the orchestrator needs %dMi; its limit is %dMi" % (working_set >> 20, limit >> 20)


def break_license(client, args, name):
    layout = client.layout
    secret = client.release + "-license"
    original = None
    for other in LICENSE_FAULTS:
        record = read_json(_path(layout, other))
        if record:
            original = record["original"]
            _forget(layout, other)
    if original is None:
        value = client.secret_value(secret, "license.blob")
        original = value.decode("utf-8") if value is not None else client.info["license_blob"]
    _record(layout, name, {"original": original})
    if name == "license-missing":
        client.delete_secret(secret)
        words = "license blob invalid: missing"
    elif name == "license-corrupt":
        prefix, payload, signature = original.strip().split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        raw[0] ^= 0x01
        bad = "%s.%s.%s" % (prefix, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode("ascii"))
        client.set_secret_value(secret, "license.blob", bad.encode("ascii"))
        words = "license signature verification failed"
    else:
        status, lic = client.api("GET", "/license", auth=False)
        seats = (lic or {}).get("max_seats") or 25
        tenants = (lic or {}).get("max_tenants") or 5
        blob = labkeys.mint(read_json(layout.keys_json), seats, tenants, (lic or {}).get("tier") or "enterprise", -1.0)
        client.set_secret_value(secret, "license.blob", blob.encode("ascii"))
        words = "license blob invalid: expired"
    client.rollout_restart()
    return ready_check(client, "license", words), "the license Secret now gives: %s (API restarted)" % words


def _first_tenant(client):
    conn = client.connect()
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT id FROM tenants ORDER BY id COLLATE "C" LIMIT 1')
            row = cur.fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def break_quota(client, args, name):
    status, lic = client.api("GET", "/license", auth=False)
    if status != 200 or not lic.get("valid"):
        raise LabError("the license is not valid (%s); heal it before filling quotas" % (lic or {}).get("reason"))
    tag = secrets.token_hex(2)
    record = {"users": [], "tenants": [], "created_tenant": None}
    quota = "seats" if name == "seats-exhausted" else "tenants"
    limit = lic["max_seats"] if quota == "seats" else lic["max_tenants"]
    tenant = _first_tenant(client) if quota == "seats" else None
    try:
        if quota == "seats" and tenant is None:
            code, body = client.api("POST", "/api/v1/tenants", {"id": "lab-fill-%s" % tag, "name": "seat filler"})
            if code != 201:
                raise LabError("cannot create a tenant for the seat fillers: HTTP %s %s" % (code, body))
            tenant = record["created_tenant"] = body["tenant"]["id"]
        for index in range(limit + 1):
            if quota == "seats":
                code, body = client.api("POST", "/api/v1/users", {"username": "fill-%s-%04d" % (tag, index),
                                                                  "tenant_id": tenant})
            else:
                code, body = client.api("POST", "/api/v1/tenants", {"id": "fill-%s-%03d" % (tag, index),
                                                                    "name": "tenant filler %d" % index})
            if code == 402:
                break
            if code != 201:
                raise LabError("filling %s stopped: HTTP %s %s" % (quota, code, body))
            if quota == "seats":
                record["users"].append(body["user"]["id"])
            else:
                record["tenants"].append(body["tenant"]["id"])
    finally:
        _record(client.layout, name, record)
    added = len(record["users"]) + len(record["tenants"])
    return (lambda: True), "%s filled to the license's %d (%d added); new creates answer 402" % (quota, limit, added)


def _rows(client, tenant, first, last):
    conn = client.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), min(seq), max(seq) FROM audit_logs WHERE tenant_id = %s", (tenant,))
            total, low, high = cur.fetchone()
            cur.execute("SELECT count(*) FROM audit_logs WHERE tenant_id = %s AND seq BETWEEN %s AND %s",
                        (tenant, first, last))
            inside = cur.fetchone()[0]
    finally:
        conn.close()
    if not total:
        raise LabError("tenant %r has no audit rows" % tenant)
    if inside != last - first + 1:
        raise LabError("--seq %d-%d is out of range: tenant %r has %d rows, seq %d-%d" % (
            first, last, tenant, total, low, high))


def break_audit(client, args, name):
    if not args.tenant:
        raise LabError("%s needs --tenant" % name)
    first, last = parse_seq(args.seq)
    _rows(client, args.tenant, first, last)
    layout = client.layout
    record = read_json(_path(layout, name)) or {"entries": []}
    saved = os.path.join(layout.faults, "%s-%d-%s.copy" % (name, len(record["entries"]), secrets.token_hex(3)))
    conn = client.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(ac.TENANT_LOCK_SQL, (args.tenant,))
            with open(saved, "wb") as sink:
                cur.copy_expert(cur.mogrify("COPY (SELECT " + COLUMNS + " FROM audit_logs WHERE tenant_id = %s "
                                            "AND seq BETWEEN %s AND %s ORDER BY seq) TO STDOUT",
                                            (args.tenant, first, last)).decode("utf-8"), sink)
            if name == "audit-tamper":
                cur.execute("UPDATE audit_logs SET payload = payload || jsonb_build_object('tampered', true) "
                            "WHERE tenant_id = %s AND seq BETWEEN %s AND %s", (args.tenant, first, last))
            else:
                cur.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq BETWEEN %s AND %s",
                            (args.tenant, first, last))
        conn.commit()
    finally:
        conn.close()
    record["entries"].append({"tenant": args.tenant, "first": first, "last": last, "file": saved})
    _record(layout, name, record)
    verb = "edited in place" if name == "audit-tamper" else "deleted"
    if not args.no_verify:
        _verify(client)
    return (lambda: True), "tenant %r seq %d-%d %s" % (args.tenant, first, last, verb)


def _verify(client):
    code, body = client.api("POST", "/admin/v1/audit/verify", timeout=300)
    if code != 200:
        raise LabError("the API's audit verification answered HTTP %s" % code)
    return body


def break_key(client, args, name):
    original = client.secret_value(client.release, "audit-hmac-key")
    if original is None:
        raise LabError("the main Secret has no audit-hmac-key")
    record = read_json(_path(client.layout, name))
    if record is None:
        _record(client.layout, name, {"original_b64": base64.b64encode(original).decode("ascii")})
    client.set_secret_value(client.release, "audit-hmac-key", ("rotated-" + secrets.token_hex(16)).encode("ascii"))
    _restart_and_wait_verified(client, args.timeout)
    return (lambda: True), "the Secret's audit-hmac-key is not the key the rows were written with (API restarted)"


def break_forge(client, args, name):
    """The attacker who stole a key: rows signed with a compromised key appended after the rotation point.

    Written straight into the database (not through the API), linked to the tenant's tip so that only the key
    gives them away: each is in the new key's epoch, so the verifier finds them as hmac_mismatch.
    """
    from alexlab import seed  # the keyring reader; seed imports nothing from here
    keyring = seed.lab_keyring(client)
    stolen = sorted((entry.get("compromised_at") or "", kid) for kid, entry in keyring.keys.items()
                    if entry["status"] == "compromised")
    if not stolen:
        raise LabError("%s needs a compromised key in the keyring: rotate the audit key with reason compromise first"
                       % name)
    key = keyring.key(stolen[-1][1])
    conn = client.connect()
    try:
        with conn.cursor() as cur:
            tenant = args.tenant
            if tenant is None:
                cur.execute('SELECT tenant_id FROM audit_key_rotations ORDER BY tenant_id COLLATE "C" LIMIT 1')
                row = cur.fetchone()
                if row is None:
                    raise LabError("%s: no tenant has a rotation record yet (restart the API after the rotation)" % name)
                tenant = row[0]
            cur.execute(ac.TENANT_LOCK_SQL, (tenant,))
            start, prev = seed.chain_tip(cur, key, tenant)
            cur.execute("SELECT clock_timestamp()")
            now = cur.fetchone()[0]
            rows = [{"occurred_at": now, "actor": "intruder", "action": "audit.forged", "payload": {"n": i}}
                    for i in range(FORGED_ROWS)]
            for row in ac.build_chain(key, tenant, rows, start_seq=start, prev_hmac=prev):
                cur.execute("INSERT INTO audit_logs (" + COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
                            (tenant, row["seq"], ac.format_timestamptz(now), row["actor"], row["action"],
                             ac.jsonb_text(row["payload"]), row["prev_hmac"], row["row_hmac"]))
        conn.commit()
    finally:
        conn.close()
    record = read_json(_path(client.layout, name)) or {"entries": []}
    record["entries"].append({"tenant": tenant, "first": start, "last": start + FORGED_ROWS - 1,
                              "key_id": stolen[-1][1]})
    _record(client.layout, name, record)
    if not args.no_verify:
        _verify(client)
    return (lambda: True), "tenant %r seq %d-%d forged with compromised key %s" % (
        tenant, start, start + FORGED_ROWS - 1, stolen[-1][1])


def _restart_and_wait_verified(client, timeout):
    old = (client.pod() or {}).get("metadata", {}).get("name")
    client.rollout_restart()
    pod = client.wait_new_pod(old, timeout)
    client.wait_ready(timeout)
    client.wait_for("the API's startup audit verification",
                    lambda: "audit verify (startup)" in client.logs("api", pod=pod["metadata"]["name"]), timeout)


def break_rbac(client, args, name):
    record = read_json(_path(client.layout, name)) or {"rules": []}
    record["rules"].append({"resource": args.resource, "verb": args.verb})
    _record(client.layout, name, record)
    return (lambda: True), "the facade answers 403 Forbidden for %s %s" % (args.verb, args.resource)


def break_bad_upgrade(client, args, name):
    if read_json(_path(client.layout, name)):
        raise LabError("bad-upgrade is already active: heal it first")
    record = helm_fault.break_bad_upgrade(client, lambda data: _record(client.layout, name, data))
    socket_gone = ready_check(client, "orchestrator", "orchestrator.sock")

    def new_pod_crashed():
        # The old pod's API also reports the socket gone while it terminates: wait for the new pod's crash.
        dep = client.deployment()
        status = dep.get("status") or {}
        if status.get("observedGeneration", 0) < dep["metadata"]["generation"] or status.get("updatedReplicas") != 1:
            return False
        orchestrator = client.container_status("orchestrator") or {}
        crashed = ((orchestrator.get("lastState") or {}).get("terminated") or {}).get("exitCode") == 2
        return crashed and socket_gone()
    return new_pod_crashed, (
        "revision %d deployed chart %s-%s (app %s); its orchestrator crash-loops, socket gone" % (
            record["version"], record["chart"]["metadata"]["name"], record["chart"]["metadata"]["version"],
            record["chart"]["metadata"]["appVersion"]))


BREAKERS = {"orchestrator-crash": break_orchestrator, "orchestrator-hang": break_orchestrator, "oom": break_oom,
            "license-corrupt": break_license, "license-missing": break_license, "license-expired": break_license,
            "seats-exhausted": break_quota, "tenants-exhausted": break_quota, "audit-tamper": break_audit,
            "audit-delete": break_audit, "audit-key-mismatch": break_key, "rbac-deny": break_rbac,
            "forge-compromised-key": break_forge, "bad-upgrade": break_bad_upgrade}


def cmd_break(args):
    client = LabClient(args.dir)
    if args.fault not in ("audit-tamper", "audit-delete") and args.seq:
        raise LabError("--seq only applies to audit-tamper and audit-delete")
    if args.fault not in ("audit-tamper", "audit-delete", "forge-compromised-key") and args.tenant:
        raise LabError("--tenant only applies to audit-tamper, audit-delete and forge-compromised-key")
    symptom, words = BREAKERS[args.fault](client, args, args.fault)
    if not args.no_wait:
        client.wait_for("the symptom of %s" % args.fault, symptom, args.timeout)
    print("fault %s injected: %s" % (args.fault, words))
    return 0


# -- heal ----------------------------------------------------------------------------------------

def heal_one(client, name, record, wait, timeout):
    layout = client.layout
    if name in ("orchestrator-crash", "orchestrator-hang", "oom"):
        _forget(layout, name)
        if wait:
            client.wait_ready(timeout)
    elif name in LICENSE_FAULTS:
        client.set_secret_value(client.release + "-license", "license.blob", record["original"].encode("utf-8"))
        _forget(layout, name)
        client.rollout_restart()
        if wait:
            client.wait_for("a valid license on a ready API", lambda: client.ready()[0] == 200, timeout)
    elif name in ("seats-exhausted", "tenants-exhausted"):
        conn = client.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM users WHERE id = ANY(%s)", (record["users"],))
                doomed = record["tenants"] + ([record["created_tenant"]] if record.get("created_tenant") else [])
                cur.execute("DELETE FROM tenants t WHERE id = ANY(%s) AND NOT EXISTS "
                            "(SELECT 1 FROM users u WHERE u.tenant_id = t.id)", (doomed,))
            conn.commit()
        finally:
            conn.close()
        _forget(layout, name)
    elif name in ("audit-tamper", "audit-delete"):
        lost = []
        conn = client.connect()
        try:
            with conn.cursor() as cur:
                for entry in reversed(record["entries"]):
                    cur.execute(ac.TENANT_LOCK_SQL, (entry["tenant"],))
                    cur.execute("CREATE TEMP TABLE IF NOT EXISTS alexlab_restore (LIKE audit_logs) ON COMMIT DROP")
                    cur.execute("TRUNCATE alexlab_restore")
                    with open(entry["file"], "rb") as source:
                        cur.copy_expert("COPY alexlab_restore (" + COLUMNS + ") FROM STDIN", source)
                    if name == "audit-tamper":
                        cur.execute("UPDATE audit_logs a SET payload = r.payload FROM alexlab_restore r "
                                    "WHERE a.tenant_id = r.tenant_id AND a.seq = r.seq")
                    else:
                        cur.execute("INSERT INTO audit_logs (" + COLUMNS + ") SELECT " + COLUMNS +
                                    " FROM alexlab_restore ON CONFLICT DO NOTHING")
                    restored = cur.rowcount
                    cur.execute("SELECT count(*) FROM alexlab_restore")
                    saved = cur.fetchone()[0]
                    if restored != saved:
                        lost.append("tenant %r seq %d-%d: %d of %d rows could not be put back (%s)" % (
                            entry["tenant"], entry["first"], entry["last"], saved - restored, saved,
                            "retired or deleted since" if name == "audit-tamper" else "their seq was written again"))
            conn.commit()
        finally:
            conn.close()
        for entry in record["entries"]:
            if os.path.exists(entry["file"]):
                os.unlink(entry["file"])
        _forget(layout, name)
        _verify(client)
        if lost:
            raise LabError("%s healed only in part: %s" % (name, "; ".join(lost)))
    elif name == "audit-key-mismatch":
        client.set_secret_value(client.release, "audit-hmac-key", base64.b64decode(record["original_b64"]))
        _forget(layout, name)
        if wait:
            _restart_and_wait_verified(client, timeout)
        else:
            client.rollout_restart()
    elif name == "rbac-deny":
        _forget(layout, name)
    elif name == "bad-upgrade":
        helm_fault.heal_bad_upgrade(client, record)
        _forget(layout, name)
        if wait:
            client.wait_ready(timeout)
    elif name == "forge-compromised-key":
        conn = client.connect()
        try:
            with conn.cursor() as cur:
                for entry in record["entries"]:
                    cur.execute(ac.TENANT_LOCK_SQL, (entry["tenant"],))
                    cur.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq BETWEEN %s AND %s",
                                (entry["tenant"], entry["first"], entry["last"]))
            conn.commit()
        finally:
            conn.close()
        _forget(layout, name)
        _verify(client)


def cmd_heal(args):
    client = LabClient(args.dir)
    names = [args.fault] if args.fault else list(reversed(active(client.layout)))
    healed = []
    for name in names:
        record = read_json(_path(client.layout, name))
        if record is None:
            continue
        heal_one(client, name, record, not args.no_wait, args.timeout)
        healed.append(name)
    if not healed:
        print("nothing to heal%s" % (": %s is not active" % args.fault if args.fault else ""))
    else:
        print("healed: %s" % ", ".join(healed))
    return 0
