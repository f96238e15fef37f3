"""The `api` container: the HTTP API of docs/contract.md section 2.

Configured like the real container, from its environment (the supervisor fills it from the
Deployment's env and the Secrets it references, at container start):

    ALEX_HTTP_ADDR                  127.0.0.1:<port> (the container port 8080 of the Service)
    ALEX_DATABASE_DSN               Secret <release>, key database-dsn
    ALEX_AUDIT_HMAC_KEY             Secret <release>, key audit-hmac-key (bytes as stored)
    ALEX_AUDIT_HMAC_KEYRING         Secret <release>, key audit-hmac-keyring (optional; the key epochs' keyring)
    ALEX_ADMIN_TOKEN                Secret <release>, key admin-token
    ALEX_LICENSE_BLOB               Secret <release>-license, key license.blob (optional)
    ALEX_LICENSE_ISSUER_PUBLIC_KEY  the issuer's public key (PEM), trusted when there is no issuer set
    ALEX_LICENSE_ISSUERS            Secret <release>-license-issuers, key issuers.json (optional): the trusted
                                    issuer set, which replaces the single key when present
    ALEX_ORCHESTRATOR_SOCKET        /run/alexandria/orchestrator.sock (relative to the pod directory)
    ALEX_ORCHESTRATOR_DEADLINE      seconds, default 2
    ALEX_TLS_CERT_FILE              with ALEX_TLS_KEY_FILE: serve HTTPS with this certificate (alexlab up --api-tls)
    ALEX_TLS_KEY_FILE               its private key

The license and the issuer set are read once, at start: a new blob or a changed set in the Secrets needs a
restart (rollout restart). So is the audit keyring: at start, before verifying, the API writes a rotation
record for every tenant whose chain is not yet on the keyring's active key (and logs "audit key rotated" for
each).
"""
import datetime
import hmac
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import psycopg2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from alexlab import api_store
from alexlab.api_store import ChainBroken, Exists, NotFound, QuotaExceeded
from alexlab.common import SOCKET_PATH, log_line
from alexlab.shared import audit_chain as ac
from alexlab.shared import audit_keyring as akr
from alexlab.shared import license_codec as lc
from alexlab.shared import license_issuers as li


def log(level, message):
    log_line(level, message)


class License:
    """The license as loaded at start; `check()` also applies expiry as time passes."""

    def __init__(self, blob, issuer_pem, issuer_set=None):
        self.claims = None
        self.reason = None
        self.decoded = None  # claims readable even when invalid (wrong issuer, bad signature, expired)
        if issuer_set:
            try:
                trust = li.parse_set(issuer_set)
            except li.IssuerSetInvalid as exc:  # trust nobody rather than guess
                log("error", "license issuer set invalid: %s" % exc)
                trust = li.empty_set()
            ids = li.ids_by_status(trust)
            log("info", "license issuer set: trusted=%s pending=%s revoked=%s" % (
                ",".join(ids["trusted"]) or "-", ",".join(ids["pending"]) or "-", ",".join(ids["revoked"]) or "-"))
        else:
            try:
                trust = lc.load_public_key(issuer_pem)
            except ValueError as exc:
                self.reason = "malformed"
                log("error", "license issuer key unusable: %s" % exc)
                return
        if not blob:
            self.reason = "missing"
            return
        try:
            self.decoded = lc.parse_license(blob)[0]
        except lc.LicenseInvalid:
            self.decoded = None
        try:
            self.claims = li.decode_license(blob, trust)
        except lc.LicenseInvalid as exc:
            self.reason = exc.reason

    def check(self):
        """None when valid, else the reason (lc.REASONS: missing, malformed, the issuer's, bad_signature, expired)."""
        if self.reason:
            return self.reason
        if lc.parse_time(self.claims["expires_at"]) <= datetime.datetime.now(datetime.timezone.utc):
            return "expired"
        return None

    @staticmethod
    def words(reason):
        if reason == "bad_signature":
            return "license signature verification failed"
        return "license blob invalid: %s" % reason

    def limits(self):
        if self.check():
            return 0, 0
        return self.claims["seat_count"], self.claims["tenant_count"]

    def tier(self):
        return self.claims["tier"] if self.claims and not self.check() else None


