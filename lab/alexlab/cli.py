"""`alexlab`: start, stop, inspect, break and heal a local stand-in for one Alexandria EE deployment.

Every subcommand takes --dir DIR (default `.lab/` in the checkout). Errors are one line on
stderr (`alexlab: ...`) and a non-zero exit: 1 for a failure, 2 for bad usage, 3 for
`status` of a lab that is not running.
"""
import argparse
import base64
import contextlib
import errno
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import warnings

import psycopg2
from psycopg2 import sql

import yaml

from alexlab import faults, keys as labkeys, pg, pki, rbac, schema, seed
from alexlab.common import (DATABASE_NAME, NAMESPACE, RELEASE, LabError, Layout, default_dir, ensure_writable_dir,
                            free_port, kill_ident, port_free, proc_alive, proc_identity, read_json, repo_root,
                            rfc3339, write_json)
from alexlab.labclient import LabClient


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, "alexlab: error: %s (see alexlab %s--help)\n" % (
            message, "" if self.prog == "alexlab" else self.prog.split(" ", 1)[-1] + " "))


@contextlib.contextmanager
def dir_lock(layout):
    handle = open(layout.lock, "a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LabError("another alexlab command is working on %s; try again when it is done" % layout.dir)
            raise
        yield
    finally:
        handle.close()


RBAC_MANIFESTS = os.path.join(repo_root(), "extensions", "rbac")
RBAC_ROLES = ("observer", "responder")


def service_accounts(namespace):
    """{role: {service_account, user, token}}: a fresh token for the ServiceAccount that the shipped RoleBinding
    binds Role alexandria-ee-<role> to (extensions/rbac/, moved to the lab's namespace)."""
    try:
        policy = rbac.load_policy(RBAC_MANIFESTS, namespace)
        accounts = {}
        for role in RBAC_ROLES:
            name = rbac.service_account_for_role(policy, "alexandria-ee-" + role)
            accounts[role] = {"service_account": name, "user": rbac.service_account_user(namespace, name),
                              "token": secrets.token_urlsafe(32)}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise LabError("cannot read the RBAC manifests in %s: %s" % (RBAC_MANIFESTS, exc))
    return accounts


def write_kubeconfigs(layout, k8s_url, info, chosen):
    """DIR/kubeconfig-<admin|observer|responder>, and DIR/kubeconfig as the chosen one (none: admin)."""
    paths = {}
    for role in ("admin",) + RBAC_ROLES:
        account = info["k8s_service_accounts"].get(role) or {"token": info["k8s_token"],
                                                             "service_account": "alexlab-sre"}
        paths[role] = layout.path("kubeconfig-%s" % role)
        chosen_here = role == {"none": "admin"}.get(chosen, chosen)
        for path in (paths[role], layout.kubeconfig) if chosen_here else (paths[role],):
            write_kubeconfig(layout, k8s_url, account["token"], info["namespace"], path, account["service_account"])
    return paths


def write_kubeconfig(layout, k8s_url, token, namespace, path, user):
    ca_file = pki.ensure(layout)[0]
    with open(ca_file, "rb") as handle:
        ca_data = base64.b64encode(handle.read()).decode("ascii")
    text = (
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: alexlab\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n"
        "users:\n- name: %s\n  user:\n    token: %s\n"
        "contexts:\n- name: alexlab\n  context:\n    cluster: alexlab\n    user: %s\n    namespace: %s\n"
        "current-context: alexlab\npreferences: {}\n") % (k8s_url, ca_data, user, token, user, namespace)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def prepare_database(layout, dsn_arg):
    """(dsn, postgres identity or None, mode). External: the DSN's database as given; embedded: DB `alexandria`."""
    if dsn_arg:
        dsn, ident, mode = dsn_arg, None, "external"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                admin_dsn, pid = pg.start_embedded(layout.pgdata)
        except Exception as exc:  # pgserver raises several types; one line is what the operator needs
            raise LabError("cannot start the embedded PostgreSQL in %s: %s" % (layout.pgdata, exc))
        ident, mode = proc_identity(pid), "embedded"
        dsn = pg.dsn_for_database(admin_dsn, DATABASE_NAME)
    try:
        if mode == "embedded":
            conn = psycopg2.connect(admin_dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                        sql.Identifier(DATABASE_NAME)))
            conn.close()
        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            schema.create_audit_tables(conn)
            schema.create_app_tables(conn)
        finally:
            conn.close()
    except psycopg2.Error as exc:
        if mode == "embedded":
            stop_everything(layout, {"dsn_mode": mode, "pids": {"postgres": ident}}, record=False)
        raise LabError("cannot prepare PostgreSQL (%s): %s" % (mode, str(exc).strip().splitlines()[0]))
    return dsn, ident, mode


