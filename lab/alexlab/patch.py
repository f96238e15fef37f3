"""The three PATCH flavours the Kubernetes API takes: JSON merge, strategic merge, JSON patch.

Strategic merge knows the merge keys of the lists the lab's objects have (containers by name,
env by name, ...); other lists are replaced, as JSON merge patch does. Directives kubectl sends
(`$setElementOrder/...`, `$retainKeys`) are accepted and ignored; `$patch: delete|replace` work.
"""
import copy

MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name",
    "conditions": "type", "envFrom": None, "tolerations": None,
}


class PatchError(ValueError):
    pass


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    if patch.get("$patch") == "replace":
        return dict((k, copy.deepcopy(v)) for k, v in patch.items() if k != "$patch")
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and MERGE_KEYS.get(key) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, MERGE_KEYS[key])
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current, patch_items, merge_key):
    merged = copy.deepcopy(current)
    for item in patch_items:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError("list items need their merge key %r" % merge_key)
        index = next((i for i, old in enumerate(merged) if old.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(dict((k, v) for k, v in item.items() if not k.startswith("$")))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("JSON pointer %r must start with /" % path)
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc, parts):
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def json_patch(target, operations):
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    try:
        for op in operations:
            kind = op.get("op")
            parts = _pointer(op.get("path", ""))
            if kind in ("move", "copy"):
                source = _pointer(op.get("from", ""))
                holder = _parent(doc, source)
                value = copy.deepcopy(holder[int(source[-1])] if isinstance(holder, list) else holder[source[-1]])
                if kind == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                doc = json_patch(doc, [{"op": "add", "path": op["path"], "value": value}])
                continue
            if not parts:
                if kind in ("add", "replace"):
                    doc = copy.deepcopy(op["value"])
                    continue
                raise PatchError("cannot %s the whole document" % kind)
            holder = _parent(doc, parts)
            last = parts[-1]
            if isinstance(holder, list):
                index = len(holder) if last == "-" else int(last)
                if kind == "add":
                    holder.insert(index, copy.deepcopy(op["value"]))
                elif kind == "remove":
                    holder.pop(index)
                elif kind == "replace":
                    holder[index] = copy.deepcopy(op["value"])
                elif kind == "test":
                    if holder[index] != op["value"]:
                        raise PatchError("test failed at %s" % op["path"])
                else:
                    raise PatchError("unknown op %r" % kind)
            else:
                if kind == "add":
                    holder[last] = copy.deepcopy(op["value"])
                elif kind == "remove":
                    del holder[last]
                elif kind == "replace":
                    if last not in holder:
                        raise PatchError("replace of missing path %s" % op["path"])
                    holder[last] = copy.deepcopy(op["value"])
                elif kind == "test":
                    if holder.get(last) != op["value"]:
                        raise PatchError("test failed at %s" % op["path"])
                else:
                    raise PatchError("unknown op %r" % kind)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        if isinstance(exc, PatchError):
            raise
        raise PatchError("cannot apply JSON patch: %s" % exc)
    return doc


def apply_patch(content_type, target, patch):
    content_type = (content_type or "").split(";")[0].strip()
    if content_type == "application/json-patch+json":
        return json_patch(target, patch)
    if content_type == "application/merge-patch+json":
        if not isinstance(patch, dict):
            raise PatchError("a merge patch must be a JSON object")
        return merge_patch(target, patch)
    if content_type == "application/strategic-merge-patch+json":
        return strategic_merge_patch(target, patch)
    raise PatchError("unsupported patch content type %r" % content_type)