class App:
    def __init__(self, env):
        self.dsn = env.get("ALEX_DATABASE_DSN", "")
        self.hmac_key = os.environb.get(b"ALEX_AUDIT_HMAC_KEY", b"")
        self.keyring = self.load_keyring(os.environb.get(b"ALEX_AUDIT_HMAC_KEYRING"))
        self.rotated = False
        self.admin_token = env.get("ALEX_ADMIN_TOKEN", "")
        self.socket_path = env.get("ALEX_ORCHESTRATOR_SOCKET", SOCKET_PATH)
        self.deadline = float(env.get("ALEX_ORCHESTRATOR_DEADLINE", "2"))
        self.license = License(env.get("ALEX_LICENSE_BLOB"), env.get("ALEX_LICENSE_ISSUER_PUBLIC_KEY", ""),
                               env.get("ALEX_LICENSE_ISSUERS"))
        self.db = api_store.Db(self.dsn)
        self.anchors_seen = set()
        self.verify_lock = threading.Lock()

    def load_keyring(self, text):
        """The keyring of the Secret, or the single key of audit-hmac-key (never logs a key)."""
        if text:
            try:
                return akr.parse_keyring(text, self.hmac_key)
            except akr.KeyringError as exc:
                log("error", "audit keyring invalid: %s; writing with audit-hmac-key alone" % exc)
        return akr.Keyring.single(self.hmac_key)

    def rotate_at_start(self):
        """Move every tenant to the active key's epoch (a rotation record each, under the writers' lock)."""
        for record in self.db.rotate_all(self.keyring):
            self.log_rotation(record)
        self.rotated = True

    @staticmethod
    def log_rotation(record):
        log("info", "audit key rotated: tenant=%s first_seq=%d old_key=%s new_key=%s reason=%s" % (
            api_store.tenant_words(record["tenant_id"]), record["first_seq"], record["old_key_id"],
            record["new_key_id"], record["reason"]))

    # -- checks --------------------------------------------------------------------------

    def check_orchestrator(self):
        """None when the orchestrator answers SERVING within the deadline, else the reason in words."""
        local = "." + self.socket_path
        if not os.path.exists(local):
            log("error", "orchestrator health check failed: dial unix %s: no such file or directory" % self.socket_path)
            return "orchestrator.sock: no such file or directory"
        channel = grpc.insecure_channel("unix:" + local[2:], options=[("grpc.enable_retries", 0)])
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=self.deadline)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return None
            reason = "orchestrator not serving"
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                log("error", "orchestrator health check failed: rpc error: code = DeadlineExceeded "
                             "desc = context deadline exceeded")
                return "context deadline exceeded"
            detail = exc.details() or ""
            if "No such file" in detail:
                reason = "orchestrator.sock: no such file or directory"
            elif "refused" in detail.lower():
                reason = "orchestrator.sock: connection refused"
            else:
                reason = "orchestrator unavailable: %s" % code.name
            log("error", "orchestrator health check failed: dial unix %s: %s" % (self.socket_path, reason.split(": ", 1)[-1]))
            return reason
        finally:
            channel.close()
        log("error", "orchestrator health check failed: %s" % reason)
        return reason

    def check_license(self):
        reason = self.license.check()
        if reason is None:
            return None
        words = License.words(reason)
        log("error", words)
        return words

    def check_database(self):
        try:
            self.db.ping()
            return None
        except psycopg2.Error as exc:
            words = "database unavailable: %s" % (str(exc).strip().splitlines() or ["error"])[0]
            log("error", words)
            return words

    def ready(self):
        checks = {"orchestrator": self.check_orchestrator(), "license": self.check_license(),
                  "database": self.check_database()}
        failing = [name for name in ("orchestrator", "license", "database") if checks[name]]
        body = {"checks": dict((k, v or "ok") for k, v in checks.items())}
        if not failing:
            body["status"] = "ready"
            return 200, body
        body["status"] = "not_ready"
        body["reason"] = checks[failing[0]]
        return 503, body

    def license_body(self):
        reason = self.license.check()
        decoded = self.license.decoded or {}
        seats, tenants = self.license.limits()
        try:
            current_seats, current_tenants = self.db.counts()
        except psycopg2.Error:
            current_seats = current_tenants = None
        return {
            "valid": reason is None, "reason": reason,
            "license_id": decoded.get("license_id"), "customer": decoded.get("customer"),
            "tier": decoded.get("tier"), "issued_at": decoded.get("issued_at"),
            "expires_at": decoded.get("expires_at"),
            "max_seats": seats, "max_tenants": tenants,
            "current_seats": current_seats, "current_tenants": current_tenants,
        }

    # -- audit verification ---------------------------------------------------------------

    def verify(self, why):
        """Verify every tenant and log what the runbook's pre-check looks for; returns the report."""
        with self.verify_lock:
            started = time.monotonic()
            results, anchors, invalid = self.db.verify_all(self.keyring)
            for anchor in sorted(anchors, key=api_store.anchor_key):
                if api_store.anchor_key(anchor) not in self.anchors_seen:
                    self.anchors_seen.add(api_store.anchor_key(anchor))
                    log("info", "audit chain anchor reset: tenant=%s resume_seq=%d retired=%d-%d rows=%d signoff=%s" % (
                        api_store.tenant_words(anchor["tenant_id"]), anchor["resume_seq"], anchor["retired_first_seq"],
                        anchor["retired_last_seq"], anchor["retired_rows"], json.dumps(anchor["signoff"])))
            for bad in invalid:
                log("error", "audit chain anchor invalid: tenant=%s resume_seq=%d: anchor_hmac does not verify" % (
                    api_store.tenant_words(bad["tenant_id"]), bad["resume_seq"]))
            report = []
            broken = []
            for tenant_id in sorted(results):
                result = results[tenant_id]
                report.append(dict(result, tenant_id=tenant_id))
                if result["verified"]:
                    continue
                broken.append(tenant_id)
                for seg in result["segments"]:
                    words = api_store.tenant_words(tenant_id)
                    if seg["kind"] == ac.KIND_HMAC:
                        log("error", "HMAC mismatch: tenant=%s seq=%d-%d rows=%d" % (
                            words, seg["first_seq"], seg["last_seq"], seg["rows"]))
                    log("error", "audit chain broken: tenant=%s seq=%d-%d kind=%s rows=%d probable_cause=%s" % (
                        words, seg["first_seq"], seg["last_seq"], seg["kind"], seg["rows"], result["probable_cause"]))
            rows = sum(r["rows"] for r in results.values())
            log("info" if not broken else "error", "audit verify (%s): %d tenants, %d rows, %d broken, %.1fs" % (
                why, len(results), rows, len(broken), time.monotonic() - started))
            return {"verified": not broken and not invalid, "tenants": report, "broken_tenants": broken,
                    "invalid_anchors": invalid}

    def verify_at_start(self):
        for _attempt in range(60):
            try:
                if not self.rotated:
                    self.rotate_at_start()
                self.verify("startup")
                return
            except psycopg2.Error as exc:
                log("warning", "audit verify (startup) postponed: %s" % str(exc).strip().splitlines()[0])
                time.sleep(1)

    def audit_write(self, tenant_id, body):
        actor, action = body.get("actor"), body.get("action")
        if not isinstance(actor, str) or not isinstance(action, str):
            raise BadRequest("actor and action must be strings")
        try:
            seq, digest, resumed, rotated = self.db.audit_write(self.keyring, tenant_id, actor, action,
                                                                api_store.payload_json(body.get("payload", {})))
        except ChainBroken as exc:
            log("error", "audit chain broken: tenant=%s seq=%d-%d kind=%s: write refused" % (
                api_store.tenant_words(exc.tenant_id), exc.seq, exc.seq, exc.kind))
            if exc.kind == ac.KIND_HMAC:
                log("error", "HMAC mismatch: tenant=%s seq=%d-%d rows=1" % (
                    api_store.tenant_words(exc.tenant_id), exc.seq, exc.seq))
            return 409, {"error": "audit chain broken", "tenant_id": exc.tenant_id, "seq": exc.seq}
        if rotated:
            self.log_rotation(rotated)
        if resumed:
            log("info", "audit chain anchor reset: tenant=%s resume_seq=%d: writes resume" % (
                api_store.tenant_words(tenant_id), resumed))
        return 201, {"tenant_id": tenant_id, "seq": seq, "row_hmac": digest}


