"""The facade's object store: one resourceVersion counter, like etcd, and a change history for watches."""
import collections
import copy
import threading


class Gone(Exception):
    """The requested resourceVersion is older than the history kept (HTTP 410 in a watch)."""


class Store:
    def __init__(self, history=5000):
        self.cond = threading.Condition(threading.RLock())
        self.rv = 1000
        self.objects = {}
        self.history = collections.deque(maxlen=history)

    @staticmethod
    def _key(resource, obj):
        meta = obj["metadata"]
        return (resource, meta.get("namespace"), meta["name"])

    def get(self, resource, namespace, name):
        with self.cond:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource, namespace=None):
        with self.cond:
            found = [copy.deepcopy(obj) for (res, ns, _n), obj in self.objects.items()
                     if res == resource and (namespace is None or ns == namespace)]
        return sorted(found, key=lambda o: o["metadata"]["name"])

    def current_rv(self):
        with self.cond:
            return str(self.rv)

    def _record(self, kind, resource, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, kind, resource, copy.deepcopy(obj)))
        self.cond.notify_all()

    def put(self, resource, obj):
        """Create or replace; a no-op (same RV) when nothing but the resourceVersion would change."""
        obj = copy.deepcopy(obj)
        key = self._key(resource, obj)
        with self.cond:
            old = self.objects.get(key)
            if old is not None:
                obj["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
                if obj == old:
                    return copy.deepcopy(old)
            self._record("MODIFIED" if old is not None else "ADDED", resource, obj)
            self.objects[key] = obj
            return copy.deepcopy(obj)

    def delete(self, resource, namespace, name):
        with self.cond:
            obj = self.objects.pop((resource, namespace, name), None)
            if obj is None:
                return None
            self._record("DELETED", resource, obj)
            return copy.deepcopy(obj)

    def changes_since(self, rv, resource):
        """History entries for resource after rv; Gone when rv is older than what is kept."""
        with self.cond:
            if self.history and rv < self.history[0][0] - 1:
                raise Gone()
            return [(kind, copy.deepcopy(obj), entry_rv) for entry_rv, kind, res, obj in self.history
                    if entry_rv > rv and res == resource]

    def wait_past(self, rv, timeout):
        with self.cond:
            self.cond.wait_for(lambda: self.rv > rv, timeout=timeout)
            return self.rv
