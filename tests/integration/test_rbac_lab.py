"""The shipped RBAC (extensions/rbac/) enforced by the lab, and the modules' permission preflight.

One lab for the module, started with `alexlab up --rbac observer`: its kubeconfig holds a token of the
ServiceAccount bound to Role alexandria-ee-observer; DIR/kubeconfig-responder and DIR/kubeconfig-admin hold
the responder's and the lab's admin token. kubectl and the official client talk to it for real.
"""
import base64
import json
import os
import pathlib
import secrets
import subprocess
import time

import psycopg2
import pytest
from psycopg2 import sql
from ansible.module_utils.testing import patch_module_args

from alexlab import pg as labpg
from alexlab.testing import LabHandle, kubectl_path
from ansible_collections.alexandria.ee.plugins.modules import alex_audit_backup, alex_license, alex_pod_restart

import playbooks

pytestmark = pytest.mark.lab

NS = "alexandria"
SELECTOR = "app.kubernetes.io/instance=alexandria-ee"
OBSERVER = "system:serviceaccount:alexandria:alexandria-ee-observer"
RESPONDER_ROLE = "Role alexandria-ee-responder in extensions/rbac/"
ROLES_SQL = pathlib.Path(__file__).resolve().parents[2] / "extensions" / "sql" / "alexandria_audit_roles.sql"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, pg_admin_dsn):
    dsn = labpg.create_database(pg_admin_dsn, prefix="rbac")
    handle = LabHandle(tmp_path_factory.mktemp("rbaclab"), pg_admin_dsn, dsn)
    proc = handle.cli("up", "--rbac", "observer", "--dsn", dsn, check=False)
    if proc.returncode != 0:
        handle.drop_database()
        raise AssertionError(proc.stderr)
    yield handle
    proc = handle.down()
    assert proc.returncode == 0, proc.stderr


def kubeconfig(lab, role):
    return lab.info["kubeconfigs"][role]