class BadRequest(Exception):
    pass


ROUTES = []


def route(method, pattern, auth=True, orchestrator=False):
    def register(func):
        ROUTES.append((method, re.compile("^" + pattern + "$"), auth, orchestrator, func))
        return func
    return register


@route("GET", "/ready", auth=False)
def get_ready(app, _match, _query, _body):
    return app.ready()


@route("GET", "/license", auth=False)
def get_license(app, _match, _query, _body):
    return 200, app.license_body()


@route("GET", "/admin/v1/users")
def list_users(app, _match, query, _body):
    status = query.get("status", [None])[0]
    if status not in (None, "active", "deactivated"):
        raise BadRequest("status must be active or deactivated")
    return 200, {"users": app.db.list_users(status)}


@route("POST", r"/admin/v1/users/(\d+)/deactivate")
def deactivate(app, match, _query, _body):
    user, changed = app.db.deactivate(int(match.group(1)))
    return 200, {"user": user, "changed": changed}


@route("GET", "/admin/v1/tenants")
def list_tenants(app, _match, _query, _body):
    tier = app.license.tier()
    if tier != "enterprise":
        return 403, {"error": "tier_required", "required": "enterprise", "tier": tier}
    return 200, {"tenants": app.db.list_tenants()}


@route("POST", "/admin/v1/audit/verify")
def verify(app, _match, _query, _body):
    return 200, app.verify("on demand")


