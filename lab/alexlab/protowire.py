"""Just enough of Kubernetes' protobuf wire format to read what kubectl sends as protobuf.

`kubectl create secret` posts a v1.Secret as `application/vnd.kubernetes.protobuf`: the magic
`k8s\\0`, then a runtime.Unknown {typeMeta{apiVersion, kind}, raw}; `kubectl auth can-i` posts an
authorization.k8s.io/v1 SelfSubjectAccessReview the same way. Only these two are decoded; any other kind
raises Unsupported (the facade answers 415).
"""
import base64

MAGIC = b"k8s\x00"


class Unsupported(ValueError):
    pass


def _varint(buf, pos):
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise Unsupported("truncated protobuf")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """(field number, value) pairs: ints for varints, bytes for length-delimited; fixed widths skipped."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise Unsupported("unsupported protobuf wire type %d" % wire)
        yield number, value


def _map_entry(buf):
    entry = dict(fields(buf))
    return entry.get(1, b"").decode("utf-8"), entry.get(2, b"")


def object_meta(buf):
    meta, names = {}, {1: "name", 2: "generateName", 3: "namespace"}
    for number, value in fields(buf):
        if number in names:
            meta[names[number]] = value.decode("utf-8")
        elif number in (11, 12):
            key, text = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = text.decode("utf-8")
        elif number == 14:
            meta.setdefault("finalizers", []).append(value.decode("utf-8"))
    return meta


def secret(buf):
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {}}
    for number, value in fields(buf):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 2:
            key, raw = _map_entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(raw).decode("ascii")
        elif number == 3:
            obj["type"] = value.decode("utf-8")
        elif number == 4:
            key, text = _map_entry(value)
            obj.setdefault("stringData", {})[key] = text.decode("utf-8")
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
                       7: "name"}
NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _strings(buf, names):
    return dict((names[number], value.decode("utf-8")) for number, value in fields(buf)
                if number in names and isinstance(value, bytes))


def self_subject_access_review(buf):
    spec = {}
    for number, value in fields(buf):
        if number == 2:  # spec
            for inner, attributes in fields(value):
                if inner == 1:
                    spec["resourceAttributes"] = _strings(attributes, RESOURCE_ATTRIBUTES)
                elif inner == 2:
                    spec["nonResourceAttributes"] = _strings(attributes, NON_RESOURCE_ATTRIBUTES)
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {}, "spec": spec}


DECODERS = {("v1", "Secret"): secret,
            ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): self_subject_access_review}


def decode(data):
    """The JSON form of a protobuf-encoded object; Unsupported for a kind not in DECODERS."""
    if not data.startswith(MAGIC):
        raise Unsupported("not a Kubernetes protobuf message")
    unknown = dict(fields(data[len(MAGIC):]))
    type_meta = dict(fields(unknown.get(1, b"")))
    api_version = type_meta.get(1, b"").decode("utf-8")
    kind = type_meta.get(2, b"").decode("utf-8")
    if (api_version, kind) not in DECODERS:
        raise Unsupported("protobuf bodies are read only for v1 Secret and SelfSubjectAccessReview, not %s %s; "
                          "send JSON" % (api_version, kind))
    return DECODERS[(api_version, kind)](unknown.get(2, b""))
