# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the audit modules share: options, credentials (options or the release's Secret), errors.

The DSN and the HMAC key come from the module options (no_log) or, when absent, from the
release's main Secret (keys database-dsn and audit-hmac-key, docs/contract.md section 1),
read with the kubernetes client. Whatever is read is added to module.no_log_values before
anything else happens, so no result, warning or error can carry it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

from ansible.module_utils.basic import env_fallback

from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint
from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import audit_keyring
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store
from ansible_collections.alexandria.ee.plugins.module_utils import checkpoint_store
from ansible_collections.alexandria.ee.plugins.module_utils import k8s_client
from ansible_collections.alexandria.ee.plugins.module_utils import pg

try:
    import psycopg2
except ImportError:  # pg.connect reports it
    psycopg2 = None


def audit_argument_spec(key=True):
    """Options of the audit modules; key=False leaves out the HMAC key and workers (backup)."""
    spec = pg.postgres_argument_spec()
    spec.update(k8s_client.k8s_auth_argument_spec())
    spec.update(k8s_client.deployment_argument_spec())
    spec.update(
        secret_name=dict(type=arg_checks.k8s_name()),
        dsn_secret_key=dict(type=arg_checks.k8s_key(), default="database-dsn", no_log=False),
        schema=dict(type=arg_checks.pg_identifier(), default="public"),
        table=dict(type=arg_checks.pg_identifier(), default="audit_logs"),
        anchor_table=dict(type=arg_checks.pg_identifier(), default="audit_chain_anchors"),
        quarantine_table=dict(type=arg_checks.pg_identifier(), default="audit_quarantine"),
        rotation_table=dict(type=arg_checks.pg_identifier(), default="audit_key_rotations"),
    )
    if key:
        spec.update(
            hmac_key=dict(type=arg_checks.text(arg_checks.MAX_TOKEN, "an HMAC key"), no_log=True,
                          fallback=(env_fallback, ["ALEX_AUDIT_HMAC_KEY"])),
            hmac_secret_key=dict(type=arg_checks.k8s_key(), default="audit-hmac-key", no_log=False),
            hmac_keyring=dict(type=arg_checks.text(arg_checks.MAX_TEXT, "an audit keyring (JSON)"), no_log=True),
            hmac_keyring_secret_key=dict(type=arg_checks.k8s_key(), default="audit-hmac-keyring", no_log=False),
            workers=dict(type=arg_checks.count(1, 64)),
        )
    return spec


class Credentials:
    """Where to connect and the HMAC keys (an audit_keyring.Keyring); secrets holds every value to mask."""

    def __init__(self, dsn, kwargs, key, secrets, source):
        self.dsn = dsn
        self.kwargs = kwargs
        self.key = key
        self.secrets = secrets
        self.source = source

    def connect(self):
        conn = pg.connect(self.dsn, self.kwargs, self.secrets, application_name="alexandria.ee audit")
        return audit_store.tune_session(conn)


def _read_secret(params, names, optional=()):
    """{key: bytes} of the release's main Secret for the wanted keys (optional ones when present); K8sError otherwise."""
    api = k8s_client.build_api_client(params)
    import kubernetes  # present: build_api_client checked
    name = params.get("secret_name") or params["release"]
    what = "reading Secret %s/%s" % (params["namespace"], name)
    try:
        secret = kubernetes.client.CoreV1Api(api).read_namespaced_secret(name, params["namespace"])
    except k8s_client.ApiException as exc:
        raise k8s_client.K8sError(k8s_client.describe_api_error(exc, what))
    except k8s_client.transport_errors() as exc:
        raise k8s_client.K8sError(k8s_client.describe_api_error(exc, what))
    data = secret.data or {}
    values = {}
    for key in names:
        if key not in data and key in optional:
            continue
        if key not in data:
            raise k8s_client.K8sError("Secret %s/%s has no key %r" % (params["namespace"], name, key))
        values[key] = base64.b64decode(data[key])
    return values


