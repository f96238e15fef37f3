"""What a test session may have left behind: its processes, and the collection copy ansible-lint used to install.

A session marks itself with an environment variable (SESSION_MARK) that every process it starts inherits, so
another engineer's session running at the same time on the same machine is never mistaken for this one's.
Processes started with a clean environment (the lab's containers) are recognised by their working directory or
command line lying under the session's temporary directory.
"""
import os
import pathlib
import pwd

SESSION_MARK = "ALEX_TEST_SESSION"
COLLECTION_COPY = pathlib.Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ansible" / "collections" / \
    "ansible_collections" / "alexandria"


def _read(path, mode="rb"):
    try:
        with open(path, mode) as handle:
            return handle.read()
    except OSError:
        return None


def _describe(cmdline):
    if "alexlab" in cmdline:
        return "a lab process (run `alexlab down --dir <lab dir>`, or stop the fixture that started it)"
    if "postgres" in cmdline or "pg_ctl" in cmdline:
        return "a PostgreSQL server (its fixture's teardown did not stop it)"
    return "a process a test started"


def leftover_processes(mark, roots=(), own_pids=()):
    """[(pid, what, command line)] of live processes carrying the mark, or running under one of roots."""
    wanted = ("%s=%s" % (SESSION_MARK, mark)).encode()
    roots = [str(r) for r in roots if r]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in own_pids:
            continue
        stat = _read("/proc/%s/stat" % entry)
        if not stat or stat.rsplit(b")", 1)[-1].split()[0] in (b"Z", b"X"):
            continue  # gone, or a zombie: nothing is running
        environ = (_read("/proc/%s/environ" % entry) or b"").split(b"\0")
        cmdline = (_read("/proc/%s/cmdline" % entry) or b"").replace(b"\0", b" ").decode("utf-8", "replace").strip()
        try:
            cwd = os.readlink("/proc/%s/cwd" % entry)
        except OSError:
            cwd = ""
        under_root = any(cwd == r or cwd.startswith(r + "/") or r + "/" in cmdline for r in roots)
        if wanted in environ or under_root:
            found.append((int(entry), _describe(cmdline), cmdline[:300]))
    return found


def stale_collection_copy():
    """Files of a collection copy under ~/.ansible/collections (ansible-lint installs one outside its lane)."""
    if not COLLECTION_COPY.exists():
        return []
    return sorted(str(p) for p in COLLECTION_COPY.rglob("*"))[:5] or [str(COLLECTION_COPY)]


def report(mark, roots=(), own_pids=()):
    """Lines saying what was left behind; empty when nothing was."""
    lines = []
    for pid, what, cmdline in leftover_processes(mark, roots, own_pids):
        lines.append("pid %d is still running, %s: %s" % (pid, what, cmdline))
    copy = stale_collection_copy()
    if copy:
        lines.append("%s exists (e.g. %s): a copy of the collection outside the checkout, which ansible-playbook "
                     "would run instead of it; tests must write only to the checkout and the temp dir "
                     "(scripts/test.sh puts ansible-lint's home under .build/); remove it with rm -rf %s"
                     % (COLLECTION_COPY, copy[0], COLLECTION_COPY))
    return lines
