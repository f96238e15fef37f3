"""A handle on a lab for tests: start it with the real CLI, reach it through its real channels.

    handle = LabHandle.up(tmp_dir)          # `alexlab up --dir tmp_dir` (ALEX_TEST_DSN: --dsn a fresh database)
    handle.cli("break", "oom")              # any alexlab subcommand, --dir added
    handle.kubectl("get", "pods")           # /usr/bin/kubectl with the lab's kubeconfig
    handle.core().list_namespaced_pod(...)  # the official kubernetes client
    handle.api("GET", "/ready", auth=False) # HTTP to the API
    handle.sql("SELECT ...")                # the lab's PostgreSQL
    handle.down()
"""
import json
import os
import shutil
import subprocess
import sys

from alexlab import pg
from alexlab.labclient import LabClient

BIN = os.path.dirname(sys.executable)
ALEXLAB = os.path.join(BIN, "alexlab")


def kubectl_path():
    return shutil.which("kubectl") or "/usr/bin/kubectl"


class LabHandle:
    def __init__(self, directory, admin_dsn=None, dsn=None):
        self.dir = str(directory)
        self.admin_dsn, self.external_dsn = admin_dsn, dsn

    @classmethod
    def up(cls, directory, *extra, timeout=180):
        """Start a lab; with ALEX_TEST_DSN set, on a fresh database of that server."""
        admin_dsn = pg.test_admin_dsn()
        dsn = pg.create_database(admin_dsn, prefix="lab") if admin_dsn else None
        handle = cls(directory, admin_dsn, dsn)
        args = ["up"] + list(extra) + (["--dsn", dsn] if dsn else [])
        proc = handle.cli(*args, check=False, timeout=timeout)
        if proc.returncode != 0:
            handle.drop_database()
            raise AssertionError("alexlab up failed: %s" % proc.stderr.strip())
        return handle

    def drop_database(self):
        if self.external_dsn:
            pg.drop_database(self.admin_dsn, self.external_dsn)
            self.external_dsn = None

    def down(self):
        proc = self.cli("down", check=False)
        self.drop_database()
        return proc

    @property
    def info(self):
        with open(os.path.join(self.dir, "lab.json"), encoding="utf-8") as handle:
            return json.load(handle)

    @property
    def client(self):
        return LabClient(self.dir)

    def cli(self, *args, check=True, timeout=180):
        argv = [ALEXLAB] + list(args) + ["--dir", self.dir]
        if args and args[0] == "license":
            argv = [ALEXLAB, "license", "--dir", self.dir] + list(args[1:])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("alexlab %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr.strip()))
        return proc

    def kubectl(self, *args, check=True, timeout=120, input_text=None):
        env = dict(os.environ, KUBECONFIG=self.info["kubeconfig"], HOME=self.dir)
        proc = subprocess.run([kubectl_path()] + list(args), capture_output=True, text=True, timeout=timeout,
                              env=env, input=input_text, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("kubectl %s failed: %s" % (" ".join(args), proc.stderr.strip()))
        return proc

    def api_client(self):
        import kubernetes
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=self.info["kubeconfig"], client_configuration=config)
        return kubernetes.client.ApiClient(config)

    def core(self):
        import kubernetes
        return kubernetes.client.CoreV1Api(self.api_client())

    def apps(self):
        import kubernetes
        return kubernetes.client.AppsV1Api(self.api_client())

    def api(self, method, path, body=None, auth=True, timeout=30.0):
        return self.client.api(method, path, body, auth, timeout)

    def sql(self, query, params=None, fetch=True):
        conn = self.client.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                rows = cur.fetchall() if fetch and cur.description else None
            conn.commit()
            return rows
        finally:
            conn.close()

    def pod(self):
        return self.client.pod()

    def logs(self, container, **kwargs):
        return self.client.logs(container, **kwargs)
