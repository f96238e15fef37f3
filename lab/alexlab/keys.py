"""The lab's secrets (kept in DIR/keys.json, mode 0600) and license minting."""
import datetime
import secrets
import uuid

from cryptography.hazmat.primitives import serialization

from alexlab.common import read_json, write_json
from alexlab.shared import license_codec as lc


def load_or_create(layout):
    keys = read_json(layout.keys_json)
    if keys:
        if "checkpoint_key" not in keys:  # a lab directory made before checkpoints existed
            keys["checkpoint_key"] = secrets.token_hex(32)
            write_json(layout.keys_json, keys)
        return keys
    private = lc.generate_private_key()
    keys = {
        "issuer_private_key": private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()).decode("ascii"),
        "hmac_key": secrets.token_hex(32),
        "admin_token": secrets.token_urlsafe(32),
        "k8s_token": secrets.token_urlsafe(32),
        # Signs the audit-chain checkpoints; kept by the automation, never given to the product.
        "checkpoint_key": secrets.token_hex(32),
    }
    write_json(layout.keys_json, keys)
    return keys


def issuer_private_key(keys):
    return serialization.load_pem_private_key(keys["issuer_private_key"].encode("ascii"), password=None)


def issuer_public_pem(keys):
    return lc.public_key_pem(issuer_private_key(keys).public_key())


def mint(keys, seats, tenants, tier, expires_in_days=365.0, key="issuer", customer="Alexandria Lab", license_id=None):
    """A blob signed by the lab's issuer key, or by a fresh other key (`key='other'`: wrong issuer).

    A non-positive expires_in_days gives an already expired license (issued a year before it expired).
    """
    private = issuer_private_key(keys) if key == "issuer" else lc.generate_private_key()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    expires = now + datetime.timedelta(days=expires_in_days)
    expires = expires.replace(microsecond=0)
    issued = now if expires > now else expires - datetime.timedelta(days=365)
    claims = {
        "license_id": license_id or "LAB-%s" % uuid.uuid4().hex[:12].upper(),
        "customer": customer,
        "tier": tier,
        "seat_count": int(seats),
        "tenant_count": int(tenants),
        "issued_at": lc.format_time(issued),
        "expires_at": lc.format_time(expires),
    }
    return lc.encode_license(claims, private)
