"""playbooks/health.yml against a fleet of lab deployments in one run: each deployment in a runbook incident is named
with its scenario and next command; one unreachable, one with a wrong admin token and one whose RBAC refuses
pods/log are still reported (one clear line each) while the others are reported in full; --check and a real run
change nothing (Secrets, tables, checkpoints); no secret reaches the report or -vvv output."""
import json
import os
import pathlib

import pytest

from alexlab.testing import LabHandle

import audit_helpers as h
import playbooks

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    labs = {}
    try:
        for name in ("alpha", "beta"):
            labs[name] = LabHandle.up(tmp_path_factory.mktemp(name))
            labs[name].cli("seed-audit", "--tenants", "2", "--rows", "300")
        yield labs
    finally:
        for lab in labs.values():
            lab.down()


def host_vars(lab, **override):
    out = json.loads(lab.cli("inventory", "--host", "x").stdout)["all"]["children"]["alexandria"]["hosts"]["x"]
    out.update(override)
    return out


def inventory(directory, hosts):
    path = pathlib.Path(directory) / "fleet.json"
    path.write_text(json.dumps({"all": {"children": {"alexandria": {"hosts": hosts}}}}))
    os.chmod(path, 0o600)
    return path


def dead_host(tmp_path):
    """A deployment nothing answers for: a closed port, a kubeconfig that is not there, a DSN to nowhere."""
    return {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "alex_base_url": "http://127.0.0.1:9", "alex_kubeconfig": str(tmp_path / "missing-kubeconfig"),
            "alex_dsn": "host=127.0.0.1 port=9 dbname=x user=x connect_timeout=2", "alex_audit_hmac_key": "k" * 32,
            "alex_namespace": "alexandria", "alex_release": "alexandria-ee"}


def state_of(labs):
    """Secrets (resourceVersions), audit tables (md5 of every row) and checkpoint files of every lab."""
    out = {}
    for name, lab in labs.items():
        secrets = lab.kubectl("get", "secrets", "-A", "-o", "json").stdout
        versions = sorted((s["metadata"]["namespace"], s["metadata"]["name"], s["metadata"]["resourceVersion"])
                          for s in json.loads(secrets)["items"])
        conn = h.connect(lab.info["dsn"])
        tables = h.table_state(conn)
        conn.close()
        files = sorted(str(p) for p in pathlib.Path(lab.info["checkpoint_dir"]).rglob("*"))
        out[name] = (versions, tables, files)
    return out


def run(tmp_path, hosts, *args, check=False):
    inv = inventory(tmp_path, hosts)
    return playbooks.run_playbook("health", tmp_path, "-e", "alex_target=alexandria", "-e",
                                  "alex_report_dir=%s" % (tmp_path / "reports"), *args, inventory=inv, check=check)


def report(result):
    fleet = result.custom["alexandria_ee_fleet"]
    return json.loads(pathlib.Path(fleet["report_json"]).read_text()), pathlib.Path(fleet["report_markdown"]).read_text()


def secrets_of(labs):
    keys = ("admin_token", "hmac_key", "checkpoint_key", "license_blob")
    return [lab.info[key] for lab in labs.values() for key in keys]


def test_fleet_in_every_state(fleet, tmp_path):
    alpha, beta = fleet["alpha"], fleet["beta"]
    hosts = {"alpha": host_vars(alpha), "beta": host_vars(beta), "dead": dead_host(tmp_path)}

    # 1. A healthy deployment, one crash-looping, one unreachable: --check, then a real run; nothing changes.
    beta.cli("break", "orchestrator-crash")
    before = state_of(fleet)
    rehearsal = run(tmp_path, hosts, "-vvv", check=True)
    assert rehearsal.rc == 0, rehearsal.out[-3000:]
    real = run(tmp_path, hosts)
    assert real.rc == 0 and real.hosts["alpha"]["changed"] == 0
    assert state_of(fleet) == before
    for result in (rehearsal, real):
        assert result.host("alpha")["scenario"] == "healthy" and result.host("alpha")["next_command"] == ""
        assert result.host("beta")["scenario"] == "api_not_serving"
        assert "alexandria.ee.api_not_serving -e alex_target=beta -e api_not_serving_allow_restart=true" in \
            result.host("beta")["next_command"]
        assert result.host("dead")["scenario"] == "unreachable"
        assert "alexandria.ee.api_not_serving -e alex_target=dead" in result.host("dead")["next_command"]
    data, markdown = report(real)
    assert data["by_scenario"]["healthy"] == ["alpha"] and data["by_scenario"]["unreachable"] == ["dead"]
    [dead] = [d for d in data["hosts"] if d["host"] == "dead"]
    assert any(p.startswith("api: ") and "connection refused" in p for p in dead["problems"]), dead["problems"]
    assert any(p.startswith("kubernetes: ") for p in dead["problems"])
    assert "| unreachable | 1: dead |" in markdown
    [alpha_row] = [d for d in data["hosts"] if d["host"] == "alpha"]
    assert alpha_row["quota"]["max_seats"] == 25 and alpha_row["audit"]["verified"] is True
    assert alpha_row["api"]["ready"] is True and alpha_row["problems"] == []
    for secret in secrets_of(fleet):
        assert secret not in rehearsal.out and secret not in markdown and secret not in json.dumps(data)
    beta.cli("heal")

    # 2. Seats exhausted with idle users, audit rows edited in place; a wrong admin token and RBAC refusing
    #    pods/log each cost one line, not the rest of the report.
    alpha.cli("seed-users", "--inactive", "3", "--inactive-days", "120")
    alpha.cli("break", "seats-exhausted")
    beta.cli("break", "audit-tamper", "--tenant", "seed-001", "--seq", "10-12")
    hosts["alpha"] = host_vars(alpha)
    second = run(tmp_path, hosts)
    assert second.rc == 0
    assert second.host("alpha")["scenario"] == "quota_exceeded"
    assert "-e quota_exceeded_free_seats=true -e quota_exceeded_max_deactivate=3" in \
        second.host("alpha")["next_command"]
    assert second.host("beta")["scenario"] == "audit_chain_failure"
    assert "alexandria.ee.audit_chain_failure -e alex_target=beta -e audit_chain_incident_id=audit-chain-beta-" in \
        second.host("beta")["next_command"]
    hosts["alpha"] = host_vars(alpha, alex_admin_token="wrong-token")
    beta.cli("heal")
    beta.cli("break", "orchestrator-crash")
    beta.cli("break", "rbac-deny", "--resource", "pods/log", "--verb", "get")
    third = run(tmp_path, hosts)
    assert third.rc == 0
    data, _markdown = report(third)
    rows = dict((d["host"], d) for d in data["hosts"])
    assert rows["alpha"]["scenario"] == "quota_exceeded"
    assert [p for p in rows["alpha"]["problems"] if p.startswith("admin api: ")], rows["alpha"]["problems"]
    assert "401" in " ".join(rows["alpha"]["problems"])
    assert rows["beta"]["scenario"] == "api_not_serving" and rows["beta"]["quota"]["checked"]
    assert rows["dead"]["scenario"] == "unreachable"
    beta.cli("heal")
    alpha.cli("heal")

    # 3. A corrupted license Secret is the license renewal, with the blob to give.
    alpha.cli("break", "license-corrupt")
    hosts["alpha"] = host_vars(alpha)
    fourth = run(tmp_path, hosts)
    assert fourth.host("alpha")["scenario"] == "license_renewal"
    assert "alexandria.ee.license_renewal -e alex_target=alpha -e 'license_renewal_blob_file=<path" in \
        fourth.host("alpha")["next_command"]
    alpha.cli("heal")