def kubectl_as(lab, role, *args):
    env = dict(os.environ, KUBECONFIG=kubeconfig(lab, role), HOME=lab.dir)
    return subprocess.run([kubectl_path()] + list(args), capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def run_module(module, args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    result["warnings"] = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
    return result


def k8s_args(lab, role="observer", **extra):
    return dict(kubeconfig=kubeconfig(lab, role), namespace=NS, release="alexandria-ee", **extra)


def pods(lab):
    """(name, uid) of the release's pods, read with the admin token (the lab's own client)."""
    status, body = lab.client.kube("GET", "/api/v1/namespaces/%s/pods?labelSelector=%s" % (NS, SELECTOR))
    assert status == 200
    return sorted((p["metadata"]["name"], p["metadata"]["uid"]) for p in body["items"]
                  if not p["metadata"].get("deletionTimestamp"))


def resource_versions(lab):
    """resourceVersion of the Deployment and the license Secret (admin token)."""
    deployment = lab.client.deployment()["metadata"]["resourceVersion"]
    status, secret = lab.client.kube("GET", "/api/v1/namespaces/%s/secrets/alexandria-ee-license" % NS)
    assert status == 200
    return deployment, secret["metadata"]["resourceVersion"]


def test_the_kubeconfig_is_the_observer(lab):
    info = lab.info
    assert info["rbac"] == "observer"
    assert info["kubeconfigs"]["observer"] != info["kubeconfig"]  # its own file, same token
    with open(info["kubeconfig"], encoding="utf-8") as handle:
        text = handle.read()
    assert info["k8s_service_accounts"]["observer"]["token"] in text and info["k8s_token"] not in text
    status = json.loads(lab.cli("status", "--json").stdout)
    assert status["rbac"] == "observer"


def test_observer_reads(lab):
    listed = lab.kubectl("get", "pods", "-l", SELECTOR)
    assert "2/2" in listed.stdout
    logs = lab.kubectl("logs", "-l", SELECTOR, "-c", "api", "--tail=1")
    assert logs.returncode == 0 and logs.stdout.strip()
    events = lab.core().list_namespaced_event(NS)
    assert events.items
    secret = lab.core().read_namespaced_secret("alexandria-ee-license", NS)
    assert "license.blob" in secret.data


def test_observer_writes_are_403_in_the_api_servers_words(lab):
    import kubernetes
    ((pod, uid),) = pods(lab)
    before = resource_versions(lab)
    denied = lab.kubectl("delete", "pod", pod, check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): pods "%s" is forbidden: User "%s" cannot delete resource "pods" in API '
        'group "" in the namespace "alexandria"' % (pod, OBSERVER))
    with pytest.raises(kubernetes.client.ApiException) as err:
        lab.apps().patch_namespaced_deployment("alexandria-ee", NS, {"spec": {"template": {"metadata": {
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}})
    body = json.loads(err.value.body)
    assert err.value.status == 403
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 403,
                    "reason": "Forbidden",
                    "details": {"name": "alexandria-ee", "group": "apps", "kind": "deployments"},
                    "message": 'deployments.apps "alexandria-ee" is forbidden: User "%s" cannot patch resource '
                               '"deployments" in API group "apps" in the namespace "alexandria"' % OBSERVER}
    listing = lab.kubectl("get", "secrets", check=False)
    assert listing.returncode == 1 and 'cannot list resource "secrets" in API group ""' in listing.stderr
    other = lab.kubectl("get", "pods", "-n", "kube-system", check=False)
    assert 'in the namespace "kube-system"' in other.stderr
    assert pods(lab) == [(pod, uid)] and resource_versions(lab) == before


@pytest.mark.parametrize("role,args,answer", [
    ("observer", ["list", "pods", "-n", NS], "yes"),
    ("observer", ["get", "pods", "-n", NS], "no"),  # no module reads a pod by name: not granted
    ("observer", ["get", "pods", "--subresource=log"], "yes"),
    ("observer", ["get", "secrets/alexandria-ee-license"], "yes"),
    ("observer", ["get", "secrets/some-other-secret"], "no"),
    ("observer", ["patch", "deployments/alexandria-ee"], "no"),
    ("observer", ["delete", "pods"], "no"),
    ("observer", ["get", "services/alexandria-ee:80", "--subresource=proxy"], "yes"),
    ("responder", ["patch", "deployments/alexandria-ee"], "yes"),
    ("responder", ["patch", "deployments/other"], "no"),
    ("responder", ["get", "pods", "--subresource=log"], "yes"),
    ("responder", ["update", "secrets/alexandria-ee-license"], "yes"),
    ("responder", ["update", "secrets/alexandria-ee"], "yes"),  # alex_audit_key writes the audit keyring there
    ("responder", ["update", "secrets/some-other-secret"], "no"),
    ("responder", ["list", "pods", "-n", "kube-system"], "no"),
    ("admin", ["patch", "deployments/alexandria-ee"], "yes"),
])
def test_kubectl_auth_can_i(lab, role, args, answer):
    proc = kubectl_as(lab, role, "auth", "can-i", *args)
    assert proc.stdout.strip() == answer, proc.stderr
    assert proc.returncode == (0 if answer == "yes" else 1)


def test_the_rbac_deny_fault_still_applies_on_top(lab):
    lab.cli("break", "rbac-deny", "--resource", "pods", "--verb", "list")
    try:
        denied = lab.kubectl("get", "pods", check=False)
        assert denied.returncode == 1 and 'User "%s" cannot list resource "pods"' % OBSERVER in denied.stderr
        assert kubectl_as(lab, "observer", "auth", "can-i", "list", "pods").stdout.strip() == "no"
        assert kubectl_as(lab, "admin", "get", "pods").returncode == 1
    finally:
        lab.cli("heal", "rbac-deny")
    assert lab.kubectl("get", "pods").returncode == 0


def test_pod_restart_under_the_observer_stops_before_any_change(lab, capsys):
    before_pods, before_rv = pods(lab), resource_versions(lab)
    result = run_module(alex_pod_restart, k8s_args(lab, wait_timeout=60), capsys)
    ((pod, _uid),) = before_pods
    assert result["failed"] is True
    assert result["msg"] == (
        "deleting pods %s needs Kubernetes permissions this credential does not have, so nothing was changed: "
        'missing Kubernetes permission: delete pods "%s" in namespace alexandria (granted by %s in the '
        "alexandria.ee collection)" % (pod, pod, RESPONDER_ROLE))
    assert result["missing_permissions"] == [result["msg"].split(": ", 1)[1]]
    assert pods(lab) == before_pods and resource_versions(lab) == before_rv


def test_pod_restart_check_mode_under_the_observer_warns(lab, capsys):
    before_pods = pods(lab)
    result = run_module(alex_pod_restart, k8s_args(lab), capsys, check_mode=True)
    ((pod, _uid),) = before_pods
    assert not result.get("failed") and result["changed"] is True and result["deleted"] == [pod]
    finding = ('missing Kubernetes permission: delete pods "%s" in namespace alexandria (granted by %s in the '
               "alexandria.ee collection)" % (pod, RESPONDER_ROLE))
    assert result["missing_permissions"] == [finding]
    assert "a real run would stop before deleting pods %s: %s" % (pod, finding) in result["warnings"]
    assert pods(lab) == before_pods


def test_license_apply_under_the_observer_stops_before_any_change(lab, capsys):
    blob = lab.cli("license", "mint", "--seats", "40", "--tenants", "8", "--tier", "enterprise").stdout.strip()
    before = resource_versions(lab)
    args = k8s_args(lab, base_url=lab.info["api_url"], issuer_public_key=lab.info["issuer_public_key"],
                    state="present", blob=blob, restart=True, wait_timeout=120)
    planned = run_module(alex_license, args, capsys, check_mode=True)
    assert not planned.get("failed") and planned["changed"] is True
    assert [w.split(": ", 1)[1] for w in planned["warnings"]
            if w.startswith("a real run would stop before applying the license: ")] == planned["missing_permissions"]
    result = run_module(alex_license, args, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("applying the license needs Kubernetes permissions this credential does not "
                                    "have, so nothing was changed: ")
    assert result["missing_permissions"] == planned["missing_permissions"] == [
        'missing Kubernetes permission: %s in namespace alexandria (granted by %s in the alexandria.ee collection)'
        % (what, RESPONDER_ROLE) for what in ('update secrets "alexandria-ee-license"',
                                              'patch deployments.apps "alexandria-ee"',
                                              'get deployments.apps "alexandria-ee"')]
    assert blob not in json.dumps(result) and blob not in json.dumps(planned)
    assert resource_versions(lab) == before


# -- every scenario's --check rehearsal passes under the observer ----------------------------------------------


@pytest.fixture(scope="module")
def play(lab, tmp_path_factory):
    """Run a playbook of the collection against the lab as inventory host `lab` (its alex_* host variables, so
    the observer's kubeconfig); returns a function (name, *args, **variables) -> playbooks.Run."""
    return playbooks.lab_player(lab, tmp_path_factory.mktemp("rbacplay"))


def test_api_not_serving_check_under_the_observer_and_the_real_restart_stops(lab, play):
    lab.cli("break", "orchestrator-crash")
    try:
        before = pods(lab), resource_versions(lab)
        rehearsal = play("api_not_serving", "--check")
        assert rehearsal.rc == 0, rehearsal.out[-3000:]
        assert rehearsal.host("lab")["result"] == "planned"
        assert [a["action"] for a in rehearsal.host("lab")["actions"]] == ["restart_pods"]
        assert "a real run would stop before deleting pods" in rehearsal.out
        real = play("api_not_serving", api_not_serving_allow_restart=True)
        assert real.rc != 0
        assert 'missing Kubernetes permission: delete pods "%s" in namespace alexandria (granted by %s' % (
            before[0][0][0], RESPONDER_ROLE) in real.failure()
        assert (pods(lab), resource_versions(lab)) == before
    finally:
        lab.cli("heal", "orchestrator-crash")


def test_api_not_serving_oom_check_under_the_observer(lab, play):
    lab.cli("break", "oom")
    try:
        rehearsal = play("api_not_serving", "--check", api_not_serving_memory_limit="1Gi")
        assert rehearsal.rc == 0, rehearsal.out[-3000:]
        assert [a["action"] for a in rehearsal.host("lab")["actions"]] == ["helm_upgrade"]
    finally:
        lab.cli("heal", "oom")


def test_quota_exceeded_check_under_the_observer(lab, play):
    lab.cli("break", "seats-exhausted")
    try:
        lab.cli("seed-users", "--inactive", "3", "--inactive-days", "120")
        rehearsal = play("quota_exceeded", "--check", quota_exceeded_free_seats=True, quota_exceeded_max_deactivate=5)
        assert rehearsal.rc == 0, rehearsal.out[-3000:]
        assert rehearsal.host("lab")["result"] == "planned"
    finally:
        lab.cli("heal", "seats-exhausted")


def test_license_renewal_check_under_the_observer(lab, play):
    blob_file = play.root / "renewed.blob"
    blob_file.write_text(lab.cli("license", "mint", "--seats", "40", "--tenants", "8", "--tier",
                                 "enterprise").stdout.strip())
    os.chmod(blob_file, 0o600)
    before = resource_versions(lab)
    rehearsal = play("license_renewal", "--check", license_renewal_blob_file=str(blob_file))
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    assert [s["action"] for s in rehearsal.record("lab")["plan"]] == ["apply_license"]
    assert 'a real run would stop before applying the license: missing Kubernetes permission: update secrets ' \
           '"alexandria-ee-license"' in rehearsal.out
    real = play("license_renewal", license_renewal_blob_file=str(blob_file))
    assert real.rc != 0 and "applying the license needs Kubernetes permissions" in real.failure()
    assert resource_versions(lab) == before
    # the same real run with the responder's token applies it
    real = play("license_renewal", license_renewal_blob_file=str(blob_file), license_renewal_wait_timeout=120,
                alex_kubeconfig=kubeconfig(lab, "responder"))
    assert real.rc == 0, real.out[-3000:]
    assert real.host("lab")["result"] == "applied"
    assert lab.api("GET", "/license", auth=False)[1]["max_seats"] == 40


def test_audit_chain_check_and_rollback_check_under_the_observer(lab, play, capsys):
    lab.cli("seed-audit", "--tenants", "1", "--rows", "50", "--prefix", "rbac")
    # a backup of the intact chain, through the observer: the DSN comes from the main Secret (get
    # secrets/alexandria-ee), as the playbooks do when no dsn is given
    backup = play.root / "audit.dump"
    made = run_module(alex_audit_backup, k8s_args(lab, dest=str(backup)), capsys)
    assert not made.get("failed"), made["msg"]
    lab.cli("break", "audit-tamper", "--tenant", "rbac-001", "--seq", "10-11")
    try:
        evidence = play.root / "evidence"
        rehearsal = play("audit_chain_failure", "--check", audit_chain_evidence_dir=str(evidence),
                         audit_chain_incident_id="INC-RBAC", audit_chain_signoff="CR-1", audit_chain_confirm=True)
        assert rehearsal.rc == 0, rehearsal.out[-3000:]
        assert rehearsal.host("lab")["result"] == "planned"
        rollback = play("audit_chain_rollback", "--check", audit_chain_backup=str(backup),
                        audit_chain_confirm_rollback=True)
        assert rollback.rc == 0, rollback.out[-3000:]
        assert rollback.host("lab")["result"] == "planned"
    finally:
        lab.cli("heal", "audit-tamper")


def test_watch_and_health_under_the_observer_and_the_checkpoint_write_under_the_responder(lab, play):
    lab.cli("seed-audit", "--tenants", "1", "--rows", "20", "--prefix", "watch")
    # The fleet health and the watch's rehearsal only read: both pass under the observer.
    health = play("health", "--check")
    assert health.rc == 0, health.out[-3000:]
    assert health.host("lab")["scenario"] in ("healthy", "audit_chain_failure"), health.host("lab")
    rehearsal = play("audit_chain_watch", "--check", audit_chain_checkpoint_dir="")
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    # A real watch writes the checkpoint Secret: under the observer it stops before the write, naming it.
    watch = play("audit_chain_watch", audit_chain_checkpoint_dir="")
    assert watch.rc != 0
    assert "create secrets" in watch.failure() and "alexandria-audit" in watch.failure(), watch.failure()
    assert "alexandria-ee-responder" in watch.failure()
    secret = lab.client.kube("GET", "/api/v1/namespaces/alexandria-audit/secrets/%s" % lab.info["checkpoint_secret"])
    assert secret[0] == 404
    # The responder's kubeconfig writes it.
    done = play("audit_chain_watch", audit_chain_checkpoint_dir="", alex_kubeconfig=kubeconfig(lab, "responder"))
    assert done.rc == 0, done.failure()
    assert lab.client.kube("GET", "/api/v1/namespaces/alexandria-audit/secrets/%s"
                           % lab.info["checkpoint_secret"])[0] == 200


def test_pod_restart_under_the_responder_works(lab, capsys):
    ((before, _uid),) = pods(lab)
    result = run_module(alex_pod_restart, k8s_args(lab, "responder", wait_timeout=120), capsys)
    assert not result.get("failed"), result["msg"]
    assert result["deleted"] == [before] and "missing_permissions" not in result
    (after,) = result["replacements"]
    assert [name for name, _uid in pods(lab)] == [after] and after != before
    lab.client.wait_ready(60)


def test_license_apply_under_the_responder_works(lab, capsys):
    blob = lab.cli("license", "mint", "--seats", "41", "--tenants", "8", "--tier", "enterprise").stdout.strip()
    deployment_rv, secret_rv = resource_versions(lab)
    args = k8s_args(lab, "responder", base_url=lab.info["api_url"], issuer_public_key=lab.info["issuer_public_key"],
                    state="present", blob=blob, restart=True, wait_timeout=120)
    result = run_module(alex_license, args, capsys)
    assert not result.get("failed"), result["msg"]
    assert result["changed"] is True and result["restarted"] is True and result["ready"] is True
    assert result["license"]["max_seats"] == 41
    assert resource_versions(lab)[0] != deployment_rv and result["secret_resource_version"] != secret_rv
    stored = lab.client.secret_value("alexandria-ee-license", "license.blob")
    assert base64.b64encode(stored) and stored.decode("utf-8") == blob


# -- every real run passes under the responder; a real run under the observer stops before its first change --------


def test_api_not_serving_real_restart_under_the_responder(lab, play):
    lab.cli("break", "orchestrator-crash")
    ((before, _uid),) = pods(lab)
    variables = dict(alex_target="alexandria", alex_report_dir=str(play.root / "reports"),
                     alex_kubeconfig=kubeconfig(lab, "responder"), api_not_serving_allow_restart=True)
    argv, env, stats = playbooks.playbook_command("api_not_serving", play.root, inventory=play.root / "inventory.yml",
                                                  variables=variables)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=str(play.root))
    try:
        # The fault is transient from here on: lift it once the playbook has deleted the pod.
        deadline = time.monotonic() + 120
        while before in [name for name, _uid in pods(lab)] and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        lab.cli("heal", "orchestrator-crash", "--no-wait")
        out = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    proc.stdout, proc.stderr = out, ""
    real = playbooks.Run(proc, stats)
    assert real.rc == 0, real.out[-3000:]
    assert real.host("lab")["result"] == "remediated"
    assert [a["action"] for a in real.host("lab")["actions"]][:1] == ["restart_pods"]
    assert [name for name, _uid in pods(lab)] != [before]
    lab.client.wait_ready(60)


def test_quota_exceeded_license_upgrade_stops_under_the_observer_and_applies_under_the_responder(lab, play):
    current = lab.api("GET", "/license", auth=False)[1]
    lab.cli("break", "tenants-exhausted")
    try:
        blob_file = play.root / "more-tenants.blob"
        blob_file.write_text(lab.cli("license", "mint", "--seats", str(current["max_seats"]), "--tenants",
                                     str(current["max_tenants"] + 4), "--tier", "enterprise").stdout.strip())
        os.chmod(blob_file, 0o600)
        before = resource_versions(lab)
        real = play("quota_exceeded", quota_exceeded_license_blob_file=str(blob_file))
        assert real.rc != 0
        assert 'missing Kubernetes permission: update secrets "alexandria-ee-license" in namespace alexandria ' \
               '(granted by %s' % RESPONDER_ROLE in real.failure(), real.failure()
        assert resource_versions(lab) == before
        applied = play("quota_exceeded", quota_exceeded_license_blob_file=str(blob_file),
                       alex_kubeconfig=kubeconfig(lab, "responder"))
        assert applied.rc == 0, applied.out[-3000:]
        assert applied.host("lab")["result"] == "remediated"
        assert lab.api("GET", "/license", auth=False)[1]["max_tenants"] == current["max_tenants"] + 4
    finally:
        lab.cli("heal", "tenants-exhausted")


def test_quota_exceeded_seat_deactivation_under_the_responder(lab, play):
    lab.cli("seed-users", "--inactive", "3", "--inactive-days", "120")
    lab.cli("break", "seats-exhausted")
    try:
        real = play("quota_exceeded", quota_exceeded_free_seats=True, quota_exceeded_max_deactivate=10,
                    alex_kubeconfig=kubeconfig(lab, "responder"))
        assert real.rc == 0, real.out[-3000:]
        assert real.host("lab")["result"] == "remediated"
        usage = lab.api("GET", "/license", auth=False)[1]
        assert usage["current_seats"] < usage["max_seats"]
    finally:
        lab.cli("heal", "seats-exhausted")


def test_audit_chain_real_retire_and_rollback_under_the_responder(lab, play):
    lab.cli("seed-audit", "--tenants", "1", "--rows", "40", "--prefix", "resp")
    lab.cli("break", "audit-tamper", "--tenant", "resp-001", "--seq", "5-6")
    responder = dict(alex_kubeconfig=kubeconfig(lab, "responder"), audit_chain_evidence_dir=str(play.root / "ev"),
                     audit_chain_incident_id="INC-RESP", audit_chain_signoff="CR-RESP", audit_chain_confirm=True)
    try:
        real = play("audit_chain_failure", **responder)
        assert real.rc == 0, real.out[-3000:]
        assert real.host("lab")["result"] == "retired"
        report = json.loads((play.root / "ev" / "INC-RESP" / "incident-report.json").read_text())
        assert report["status"] == "retired" and report["verification_after"]["verified"] is True
        # The verification's audit write through the API came after the backup: the rollback drops it, knowingly.
        rollback = play("audit_chain_rollback", audit_chain_backup=report["backup"]["file"],
                        audit_chain_confirm_rollback=True, audit_chain_accept_loss=True,
                        alex_kubeconfig=kubeconfig(lab, "responder"))
        assert rollback.rc == 0, rollback.out[-3000:]
        assert rollback.host("lab")["result"] == "restored", rollback.host("lab")
    finally:
        lab.cli("heal", "audit-tamper", check=False)


def test_backup_restore_check_under_the_observer_and_real_drill_under_the_responder(lab, play):
    lab.cli("seed-audit", "--tenants", "1", "--rows", "20", "--prefix", "drill")
    drill = dict(backup_restore_dir=str(play.root / "drill"))
    rehearsal = play("backup_restore", "--check", **drill)
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    assert rehearsal.host("lab")["result"] == "planned"
    real = play("backup_restore", alex_kubeconfig=kubeconfig(lab, "responder"), **drill)
    assert real.rc == 0, real.out[-3000:]
    assert real.host("lab")["result"] == "no_loss", real.host("lab")
    actions = [a["action"] for a in real.host("lab")["actions"]]
    assert actions == ["take_backup", "restore_into_scratch_database", "drop_scratch_database"]


@pytest.fixture
def db_login(lab):
    """A function making a login role of the lab's database IN a shipped PostgreSQL role (extensions/sql/); returns
    its DSN. Dropped afterwards."""
    made = []
    admin = lab.info["dsn"]
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(ROLES_SQL.read_text())

    def make(group):
        name, password = "alex_rbac_%s" % secrets.token_hex(4), secrets.token_hex(12)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s NOSUPERUSER IN ROLE {}").format(
                sql.Identifier(name), sql.Identifier(group)), (password,))
        made.append(name)
        return psycopg2.extensions.make_dsn(admin, user=name, password=password)
    yield make
    with conn.cursor() as cur:
        for name in made:
            cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    conn.close()


