"""The changelog: fragments and changelogs/changelog.yaml pass antsibull-changelog's own linters, and
CHANGELOG.rst is what changelog.yaml generates (nobody edited one without the other)."""
import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent


def run(*args, cwd=REPO):
    env = dict(os.environ, PATH="%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")))
    return subprocess.run([str(BIN / "antsibull-changelog")] + list(args), cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_fragments_and_changelog_yaml_lint():
    proc = run("lint")
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr
    proc = run("lint-changelog-yaml", "changelogs/changelog.yaml")
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_changelog_rst_is_generated_from_changelog_yaml(tmp_path):
    copy = tmp_path / "ee"
    copy.mkdir()
    for name in ("galaxy.yml", "CHANGELOG.rst"):
        shutil.copy(REPO / name, copy / name)
    shutil.copytree(REPO / "changelogs", copy / "changelogs")
    shutil.rmtree(copy / "changelogs" / "fragments")
    (copy / "changelogs" / "fragments").mkdir()
    proc = run("generate", cwd=copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (copy / "CHANGELOG.rst").read_text() == (REPO / "CHANGELOG.rst").read_text(), \
        "CHANGELOG.rst differs from what changelogs/changelog.yaml generates: run antsibull-changelog generate"
