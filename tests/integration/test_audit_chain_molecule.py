"""The molecule scenario extensions/molecule/audit_chain: lab up, faults, converge, idempotence, verify, lab down."""
import os
import subprocess
import sys

import pytest

import audit_helpers as h

pytestmark = pytest.mark.lab


def test_molecule_scenario_audit_chain():
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(h.REPO, ".venv", "collections"), NO_COLOR="1",
               MOLECULE_GLOB="extensions/molecule/*/molecule.yml")
    proc = subprocess.run(["molecule", "test", "-s", "audit_chain"], cwd=h.REPO, env=env, capture_output=True,
                          text=True, timeout=1500, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    for step in ("create", "prepare", "converge", "idempotence", "verify", "destroy"):
        assert "%s: Executed: Successful" % step in output, step
