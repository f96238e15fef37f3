# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run record every scenario playbook leaves, and the plan hash: pure, no Ansible imports.

One shape for all scenarios, so an incident ticket, a workflow node or a script reads them alike:
what the run saw (observed), decided (decisions) and did (actions), with times, the plan it
would carry out and that plan's hash.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os

from ansible_collections.alexandria.ee.plugins.module_utils import files

RECORD_FORMAT = "alexandria.ee/run-record/v1"
SCENARIOS = ("api_not_serving", "quota_exceeded", "license_renewal", "audit_chain_failure", "audit_chain_rollback",
             "audit_chain_watch", "backup_restore", "key_rotation", "upgrade")


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def plan_hash(plan):
    """SHA-256 (hex) of the plan's canonical JSON: the same plan always hashes the same."""
    return hashlib.sha256(canonical_json(plan).encode("utf-8")).hexdigest()


def check_plan(plan, expected_hash=""):
    """alex_plan's gate: ({changed, plan_hash, plan, matches}, the refusal in words or None).

    matches is None when no approved hash was given (empty), else whether the plan hashes to it (any case).
    """
    digest = plan_hash(plan)
    expected = (expected_hash or "").strip().lower()
    result = dict(changed=False, plan_hash=digest, plan=plan, matches=(digest == expected) if expected else None)
    if expected and digest != expected:
        return result, ("the plan is not the approved one: approved %s, this run's plan hashes %s. Nothing was "
                        "changed. Rehearse again with --check --diff, review the new plan and approve its hash."
                        % (expected, digest))
    return result, None


def _entries(items):
    """Normalise observed/decisions/actions entries to dicts (a bare string becomes {'what': text})."""
    out = []
    for item in items or []:
        out.append(dict(item) if isinstance(item, dict) else {"what": str(item)})
    return out


def build_record(scenario, deployment, result, started_at, finished_at, check_mode, causes=None, scope=None,
                 observed=None, decisions=None, actions=None, plan=None, details=None):
    plan = plan if plan is not None else []
    return {
        "format": RECORD_FORMAT,
        "scenario": scenario,
        "deployment": dict(deployment or {}),
        "check_mode": bool(check_mode),
        "started_at": started_at,
        "finished_at": finished_at,
        "result": result,
        "causes": list(causes or []),
        "scope": scope if scope is not None else {},
        "observed": _entries(observed),
        "decisions": _entries(decisions),
        "actions": _entries(actions),
        "plan": plan,
        "plan_hash": plan_hash(plan),
        "details": details if details is not None else {},
    }


def _cell(value):
    if isinstance(value, (dict, list)):
        value = canonical_json(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _entry_lines(entries):
    if not entries:
        return ["_none_"]
    lines = []
    for entry in entries:
        when = entry.get("time") or entry.get("at") or ""
        what = entry.get("what") or entry.get("action") or entry.get("decision") or entry.get("code") or ""
        rest = dict((k, v) for k, v in entry.items() if k not in ("time", "at", "what", "action", "decision"))
        line = "- " + ("`%s` " % when if when else "") + _cell(what)
        if rest:
            line += " - " + "; ".join("%s: %s" % (k, _cell(v)) for k, v in sorted(rest.items()))
        lines.append(line)
    return lines


def render_markdown(record):
    dep = record["deployment"]
    where = ", ".join("%s %s" % (k, _cell(v)) for k, v in sorted(dep.items())) or "unspecified"
    lines = [
        "# Alexandria EE run record: %s" % record["scenario"],
        "",
        "| | |",
        "| --- | --- |",
        "| deployment | %s |" % where,
        "| result | **%s** |" % _cell(record["result"]),
        "| check mode (rehearsal) | %s |" % ("yes" if record["check_mode"] else "no"),
        "| started | %s |" % _cell(record["started_at"]),
        "| finished | %s |" % _cell(record["finished_at"]),
        "| plan hash | `%s` |" % record["plan_hash"],
        "",
        "## Causes",
        "",
    ]
    lines += ["- " + _cell(c.get("code", c) if isinstance(c, dict) else c) for c in record["causes"]] or ["_none_"]
    lines += ["", "## Scope", ""] + _json_block(record["scope"])
    for title, key in (("What the run saw", "observed"), ("What it decided", "decisions"), ("What it did", "actions")):
        lines += ["", "## " + title, ""] + _entry_lines(record[key])
    lines += ["", "## Plan", ""] + _json_block(record["plan"]) + [""]
    if record["details"]:
        lines += ["## Details", ""] + _json_block(record["details"]) + [""]
    return "\n".join(lines)


def _json_block(value):
    return ["```json", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False), "```"]


def record_basename(scenario, host, started_at):
    """A file name that sorts by time and never collides across hosts: <scenario>-<host>-<time>."""
    safe_host = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in str(host)) or "localhost"
    stamp = "".join(ch for ch in str(started_at) if ch.isalnum())
    return "%s-%s-%s" % (scenario, safe_host, stamp)


def claim_basename(base):
    """base, else base-2, base-3, ...: the first name no run has taken. Runs of one scenario on one host that start
    in the same second each keep their own record: the .json is created exclusively (empty) to claim the name,
    then replaced whole."""
    number = 1
    while True:
        candidate = base if number == 1 else "%s-%d" % (base, number)
        try:
            fd = os.open(candidate + ".json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            number += 1
            continue
        os.close(fd)
        return candidate


def report(params, check_mode):
    """(result, error): alex_run_report's work - build the record from its (validated) options and, unless in
    check mode, write it as Markdown and JSON under dest_dir (temp file + rename each). error is one sentence."""
    finished = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = build_record(
        params["scenario"], params["deployment"], params["result"], params["started_at"], finished,
        params["rehearsal"], causes=params["causes"], scope=params["scope"], observed=params["observed"],
        decisions=params["decisions"], actions=params["actions"], plan=params["plan"], details=params["details"])
    base = os.path.join(params["dest_dir"], record_basename(
        params["scenario"], (params["deployment"] or {}).get("host", "localhost"), params["started_at"]))
    result = dict(changed=not check_mode, record=record, plan_hash=record["plan_hash"], json_path=base + ".json",
                  markdown_path=base + ".md")
    if check_mode:
        return result, None
    try:
        files.ensure_dir(params["dest_dir"])
        base = claim_basename(base)
        result.update(json_path=base + ".json", markdown_path=base + ".md")
        files.write_text_atomic(base + ".md", render_markdown(record))
        files.write_json_atomic(base + ".json", record)
    except (OSError, IOError) as exc:
        return None, "cannot write the run record in %s: %s; choose a writable dest_dir" % (
            params["dest_dir"], exc.strerror or exc)
    return result, None