def resolve_credentials(module, need_key=True):
    """Credentials from the options, completed from the release's Secret; masks everything found."""
    params = module.params
    kwargs = pg.connection_kwargs(params)
    dsn = params.get("dsn")
    key = params.get("hmac_key")
    need_key = need_key and "hmac_key" in params
    secrets = set(pg.dsn_secrets(dsn))
    if params.get("login_password"):
        secrets.add(params["login_password"])
    module.no_log_values.update(secrets)
    wanted = []
    if not dsn and not kwargs.get("host") and not kwargs.get("dbname"):
        wanted.append(params["dsn_secret_key"])
    keyring_text = params.get("hmac_keyring") if need_key else None
    if not key and not keyring_text and need_key:
        wanted += [params["hmac_secret_key"], params["hmac_keyring_secret_key"]]
    source = "options"
    if wanted:
        try:
            values = _read_secret(params, wanted, optional=(params.get("hmac_keyring_secret_key"),))
        except k8s_client.K8sError as exc:
            module.fail_json(msg="no %s given and the release's Secret cannot be read: %s"
                             % (" or ".join("dsn" if w == params["dsn_secret_key"] else "hmac_key" for w in wanted),
                                exc))
        source = "secret"
        for name, raw in values.items():
            text = raw.decode("utf-8", "replace")
            if name == params["dsn_secret_key"] and params["dsn_secret_key"] in wanted:
                dsn = text.strip()
                found = pg.dsn_secrets(dsn)
                secrets.update(found)
                module.no_log_values.update(found)
                secrets.add(text)
                module.no_log_values.add(text)
            if need_key and name == params["hmac_secret_key"] and not key:
                key = raw
                secrets.add(text)
                module.no_log_values.add(text)
            if need_key and name == params.get("hmac_keyring_secret_key") and name in wanted:
                keyring_text = text
    if isinstance(key, str):
        key = key.encode("utf-8")
    if need_key and not key and not keyring_text:
        module.fail_json(msg="the audit HMAC key is empty")
    keyring = None
    if need_key:
        keyring = keyring_from(module, keyring_text, key, secrets)
    return Credentials(dsn, kwargs, keyring, secrets, source)


def keyring_from(module, keyring_text, genesis_key, secrets):
    """The Keyring to verify with (masked before anything can show it); one fail_json when unusable."""
    if keyring_text:
        secrets.add(keyring_text)
        module.no_log_values.add(keyring_text)
        try:
            keyring = audit_keyring.parse_keyring(keyring_text, genesis_key)
        except audit_keyring.KeyringError as exc:
            module.fail_json(msg=str(exc))
    else:
        keyring = audit_keyring.Keyring.single(genesis_key)
    for material in keyring.secrets():
        for shown in audit_keyring.shown_forms(material):
            secrets.add(shown)
            module.no_log_values.add(shown)
    return keyring


def checkpoint_argument_spec(update=True):
    """Options of the checkpoint stores (docs/contract.md section 4, "Checkpoints"); update=False leaves out
    update_checkpoints (a caller that only reads them, alex_health)."""
    spec = dict(
        checkpoint_dir=dict(type=arg_checks.path("a checkpoint directory")),
        checkpoint_secret=dict(type=arg_checks.k8s_name(), no_log=False),
        checkpoint_namespace=dict(type=arg_checks.k8s_name(label=True)),
        checkpoint_key=dict(type=arg_checks.text(arg_checks.MAX_TOKEN, "a checkpoint key"), no_log=True,
                            fallback=(env_fallback, ["ALEX_CHECKPOINT_KEY"])),
        mode=dict(type="str", default="incremental", choices=["full", "incremental"]),
        checkpoint_witness=dict(type="list", elements=arg_checks.path("a run record"), default=[]),
    )
    if update:
        spec["update_checkpoints"] = dict(type="bool", default=False)
    return spec


