# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes memory quantities (256Mi, 1.5Gi, 512M): parsed, printed, and the raised limit the OOM fix proposes.

No Ansible and no Kubernetes imports (tests/unit/test_triage_classify.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)\s*(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E|m)?\s*$")
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"k": 10 ** 3, "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}


def parse_quantity(text):
    """Bytes (int) of a Kubernetes quantity such as 256Mi, 1.5Gi, 512M, 1e9; ValueError when it is not one."""
    if text is None:
        raise ValueError("no quantity")
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError("not a Kubernetes quantity: %r" % (text,))
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise ValueError("not a Kubernetes quantity: %r" % (text,))
    suffix = match.group(2)
    if suffix == "m":
        scale = Decimal(1) / 1000
    else:
        scale = _BINARY.get(suffix) or _DECIMAL.get(suffix) or 1
    value = number * scale
    if value <= 0:
        raise ValueError("memory quantity must be positive: %r" % (text,))
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def format_memory(num_bytes):
    """The shortest exact binary form: 536870912 -> 512Mi; otherwise plain bytes."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if num_bytes % unit == 0:
            return "%d%s" % (num_bytes // unit, suffix)
    return str(num_bytes)


def propose_memory_limit(current, factor=2.0, minimum=None):
    """The raised limit for an OOMKilled container: `current` times `factor`, rounded up to a whole Mi.

    Returns None when there is no current limit to raise (the operator must then name the value).
    """
    if not current:
        return None
    current_bytes = parse_quantity(current)
    if factor <= 1:
        raise ValueError("factor must be greater than 1")
    mib = 2 ** 20
    proposed = int(Decimal(current_bytes) * Decimal(str(factor)))
    proposed = -(-proposed // mib) * mib
    if minimum:
        proposed = max(proposed, parse_quantity(minimum))
    return format_memory(proposed)
