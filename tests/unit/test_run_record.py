"""Run records and plan hashes: pure functions and the two modules, writing real files."""
import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.alexandria.ee.plugins.module_utils import run_record
from ansible_collections.alexandria.ee.plugins.modules import alex_plan, alex_run_report


def test_plan_hash_is_canonical():
    assert run_record.plan_hash({"b": 1, "a": [1, "ü"]}) == run_record.plan_hash({"a": [1, "ü"], "b": 1})
    assert run_record.plan_hash([{"action": "restart"}]) != run_record.plan_hash([{"action": "restart "}])


def test_record_shape_is_the_same_for_every_scenario():
    keys = None
    for scenario in run_record.SCENARIOS:
        rec = run_record.build_record(scenario, {"host": "h"}, "ok", "t0", "t1", False)
        keys = keys or set(rec)
        assert set(rec) == keys
        assert rec["format"] == run_record.RECORD_FORMAT


def test_markdown_escapes_table_cells():
    rec = run_record.build_record("quota_exceeded", {"host": "a|b"}, "gated", "t0", "t1", True,
                                  observed=[{"time": "t0", "what": "402 on\nseats"}, "plain"])
    text = run_record.render_markdown(rec)
    assert "a\\|b" in text and "402 on seats" in text and "- plain" in text
    assert "check mode (rehearsal) | yes" in text


def _run(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_run_report_writes_both_files_0600(tmp_path, capsys):
    dest = tmp_path / "records"
    out = _run(alex_run_report, {"dest_dir": str(dest), "scenario": "api_not_serving", "result": "healthy",
                                 "started_at": "2026-11-27T03:00:00Z", "deployment": {"host": "prod-eu"},
                                 "plan": [], "causes": ["healthy"]}, capsys)
    assert out["changed"] is True
    assert os.path.basename(out["json_path"]) == "api_not_serving-prod-eu-20261127T030000Z.json"
    on_disk = json.loads(open(out["json_path"]).read())
    assert on_disk["plan_hash"] == run_record.plan_hash([]) == out["plan_hash"]
    assert on_disk["causes"] == ["healthy"]
    for path in (out["json_path"], out["markdown_path"]):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p for p in os.listdir(dest) if p.endswith(".tmp")] == []


def test_runs_starting_in_the_same_second_keep_their_own_records(tmp_path, capsys):
    args = {"dest_dir": str(tmp_path), "scenario": "audit_chain_failure", "started_at": "2026-11-27T03:00:00Z",
            "deployment": {"host": "prod-eu"}}
    first = _run(alex_run_report, dict(args, result="gated"), capsys)
    second = _run(alex_run_report, dict(args, result="retired"), capsys)
    assert os.path.basename(second["json_path"]) == "audit_chain_failure-prod-eu-20261127T030000Z-2.json"
    assert os.path.basename(second["markdown_path"]) == "audit_chain_failure-prod-eu-20261127T030000Z-2.md"
    assert json.loads(open(first["json_path"]).read())["result"] == "gated"
    assert json.loads(open(second["json_path"]).read())["result"] == "retired"
    assert len(os.listdir(tmp_path)) == 4


def test_run_report_check_mode_writes_nothing(tmp_path, capsys):
    out = _run(alex_run_report, {"dest_dir": str(tmp_path / "r"), "scenario": "quota_exceeded", "result": "gated",
                                 "started_at": "t", "_ansible_check_mode": True}, capsys)
    assert out["changed"] is False
    assert not (tmp_path / "r").exists()


def test_run_report_unwritable_dir_is_one_clear_failure(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = _run(alex_run_report, {"dest_dir": str(blocker / "sub"), "scenario": "quota_exceeded", "result": "x",
                                 "started_at": "t"}, capsys)
    assert out["failed"] is True
    assert "cannot write the run record" in out["msg"]


def test_plan_gate(capsys):
    plan = [{"action": "deactivate", "users": [3, 5]}]
    digest = run_record.plan_hash(plan)
    ok = _run(alex_plan, {"plan": plan, "expected_hash": digest.upper()}, capsys)
    assert ok["matches"] is True and ok["plan_hash"] == digest
    none = _run(alex_plan, {"plan": plan}, capsys)
    assert none["matches"] is None and "failed" not in none
    bad = _run(alex_plan, {"plan": plan + [{"action": "more"}], "expected_hash": digest}, capsys)
    assert bad["failed"] is True and digest in bad["msg"] and "Nothing was changed" in bad["msg"]


def test_check_plan_is_the_gate_both_the_module_and_the_controller_run():
    """alex_plan's module and its action plugin (plugins/action/alex_plan.py) both answer with check_plan."""
    plan = [{"action": "restart_pods", "pods": ["alexandria-ee-6c9d7f-abcde"]}]
    digest = run_record.plan_hash(plan)
    assert run_record.check_plan(plan) == (dict(changed=False, plan_hash=digest, plan=plan, matches=None), None)
    assert run_record.check_plan(plan, " %s " % digest.upper())[0]["matches"] is True
    refused, refusal = run_record.check_plan(plan, "0" * 64)
    assert refused["matches"] is False and refused["plan_hash"] == digest
    assert refusal.startswith("the plan is not the approved one: approved %s, this run's plan hashes %s." % ("0" * 64, digest))


def test_report_is_what_the_module_and_the_controller_write(tmp_path):
    """alex_run_report's module and its action plugin (plugins/action/alex_run_report.py, the local connection)
    both call run_record.report: check mode writes nothing; an unwritable dest_dir is one sentence, no file."""
    params = {"dest_dir": str(tmp_path / "r"), "scenario": "upgrade", "result": "planned",
              "started_at": "2026-11-28T16:00:00Z", "deployment": {"host": "prod-eu"}, "rehearsal": True,
              "causes": ["upgrade_requested"], "scope": {}, "observed": [], "decisions": [], "actions": [],
              "plan": [{"action": "helm_upgrade"}], "details": {}}
    planned, error = run_record.report(params, check_mode=True)
    assert error is None and planned["changed"] is False and not (tmp_path / "r").exists()
    assert planned["plan_hash"] == run_record.plan_hash(params["plan"])
    written, error = run_record.report(params, check_mode=False)
    assert error is None and written["changed"] is True
    assert json.loads(open(written["json_path"]).read())["plan_hash"] == planned["plan_hash"]
    (tmp_path / "file").write_text("x")
    refused, error = run_record.report(dict(params, dest_dir=str(tmp_path / "file" / "r")), check_mode=False)
    assert refused is None and error.startswith("cannot write the run record in %s" % (tmp_path / "file" / "r"))
