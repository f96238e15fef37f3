"""tests/lane.py finds what a session left behind, and only its own: processes carrying its mark or running
under its temporary directory. The end-of-session check in tests/conftest.py relies on it."""
import os
import subprocess
import sys

import lane


def _sleeper(env=None, cwd=None):
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, cwd=cwd)


def test_a_marked_process_is_found_until_it_ends():
    mark = os.environ[lane.SESSION_MARK]
    proc = _sleeper()
    try:
        found = lane.leftover_processes(mark, own_pids={os.getpid()})
        assert proc.pid in [pid for pid, _what, _cmd in found]
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in [pid for pid, _what, _cmd in lane.leftover_processes(mark, own_pids={os.getpid()})]


def test_another_sessions_process_is_not_ours(tmp_path):
    env = dict(os.environ)
    env[lane.SESSION_MARK] = "another-session"
    proc = _sleeper(env=env)
    try:
        found = lane.leftover_processes(os.environ[lane.SESSION_MARK], own_pids={os.getpid()})
        assert proc.pid not in [pid for pid, _what, _cmd in found]
    finally:
        proc.kill()
        proc.wait()


def test_a_process_in_the_session_temp_dir_is_found_without_the_mark(tmp_path):
    env = dict((k, v) for k, v in os.environ.items() if k != lane.SESSION_MARK)
    proc = _sleeper(env=env, cwd=str(tmp_path))
    try:
        found = lane.leftover_processes("no-such-mark", roots=[tmp_path], own_pids={os.getpid()})
        assert proc.pid in [pid for pid, _what, _cmd in found]
    finally:
        proc.kill()
        proc.wait()


def test_the_report_names_the_process_and_what_to_do():
    proc = _sleeper()
    try:
        lines = lane.report(os.environ[lane.SESSION_MARK], own_pids={os.getpid()})
        assert any(line.startswith("pid %d is still running, a process a test started" % proc.pid) for line in lines)
    finally:
        proc.kill()
        proc.wait()
