"""Lab fixtures: one lab per test module (faults heal cleanly), started and stopped with the real CLI."""
import pytest

from alexlab.testing import LabHandle


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    handle = LabHandle.up(tmp_path_factory.mktemp("lab"))
    yield handle
    proc = handle.down()
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("lab in ") and "stopped" in proc.stdout


@pytest.fixture
def healthy(lab):
    """The module's lab, checked healthy before the test and healed (all faults) after it."""
    assert lab.client.ready()[0] == 200
    yield lab
    lab.cli("heal")
    lab.client.wait_ready(60)
