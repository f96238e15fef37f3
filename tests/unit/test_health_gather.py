"""alex_health's own probes: which run (pure), how a failure is one line, and that results passed in are used
as they are without any request (the probes themselves run against the lab, tests/integration/
test_health_module_lab.py)."""
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import health_gather as hg


def test_every_probe_runs_when_nothing_is_given():
    assert hg.plan({}, "http://api", "token", True) == ["ready", "license", "seats", "audit"]


@pytest.mark.parametrize("base_url, token", [("", "token"), ("http://api", ""), (None, None)])
def test_seats_only_with_a_token_and_a_base_url(base_url, token):
    assert "seats" not in hg.plan({}, base_url, token, True)


def test_the_audit_chain_only_when_asked():
    assert hg.plan({}, "http://api", "token", False) == ["ready", "license", "seats"]


def test_a_result_passed_in_is_not_run_again():
    given = {"ready": {"ready": True}, "audit": {"verified": True}}
    assert hg.plan(given, "http://api", "token", True) == ["license", "seats"]


@pytest.mark.parametrize("ready, wanted", [
    ({"ready": True, "status": 200}, False),
    ({"ready": False, "status": 503}, True),
    ({"ready": False, "status": None, "reason": "connection refused"}, True),
    ({"failed": True, "msg": "service proxy: RBAC forbids"}, True),
    ({}, True),
    (None, True),
])
def test_triage_runs_unless_ready_answered_200(ready, wanted):
    assert hg.needs_triage(ready) is wanted


def test_everything_given_means_no_probe_and_no_request():
    given = dict((name, {"failed": True, "msg": "not run"}) for name in hg.CHECKS)
    # Connection options that would fail loudly if anything were asked.
    params = {"base_url": "http://127.0.0.1:9", "admin_token": "t", "check_audit": True}
    assert hg.gather(params, given, set()) == ({}, [])


def test_the_probe_context_collects_warnings_and_raises_for_fail_json():
    masked = set()
    context = hg.ProbeContext({"a": 1}, masked, check_mode=True)
    context.no_log_values.add("s3cret")
    context.warn("careful")
    with pytest.raises(hg.ProbeFailed) as raised:
        context.fail_json(msg="one line", rows=3)
    assert masked == {"s3cret"} and context.warnings == ["careful"] and context.check_mode is True
    assert raised.value.msg == "one line" and raised.value.extra == {"rows": 3}


def test_an_unforeseen_error_is_that_probes_one_line():
    def broken(_params):
        raise KeyError("x")
    result, warnings = hg._guarded("license", broken, {})  # pylint: disable=protected-access
    assert result == {"failed": True, "msg": "license probe failed unexpectedly: KeyError: 'x'"} and warnings == []
