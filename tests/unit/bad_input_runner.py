"""Runs bad-input cases in-process, one after the other, the way AnsibleModule reads its arguments.

Usage: python bad_input_runner.py CASES.json RESULTS.jsonl SCRATCH_DIR CLOSED_PORT

Each case's module main() runs under patch_module_args with stdout and stderr captured; SystemExit is the
normal end, any other exception is recorded with its traceback (a failure), and an alarm ends a case that takes
longer than LIMIT seconds (a hang, a failure too). One JSON line per case is written as soon as it ends, so a
worker that dies still leaves the cases it finished. HOME and the working directory are the scratch directory,
and the Ansible and connection environment variables are cleared, so '~', relative paths and env fallbacks
cannot reach outside it.
"""
import contextlib
import importlib
import io
import json
import os
import signal
import sys
import time
import traceback

LIMIT = 20


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so no module's `except Exception` swallows it."""


def _alarm(_signum, _frame):
    raise CaseTimeout()


def fill(value, tmp, port):
    if isinstance(value, str):
        return value.replace("{tmp}", tmp).replace("{closed}", port)
    if isinstance(value, list):
        return [fill(v, tmp, port) for v in value]
    if isinstance(value, dict):
        return dict((k, fill(v, tmp, port)) for k, v in value.items())
    return value


def prepare_scratch(tmp):
    for sub in ("home", "out", "out/runs", "a-directory"):
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    with open(os.path.join(tmp, "a-file"), "w") as handle:
        handle.write("not a directory\n")
    if not os.path.lexists(os.path.join(tmp, "dangling")):
        os.symlink(os.path.join(tmp, "nowhere", "target"), os.path.join(tmp, "dangling"))


def run_case(module, args):
    from ansible.module_utils.common import warnings
    from ansible.module_utils.testing import patch_module_args
    warnings._global_warnings.clear()  # pylint: disable=protected-access
    warnings._global_deprecations.clear()  # pylint: disable=protected-access
    out, err = io.StringIO(), io.StringIO()
    record = dict(rc=None, crash=None)
    start = time.monotonic()
    signal.alarm(LIMIT)
    try:
        with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            module.main()
        record["crash"] = "main() returned without exit_json or fail_json"
    except SystemExit as exc:
        record["rc"] = exc.code
    except CaseTimeout:
        record["crash"] = "no answer within %d s" % LIMIT
    except BaseException:  # pylint: disable=broad-except
        record["crash"] = traceback.format_exc()
    finally:
        signal.alarm(0)
    record.update(stdout=out.getvalue(), stderr=err.getvalue()[-4000:], seconds=round(time.monotonic() - start, 3))
    return record


def main(cases_path, results_path, tmp, port):
    prepare_scratch(tmp)
    for name in list(os.environ):
        if name.startswith(("ANSIBLE_", "K8S_AUTH_", "ALEX_", "PG", "KUBECONFIG", "KUBERNETES_")):
            del os.environ[name]
    os.environ["HOME"] = os.path.join(tmp, "home")
    os.chdir(tmp)
    signal.signal(signal.SIGALRM, _alarm)
    with open(cases_path) as handle:
        cases = json.load(handle)
    modules = {}
    with open(results_path, "a") as results:
        for case_id, name, args in cases:
            if name not in modules:
                modules[name] = importlib.import_module("ansible_collections.alexandria.ee.plugins.modules." + name)
            record = run_case(modules[name], fill(args, tmp, port))
            record["id"] = case_id
            results.write(json.dumps(record) + "\n")
            results.flush()


if __name__ == "__main__":
    main(*sys.argv[1:5])