@route("POST", "/api/v1/users", orchestrator=True)
def create_user(app, _match, _query, body):
    username, tenant_id = body.get("username"), body.get("tenant_id")
    if not isinstance(username, str) or not username or not isinstance(tenant_id, str) or not tenant_id:
        raise BadRequest("username and tenant_id must be non-empty strings")
    return 201, {"user": app.db.create_user(username, tenant_id, app.license.limits()[0])}


@route("POST", r"/api/v1/users/(\d+)/activity", orchestrator=True)
def activity(app, match, _query, _body):
    return 200, {"user": app.db.activity(int(match.group(1)))}


@route("POST", "/api/v1/tenants", orchestrator=True)
def create_tenant(app, _match, _query, body):
    tenant_id, name = body.get("id"), body.get("name", body.get("id"))
    if not isinstance(tenant_id, str) or not tenant_id or not isinstance(name, str):
        raise BadRequest("id and name must be strings")
    return 201, {"tenant": app.db.create_tenant(tenant_id, name, app.license.limits()[1])}


@route("POST", r"/api/v1/tenants/([^/]+)/audit", orchestrator=True)
def audit(app, match, _query, body):
    return app.audit_write(urllib.parse.unquote(match.group(1)), body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alexandria-api/lab"
    app = None

    def log_message(self, *_args):  # access lines are written by _dispatch instead
        return

    def _send(self, status, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the body is not JSON")
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _authorized(self):
        given = self.headers.get("Authorization", "").encode("utf-8")
        token = self.app.admin_token
        return bool(token) and hmac.compare_digest(given, ("Bearer " + token).encode("utf-8"))

    def _dispatch(self, method):
        started = time.monotonic()
        url = urllib.parse.urlsplit(self.path)
        status, body = 404, {"error": "not_found"}
        try:
            raw_body = self._body()
            allowed = False
            for verb, pattern, auth, needs_orchestrator, func in ROUTES:
                match = pattern.match(url.path)
                if not match:
                    continue
                allowed = True
                if verb != method:
                    status, body = 405, {"error": "method_not_allowed"}
                    continue
                if auth and not self._authorized():
                    status, body = 401, {"error": "unauthorized"}
                    break
                reason = self.app.check_orchestrator() if needs_orchestrator else None
                if reason:
                    status, body = 503, {"error": "orchestrator_unavailable", "detail": reason}
                    break
                status, body = func(self.app, match, urllib.parse.parse_qs(url.query), raw_body)
                break
            if not allowed:
                status, body = 404, {"error": "not_found"}
        except BadRequest as exc:
            status, body = 400, {"error": "bad_request", "detail": str(exc)}
        except NotFound:
            status, body = 404, {"error": "not_found"}
        except Exists:
            status, body = 409, {"error": "exists"}
        except QuotaExceeded as exc:
            status, body = 402, exc.body
            log("warning", "quota exceeded: %s %d/%d" % (exc.body["quota"], exc.body["current"], exc.body["max"]))
        except psycopg2.DataError as exc:
            status, body = 400, {"error": "bad_request", "detail": str(exc).strip().splitlines()[0]}
        except psycopg2.Error as exc:
            status, body = 503, {"error": "database_unavailable"}
            log("error", "database error: %s" % (str(exc).strip().splitlines() or [""])[0])
        except Exception:  # one line in the log, a 500 to the caller, the server keeps serving
            status, body = 500, {"error": "internal"}
            log("error", "internal error: %s" % traceback.format_exc().strip().splitlines()[-1])
        self._send(status, body)
        if not (url.path == "/ready" and status == 200):
            log("info", "http: %s %s %d %.1fms" % (method, url.path, status, (time.monotonic() - started) * 1000))

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")


class TLSServer(ThreadingHTTPServer):
    """HTTPS; the handshake happens in the connection's own thread (on its first read), not in accept()."""

    context = None

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        # A client that refuses the certificate (or speaks plain HTTP) is one log line, not a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError)):
            log("warning", "TLS connection from %s:%s failed: %s" % (client_address[0], client_address[1], exc))
            return
        super().handle_error(request, client_address)


def make_server(host, port, env):
    """The HTTP server, or the HTTPS one when ALEX_TLS_CERT_FILE and ALEX_TLS_KEY_FILE are set."""
    cert, key = env.get("ALEX_TLS_CERT_FILE"), env.get("ALEX_TLS_KEY_FILE")
    if not (cert and key):
        return ThreadingHTTPServer((host, port), Handler), "http"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = TLSServer((host, port), Handler)
    server.context = context
    return server, "https"


def main():
    env = os.environ
    app = App(env)
    host, _sep, port = env.get("ALEX_HTTP_ADDR", "127.0.0.1:8080").rpartition(":")
    log("info", "alexandria api starting pid=%d addr=%s:%s" % (os.getpid(), host, port))
    reason = app.license.check()
    if reason:
        log("error", License.words(reason))
    else:
        claims = app.license.claims
        log("info", "license ok: id=%s tier=%s seats=%d tenants=%d expires=%s" % (
            claims["license_id"], claims["tier"], claims["seat_count"], claims["tenant_count"], claims["expires_at"]))
    Handler.app = app
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server, scheme = make_server(host, int(port), env)

    def on_term(_signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    threading.Thread(target=app.verify_at_start, daemon=True).start()
    log("info", "listening on %s://%s:%s" % (scheme, host, port))
    server.serve_forever(poll_interval=0.2)
    log("info", "alexandria api stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