def stop_everything(layout, info, record=True):
    """Stop what lab.json records, by pid: supervisor (it stops the pod), leftovers, then PostgreSQL."""
    pids = info.get("pids") or {}
    stopped = []
    supervisor = pids.get("supervisor")
    if proc_alive(supervisor):
        kill_ident(supervisor, signal.SIGTERM, wait=15)
        if not kill_ident(supervisor, signal.SIGKILL, wait=5):
            raise LabError("supervisor pid %d does not stop" % supervisor["pid"])
        stopped.append("supervisor")
    for name in ("api", "orchestrator"):
        if proc_alive(pids.get(name)):
            kill_ident(pids[name], signal.SIGKILL, wait=5)
            stopped.append(name)
    if info.get("dsn_mode") == "embedded":
        postgres = pids.get("postgres")
        if proc_alive(postgres):
            try:
                with contextlib.redirect_stderr(open(os.devnull, "w")):
                    pg.stop_embedded(layout.pgdata)
            except Exception:  # pg_ctl failed: fall back to the signals below
                pass
            if not kill_ident(postgres, signal.SIGTERM, wait=10):
                kill_ident(postgres, signal.SIGKILL, wait=5)
            stopped.append("postgres")
    if record:
        info.update(status="stopped", pids={}, pod=None, stopped_at=rfc3339())
        write_json(layout.lab_json, info)
    return stopped


def cmd_up(args):
    layout = Layout(args.dir)
    ensure_writable_dir(layout.dir)
    with dir_lock(layout):
        info = read_json(layout.lab_json) or {}
        if info.get("status") in ("running", "starting"):
            if proc_alive((info.get("pids") or {}).get("supervisor")):
                raise LabError("a lab is already running in %s (supervisor pid %d); run: alexlab down --dir %s" % (
                    layout.dir, info["pids"]["supervisor"]["pid"], layout.dir))
            stop_everything(layout, info)  # the leftovers of a crashed lab
        ports = {}
        for name, wanted in (("api_port", args.api_port), ("k8s_port", args.k8s_port)):
            if wanted:
                if not port_free(wanted):
                    raise LabError("port %d on 127.0.0.1 is already in use (--%s)" % (wanted, name.replace("_", "-")))
                ports[name] = wanted
            else:
                ports[name] = free_port()
        if ports["api_port"] == ports["k8s_port"]:
            raise LabError("--api-port and --k8s-port must differ")
        keys = labkeys.load_or_create(layout)
        blob = labkeys.mint(keys, args.seats, args.tenants, args.tier, args.license_days)
        dsn, pg_ident, mode = prepare_database(layout, args.dsn)
        info = {"status": "starting", "dsn_mode": mode, "pids": {"postgres": pg_ident}}
        try:
            info = start_supervisor(layout, args, ports, keys, blob, dsn, pg_ident, mode)
        except BaseException:
            stop_everything(layout, read_json(layout.lab_json) or info)
            raise
    if args.json:
        print(json.dumps({k: info[k] for k in ("api_url", "k8s_url", "kubeconfig", "namespace")}))
    else:
        account = info["k8s_service_accounts"].get(args.rbac)
        print("lab up in %s: api %s, kubernetes %s (KUBECONFIG=%s%s)" % (
            layout.dir, info["api_url"], info["k8s_url"], layout.kubeconfig,
            ", RBAC of Role alexandria-ee-%s as %s" % (args.rbac, account["user"]) if account else ""))
    return 0


