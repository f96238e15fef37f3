# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument-spec types that refuse values no option can use (docs/contract.md section 7, "Option values").

Each type is used as ``type=`` in an argument spec. Ansible calls it with the raw value and turns a
TypeError/ValueError into one fail_json naming the option ("argument 'timeout' is of type float and we were
unable to convert to a number of seconds: ..."), before the module runs.

A type is a ``str`` subclass equal to the documented type name ("float", "int", "str", "path"): ansible-test's
validate-modules compares the spec's type with the DOCUMENTATION's, and a plain function would never match. It is
also callable, so AnsibleModule uses it as a custom checker: the standard conversion first, then the bounds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
from urllib.parse import urlsplit

from ansible.module_utils.common.validation import (
    check_type_dict,
    check_type_float,
    check_type_int,
    check_type_path,
    check_type_str,
)

DAY = 86400
MAX_TEXT = 65536
MAX_PATH = 4096
MAX_TOKEN = 16384
# The default upper bound of a count: what the kubernetes and requests libraries pass on as a C int.
MAX_COUNT = 2 ** 31 - 1
# seq is a PostgreSQL bigint.
MAX_SEQ = 2 ** 63 - 1


class SpecType(str):
    """A documented type name that is also the checker AnsibleModule calls (see the module docstring)."""

    def __new__(cls, doc_type, checker, description):
        obj = str.__new__(cls, doc_type)
        obj.checker = checker
        # AnsibleModule names the type by __name__ in its message: "... unable to convert to <__name__>: <why>".
        obj.__name__ = description
        return obj

    def __call__(self, value, **kwargs):
        return self.checker(value)

    # Immutable like the str it is: copies (AnsibleModule deep-copies sub-specs) are the object itself.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def _no_bool(value, what):
    if isinstance(value, bool):
        raise TypeError("%r is a boolean; give %s" % (value, what))


def _finite_float(value, what):
    _no_bool(value, what)
    try:
        number = check_type_float(value)
    except (TypeError, ValueError, ArithmeticError):
        raise ValueError("%s is not a number; give %s" % (_short(repr(value)), what))
    if math.isnan(number) or math.isinf(number):
        raise ValueError("%r is not a finite number; give %s" % (number, what))
    return number


def seconds(maximum=DAY, zero=False):
    """A finite number of seconds in (0, maximum], or [0, maximum] when zero=True (delays)."""
    what = "a number of seconds %s and at most %g" % ("at least 0" if zero else "greater than 0", maximum)

    def check(value):
        number = _finite_float(value, what)
        if (number < 0 if zero else number <= 0) or number > maximum:
            raise ValueError("%g is out of range; give %s" % (number, what))
        return number
    return SpecType("float", check, "a number of seconds")


def fraction():
    """A finite number in (0, 1]."""
    what = "a number greater than 0 and at most 1"

    def check(value):
        number = _finite_float(value, what)
        if not 0.0 < number <= 1.0:
            raise ValueError("%g is out of range; give %s" % (number, what))
        return number
    return SpecType("float", check, "a fraction")


def count(minimum=0, maximum=MAX_COUNT):
    """A whole number in [minimum, maximum]."""
    what = "a whole number from %d to %d" % (minimum, maximum)

    def check(value):
        _no_bool(value, what)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("%r is not a whole number; give %s" % (value, what))
        try:
            number = check_type_int(int(value) if isinstance(value, float) else value)
        except (TypeError, ValueError, ArithmeticError):  # Ansible's own int check overflows on "inf"
            raise ValueError("%s is not a whole number; give %s" % (_short(repr(value)), what))
        if not minimum <= number <= maximum:
            raise ValueError("%s is out of range; give %s" % (_short(number), what))
        return number
    return SpecType("int", check, "a whole number")


def _short(value, limit=40):
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "... (%d characters)" % len(text)


def _plain_text(value, what, max_len):
    """A str with no NUL, no lone surrogate (not encodable as UTF-8) and at most max_len characters."""
    if isinstance(value, (dict, list, tuple, set)):
        raise TypeError("a %s is not %s" % (type(value).__name__, what))
    text = check_type_str(value, allow_conversion=True)
    if "\x00" in text:
        raise ValueError("it holds a NUL character; give %s" % what)
    try:
        text.encode("utf-8")
    except UnicodeError:
        raise ValueError("it is not valid Unicode (a lone surrogate); give %s" % what)
    if len(text) > max_len:
        raise ValueError("it is %d characters long; give %s of at most %d" % (len(text), what, max_len))
    return text


def text(max_len=MAX_TEXT, what="text"):
    """Free text: no NUL, valid Unicode, bounded length; empty allowed."""
    return SpecType("str", lambda value: _plain_text(value, what, max_len), what)


_TOKEN = re.compile(r"[\x21-\x7e]+")


def token(what="a token"):
    """A credential sent in an HTTP header: visible ASCII only (RFC 7230 field value, RFC 6750 token)."""
    def check(value):
        value = _plain_text(value, what, MAX_TOKEN)
        if not _TOKEN.fullmatch(value):
            raise ValueError("%s may hold only visible ASCII characters (no spaces, no line breaks, no accents): it "
                             "is sent in an HTTP header; check for a stray newline or a pasted wrong value" % what)
        return value
    return SpecType("str", check, what)


def path(what="a path"):
    """A file system path: expanded like type=path; no NUL, valid Unicode, non-empty, bounded."""
    def check(value):
        value = _plain_text(value, what, MAX_PATH)
        if not value:
            raise ValueError("it is empty; give %s" % what)
        return check_type_path(value)
    return SpecType("path", check, what)


def url(schemes=("http", "https"), what="an http:// or https:// URL", empty_ok=False):
    """A URL with one of the schemes and a host. The value is never echoed in a message (it may hold a password).

    empty_ok: "" means unset (an AWX field or an environment variable left empty)."""
    def check(value):
        value = _plain_text(value, what, 2048)
        if empty_ok and value == "":
            return value
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7f for ch in value):
            raise ValueError("it holds white space or a control character; give %s" % what)
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError("it is not a URL (%s); give %s" % (exc, what))
        if parts.scheme.lower() not in schemes or not parts.hostname:
            raise ValueError("it has no %s scheme or no host; give %s such as %s://localhost:8080"
                             % ("/".join(schemes), what, schemes[0]))
        if port == 0:
            raise ValueError("port 0 cannot be connected to; give %s" % what)
        return value
    return SpecType("str", check, what)


