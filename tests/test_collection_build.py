"""The built collection tarball holds the collection and nothing of the lab, tests, benchmarks or tooling."""
import json
import pathlib
import subprocess
import sys
import tarfile

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent


def test_galaxy_build_excludes_lab_tests_and_bench(tmp_path):
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(tmp_path)],
                   cwd=REPO, check=True, capture_output=True)
    tarballs = list(tmp_path.glob("alexandria-ee-*.tar.gz"))
    assert len(tarballs) == 1
    with tarfile.open(tarballs[0]) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["namespace"] == "alexandria"
    assert manifest["collection_info"]["name"] == "ee"
    assert "plugins/module_utils/audit_chain.py" in names
    assert "docs/contract.md" in names
    forbidden = ("lab/", "tests/", "bench/", "scripts/", ".venv/", ".ansible/", ".ci/", "Makefile", "molecule/")
    leaked = [n for n in names if n.startswith(forbidden) or n == "Makefile"]
    assert leaked == []
