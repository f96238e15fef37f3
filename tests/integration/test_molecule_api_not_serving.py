"""`molecule test -s api_not_serving`: create (lab + orchestrator crash), converge (the playbook with the restart
gate open), idempotence, verify, destroy. About a minute on the lab."""
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
BIN = pathlib.Path(sys.executable).parent


@pytest.mark.lab
def test_molecule_api_not_serving():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".venv" / "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", PATH="%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")),
               NO_COLOR="1", ANSIBLE_NOCOLOR="1",
               # The collection's scenarios live in extensions/molecule (molecule prefers a molecule/ directory
               # when one exists).
               MOLECULE_GLOB="extensions/molecule/*/molecule.yml")
    proc = subprocess.run([str(BIN / "molecule"), "test", "-s", "api_not_serving"], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for action in ("create", "converge", "idempotence", "verify", "destroy"):
        assert "%s: Executed: Successful" % action in output, action