def dsn(what="a libpq connection string (postgresql://... or key=value pairs)"):
    """A libpq DSN; its text never appears in a message (it may hold a password)."""
    def check(value):
        value = _plain_text(value, what, 8192)
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
        if scheme and scheme.group(1).lower() not in ("postgresql", "postgres"):
            raise ValueError("its scheme is %s://, not postgresql://; give %s" % (_short(scheme.group(1), 20), what))
        return value
    return SpecType("str", check, what)


# Matched with fullmatch: "$" would also match before a trailing newline.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def k8s_name(label=False, limit=None):
    """A Kubernetes object name: an RFC 1123 label (namespace, container, release) or DNS subdomain (others)."""
    pattern, limit = (_DNS_LABEL, limit or 63) if label else (_DNS_SUBDOMAIN, limit or 253)
    what = ("a Kubernetes name (lowercase letters, digits and '-', starting and ending with a letter or digit, at "
            "most %d)" % limit) if label else \
        "a Kubernetes name (lowercase letters, digits, '-' and '.', at most %d)" % limit

    def check(value):
        value = _plain_text(value, what, 1024)
        if len(value) > limit or not pattern.fullmatch(value):
            raise ValueError("%r is not %s" % (_short(value), what))
        return value
    return SpecType("str", check, what)


def k8s_key(what="a Secret key (letters, digits, '-', '_' and '.', at most 253)"):
    """A key of a Secret's data."""
    def check(value):
        value = _plain_text(value, what, 1024)
        if len(value) > 253 or not _CONFIG_KEY.fullmatch(value) or value in (".", ".."):
            raise ValueError("%r is not %s" % (_short(value), what))
        return value
    return SpecType("str", check, what)


def pg_identifier(what="a PostgreSQL identifier (1 to 63 bytes, no NUL)"):
    """A table or schema name: PostgreSQL silently truncates names past 63 bytes, so two could collide."""
    def check(value):
        value = _plain_text(value, what, 1024)
        if not value or len(value.encode("utf-8")) > 63:
            raise ValueError("%r is not %s" % (_short(value), what))
        return value
    return SpecType("str", check, what)


def port():
    return count(1, 65535)


def choice(values, what="one of the choices"):
    """One of values (a text)."""
    what = "%s: %s" % (what, ", ".join(values))

    def check(value):
        value = _plain_text(value, what, 256)
        if value not in values:
            raise ValueError("%r is not %s" % (_short(value), what))
        return value
    return SpecType("str", check, what)


def _unencodable(value, depth=0):
    """The first text in a structure that is not valid Unicode (a lone surrogate), or None."""
    if depth > 100:
        raise ValueError("it is nested more than 100 levels deep")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeError:
            return value
        return None
    if isinstance(value, dict):
        items = list(value.keys()) + list(value.values())
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return None
    for item in items:
        found = _unencodable(item, depth + 1)
        if found is not None:
            return found
    return None


def data(doc_type="raw", what="data"):
    """Structured data (raw, or a dict): any shape, but every text valid Unicode and at most 100 levels deep.

    A lone surrogate anywhere would otherwise crash AnsibleModule's own logging of its arguments.
    """
    def check(value):
        if doc_type == "dict":
            if isinstance(value, (list, tuple, bool, int, float)):
                raise TypeError("a %s is not a mapping; give a mapping (a dict)" % type(value).__name__)
            value = check_type_dict(value)
        if _unencodable(value) is not None:
            raise ValueError("it holds text that is not valid Unicode (a lone surrogate); give %s" % what)
        return value
    return SpecType(doc_type, check, what)


def record(fields, what):
    """A mapping with exactly the given keys, each checked by its type (list elements with suboptions).

    Used instead of argument-spec suboptions: AnsibleModule gathers no_log values before it checks types, and a
    malformed element of an option with suboptions stops that gathering, so the failure would echo every secret
    option in its invocation.
    """
    def check(value):
        if not isinstance(value, dict):
            raise TypeError("a %s is not a mapping; give %s" % (type(value).__name__, what))
        unknown = sorted(repr(_short(key)) for key in value if key not in fields)
        if unknown:
            raise ValueError("unknown key %s; give %s" % (", ".join(unknown), what))
        checked = {}
        for key, checker in fields.items():
            if value.get(key) is None:
                raise ValueError("%s is missing; give %s" % (key, what))
            try:
                checked[key] = checker(value[key])
            except (TypeError, ValueError) as exc:
                raise ValueError("%s: %s" % (key, exc))
        return checked
    return SpecType("dict", check, what)