def start_supervisor(layout, args, ports, keys, blob, dsn, pg_ident, mode):
    """Write lab.json and the kubeconfig, daemonize the supervisor, wait for /ready; returns lab.json."""
    k8s_url = "https://127.0.0.1:%d" % ports["k8s_port"]
    info = {
        "version": 1, "dir": layout.dir, "status": "starting", "started_at": rfc3339(),
        "api_url": "%s://127.0.0.1:%d" % ("https" if args.api_tls else "http", ports["api_port"]), "k8s_url": k8s_url,
        "kubeconfig": layout.kubeconfig,
        # --api-tls: the API's certificate is signed by the facade's CA; api_ca is what a client verifies it with.
        "api_tls": args.api_tls, "api_ca": pki.ensure(layout)[0] if args.api_tls else None,
        "k8s_ca": pki.ensure(layout)[0],
        "namespace": args.namespace, "release": RELEASE, "dsn": dsn, "dsn_mode": mode,
        "admin_token": keys["admin_token"], "k8s_token": keys["k8s_token"], "hmac_key": keys["hmac_key"],
        "issuer_public_key": labkeys.issuer_public_pem(keys), "license_blob": blob,
        "pids": {"postgres": pg_ident}, "pgdata": layout.pgdata if mode == "embedded" else None,
        # Where the automation keeps audit-chain checkpoints (docs/contract.md section 4): a namespace the
        # product does not use, a controller directory, and their own key.
        "checkpoint_namespace": args.namespace + "-audit", "checkpoint_secret": RELEASE + "-audit-checkpoints",
        "checkpoint_dir": layout.checkpoints, "checkpoint_key": keys["checkpoint_key"],
        "rbac": args.rbac, "rbac_manifests": RBAC_MANIFESTS, "k8s_service_accounts": service_accounts(args.namespace),
    }
    os.makedirs(layout.checkpoints, mode=0o700, exist_ok=True)
    info.update(ports)
    info["kubeconfigs"] = write_kubeconfigs(layout, k8s_url, info, args.rbac)
    os.makedirs(layout.faults, exist_ok=True)
    for stale in faults.PROCESS_AND_SECRET_FAULTS:  # they end with the lab; data faults stay with the data
        if os.path.exists(os.path.join(layout.faults, stale + ".json")):
            os.unlink(os.path.join(layout.faults, stale + ".json"))
    write_json(layout.lab_json, info)
    with open(layout.supervisor_log, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "alexlab.supervisor", "--dir", layout.dir],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    info["pids"]["supervisor"] = proc_identity(proc.pid)
    info["status"] = "running"
    write_json(layout.lab_json, info)
    wait_up(layout, proc, info, args.timeout)
    return info


def wait_up(layout, proc, info, timeout):
    client = LabClient(layout.dir, require_running=False)
    client.info = info
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = open(layout.supervisor_log, encoding="utf-8", errors="replace").read().strip().splitlines()
            raise LabError("the supervisor exited (%s): %s" % (proc.returncode, lines[-1] if lines else "no log"))
        if client.ready(timeout=2)[0] == 200:
            pod = client.pod()
            conditions = dict((c["type"], c["status"]) for c in ((pod or {}).get("status") or {}).get("conditions", []))
            if conditions.get("Ready") == "True":
                return
        time.sleep(0.05)
    raise LabError("the lab did not become ready within %ds (see %s)" % (timeout, layout.supervisor_log))


def cmd_down(args):
    layout = Layout(args.dir)
    info = read_json(layout.lab_json)
    if not info or info.get("status") == "stopped":
        raise LabError("no lab is running in %s" % layout.dir)
    with dir_lock(layout):
        stopped = stop_everything(layout, info)
    print("lab in %s stopped (%s)" % (layout.dir, ", ".join(stopped) or "nothing was left running"))
    return 0


def cmd_status(args):
    layout = Layout(args.dir)
    info = read_json(layout.lab_json)
    report = {"dir": layout.dir, "running": False}
    if info and info.get("status") != "stopped":
        pids = info.get("pids") or {}
        report["processes"] = dict((name, {"pid": (ident or {}).get("pid"), "alive": proc_alive(ident)})
                                   for name, ident in sorted(pids.items()))
        report["running"] = proc_alive(pids.get("supervisor"))
        report.update((k, info.get(k)) for k in ("api_url", "k8s_url", "kubeconfig", "namespace", "release",
                                                 "dsn_mode", "pod", "started_at", "rbac"))
        client = LabClient(layout.dir, require_running=False)
        code, body = client.ready(timeout=5)
        report["ready"] = {"http_status": code, "body": body}
        report["faults"] = faults.active(layout)
        if report["running"]:
            pod = client.pod()
            if pod:
                report["pod_status"] = dict((s["name"], {"ready": s["ready"], "restartCount": s["restartCount"],
                                                         "state": list(s["state"])[0]})
                                            for s in pod["status"].get("containerStatuses", []))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif report["running"]:
        print("lab in %s: running, /ready %s, pod %s, faults: %s" % (
            layout.dir, report["ready"]["http_status"], report.get("pod"), ", ".join(report["faults"]) or "none"))
    else:
        print("lab in %s: not running" % layout.dir)
    return 0 if report["running"] else 3


