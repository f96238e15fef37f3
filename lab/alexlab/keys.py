"""The lab's secrets (kept in DIR/keys.json, mode 0600) and license minting.

Besides the issuer key the lab starts with (`issuer`), the lab plays further issuers: named Ed25519 keys
(`issuer_keys` in keys.json) made by `alexlab license issuer-key --name NAME`, which sign blobs as a new
issuer key would after a key rotation. Only their public halves ever leave keys.json.
"""
import datetime
import re
import secrets
import uuid

from cryptography.hazmat.primitives import serialization

from alexlab.common import LabError, read_json, write_json
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
        "issuer_private_key": _pem(private),
        "hmac_key": secrets.token_hex(32),
        "admin_token": secrets.token_urlsafe(32),
        "k8s_token": secrets.token_urlsafe(32),
        # Signs the audit-chain checkpoints; kept by the automation, never given to the product.
        "checkpoint_key": secrets.token_hex(32),
    }
    write_json(layout.keys_json, keys)
    return keys


ISSUER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def _pem(private):
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode("ascii")


def issuer_private_key(keys, name="issuer"):
    """The lab's issuer key (`issuer`) or a named one made by ensure_issuer_key."""
    if name == "issuer":
        pem = keys["issuer_private_key"]
    else:
        pem = (keys.get("issuer_keys") or {}).get(name)
        if pem is None:
            raise LabError("no issuer key %r in this lab: make it with alexlab license issuer-key --name %s" % (
                name, name))
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


def ensure_issuer_key(layout, name):
    """The named issuer key, made (and kept in keys.json) on first use; returns its public description."""
    if not ISSUER_NAME.match(name or "") or name == "other":
        raise LabError("issuer key name %r: use 1-40 lowercase letters, digits and '-' (not 'other')" % name)
    keys = read_json(layout.keys_json)
    if not keys:
        raise LabError("no lab keys in %s: run alexlab up --dir %s first" % (layout.dir, layout.dir))
    if name != "issuer" and name not in (keys.get("issuer_keys") or {}):
        keys.setdefault("issuer_keys", {})[name] = _pem(lc.generate_private_key())
        write_json(layout.keys_json, keys)
    public = issuer_private_key(keys, name).public_key()
    return {"name": name, "key_id": lc.key_id(public), "public_key": lc.public_key_pem(public),
            "public_key_hex": lc.public_key_raw(public).hex()}


def issuer_public_pem(keys):
    return lc.public_key_pem(issuer_private_key(keys).public_key())


def mint(keys, seats, tenants, tier, expires_in_days=365.0, key="issuer", customer="Alexandria Lab", license_id=None):
    """A blob signed by the lab's issuer key, by a named issuer key, or by a fresh other key (`key='other'`:
    wrong issuer, or unknown to an issuer set).

    A non-positive expires_in_days gives an already expired license (issued a year before it expired).
    """
    private = lc.generate_private_key() if key == "other" else issuer_private_key(keys, key)
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
