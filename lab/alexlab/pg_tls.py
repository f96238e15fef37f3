"""PostgreSQL over TLS for the lab: a front that speaks the server's side of the TLS negotiation and passes the
protocol through to the embedded server's Unix socket.

The pgserver wheel's binaries are built without OpenSSL, so its server cannot answer an SSLRequest itself. To a
client the front is indistinguishable from a server started with ssl=on (protocol 3, section "SSL Session
Encryption"): it answers the 8-byte SSLRequest with 'S', completes the TLS handshake with its certificate, then
relays every byte both ways. A GSSENCRequest is answered 'N', as a server without GSSAPI does. Plain-text clients
get 'N' to nothing: a startup packet without SSLRequest is refused, as `hostssl` lines in pg_hba.conf refuse it.
"""
import os
import selectors
import socket
import ssl
import struct
import threading

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _read_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("client closed during negotiation")
        data += chunk
    return data


def _request_code(sock):
    """The code of an 8-byte negotiation packet, or None for anything else (a plain startup packet)."""
    header = _read_exact(sock, 8)
    length, code = struct.unpack("!ii", header)
    return code if length == 8 else None


def _relay(left, right):
    selector = selectors.DefaultSelector()
    selector.register(left, selectors.EVENT_READ, right)
    selector.register(right, selectors.EVENT_READ, left)
    try:
        while True:
            for key, _events in selector.select():
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
                # TLS may hold decrypted bytes the selector cannot see: drain them now.
                while isinstance(key.fileobj, ssl.SSLSocket) and key.fileobj.pending():
                    key.data.sendall(key.fileobj.recv(key.fileobj.pending()))
    finally:
        selector.close()


class PgTlsFront:
    """Listen on host:port with TLS (certificate and key files); relay to the server: a Unix socket path, or a
    (host, port) pair reached in plain text (ALEX_TEST_DSN's server)."""

    def __init__(self, backend, certfile, keyfile, host="127.0.0.1", port=0):
        self.backend = backend
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(certfile, keyfile)
        self.listener = socket.create_server((host, port))
        self.port = self.listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="pg-tls-front", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        try:
            # wake accept(): connect to ourselves
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        except OSError:
            pass
        self.listener.close()
        self._thread.join(timeout=5)

    def _accept(self):
        while not self._stopping.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            if self._stopping.is_set():
                client.close()
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        backend = None
        try:
            client.settimeout(30)
            code = _request_code(client)
            if code == GSSENC_REQUEST:
                client.sendall(b"N")
                code = _request_code(client)
            if code != SSL_REQUEST:
                return  # no TLS: refused, as a hostssl-only server refuses it
            client.sendall(b"S")
            client = self.context.wrap_socket(client, server_side=True)
            client.settimeout(None)
            if isinstance(self.backend, str):
                backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                backend.connect(self.backend)
            else:
                backend = socket.create_connection(self.backend, timeout=30)
                backend.settimeout(None)
            _relay(client, backend)
        except (OSError, ConnectionError, ssl.SSLError, struct.error):
            pass  # a client that gives up or refuses our certificate: its side reports why
        finally:
            for sock in (client, backend):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass


def backend_of(dsn_params):
    """Where a server given by libpq parameters listens: its Unix socket file, or (host, port)."""
    host = dsn_params.get("host") or "/tmp"
    port = int(dsn_params.get("port") or 5432)
    if host.startswith("/"):
        return os.path.join(host, ".s.PGSQL.%d" % port)
    return (host, port)
