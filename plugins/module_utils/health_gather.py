# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""alex_health's own probes, in one process: what alex_ready, alex_triage, alex_license (state=query), alex_seats
(state=query) and alex_audit_verify (incremental, checkpoints never advanced) return, through the same
module_utils functions those modules call, run concurrently so the slowest probe (a /ready that takes the API's
own deadline to answer) overlaps the others.

Each probe's result has the keys of the module it stands for; a probe that cannot answer is failed=True with one
line in msg, as a registered module failure is, never an exception: health_logic.classify reads them unchanged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.alexandria.ee.plugins.module_utils import api_queries, audit_verify_run, readiness
from ansible_collections.alexandria.ee.plugins.module_utils.api_client import ApiClient, ApiError
from ansible_collections.alexandria.ee.plugins.module_utils.license_logic import QuotaError

CHECKS = ("ready", "triage", "license", "seats", "audit")
# The words problems and warnings start with, per probe (as health_logic.classify names them).
LABELS = {"ready": "api", "triage": "kubernetes", "license": "license", "seats": "admin api", "audit": "audit chain"}
# S3 only reads: incremental against the checkpoints, never advancing them, every tenant.
READ_ONLY_AUDIT = dict(update_checkpoints=False, tenants=None, key_mismatch_fraction=0.5)


class ProbeFailed(Exception):
    """fail_json of a ProbeContext: the probe's one line and the result keys that came with it."""

    def __init__(self, msg, extra):
        super(ProbeFailed, self).__init__(msg)
        self.msg = msg
        self.extra = extra


class ProbeContext:
    """What module code (audit_verify_run.verify, audit_module) needs of a module, for one probe in a thread.

    no_log_values is the module's own set, so every secret the probe finds (a DSN read from the Secret) is masked
    in the module's answer; warn() collects; fail_json() raises ProbeFailed instead of ending the process.
    """

    def __init__(self, params, no_log_values, check_mode=False):
        self.params = params
        self.no_log_values = no_log_values
        self.check_mode = check_mode
        self._diff = False
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, msg, **extra):
        raise ProbeFailed(msg, extra)


def plan(given, base_url, admin_token, check_audit):
    """The probes to run here, besides triage (decided on /ready's answer): every one not given, seats only with
    an admin token and a base_url, the audit chain only when asked."""
    wanted = {"ready": True, "license": True, "seats": bool(admin_token and base_url), "audit": bool(check_audit)}
    return [name for name in CHECKS if name != "triage" and wanted[name] and name not in given]


def needs_triage(ready):
    """Triage runs when /ready did not answer 200 with the API's JSON (also when the probe itself failed)."""
    return not (isinstance(ready, dict) and ready.get("ready"))


def probe_ready(params):
    return readiness.check(dict(params, admin_token=None), retries=0), []


def probe_license(params):
    api = None
    try:
        api = ApiClient.from_params(dict(params, admin_token=None))
        result = api_queries.license_query(api)
    except (ApiError, QuotaError, ValueError) as exc:
        result = dict(failed=True, msg=str(exc))
    if api is not None:
        result["api_route"] = api.route_name
    return result, []


def probe_seats(params):
    try:
        return api_queries.seats_query(ApiClient.from_params(params), params["inactive_days"]), []
    except (ApiError, ValueError) as exc:
        return dict(failed=True, msg=str(exc)), []


def probe_audit(params, no_log_values, check_mode):
    context = ProbeContext(dict(params, **READ_ONLY_AUDIT), no_log_values, check_mode)
    try:
        return audit_verify_run.verify(context), context.warnings
    except ProbeFailed as exc:
        return dict(exc.extra, failed=True, msg=exc.msg), context.warnings


def probe_triage(params):
    # Imported here: it imports the kubernetes client's models (about half a second of CPU), which a deployment
    # that serves never needs (and S3 imports only the client, in its own thread, while /ready is asked).
    from ansible_collections.alexandria.ee.plugins.module_utils import triage_run
    # As the health role always did: no /ready answer passed in (alex_triage without probe).
    return triage_run.run(params)


def _guarded(name, func, *args):
    """(result, warnings) of one probe; an error nobody foresaw is that probe's one line, not the module's end."""
    try:
        return func(*args)
    except Exception as exc:  # a bug in one probe must not cost the others their answers
        words = "%s probe failed unexpectedly: %s: %s" % (LABELS[name], exc.__class__.__name__, exc)
        return dict(failed=True, msg=words), []


def gather(params, given, no_log_values, check_mode=False):
    """({probe: result} of the probes run here, [warnings]). given: {probe: result} passed in, not run again."""
    todo = plan(given, params.get("base_url"), params.get("admin_token"), params.get("check_audit", True))
    results = {}
    warnings = []

    def ready_then_triage():
        out = {}
        ready = given.get("ready")
        if "ready" in todo:
            ready, said = _guarded("ready", probe_ready, params)
            out["ready"] = (ready, said)
        if "triage" not in given and needs_triage(ready):
            out["triage"] = _guarded("triage", probe_triage, params)
        return out

    jobs = {"seats": (probe_seats, params), "license": (probe_license, params),
            "audit": (probe_audit, params, no_log_values, check_mode)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        # /ready first: on a hung orchestrator it is the slowest, and triage waits for its answer.
        first = pool.submit(ready_then_triage)
        others = dict((name, pool.submit(_guarded, name, *jobs[name])) for name in todo if name in jobs)
        done = dict(first.result())
        done.update((name, future.result()) for name, future in others.items())
    for name in CHECKS:
        if name in done:
            results[name], said = done[name]
            warnings += ["%s: %s" % (LABELS[name], words) for words in said]
    return results, warnings
