"""Every module renders with ansible-doc, declares check/diff attributes, and is in the action group."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def _doc_json():
    if not MODULES:
        return {}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".venv" / "collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", "module", "--json"] + ["alexandria.ee." + m for m in MODULES],
                          env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def docs():
    return _doc_json()


@pytest.mark.parametrize("name", MODULES)
def test_module_renders_completely(docs, name):
    entry = docs["alexandria.ee." + name]
    doc = entry["doc"]
    assert doc["short_description"]
    assert doc["description"]
    assert set(doc["attributes"]) >= {"check_mode", "diff_mode"}
    for attr in ("check_mode", "diff_mode"):
        assert doc["attributes"][attr]["support"] in ("full", "partial", "none", "N/A")
    assert entry["examples"].strip()
    assert entry["return"], "%s documents no return values" % name


def test_action_group_lists_exactly_the_modules():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert sorted(runtime["action_groups"]["alex"]) == MODULES
