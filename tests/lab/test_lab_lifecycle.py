"""alexlab up / down / status, and every kind of bad input: one line on stderr, non-zero exit, nothing half-started."""
import json
import os
import signal
import socket
import subprocess
import time

import psutil
import psycopg2
import pytest

from alexlab import pg
from alexlab.common import proc_alive
from alexlab.testing import ALEXLAB, LabHandle

pytestmark = pytest.mark.lab


def run(*args, timeout=120):
    return subprocess.run([ALEXLAB] + list(args), capture_output=True, text=True, timeout=timeout, check=False)


def one_line_error(proc, code=1, words=None):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("alexlab: ")
    if words:
        assert words in lines[0], lines[0]
    return lines[0]


def lab_processes(directory):
    """Processes whose working directory is inside the lab directory (the pods' containers, the supervisor)."""
    found = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        if cwd == str(directory) or cwd.startswith(str(directory) + os.sep):
            found.append(proc.info["pid"])
    return found


def test_up_writes_lab_json_kubeconfig_and_is_ready(lab):
    info = lab.info
    for key in ("api_url", "k8s_url", "kubeconfig", "namespace", "release", "dsn", "admin_token", "hmac_key",
                "issuer_public_key", "pids"):
        assert info[key], key
    assert info["namespace"] == "alexandria" and info["release"] == "alexandria-ee"
    assert "BEGIN PUBLIC KEY" in info["issuer_public_key"]
    for name in ("supervisor", "api", "orchestrator"):
        assert proc_alive(info["pids"][name]), name
    if info["dsn_mode"] == "embedded":
        assert proc_alive(info["pids"]["postgres"])
    assert os.stat(os.path.join(lab.dir, "lab.json")).st_mode & 0o077 == 0
    code, body = lab.api("GET", "/ready", auth=False)
    assert code == 200 and body["status"] == "ready"
    status = lab.cli("status", "--json")
    report = json.loads(status.stdout)
    assert report["running"] is True and report["ready"]["http_status"] == 200
    assert report["pod_status"]["api"]["ready"] and report["pod_status"]["orchestrator"]["ready"]
    assert lab.kubectl("get", "pods").returncode == 0


def test_up_twice_is_refused_and_leaves_the_running_lab_alone(lab):
    before = lab.info["pids"]["supervisor"]
    line = one_line_error(run("up", "--dir", lab.dir), words="already running")
    assert "alexlab down" in line
    assert lab.info["pids"]["supervisor"] == before and proc_alive(before)
    assert lab.api("GET", "/ready", auth=False)[0] == 200


