# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Helm release's history, read from the Secrets Helm 3 keeps it in (docs/contract.md section 1).

Helm's Secret driver stores each revision in Secret ``sh.helm.release.v1.<release>.v<revision>`` (type
``helm.sh/release.v1``, labels ``owner=helm``, ``name``, ``status``, ``version``) with ``data.release`` = base64
of gzip of the release's JSON; Kubernetes base64-encodes Secret data once more. Helm itself also reads a payload
that is not gzip-compressed as plain JSON (releases stored before compression), and so does this reader.

No Ansible and no Kubernetes imports: the input is Secrets as the API returns them (plain dicts), tested on
recorded JSON. Only the fields below are read; the release's values and manifest (which may hold secrets) are
never kept.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import gzip
import io
import json
import re
import zlib

from ansible_collections.alexandria.ee.plugins.module_utils import triage

SECRET_TYPE = "helm.sh/release.v1"
SECRET_PREFIX = "sh.helm.release.v1."
GZIP_MAGIC = b"\x1f\x8b"
# A decompressed release larger than this is refused (a Secret holds at most 1 MiB, compressed).
MAX_RELEASE_BYTES = 64 * 1024 * 1024
# Statuses of a revision that was deployed at some point: a rollback target.
WAS_DEPLOYED = ("deployed", "superseded")
ROLLBACK_PREFIX = "Rollback to "


class HelmHistoryError(Exception):
    """One history Secret cannot be read; the message names the Secret and what is wrong."""


def selector_for(release):
    """The label selector of a release's history Secrets."""
    return "owner=helm,name=%s" % release


def _b64(text, name, what):
    if not isinstance(text, str) or not text:
        raise HelmHistoryError("Helm history Secret %s: %s is empty" % (name, what))
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise HelmHistoryError("Helm history Secret %s: %s is not base64" % (name, what))


def _gunzip(raw, name):
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            data = handle.read(MAX_RELEASE_BYTES + 1)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise HelmHistoryError("Helm history Secret %s: data.release is not valid gzip (%s)" % (
            name, str(exc) or exc.__class__.__name__))
    if len(data) > MAX_RELEASE_BYTES:
        raise HelmHistoryError("Helm history Secret %s: the release is larger than %d MiB decompressed" % (
            name, MAX_RELEASE_BYTES >> 20))
    return data


def decode_release(secret):
    """The release JSON (a dict) of one history Secret as the Kubernetes API returns it; HelmHistoryError
    with one line naming the Secret when it is not base64, not gzip (nor plain JSON) or not JSON."""
    name = triage.get_path(secret, "metadata", "name") or "?"
    encoded = _b64(triage.get_path(secret, "data", "release"), name, "data.release")
    try:
        payload = encoded.decode("ascii")
    except UnicodeDecodeError:
        raise HelmHistoryError("Helm history Secret %s: data.release is not Helm's base64 text (binary after the "
                               "Kubernetes base64)" % name)
    raw = _b64(payload.strip(), name, "data.release (Helm's base64 inside the Kubernetes base64)")
    if raw[:2] == GZIP_MAGIC:
        raw = _gunzip(raw, name)
    elif raw[:1] not in (b"{", b" ", b"\n", b"\t", b"\r"):
        raise HelmHistoryError("Helm history Secret %s: data.release is not gzip (nor plain JSON): starts with "
                               "bytes %s" % (name, binascii.hexlify(raw[:4]).decode("ascii")))
    try:
        release = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise HelmHistoryError("Helm history Secret %s: the release is not JSON (%s)" % (name, str(exc)[:120]))
    if not isinstance(release, dict):
        raise HelmHistoryError("Helm history Secret %s: the release is JSON but not an object" % name)
    return release


def _text(value):
    return value if isinstance(value, str) and value else None


def revision_of(secret):
    """One revision's facts (a dict) from a history Secret; HelmHistoryError when unreadable or incomplete."""
    name = triage.get_path(secret, "metadata", "name") or "?"
    release = decode_release(secret)
    missing = [field for field, value in (
        ("version", release.get("version")), ("info.status", triage.get_path(release, "info", "status")),
        ("chart.metadata.name", triage.get_path(release, "chart", "metadata", "name")),
        ("chart.metadata.version", triage.get_path(release, "chart", "metadata", "version"))) if value in (None, "")]
    if missing:
        raise HelmHistoryError("Helm history Secret %s: the release has no %s" % (name, ", ".join(missing)))
    revision = release["version"]
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise HelmHistoryError("Helm history Secret %s: version %r is not a revision number" % (name, revision))
    chart_name = str(triage.get_path(release, "chart", "metadata", "name"))
    chart_version = str(triage.get_path(release, "chart", "metadata", "version"))
    return dict(
        revision=revision,
        status=str(triage.get_path(release, "info", "status")),
        chart="%s-%s" % (chart_name, chart_version),
        chart_name=chart_name,
        chart_version=chart_version,
        app_version=_text(triage.get_path(release, "chart", "metadata", "appVersion")),
        first_deployed=_text(triage.get_path(release, "info", "first_deployed")),
        last_deployed=_text(triage.get_path(release, "info", "last_deployed")),
        description=_text(triage.get_path(release, "info", "description")),
        secret=name,
    )


def _label_revision(secret):
    match = re.search(r"\.v(\d+)$", triage.get_path(secret, "metadata", "name") or "")
    return int(match.group(1)) if match else 0


def history(secrets):
    """The release's history from its Secrets (any order).

    Returns dict(installed, revisions (ascending), current, previous, problems): installed is whether any
    history Secret exists; current is the newest revision with status deployed (else the newest); previous is
    the rollback target - the newest revision older than the newest one that was deployed (status superseded
    or deployed), or None; problems holds one line per Secret that cannot be read.
    """
    items = [s for s in (secrets or []) if isinstance(s, dict)]
    revisions, problems = [], []
    for secret in sorted(items, key=_label_revision):
        if secret.get("type") not in (None, SECRET_TYPE):
            continue
        try:
            revisions.append(revision_of(secret))
        except HelmHistoryError as exc:
            problems.append(str(exc))
    revisions.sort(key=lambda r: r["revision"])
    current = previous = None
    if revisions:
        deployed = [r for r in revisions if r["status"] == "deployed"]
        current = deployed[-1] if deployed else revisions[-1]
        newest = revisions[-1]["revision"]
        older = [r for r in revisions if r["revision"] < newest and r["status"] in WAS_DEPLOYED]
        previous = older[-1] if older else None
    return dict(installed=bool(items), revisions=revisions, current=current, previous=previous, problems=problems)


def revision_words(revision):
    if not revision:
        return "none"
    return "revision %d (%s, chart %s, app version %s, deployed %s)" % (
        revision["revision"], revision["status"], revision["chart"], revision["app_version"] or "?",
        revision["last_deployed"] or "?")


def summary(release, found):
    """One line about the history: 'not a Helm release', or the current revision and the rollback target."""
    if not found["installed"]:
        return "%s is not a Helm release: no history Secret (labels %s)" % (release, selector_for(release))
    if not found["revisions"]:
        return "%s: no readable Helm history (%d Secret(s) unreadable)" % (release, len(found["problems"]))
    target = "revision %d" % found["previous"]["revision"] if found["previous"] else "none"
    line = "%s: %s; rollback target %s" % (release, revision_words(found["current"]), target)
    if found["problems"]:
        line += "; %d history Secret(s) unreadable" % len(found["problems"])
    return line
