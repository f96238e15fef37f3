"""`molecule test -s <scenario>` for the scenarios in extensions/molecule (default driver, no containers): create
(`alexlab up` and the fault), converge (the playbook), idempotence, verify (the lab's health and state), destroy
(`alexlab down`). About a minute each on the lab."""
import os
import subprocess

import pytest

import playbooks

pytestmark = pytest.mark.lab

# scenario: the steps its test_sequence runs besides create, converge, idempotence, verify and destroy
SCENARIOS = {"api_not_serving": (), "audit_chain": ("prepare",), "audit_chain_watch": ("prepare",), "license_renewal": (),
             "quota_exceeded": (), "key_rotation": (), "upgrade": ()}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_molecule_scenario(scenario, tmp_path):
    env = playbooks.ansible_env(PATH="%s%s%s" % (playbooks.BIN, os.pathsep, os.environ.get("PATH", "")),
                                NO_COLOR="1",
                                # The collection's scenarios live in extensions/molecule (molecule prefers a
                                # molecule/ directory when one exists).
                                MOLECULE_GLOB="extensions/molecule/*/molecule.yml",
                                # Its lab, inventory and reports in the test's temp directory, not ~/.ansible/tmp.
                                MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / ("molecule-" + scenario)))
    proc = subprocess.run([str(playbooks.BIN / "molecule"), "test", "-s", scenario], cwd=str(playbooks.REPO),
                          env=env, capture_output=True, text=True, timeout=1500, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for step in ("create",) + SCENARIOS[scenario] + ("converge", "idempotence", "verify", "destroy"):
        assert "%s: Executed: Successful" % step in output, step