def cmd_license(args):
    layout = Layout(args.dir)
    keys = read_json(layout.keys_json)
    if not keys:
        raise LabError("no lab keys in %s: run alexlab up --dir %s first" % (layout.dir, layout.dir))
    if args.seats < 0 or args.tenants < 0:
        raise LabError("--seats and --tenants must not be negative")
    print(labkeys.mint(keys, args.seats, args.tenants, args.tier, args.expires_in, args.key, args.customer))
    return 0


def cmd_issuer_key(args):
    """Make (once) a named issuer key and print its public half: what an issuer hands over at a key rotation."""
    print(json.dumps(labkeys.ensure_issuer_key(Layout(args.dir), args.name), indent=2, sort_keys=True))
    return 0


def inventory_host_vars(info):
    """The alex_* host variables the scenario playbooks read, for one lab deployment."""
    tls = {"alex_api_ca_path": info["api_ca"]} if info.get("api_tls") else {}
    return dict(tls, **{
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "alex_base_url": info["api_url"],
        "alex_admin_token": info["admin_token"],
        "alex_kubeconfig": info["kubeconfig"],
        "alex_namespace": info["namespace"],
        "alex_release": info["release"],
        "alex_dsn": info["dsn"],
        "alex_audit_hmac_key": info["hmac_key"],
        "alex_license_issuer_public_key": info["issuer_public_key"],
        "alex_checkpoint_dir": info.get("checkpoint_dir"),
        "alex_checkpoint_secret": info.get("checkpoint_secret"),
        "alex_checkpoint_namespace": info.get("checkpoint_namespace"),
        "alex_checkpoint_key": info.get("checkpoint_key"),
    })


def cmd_inventory(args):
    layout = Layout(args.dir)
    info = read_json(layout.lab_json)
    if not info or info.get("status") == "stopped":
        raise LabError("no running lab in %s: run alexlab up --dir %s first" % (layout.dir, layout.dir))
    inventory = {"all": {"children": {args.group: {"hosts": {args.host: inventory_host_vars(info)}}}}}
    # JSON is YAML: `alexlab inventory > inventory.yml` works; the file holds the lab's secrets, keep it 0600.
    print(json.dumps(inventory, indent=2, sort_keys=True))
    return 0


