"""Shared fixtures: a real PostgreSQL (ALEX_TEST_DSN, or a throwaway embedded server)."""
import os
import pathlib
import shutil
import sys
import tempfile
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lab"))

from alexlab import pg as labpg  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
import lane  # noqa: E402


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory):
    """DSN of a server the tests may create databases on."""
    env = labpg.test_admin_dsn()  # ALEX_TEST_DSN, with sslmode=prefer stated when it names none
    if env:
        yield env
        return
    # Outside pytest's basetemp: pgserver runs postgres as another user and opens up the parent directories,
    # and every pytest session that starts meanwhile makes /tmp/pytest-of-<user> private again (0700), which
    # takes the data directory away from a running server.
    datadir = tempfile.mkdtemp(prefix="alex-test-pg-")
    dsn, _pid = labpg.start_embedded(datadir)
    yield dsn
    labpg.stop_embedded(datadir)
    shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_admin_dsn):
    """A fresh, empty database for one test."""
    dsn = labpg.create_database(pg_admin_dsn, prefix="t")
    yield dsn
    labpg.drop_database(pg_admin_dsn, dsn)


def pytest_collection_finish(session):
    """Modules run in-process here must see module mode: importing Ansible's controller code (ansible.parsing,
    ansible.template, ...) at collection switches ansible.module_utils to controller mode for the whole
    run, and the modules' warnings then go to the display instead of into their results."""
    from ansible.module_utils import _internal
    if _internal.is_controller:
        raise pytest.UsageError("a test module imports Ansible controller code at collection time; run Ansible "
                                "controller code in a subprocess (ansible-playbook, ansible-doc) instead")


def pytest_configure(config):
    """Mark this session: every process it starts inherits the mark (see tests/lane.py)."""
    os.environ.setdefault(lane.SESSION_MARK, "%d-%s" % (os.getpid(), uuid.uuid4().hex))


def pytest_sessionfinish(session, exitstatus):
    """After every fixture's teardown (the last test's teardown ends the session fixtures, pg_admin_dsn's server
    included): fail the run if a lab process, a PostgreSQL or any other process this session started still runs,
    or if a collection copy sits under ~/.ansible/collections."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    roots = []
    if factory is not None:
        try:
            roots.append(factory.getbasetemp())
        except (OSError, ValueError):
            pass
    lines = lane.report(os.environ[lane.SESSION_MARK], roots=roots, own_pids={os.getpid()})
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "left behind by this test session", red=True, bold=True)
        for line in lines:
            reporter.write_line(line, red=True)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
