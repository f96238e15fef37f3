"""Every playbook runs unattended (AWX/Controller, workflow nodes, alert-driven runs) and against many deployments.

Scans playbooks/ and roles/ (YAML, every task at any depth of block/rescue/always):
- no `vars_prompt`, and no `pause` that waits for a key press (a `pause` needs `seconds` or `minutes`);
- nothing that assumes a single deployment: no `run_once`, no `delegate_to` (the plays run on the controller with
  `connection: local`, one inventory host per deployment), and controller paths that default per host.
"""
import pathlib

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
PAUSE = {"pause", "ansible.builtin.pause", "ansible.legacy.pause"}
BLOCK_KEYS = ("block", "rescue", "always")


def yaml_files():
    files = sorted(REPO.joinpath("playbooks").rglob("*.yml")) + sorted(REPO.joinpath("roles").rglob("*.yml"))
    assert files
    return files


def walk(node, where):
    """Yield (where, mapping) for every play, task and block found in a loaded YAML document."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from walk(item, "%s[%d]" % (where, index))
    elif isinstance(node, dict):
        yield where, node
        for key in BLOCK_KEYS + ("tasks", "pre_tasks", "post_tasks", "handlers"):
            if isinstance(node.get(key), list):
                yield from walk(node[key], "%s.%s" % (where, key))


def task_lists():
    """Files that hold plays or task lists (role defaults, vars and meta are data, not tasks)."""
    for path in yaml_files():
        rel = path.relative_to(REPO)
        if rel.parts[0] == "roles" and rel.parts[2] not in ("tasks", "handlers"):
            continue
        yield rel, yaml.safe_load(path.read_text())


def test_the_scan_sees_every_scenario():
    names = set(str(rel) for rel, _doc in task_lists())
    for expected in ("playbooks/api_not_serving.yml", "playbooks/quota_exceeded.yml", "playbooks/license_renewal.yml",
                     "playbooks/audit_chain_failure.yml", "playbooks/audit_chain_rollback.yml",
                     "roles/run_record/tasks/main.yml", "roles/audit_chain/tasks/incident.yml"):
        assert expected in names


def problems(doc, where):
    found = []
    for place, node in walk(doc, where):
        if "vars_prompt" in node:
            found.append("%s: vars_prompt waits for an answer" % place)
        for action in PAUSE & set(node):
            args = node[action] if isinstance(node[action], dict) else {}
            if "seconds" not in args and "minutes" not in args:
                found.append("%s: %s without seconds/minutes waits for a key" % (place, action))
        if "run_once" in node:
            found.append("%s: run_once runs for one deployment only" % place)
        if "delegate_to" in node:
            found.append("%s: delegate_to - every task runs for its own inventory host" % place)
    return found


def test_the_scan_finds_prompts_and_single_deployment_tasks():
    doc = [{"hosts": "all", "vars_prompt": [{"name": "x"}], "tasks": [
        {"block": [{"ansible.builtin.pause": {"prompt": "go?"}}],
         "always": [{"pause": {"seconds": 1}}, {"ansible.builtin.debug": None, "run_once": True}]},
        {"ansible.builtin.copy": {"dest": "/tmp/x"}, "delegate_to": "localhost"}]}]
    found = problems(doc, "play")
    assert [f.split(": ", 1)[1].split(" ")[0] for f in found] == [
        "vars_prompt", "ansible.builtin.pause", "run_once", "delegate_to"], found
    assert found[1].startswith("play[0].tasks[0].block[0]:")


@pytest.mark.parametrize("rel,doc", list(task_lists()), ids=lambda v: str(v) if isinstance(v, pathlib.Path) else "")
def test_no_prompts_and_nothing_single_deployment(rel, doc):
    assert list(walk(doc, str(rel))), rel
    assert problems(doc, str(rel)) == []


def test_plays_run_on_a_group_of_deployments():
    for path in sorted(REPO.joinpath("playbooks").glob("*.yml")):
        plays = yaml.safe_load(path.read_text())
        # The deployments come from alex_target; a later play may run once on the controller for the whole fleet
        # (health.yml's report), after every deployment's play.
        assert plays[0]["hosts"] == "{{ alex_target | default('localhost') }}", path
        for play in plays[1:]:
            assert play["hosts"] in ("{{ alex_target | default('localhost') }}", "localhost"), path
        for play in plays:
            assert play.get("connection") == "local", path


def test_controller_paths_are_per_host():
    """Files written on the controller are named or placed per inventory host, so forks never share one."""
    defaults = yaml.safe_load(REPO.joinpath("roles/audit_chain/defaults/main.yml").read_text())
    assert "{{ inventory_hostname }}" in defaults["audit_chain_evidence_dir"]
    record = REPO.joinpath("roles/run_record/tasks/main.yml").read_text()
    assert "'host': inventory_hostname" in record  # alex_run_report names its files <scenario>-<host>-<start>


def test_example_inventory_one_host_per_deployment_secrets_in_the_vault():
    inventory = yaml.safe_load(REPO.joinpath("docs/inventory.example.yml").read_text())
    group = inventory["all"]["children"]["alexandria"]
    assert len(group["hosts"]) >= 2
    for name, host in group["hosts"].items():
        merged = dict(group["vars"], **host)
        for key in ("alex_kubeconfig", "alex_namespace", "alex_release", "alex_base_url", "alex_admin_token"):
            assert merged.get(key), (name, key)
        for key in ("alex_admin_token", "alex_dsn", "alex_audit_hmac_key"):
            if key in merged:
                assert merged[key].startswith("{{ vault_"), (name, key)
    urls = [host["alex_base_url"] for host in group["hosts"].values()]
    assert len(set(urls)) == len(urls)