def test_port_in_use_starts_nothing(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        one_line_error(run("up", "--dir", str(tmp_path / "lab"), "--api-port", str(port)), words="already in use")
    finally:
        busy.close()
    assert not os.path.exists(tmp_path / "lab" / "pgdata")
    assert not os.path.exists(tmp_path / "lab" / "lab.json")
    assert lab_processes(tmp_path / "lab") == []


def test_unwritable_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    one_line_error(run("up", "--dir", str(blocker / "lab")), words="cannot use")


def test_down_and_status_with_nothing_running(tmp_path):
    one_line_error(run("down", "--dir", str(tmp_path)), words="no lab is running")
    proc = run("status", "--dir", str(tmp_path), "--json")
    assert proc.returncode == 3 and json.loads(proc.stdout)["running"] is False


@pytest.mark.parametrize("args, code, words", [
    (["break", "no-such-fault"], 2, "invalid choice"),
    (["heal", "no-such-fault"], 2, "invalid choice"),
    (["break", "audit-tamper", "--tenant", "t", "--seq", "x-y"], 1, "--seq must be"),
    (["break", "audit-tamper", "--tenant", "t", "--seq", "9-3"], 1, "1 <= A <= B"),
    (["break", "audit-delete", "--tenant", "t", "--seq", "0"], 1, "1 <= A <= B"),
    (["break", "audit-delete", "--seq", "1-2"], 1, "needs --tenant"),
    (["break", "oom", "--seq", "1-2"], 1, "--seq only applies to audit-tamper and audit-delete"),
    (["break", "oom", "--tenant", "t"], 1, "--tenant only applies to audit-tamper, audit-delete and forge-compromised-key"),
    (["seed-audit", "--tenants", "0", "--rows", "5"], 1, "at least 1"),
])
def test_bad_input_is_one_line(lab, args, code, words):
    one_line_error(run(*(args + ["--dir", lab.dir])), code=code, words=words)
    assert lab.client.ready()[0] == 200


def test_out_of_range_seq_changes_nothing(lab):
    lab.cli("seed-audit", "--tenants", "1", "--rows", "10", "--prefix", "range")
    before = lab.sql("SELECT count(*), sum(length(payload::text)) FROM audit_logs WHERE tenant_id = 'range-001'")
    one_line_error(run("break", "audit-tamper", "--tenant", "range-001", "--seq", "5-11", "--dir", lab.dir),
                   words="out of range")
    one_line_error(run("break", "audit-delete", "--tenant", "nobody", "--seq", "1", "--dir", lab.dir),
                   words="has no audit rows")
    assert lab.sql("SELECT count(*), sum(length(payload::text)) FROM audit_logs WHERE tenant_id = 'range-001'") == before
    assert json.loads(lab.cli("status", "--json").stdout)["faults"] == []


def test_license_mint_signs_with_the_issuer_or_another_key(lab):
    from ansible_collections.alexandria.ee.plugins.module_utils import license_codec as lc
    issuer = lc.load_public_key(lab.info["issuer_public_key"])
    blob = lab.cli("license", "mint", "--seats", "7", "--tenants", "2", "--tier", "business").stdout.strip()
    claims = lc.decode_license(blob, issuer)
    assert (claims["seat_count"], claims["tenant_count"], claims["tier"]) == (7, 2, "business")
    other = lab.cli("license", "mint", "--seats", "7", "--tenants", "2", "--tier", "business", "--key", "other")
    with pytest.raises(lc.LicenseInvalid) as err:
        lc.decode_license(other.stdout.strip(), issuer)
    assert err.value.reason == "wrong_issuer"
    expired = lab.cli("license", "mint", "--seats", "1", "--tenants", "1", "--tier", "starter", "--expires-in", "-1")
    with pytest.raises(lc.LicenseInvalid) as err:
        lc.decode_license(expired.stdout.strip(), issuer)
    assert err.value.reason == "expired"


def test_a_crashed_supervisor_takes_its_containers_and_down_cleans_the_rest(tmp_path):
    handle = LabHandle.up(tmp_path / "lab")
    try:
        pids = handle.info["pids"]
        os.kill(pids["supervisor"]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (proc_alive(pids["api"]) or proc_alive(pids["orchestrator"])):
            time.sleep(0.1)
        assert not proc_alive(pids["api"]) and not proc_alive(pids["orchestrator"])
        status = run("status", "--dir", handle.dir, "--json")
        assert status.returncode == 3
        assert json.loads(status.stdout)["processes"]["supervisor"]["alive"] is False
    finally:
        proc = handle.down()
    assert proc.returncode == 0, proc.stderr
    assert not any(proc_alive(ident) for ident in pids.values() if ident)
    assert lab_processes(tmp_path / "lab") == []
    one_line_error(run("down", "--dir", handle.dir), words="no lab is running")


def test_a_killed_container_is_restarted_by_the_supervisor(lab):
    old = lab.info["pids"]["api"]
    restarts = lab.client.container_status("api")["restartCount"]
    os.kill(old["pid"], signal.SIGKILL)
    lab.client.wait_for("the api container to restart",
                        lambda: (lab.client.container_status("api") or {}).get("restartCount", 0) > restarts, 30)
    status = lab.client.container_status("api")
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["lastState"]["terminated"]["reason"] == "Error"
    lab.client.wait_ready(30)
    assert lab.info["pids"]["api"]["pid"] != old["pid"]


def test_external_dsn_uses_the_database_as_given(tmp_path, pg_admin_dsn):
    dsn = pg.create_database(pg_admin_dsn, prefix="labext")
    try:
        proc = run("up", "--dir", str(tmp_path / "lab"), "--dsn", dsn)
        assert proc.returncode == 0, proc.stderr
        info = json.loads((tmp_path / "lab" / "lab.json").read_text())
        assert info["dsn_mode"] == "external" and info["dsn"] == dsn
        assert "postgres" not in info["pids"] or info["pids"]["postgres"] is None
        assert not os.path.exists(tmp_path / "lab" / "pgdata")
        handle = LabHandle(tmp_path / "lab")
        assert handle.api("POST", "/api/v1/tenants", {"id": "ext", "name": "External"})[0] == 201
        down = run("down", "--dir", str(tmp_path / "lab"))
        assert down.returncode == 0, down.stderr
        conn = psycopg2.connect(dsn)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM tenants")
            assert cur.fetchall() == [("ext",)]
        conn.close()
        assert lab_processes(tmp_path / "lab") == []
    finally:
        pg.drop_database(pg_admin_dsn, dsn)


def test_namespace_option_and_down_then_up_again_keeps_the_data(tmp_path):
    handle = LabHandle.up(tmp_path / "lab", "--namespace", "ops-lab")
    try:
        assert handle.info["namespace"] == "ops-lab"
        pods = handle.kubectl("get", "pods", "-n", "ops-lab", "-l", "app.kubernetes.io/instance=alexandria-ee")
        assert "2/2" in pods.stdout
        assert "2/2" in handle.kubectl("get", "pods").stdout  # the kubeconfig's context names the namespace
        assert "No resources found" in handle.kubectl("get", "pods", "-n", "alexandria").stderr
        assert handle.api("POST", "/api/v1/tenants", {"id": "kept", "name": "Kept"})[0] == 201
        assert handle.cli("down").returncode == 0
        assert lab_processes(tmp_path / "lab") == []
        handle.cli("up", *(["--dsn", handle.external_dsn] if handle.external_dsn else []))
        assert [t["id"] for t in handle.api("GET", "/admin/v1/tenants")[1]["tenants"]] == ["kept"]
    finally:
        handle.down()


def test_up_after_a_crash_cleans_the_leftovers_first(tmp_path):
    handle = LabHandle.up(tmp_path / "lab")
    try:
        old = handle.info["pids"]
        os.kill(old["supervisor"]["pid"], signal.SIGKILL)
        handle.cli("up", *(["--dsn", handle.external_dsn] if handle.external_dsn else []))
        new = handle.info["pids"]
        assert new["supervisor"]["pid"] != old["supervisor"]["pid"] and proc_alive(new["supervisor"])
        assert not proc_alive(old["api"]) and not proc_alive(old["orchestrator"])
        assert handle.api("GET", "/ready", auth=False)[0] == 200
    finally:
        assert handle.down().returncode == 0
    assert lab_processes(tmp_path / "lab") == []


def test_unreachable_dsn_starts_nothing(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    line = one_line_error(run("up", "--dir", str(tmp_path / "lab"), "--dsn",
                              "host=127.0.0.1 port=%d dbname=nowhere user=lab password=s3cret connect_timeout=3" % port),
                          words="cannot prepare PostgreSQL (external)")
    assert "s3cret" not in line
    assert not os.path.exists(tmp_path / "lab" / "lab.json")
    assert lab_processes(tmp_path / "lab") == []
