"""A throwaway CA and server certificates for the facade (kubectl sends tokens only over TLS) and, with
`alexlab up --api-tls`, for the API.

Kept in DIR/pki/ across `down`/`up`; the kubeconfig carries the CA as certificate-authority-data.
"""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FILES = ("ca.crt", "server.crt", "server.key", "api.crt", "api.key")


def _write(path, data):
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _validity():
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    return now, now + datetime.timedelta(days=3650)


def new_ca(common_name="alexlab-ca"):
    """(private key, certificate) of a self-signed CA."""
    now, later = _validity()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    return ca_key, ca


def issue(ca_key, ca, common_name):
    """(private key, certificate) of a server certificate for 127.0.0.1 and localhost, signed by the CA."""
    now, later = _validity()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def write_pem(path, obj):
    """A certificate or a private key as PEM, mode 0600, replaced atomically."""
    data = obj.public_bytes(serialization.Encoding.PEM) if isinstance(obj, x509.Certificate) else _pem_key(obj)
    _write(path, data)


def _paths(layout):
    return dict((name, os.path.join(layout.path("pki"), name)) for name in FILES)


def ensure(layout):
    """Return (ca.crt, server.crt, server.key) paths, creating the CA and both servers' pairs on first use."""
    paths = _paths(layout)
    if not all(os.path.exists(p) for p in paths.values()):
        os.makedirs(layout.path("pki"), exist_ok=True)
        ca_key, ca = new_ca()
        facade_key, facade = issue(ca_key, ca, "alexlab-kube-facade")
        api_key, api = issue(ca_key, ca, "alexlab-api")
        for name, obj in (("ca.crt", ca), ("server.crt", facade), ("server.key", facade_key), ("api.crt", api),
                          ("api.key", api_key)):
            write_pem(paths[name], obj)
    return paths["ca.crt"], paths["server.crt"], paths["server.key"]


def api_pair(layout):
    """(api.crt, api.key) paths: the API's certificate with --api-tls, signed by the same CA."""
    ensure(layout)
    paths = _paths(layout)
    return paths["api.crt"], paths["api.key"]
