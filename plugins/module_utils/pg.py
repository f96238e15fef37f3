# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connection: the shared argument spec, secret masking and session pinning."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks

try:
    import psycopg2
    import psycopg2.extensions
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError:
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

# Pinned in every session that reads or writes the chain (docs/contract.md section 4).
SESSION_SETTINGS = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'"


def postgres_argument_spec():
    return dict(
        dsn=dict(type=arg_checks.dsn(), no_log=True, fallback=(env_fallback, ["ALEX_DSN"])),
        login_host=dict(type=arg_checks.text(1024, "a host name or socket directory"),
                        fallback=(env_fallback, ["PGHOST"])),
        login_port=dict(type=arg_checks.port(), fallback=(env_fallback, ["PGPORT"])),
        login_user=dict(type=arg_checks.text(1024, "a user name"), fallback=(env_fallback, ["PGUSER"])),
        login_password=dict(type=arg_checks.text(arg_checks.MAX_TOKEN, "a password"), no_log=True,
                            fallback=(env_fallback, ["PGPASSWORD"])),
        login_db=dict(type=arg_checks.text(1024, "a database name"), fallback=(env_fallback, ["PGDATABASE"])),
        ssl_mode=dict(type="str", fallback=(env_fallback, ["PGSSLMODE"]),
                      choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
        ssl_rootcert=dict(type=arg_checks.path("a CA certificate file"), fallback=(env_fallback, ["PGSSLROOTCERT"])),
    )


_URI_PASSWORD = re.compile(r"^[a-z0-9+.-]+://[^:/@]*:([^@]*)@", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def dsn_secrets(dsn):
    """Every form of the password in a DSN (raw and quoted), to mask in any output."""
    found = set()
    if not dsn:
        return found
    for match in (_URI_PASSWORD.match(dsn), _KV_PASSWORD.search(dsn)):
        if match and match.group(1):
            value = match.group(1)
            found.add(value)
            found.add(value.strip("'"))
    if HAS_PSYCOPG2:
        try:
            password = psycopg2.extensions.parse_dsn(dsn).get("password")
        except Exception:  # an unparsable DSN: the regexes above did what can be done
            password = None
        if password:
            found.add(password)
    try:
        from urllib.parse import unquote
        found.update(set(unquote(v) for v in list(found)))
    except ImportError:
        pass
    return set(v for v in found if v)


def mask(text, secrets):
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


def connection_kwargs(params):
    mapping = dict(login_host="host", login_port="port", login_user="user", login_password="password",
                   login_db="dbname", ssl_mode="sslmode", ssl_rootcert="sslrootcert")
    return dict((libpq, params[opt]) for opt, libpq in mapping.items() if params.get(opt) not in (None, ""))


# libpq's own default, prefer, checks no certificate: without an sslmode anywhere, a TCP connection verifies the
# server's certificate against its host name. Unix sockets get nothing (libpq uses no TLS there, and client
# binaries built without TLS refuse any verifying sslmode even for a socket).
DEFAULT_SSLMODE = "verify-full"


def _over_tcp(params, environ):
    """Whether libpq would connect over TCP: a hostaddr, or a host that is not a socket directory."""
    if params.get("hostaddr") or (not params.get("host") and environ.get("PGHOSTADDR")):
        return True
    hosts = params.get("host") or environ.get("PGHOST") or ""
    return any(h.strip() and not h.strip().startswith(("/", "@")) for h in hosts.split(","))


def with_tls_default(dsn, kwargs, environ=None):
    """kwargs plus sslmode=verify-full for a TCP connection unless the DSN, kwargs, PGSSLMODE or a service names
    an sslmode (or the DSN is unparsable: connect reports that)."""
    environ = os.environ if environ is None else environ
    kwargs = dict(kwargs or {})
    try:
        given = psycopg2.extensions.parse_dsn(dsn) if (dsn and HAS_PSYCOPG2) else {}
    except psycopg2.Error:
        return kwargs
    given.update(kwargs)
    if any(k in given for k in ("sslmode", "requiressl", "service")) or environ.get("PGSSLMODE") \
            or environ.get("PGSERVICE") or not _over_tcp(given, environ):
        return kwargs
    kwargs["sslmode"] = DEFAULT_SSLMODE
    return kwargs


# libpq's words for a certificate check that failed, and for a server without TLS under a verifying sslmode.
_UNTRUSTED = ("certificate verify failed", "root certificate file", "could not read root certificate",
              "does not match host name", "server certificate for")
_NO_TLS = "server does not support SSL"


def describe_connect_error(text):
    """One line for a libpq connection error; certificate failures say which option fixes them."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    if any(marker in text for marker in _UNTRUSTED):
        return ("%s: the server's TLS certificate could not be verified (sslmode verify-full is the default); pass "
                "ssl_rootcert (or PGSSLROOTCERT) with the CA certificate that signed it, and connect by a host name "
                "the certificate names" % first)
    if _NO_TLS in text:
        return ("%s: the server offers no TLS, and certificate checks are on by default; set ssl_mode (or sslmode in "
                "the DSN) explicitly to connect without TLS" % first)
    return text.strip()


class PgError(Exception):
    """A database failure, phrased for an operator, secrets already masked."""


def connect(dsn, kwargs=None, secrets=(), application_name="alexandria.ee"):
    """Open a connection with the contract's session settings; PgError with secrets masked."""
    if not HAS_PSYCOPG2:
        raise PgError("the Python library 'psycopg2' is required: pip install psycopg2-binary")
    kwargs = with_tls_default(dsn, kwargs)
    kwargs.setdefault("application_name", application_name)
    kwargs.setdefault("connect_timeout", 10)
    try:
        conn = psycopg2.connect(dsn or "", **kwargs)
        with conn.cursor() as cur:
            cur.execute(SESSION_SETTINGS)
        conn.commit()
        return conn
    except psycopg2.Error as exc:
        raise PgError("cannot connect to PostgreSQL: %s" % mask(describe_connect_error(str(exc)), secrets))
