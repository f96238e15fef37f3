# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where audit-chain checkpoints live, outside the product's database: no Ansible imports.

Two stores, used alone or together (each is then the other's witness):

- DirStore: a directory on the controller, one file per deployment and tenant, mode 0600, replaced
  atomically (temp file, fsync, rename, fsync of the directory) under an flock, so a kill -9 leaves the
  old checkpoint or the new one.
- SecretStore: one Kubernetes Secret in a namespace the product does not control, one data key per
  deployment and tenant, replaced with a resourceVersion precondition (a concurrent writer is re-read).

Both hand back raw entries; audit_checkpoint checks them. A checkpoint never moves backwards: a write
that would lower a tenant's seq, or keep it with another row_hmac, is refused unless valid anchors
account for the retired seqs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import errno
import json
import os

from ansible_collections.alexandria.ee.plugins.module_utils import audit_checkpoint as cpk
from ansible_collections.alexandria.ee.plugins.module_utils import files

try:
    import fcntl
except ImportError:  # not on POSIX: the rename is still atomic, concurrent runs are not serialized
    fcntl = None

# A checkpoint is a few hundred bytes; anything much larger is not one of ours.
MAX_ENTRY_BYTES = 64 * 1024


class StoreError(cpk.CheckpointError):
    """A store that cannot be read or written, in words (never holds a key)."""


def encode(doc):
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def decode(raw):
    """(doc, None) or (None, words)."""
    if len(raw) > MAX_ENTRY_BYTES:
        return None, "it is %d bytes, not a checkpoint" % len(raw)
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError):
        return None, "it is not JSON"


class Entry:
    """One stored checkpoint as found: name (file or data key), doc or the words why it cannot be read."""

    def __init__(self, store, name, doc=None, error=None):
        self.store = store
        self.name = name
        self.doc = doc
        self.error = error

    @property
    def where(self):
        return "%s %s" % (self.store.describe(), self.name)


class DirStore:
    kind = "dir"

    def __init__(self, root, identity):
        self.root = root
        self.dir = os.path.join(root, cpk.deployment_dir_name(identity))

    def describe(self):
        return "checkpoint directory %s" % self.dir

    def name_for(self, tenant_id):
        return cpk.file_name(tenant_id)

    def load(self):
        """{name: Entry}; an empty dict when the deployment has no checkpoint yet; StoreError when unusable."""
        if not os.path.isdir(self.root):
            raise StoreError("the checkpoint directory %s does not exist or is not a directory: create it (mode "
                             "0700) on the controller, or fix checkpoint_dir" % self.root)
        if not os.path.isdir(self.dir):
            if os.path.lexists(self.dir):
                raise StoreError("%s is not a directory" % self.dir)
            return {}
        entries = {}
        try:
            names = sorted(os.listdir(self.dir))
        except OSError as exc:
            raise StoreError("the checkpoint directory %s cannot be read (%s)" % (self.dir, os.strerror(exc.errno)))
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = os.path.join(self.dir, name)
            try:
                with open(path, "rb") as handle:
                    raw = handle.read(MAX_ENTRY_BYTES + 1)
            except (IOError, OSError) as exc:
                entries[name] = Entry(self, name, error="it cannot be read (%s)" % os.strerror(exc.errno))
                continue
            doc, error = decode(raw)
            entries[name] = Entry(self, name, doc, error)
        return entries

    def _ensure_dir(self):
        if not os.path.isdir(self.root):
            raise StoreError("the checkpoint directory %s does not exist: create it (mode 0700) or fix "
                             "checkpoint_dir" % self.root)
        try:
            os.mkdir(self.dir, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise StoreError("cannot create %s (%s)" % (self.dir, os.strerror(exc.errno)))

    def write(self, docs, accept):
        """Write {name: doc}; accept(name, current_entry_or_None) says whether to replace. Returns written names."""
        self._ensure_dir()
        written = []
        lock_path = os.path.join(self.dir, ".lock")
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError("cannot open %s (%s)" % (lock_path, os.strerror(exc.errno)))
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.load()
            for name, doc in sorted(docs.items()):
                if not accept(name, current.get(name)):
                    continue
                try:
                    files.write_bytes_atomic(os.path.join(self.dir, name), encode(doc), mode=0o600)
                except (IOError, OSError) as exc:
                    raise StoreError("cannot write %s (%s)" % (os.path.join(self.dir, name),
                                                               os.strerror(exc.errno or errno.EIO)))
                written.append(name)
            if written:
                _fsync_dir(self.dir)
        finally:
            os.close(lock)
        return written


def _fsync_dir(path):
    """Make the renames durable (the directory entry, not only the file's data)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class SecretStore:
    kind = "secret"
    LABELS = {"app.kubernetes.io/managed-by": "alexandria.ee", "alexandria.ee/role": "audit-checkpoints"}
    RETRIES = 5

    def __init__(self, api_client, namespace, name, identity, describe_api_error, api_exception,
                 transport_errors):
        import kubernetes  # the caller built api_client, so the library is there
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.body_class = kubernetes.client.V1Secret
        self.meta_class = kubernetes.client.V1ObjectMeta
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.prefix = cpk.deployment_dir_name(identity) + "."
        self._describe = describe_api_error
        self._api_exception = api_exception
        self._transport = transport_errors
        self.exists = None

    def describe(self):
        return "checkpoint Secret %s/%s" % (self.namespace, self.name)

    def name_for(self, tenant_id):
        return cpk.secret_data_key(self.identity, tenant_id)

    def _read(self):
        what = "reading the %s" % self.describe()
        try:
            return self.core.read_namespaced_secret(self.name, self.namespace)
        except self._api_exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise StoreError(self._describe(exc, what))
        except self._transport as exc:
            raise StoreError(self._describe(exc, what))

    def _entries(self, secret):
        entries = {}
        for key, value in sorted(((secret.data if secret else None) or {}).items()):
            if not key.startswith(self.prefix):
                continue
            try:
                raw = base64.b64decode(value or "")
            except (TypeError, ValueError):
                entries[key] = Entry(self, key, error="it is not base64")
                continue
            doc, error = decode(raw)
            entries[key] = Entry(self, key, doc, error)
        return entries

    def load(self):
        secret = self._read()
        self.exists = secret is not None
        return self._entries(secret)

    def write(self, docs, accept):
        for _attempt in range(self.RETRIES):
            secret = self._read()
            current = self._entries(secret)
            chosen = dict((name, doc) for name, doc in docs.items() if accept(name, current.get(name)))
            if not chosen:
                return []
            data = dict((secret.data or {}) if secret else {})
            for name, doc in chosen.items():
                data[name] = base64.b64encode(encode(doc)).decode("ascii")
            what = "writing the %s" % self.describe()
            try:
                if secret is None:
                    body = self.body_class(metadata=self.meta_class(name=self.name, namespace=self.namespace,
                                                                    labels=dict(self.LABELS)),
                                           type="Opaque", data=data)
                    self.core.create_namespaced_secret(self.namespace, body)
                else:
                    secret.data = data
                    # The precondition: a writer that raced us makes this a 409, and we read again.
                    self.core.replace_namespaced_secret(self.name, self.namespace, secret)
                return sorted(chosen)
            except self._api_exception as exc:
                if getattr(exc, "status", None) in (409,):
                    continue
                raise StoreError(self._describe(exc, what))
            except self._transport as exc:
                raise StoreError(self._describe(exc, what))
        raise StoreError("the %s kept changing under this run (%d attempts): run again"
                         % (self.describe(), self.RETRIES))
