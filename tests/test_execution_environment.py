"""meta/execution-environment.yml: ansible-builder turns it into a valid build context (no image is built here)."""
import pathlib
import subprocess
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
EE_FILE = REPO / "meta" / "execution-environment.yml"


def _lines(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_dependency_files_resolve_the_same_from_meta_and_from_the_root():
    """ansible-builder create reads them relative to meta/, introspection relative to the collection root."""
    ee = yaml.safe_load(EE_FILE.read_text())
    assert ee["version"] == 3
    for key, name in (("python", "requirements.txt"), ("system", "bindep.txt")):
        assert ee["dependencies"][key] == name
        assert _lines(REPO / "meta" / name) == _lines(REPO / name)


def test_ansible_builder_creates_a_build_context(tmp_path):
    context = tmp_path / "context"
    proc = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", str(EE_FILE), "-c", str(context),
                           "--output-filename", "Containerfile"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text()
    ee = yaml.safe_load(EE_FILE.read_text())
    assert 'ARG EE_BASE_IMAGE="%s"' % ee["images"]["base_image"]["name"] in containerfile
    assert "FROM $EE_BASE_IMAGE" in containerfile
    assert "ansible-galaxy collection install" in containerfile or "requirements.yml" in containerfile
    assert _lines(context / "_build" / "requirements.txt") == _lines(REPO / "requirements.txt")
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert [c["name"] for c in galaxy["collections"]] == ["alexandria.ee"]
    assert "pg_dump" not in containerfile  # the client comes from bindep, not ad hoc
    assert _lines(context / "_build" / "bindep.txt") == _lines(REPO / "bindep.txt")