def audit_state(lab):
    """Every row of the three audit tables (the lab's own connection)."""
    conn = lab.client.connect()
    try:
        with conn.cursor() as cur:
            state = []
            for table in ("audit_logs", "audit_chain_anchors", "audit_quarantine"):
                cur.execute(sql.SQL("SELECT * FROM {} ORDER BY 1, 2").format(sql.Identifier(table)))
                state.append(cur.fetchall())
        return state
    finally:
        conn.close()


def test_audit_chain_real_retire_stops_under_the_reader_and_retires_under_the_retirer(lab, play, db_login):
    """Scenario 3 changes only the database: its real run needs only the observer in Kubernetes, and the database
    role decides. Under alexandria_audit_reader it stops before the retirement, naming what is missing."""
    lab.cli("seed-audit", "--tenants", "1", "--rows", "30", "--prefix", "dbrole")
    lab.cli("break", "audit-tamper", "--tenant", "dbrole-001", "--seq", "7-8")
    # The shipped roles read only the audit tables: the backup before the retirement holds just those.
    gates = dict(audit_chain_evidence_dir=str(play.root / "ev-db"), audit_chain_signoff="CR-DB",
                 audit_chain_confirm=True, audit_chain_backup_scope="audit_tables")
    try:
        before = audit_state(lab)
        reader = play("audit_chain_failure", alex_dsn=db_login("alexandria_audit_reader"),
                      audit_chain_incident_id="INC-READER", **gates)
        assert reader.rc != 0
        # The retirement task loops over tenants: the refusal is its item's message.
        refusal = [line for line in reader.out.splitlines() if "refusing to retire: the database role" in line][0]
        assert "lacks DELETE on public.audit_logs, INSERT on public.audit_quarantine, INSERT on " \
               "public.audit_chain_anchors" in refusal and "alexandria_audit_retirer" in refusal, refusal
        assert reader.host("lab")["result"] == "failed"
        assert audit_state(lab) == before
        retirer = play("audit_chain_failure", alex_dsn=db_login("alexandria_audit_retirer"),
                       audit_chain_incident_id="INC-RETIRER", **gates)
        assert retirer.rc == 0, retirer.failure() or retirer.out[-3000:]
        assert retirer.host("lab")["result"] == "retired"
    finally:
        lab.cli("heal", "audit-tamper", check=False)
