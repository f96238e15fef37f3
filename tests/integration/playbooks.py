"""Running the collection's playbooks as an SRE does (`ansible-playbook alexandria.ee.<name>`), for the tests.

The collection is the repository itself (.venv/collections/ansible_collections/alexandria/ee links to it).
Results come from the callback plugin `alex_stats_json` (tests/integration/callback_plugins): set_stats,
per-host recap, changed and failed tasks, as JSON, so the tests never parse the human-readable output.
"""
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
BIN = pathlib.Path(sys.executable).parent
CALLBACKS = pathlib.Path(__file__).resolve().parent / "callback_plugins"
LOCAL_INVENTORY = ("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")


def ansible_env(stats=None, base=None, **extra):
    """The environment of an ansible-playbook run against this checkout (base: instead of os.environ); with
    stats, the JSON results go there."""
    env = dict(os.environ if base is None else base, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".venv" / "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1")
    if stats is not None:
        env.update(ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_CALLBACKS_ENABLED="alex_stats_json",
                   ALEX_STATS_JSON=str(stats))
    env.update(extra)
    return env


def local_inventory(directory):
    """An inventory of localhost with a local connection and this venv's Python."""
    path = pathlib.Path(directory) / "inventory.yml"
    path.write_text(LOCAL_INVENTORY)
    return path


def vars_file(directory, variables):
    """Extra variables as a 0600 JSON file (they may hold the lab's secrets), a new name each call."""
    path = pathlib.Path(directory) / ("vars-%d.json" % time.monotonic_ns())
    path.write_text(json.dumps(variables))
    os.chmod(path, 0o600)
    return path


class Run:
    """One finished ansible-playbook run: exit code, output and what alex_stats_json wrote."""

    def __init__(self, proc, stats_path):
        self.rc = proc.returncode
        self.out = proc.stdout + proc.stderr
        data = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        self.custom = (data.get("custom") or {}).get("_run", {})
        self.hosts = data.get("hosts") or {}
        self.changed_tasks = data.get("changed_tasks")
        self.failed_tasks = data.get("failed_tasks") or []

    def host(self, name):
        """This run's set_stats entry alexandria_ee.<name>."""
        return self.custom["alexandria_ee"][name]

    def record(self, name):
        """The run record (JSON) of inventory host name."""
        return json.loads(pathlib.Path(self.host(name)["record_json"]).read_text())

    def failure(self):
        return " | ".join(f["msg"] for f in self.failed_tasks)


def playbook_command(name, directory, *args, inventory=None, variables=None, check=False):
    """(argv, env, stats path) of `ansible-playbook alexandria.ee.<name>` run in directory."""
    directory = pathlib.Path(directory)
    stats = directory / ("stats-%d.json" % time.monotonic_ns())
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory or local_inventory(directory)),
            "alexandria.ee." + name]
    if variables is not None:
        argv += ["-e", "@" + str(vars_file(directory, variables))]
    argv += list(args)
    if check:
        argv.append("--check")
    return argv, ansible_env(stats), stats


def run_playbook(name, directory, *args, inventory=None, variables=None, check=False, timeout=600):
    """Run `ansible-playbook alexandria.ee.<name>` in directory and return its Run."""
    argv, env, stats = playbook_command(name, directory, *args, inventory=inventory, variables=variables,
                                        check=check)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(directory),
                          check=False)
    return Run(proc, stats)


def lab_player(lab, root):
    """Run playbooks of the collection against a lab as inventory host `lab`, with its alex_* host variables
    (`alexlab inventory --host lab`): returns run(name, *args, **variables) -> Run, with .root = root."""
    inventory = pathlib.Path(root) / "inventory.yml"
    inventory.write_text(lab.cli("inventory", "--host", "lab").stdout)
    os.chmod(inventory, 0o600)

    def run(name, *args, **variables):
        variables = dict(dict(alex_target="alexandria", alex_report_dir=str(pathlib.Path(root) / "reports")),
                         **variables)
        return run_playbook(name, root, *args, inventory=inventory, variables=variables)
    run.root = root
    return run