def build_parser():
    parser = Parser(prog="alexlab", description=__doc__.split("\n", maxsplit=1)[0])
    subs = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def sub(name, func, text):
        command = subs.add_parser(name, help=text, description=text)
        command.add_argument("--dir", default=default_dir(), help="lab directory (default: .lab/ in the checkout)")
        command.set_defaults(func=func)
        return command

    up = sub("up", cmd_up, "start the lab in the background and wait until /ready answers 200")
    up.add_argument("--dsn", help="use this existing PostgreSQL database as given (tables are created in it)")
    up.add_argument("--namespace", default=NAMESPACE)
    up.add_argument("--api-port", type=int, default=0, help="API port on 127.0.0.1 (default: a free one)")
    up.add_argument("--k8s-port", type=int, default=0, help="Kubernetes facade port (default: a free one)")
    up.add_argument("--seats", type=int, default=25, help="seat_count of the initial license")
    up.add_argument("--tenants", type=int, default=5, help="tenant_count of the initial license")
    up.add_argument("--tier", default="enterprise", choices=["starter", "business", "enterprise"])
    up.add_argument("--license-days", type=float, default=365.0)
    up.add_argument("--timeout", type=float, default=60.0)
    up.add_argument("--json", action="store_true", help="print the URLs as JSON")
    up.add_argument("--rbac", default="none", choices=("none",) + RBAC_ROLES,
                    help="the kubeconfig's identity: none (no RBAC, default), or the ServiceAccount bound to Role "
                         "alexandria-ee-observer / alexandria-ee-responder of extensions/rbac/, enforced")
    up.add_argument("--api-tls", action="store_true",
                    help="serve the API over HTTPS with a certificate of the lab's CA (DIR/pki/ca.crt, lab.json api_ca)")
    sub("down", cmd_down, "stop everything the lab started, by pid")
    inv = sub("inventory", cmd_inventory, "print an Ansible inventory (JSON, valid YAML) for this lab deployment")
    inv.add_argument("--host", default="alexandria-lab", help="inventory host name (default alexandria-lab)")
    inv.add_argument("--group", default="alexandria", help="inventory group (default alexandria)")
    status = sub("status", cmd_status, "report processes, /ready, the pod and active faults")
    status.add_argument("--json", action="store_true")

    brk = sub("break", faults.cmd_break, "inject a fault")
    brk.add_argument("fault", choices=faults.FAULTS, metavar="FAULT", help="one of: " + ", ".join(faults.FAULTS))
    brk.add_argument("--tenant", help="audit-tamper, audit-delete: the tenant")
    brk.add_argument("--seq", help="audit-tamper, audit-delete: A-B or N")
    brk.add_argument("--resource", default="*", help="rbac-deny: resource (pods, pods/log, secrets, ...), default all")
    brk.add_argument("--verb", default="*", help="rbac-deny: get, list, watch, create, update, patch, delete")
    brk.add_argument("--working-set", help="oom: memory the orchestrator needs (default 1.25 x its limit)")
    brk.add_argument("--no-verify", action="store_true", help="audit faults: do not ask the API to verify")
    brk.add_argument("--no-wait", action="store_true", help="return without waiting for the symptom")
    brk.add_argument("--timeout", type=float, default=60.0)
    heal = sub("heal", faults.cmd_heal, "undo one fault, or all")
    heal.add_argument("fault", nargs="?", choices=faults.FAULTS, metavar="FAULT")
    heal.add_argument("--no-wait", action="store_true")
    heal.add_argument("--timeout", type=float, default=60.0)

    audit = sub("seed-audit", seed.cmd_seed_audit, "load valid audit chains fast (COPY)")
    audit.add_argument("--tenants", type=int, required=True)
    audit.add_argument("--rows", type=int, required=True)
    audit.add_argument("--prefix", default="seed", help="tenant ids are PREFIX-001, PREFIX-002, ...")
    audit.add_argument("--workers", type=int, default=2)
    users = sub("seed-users", seed.cmd_seed_users, "add users of different ages (fixtures for the quota scenario)")
    users.add_argument("--active", type=int, default=0)
    users.add_argument("--inactive", type=int, default=0)
    users.add_argument("--inactive-days", type=int, default=90)
    users.add_argument("--never-active", type=int, default=0)
    users.add_argument("--tenant", help="tenant for the users (default: the first tenant, or a new `lab`)")

    lic = sub("license", None, "license blobs")
    lic_subs = lic.add_subparsers(dest="license_command", required=True, parser_class=Parser)
    mint = lic_subs.add_parser("mint", help="print a blob signed by the lab's issuer key (or another key)")
    mint.set_defaults(func=cmd_license)
    mint.add_argument("--dir", default=argparse.SUPPRESS)
    mint.add_argument("--seats", type=int, required=True)
    mint.add_argument("--tenants", type=int, required=True)
    mint.add_argument("--tier", required=True, choices=["starter", "business", "enterprise"])
    mint.add_argument("--expires-in", type=float, default=365.0, metavar="DAYS")
    mint.add_argument("--key", default="issuer", metavar="KEY",
                      help="issuer (the lab's issuer key), other (a fresh key no one trusts), or the NAME of a key "
                           "made with `license issuer-key --name NAME`")
    mint.add_argument("--customer", default="Alexandria Lab")
    issuer_key = lic_subs.add_parser("issuer-key", help="make (once) a named issuer key and print its public key "
                                                        "and key id as JSON; the private key stays in the lab")
    issuer_key.add_argument("--dir", default=argparse.SUPPRESS)
    issuer_key.add_argument("--name", required=True)
    issuer_key.set_defaults(func=cmd_issuer_key)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except LabError as exc:
        sys.stderr.write("alexlab: %s\n" % exc)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("alexlab: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