def checkpoint_key(module, creds):
    """The checkpoint key (bytes) when a store is set; fails with one message when it is unusable."""
    params = module.params
    if not (params.get("checkpoint_dir") or params.get("checkpoint_secret")):
        if params.get("update_checkpoints"):
            module.fail_json(msg="update_checkpoints needs a checkpoint store: set checkpoint_dir and/or "
                                 "checkpoint_secret with checkpoint_namespace")
        return None
    if params.get("checkpoint_secret") and not params.get("checkpoint_namespace"):
        module.fail_json(msg="checkpoint_secret needs checkpoint_namespace: a namespace the product does not control")
    if params.get("checkpoint_namespace") and params["checkpoint_namespace"] == params.get("namespace"):
        module.fail_json(msg="checkpoint_namespace must not be the product's namespace %r: whoever controls the "
                             "deployment could rewrite its own checkpoints; use a namespace of its own"
                             % params["checkpoint_namespace"])
    if not params.get("checkpoint_key"):
        module.fail_json(msg="a checkpoint store is set but no checkpoint_key (or ALEX_CHECKPOINT_KEY): give the key "
                             "the checkpoints are signed with (at least 32 bytes, not the audit HMAC key)")
    try:
        key = audit_checkpoint.key_bytes(params["checkpoint_key"])
    except audit_checkpoint.CheckpointError as exc:
        module.fail_json(msg=str(exc))
    if creds.key is not None and key in creds.key.secrets():
        module.fail_json(msg="checkpoint_key must not be the audit HMAC key: whoever holds that key could then move "
                             "the checkpoints; generate a separate one")
    return key


def checkpoint_stores(params, identity):
    """The configured stores (directory first), for one deployment."""
    stores = []
    if params.get("checkpoint_dir"):
        stores.append(checkpoint_store.DirStore(params["checkpoint_dir"], identity))
    if params.get("checkpoint_secret"):
        api = k8s_client.build_api_client(params)
        stores.append(checkpoint_store.SecretStore(
            api, params["checkpoint_namespace"], params["checkpoint_secret"], identity,
            k8s_client.describe_api_error, k8s_client.ApiException, k8s_client.transport_errors()))
    return stores


def read_witness_records(module, paths):
    """[(path, parsed JSON)] of the witness run records that can be read; a warning for each that cannot."""
    records = []
    for path in paths or []:
        try:
            with open(path, "r") as handle:
                records.append((path, json.load(handle)))
        except (IOError, OSError, ValueError) as exc:
            module.warn("checkpoint witness %s cannot be read (%s); not compared" % (path, exc.__class__.__name__))
    return records


def tables_from_params(params):
    return audit_store.AuditTables(params["schema"], params["table"], params["anchor_table"],
                                   params["quarantine_table"], params.get("rotation_table") or "audit_key_rotations")


def workers_from_params(module):
    workers = module.params.get("workers")
    if workers is None:
        return audit_store.default_workers()
    if workers < 1:
        module.fail_json(msg="workers must be at least 1")
    return workers


def describe_error(exc, secrets=()):
    """One masked sentence for any error the audit code can raise."""
    if isinstance(exc, (audit_store.AuditError, pg.PgError, k8s_client.K8sError)):
        return pg.mask(str(exc), secrets)
    if psycopg2 is not None and isinstance(exc, psycopg2.Error):
        text = (getattr(exc, "pgerror", None) or str(exc)).strip()
        return pg.mask("PostgreSQL error: %s" % text, secrets)
    return pg.mask("%s: %s" % (exc.__class__.__name__, exc), secrets)


def handled_errors():
    errors = (audit_store.AuditError, pg.PgError, k8s_client.K8sError, OSError, ValueError)
    if psycopg2 is not None:
        errors += (psycopg2.Error,)
    return errors


def scope_words(tenants):
    """One line per broken tenant: its segments, for people."""
    lines = []
    for tenant_id, res in sorted(tenants.items()):
        if res.get("verified"):
            continue
        parts = []
        for seg in res["segments"]:
            if seg["kind"] == "checkpoint_invalid":
                problems = (res.get("checkpoint") or {}).get("problems") or ["see checkpoint.problems"]
                parts.append("checkpoint_invalid (%s)" % "; ".join(problems))
                continue
            span = "%d" % seg["first_seq"] if seg["first_seq"] == seg["last_seq"] else \
                "%d-%d" % (seg["first_seq"], seg["last_seq"])
            noun = "missing" if seg["kind"] in ("seq_gap", "truncated", "tenant_missing") else \
                ("row" if seg["rows"] == 1 else "rows")
            parts.append("%s seq %s (%d %s)" % (seg["kind"], span, seg["rows"], noun))
        cause = res.get("probable_cause")
        lines.append("tenant %r: %s%s" % (tenant_id, ", ".join(parts), "; probable cause %s" % cause if cause else ""))
    return lines
