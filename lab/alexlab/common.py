"""Paths, files and small helpers shared by every part of the lab.

Layout of a lab directory (DIR, default `.lab/` in the checkout):

    DIR/lab.json        what is running: URLs, kubeconfig, DSN, tokens, keys, pids (mode 0600)
    DIR/keys.json       the lab's secrets, kept across `down`/`up` (mode 0600)
    DIR/kubeconfig      for kubectl and the kubernetes client
    DIR/pgdata/         the embedded PostgreSQL (absent with --dsn)
    DIR/pods/<pod>/     one directory per pod: run/alexandria/ is the shared emptyDir,
                        logs/<container>/<n>.log the log of the container's n-th run
    DIR/faults/         the active faults (one JSON file each) and what heal needs
    DIR/supervisor.log  the supervisor's own log
"""
import datetime
import errno
import json
import os
import socket
import sys
import time

import psutil

NAMESPACE = "alexandria"
RELEASE = "alexandria-ee"
SOCKET_PATH = "/run/alexandria/orchestrator.sock"  # the containers' view; relative to the pod directory here
DATABASE_NAME = "alexandria"


class LabError(Exception):
    """A failure the CLI reports as one line on stderr."""


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_dir():
    return os.path.join(repo_root(), ".lab")


class Layout:
    def __init__(self, path):
        self.dir = os.path.abspath(path)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    lab_json = property(lambda self: self.path("lab.json"))
    keys_json = property(lambda self: self.path("keys.json"))
    kubeconfig = property(lambda self: self.path("kubeconfig"))
    pgdata = property(lambda self: self.path("pgdata"))
    pods = property(lambda self: self.path("pods"))
    faults = property(lambda self: self.path("faults"))
    checkpoints = property(lambda self: self.path("checkpoints"))
    supervisor_log = property(lambda self: self.path("supervisor.log"))
    lock = property(lambda self: self.path(".lock"))

    def pod_dir(self, pod):
        return self.path("pods", pod)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(value=None):
    value = value or now()
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def log_line(level, message, stream=None):
    """One log line, the format every lab process writes: `<time> <LEVEL> <message>`."""
    stamp = now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    stream = stream or sys.stdout
    stream.write("%s %s %s\n" % (stamp, level.upper(), message))
    stream.flush()


def write_json(path, data, mode=0o600):
    """Write atomically (temp file + rename), never half-written."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def ensure_writable_dir(path):
    """Create DIR if needed and prove it is writable; LabError in one line otherwise."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test.%d" % os.getpid())
        with open(probe, "w") as handle:
            handle.write("ok")
        os.unlink(probe)
    except OSError as exc:
        raise LabError("cannot use %s as the lab directory: %s" % (path, exc.strerror or exc))


def port_free(port, host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        return True
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        sock.close()


def free_port(host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def proc_identity(pid):
    """(pid, create_time) to tell our process from a later one that reused the pid."""
    try:
        return {"pid": pid, "create_time": psutil.Process(pid).create_time()}
    except (psutil.Error, ValueError):
        return None


def proc_alive(ident):
    """True when the process recorded as ident still runs (same pid, same start time, not a zombie)."""
    if not ident or not ident.get("pid"):
        return False
    try:
        proc = psutil.Process(ident["pid"])
        if ident.get("create_time") is not None and abs(proc.create_time() - ident["create_time"]) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_ident(ident, sig, wait=0.0):
    """Signal a recorded process only if it is still the same process; wait for it to go."""
    if not proc_alive(ident):
        return True
    try:
        proc = psutil.Process(ident["pid"])
        proc.send_signal(sig)
    except psutil.Error:
        return True
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not proc_alive(ident):
            return True
        time.sleep(0.05)
    return not proc_alive(ident)


def parse_quantity(text):
    """A Kubernetes memory quantity (`128Mi`, `1G`, `134217728`) in bytes; ValueError when unreadable."""
    units = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4,
             "k": 1000, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4}
    text = str(text).strip()
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            number = text[:-len(suffix)]
            return int(float(number) * units[suffix])
    return int(float(text))


def format_mib(value):
    return "%dMi" % (value // (1024 * 1024))
