"""Reading a container's log file the way the kubelet answers pods/log: sinceSeconds / sinceTime, tailLines,
limitBytes. A bad parameter raises ValueError with the API server's message (the facade answers 400)."""
import datetime
import os
import re


def since_of(query):
    """The oldest time a log read asks for (sinceSeconds or sinceTime), as a UTC datetime, or None."""
    seconds, stamp = query.get("sinceSeconds"), query.get("sinceTime")
    if seconds and stamp:
        raise ValueError("at most one of sinceTime or sinceSeconds may be specified")
    if seconds:
        try:
            value = int(seconds)
        except ValueError:
            raise ValueError("sinceSeconds: Invalid value: %r" % seconds)
        if value < 1:
            raise ValueError("sinceSeconds: Invalid value: %d: must be greater than 0" % value)
        return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=value)
    if stamp:
        try:
            return datetime.datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise ValueError("sinceTime: Invalid value: %r: must be RFC 3339" % stamp)
    return None


_STAMP = re.compile(rb"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?Z ")


def lines_since(data, since):
    """Lines logged at or after since. The kubelet stamps every line; here the lab's own stamps stand in
    (a line without one belongs to the stamped line before it; lines before any stamp are dropped)."""
    keep = []
    current = False
    for line in data.splitlines(keepends=True):
        match = _STAMP.match(line)
        if match:
            when = datetime.datetime.strptime(match.group(1).decode("ascii"), "%Y-%m-%dT%H:%M:%S").replace(
                tzinfo=datetime.timezone.utc)
            current = when >= since.replace(microsecond=0)
        if current:
            keep.append(line)
    return b"".join(keep)


def tail(path, tail_lines, limit_bytes, since=None):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8 * 1024 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return b""
    if since is not None:
        data = lines_since(data, since)
    if tail_lines not in (None, ""):
        count = int(tail_lines)
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-count:]) if count > 0 else b""
    if limit_bytes not in (None, ""):
        data = data[:int(limit_bytes)]
    return data
