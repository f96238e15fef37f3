"""Every module answers every bad value of every option with one clear message (issue 15, "Bad input").

The cases come from the modules' argument specs (bad_input_cases.py). They run in-process in a few worker
processes (bad_input_runner.py), each module's main() under patch_module_args, as AnsibleModule reads arguments;
a handful of them also run as Ansible runs a module, in a subprocess with an arguments file. Each answer must be
one JSON object; a failure has a non-empty msg and no traceback, and no answer has an `exception` key or carries
a secret given to the module. An exception escaping main() or a case taking more than the runner's limit fails.
"""
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import bad_input_cases as bic  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
CASES = bic.cases()
WORKERS = max(2, min(4, (os.cpu_count() or 1) + 1))
# A message that is only an exception's class and text, as str(exc) of an unexpected error gives.
RAW_EXCEPTION = re.compile(r"^(Type|Value|Key|Attribute|Index|Unicode\w*|Overflow|Recursion|Zero\w*|Name)Error\b")


@pytest.fixture(scope="session")
def closed_port():
    """A local port bound but not listening: connecting is refused at once, and no one else can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield str(sock.getsockname()[1])
    sock.close()


@pytest.fixture(scope="session")
def bad_input_results(tmp_path_factory, closed_port):
    base = tmp_path_factory.mktemp("bad-input")
    procs = []
    for worker in range(WORKERS):
        cases_path = base / ("cases-%d.json" % worker)
        cases_path.write_text(json.dumps([[cid, mod, args] for cid, mod, _opt, args in CASES[worker::WORKERS]]))
        scratch = base / ("scratch-%d" % worker)
        scratch.mkdir()
        results = base / ("results-%d.jsonl" % worker)
        procs.append((subprocess.Popen([sys.executable, str(HERE / "bad_input_runner.py"), str(cases_path),
                                        str(results), str(scratch), closed_port],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT), results))
    found = {}
    for proc, results in procs:
        output = proc.communicate(timeout=900)[0].decode("utf-8", "replace")
        if results.exists():
            for line in results.read_text().splitlines():
                record = json.loads(line)
                found[record["id"]] = record
        if proc.returncode != 0:
            found.setdefault("_workers", []).append(output[-4000:])
    return found


def check_answer(record, option, args):
    """The problems with one case's answer (empty when it is a good answer)."""
    if record is None:
        return ["no answer: the worker died before this case"]
    if record["crash"]:
        return ["uncaught: " + record["crash"][-3000:]]
    problems = []
    try:
        result = json.loads(record["stdout"])
    except ValueError:
        return ["the answer is not one JSON object: %r" % record["stdout"][-500:]]
    text = record["stdout"] + record["stderr"]
    if "Traceback (most recent call last)" in text:
        problems.append("a traceback in the output")
    if "exception" in result:
        problems.append("an exception key: %r" % str(result["exception"])[-300:])
    for secret in list(bic.SECRETS.values()) + ["DsnPw2-5ecret"]:
        if secret in text:
            problems.append("the secret %s is in the output" % secret)
    # A password inside a URL option is masked in what the module says; the invocation echoes the option as
    # given, like any option that is not no_log (docs/security.md, "Bad input").
    said = dict((k, v) for k, v in result.items() if k != "invocation")
    if "UrlPw-5ecret" in json.dumps(said) or "UrlPw-5ecret" in record["stderr"]:
        problems.append("the password of a URL is in the answer")
    if result.get("failed"):
        msg = result.get("msg")
        if not isinstance(msg, str) or not msg.strip():
            problems.append("failed without a msg")
        elif RAW_EXCEPTION.match(msg):
            problems.append("the msg is a bare exception: %r" % msg[:300])
        if record["rc"] != 1:
            problems.append("failed with exit code %r" % record["rc"])
    elif record["rc"] not in (0, None):
        problems.append("exit code %r without failed" % record["rc"])
    return problems


def test_enough_cases():
    assert len(CASES) >= 1500
    assert {mod for _cid, mod, _opt, _args in CASES} == set(bic.MODULES)


def test_every_option_is_covered():
    for name in bic.MODULES:
        options = {opt for _cid, mod, opt, _args in CASES if mod == name and opt}
        assert options == set(bic.spec_of(name)), name


