# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate checks that failed, in words: shared by the HTTP API and Kubernetes clients (pure functions)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# OpenSSL's reason as Python's ssl module words it, inside whatever urllib3 and requests wrapped around it.
_VERIFY_FAILED = re.compile(r"certificate verify failed: (.*?)(?: \(_ssl\.c:\d+\)|\"|'\)|\]|$)", re.MULTILINE)


def certificate_failure(text):
    """The reason a certificate check failed ("unable to get local issuer certificate", "Hostname mismatch, ..."),
    or None when the text is not about one."""
    match = _VERIFY_FAILED.search(text or "")
    if not match:
        return None
    return match.group(1).strip().rstrip(" ,.") or "unknown reason"


def untrusted(whose, reason, option):
    """One sentence: whose certificate failed, why, and the option that fixes it."""
    if "mismatch" in reason:
        fix = "connect by a host name or address the certificate names"
    else:
        fix = "pass %s with the CA certificate that signed it" % option
    return "%s certificate is not trusted (certificate verify failed: %s): %s" % (whose, reason, fix)