# What AnsibleModule says when the arguments themselves are wrong.
ARGUMENT_ERRORS = ("argument '", "Elements value", "value of ", "Unsupported parameters", "missing required",
                   "parameters are mutually exclusive", "one of the following is required")


@pytest.mark.parametrize("name", bic.MODULES)
def test_baseline_arguments_are_valid(bad_input_results, name):
    """Each case changes one option of valid arguments, so its answer is about that option."""
    result = json.loads(bad_input_results["%s-baseline" % name]["stdout"])
    assert not result.get("msg", "").startswith(ARGUMENT_ERRORS), result["msg"]


def test_workers_finished(bad_input_results):
    assert not bad_input_results.get("_workers"), "\n".join(bad_input_results["_workers"])


OPTIONS = sorted({(mod, opt) for _cid, mod, opt, _args in CASES if opt})


@pytest.mark.parametrize("name,option", OPTIONS, ids=["%s-%s" % o for o in OPTIONS])
def test_bad_values_answer_cleanly(bad_input_results, name, option):
    """All the bad values of one option (one test per option keeps the run short; each case is named)."""
    problems = []
    for case_id, mod, opt, args in CASES:
        if mod == name and opt == option:
            problems += ["%s: %s" % (case_id, p) for p in check_answer(bad_input_results.get(case_id), opt, args)]
    assert not problems, "\n".join(problems)


# The cases issue 15 measured (a traceback, or no answer within 60 s, before arg_checks), run as Ansible runs a
# module: the module file in a new Python process, its arguments in a file.
ISSUE_CASES = [
    ("alex_license", "timeout", 0), ("alex_license", "timeout", -1), ("alex_license", "timeout", float("nan")),
    ("alex_seats", "timeout", 0), ("alex_seats", "timeout", -1), ("alex_seats", "timeout", "nan"),
    ("alex_ready", "timeout", float("inf")), ("alex_ready", "retry_delay", 1e308),
    ("alex_triage", "request_timeout", "inf"), ("alex_pod_restart", "wait_timeout", 1e308),
    ("alex_api_log", "request_timeout", float("nan")), ("alex_api_log", "wait_sleep", float("inf")),
    ("alex_seats", "admin_token", "t\u00f6k\u0113n-\u2603"), ("alex_run_report", "dest_dir", "{tmp}/a\x00b"),
    ("alex_ready", "retries", 9223372036854775808), ("alex_api_log", "expect", ""),
]


@pytest.fixture(scope="module")
def issue_answers(tmp_path_factory, closed_port):
    """Every ISSUE_CASES module process started at once (they spend their time starting Python), then awaited."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("K8S_AUTH_", "ALEX_", "PG", "KUBECONFIG")))
    running = []
    for index, (module, option, value) in enumerate(ISSUE_CASES):
        tmp = tmp_path_factory.mktemp("issue-case-%d" % index)
        args = json.loads(json.dumps(bic.BASELINE[module]).replace("{tmp}", str(tmp)).replace("{closed}", closed_port))
        args[option] = value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value
        args_file = tmp / "args.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        running.append(subprocess.Popen(
            [sys.executable, str(bic.REPO / "plugins" / "modules" / (module + ".py")), str(args_file)],
            cwd=str(tmp), env=dict(env, HOME=str(tmp)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    answers = []
    for proc in running:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += "\n(no answer within 120 s)"
        answers.append((proc.returncode, out, err))
    return answers


@pytest.mark.parametrize("index", range(len(ISSUE_CASES)), ids=["%s-%s-%r" % c for c in ISSUE_CASES])
def test_issue_cases_as_ansible_runs_them(issue_answers, index):
    _module, option, _value = ISSUE_CASES[index]
    returncode, out, err = issue_answers[index]
    assert "Traceback" not in out + err, err[-2000:]
    result = json.loads(out)
    assert returncode == 1 and result["failed"] is True, result
    assert "option '%s'" % option in result["msg"] or result["msg"].startswith("argument '%s' is of type" % option), \
        result["msg"]
    assert "exception" not in result
    assert not any(secret in out for secret in bic.SECRETS.values())
