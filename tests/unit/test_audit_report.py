"""The incident report's inference of the suspected cause, and its rendering (pure)."""
from ansible_collections.alexandria.ee.plugins.module_utils import audit_report as ar


def seg(first, last, kind):
    return {"first_seq": first, "last_seq": last, "rows": last - first + 1, "kind": kind}


def test_cause_per_kind_with_reasoning():
    cause, why = ar.reasoning({"rows": 100, "segments": [seg(4, 6, "hmac_mismatch")], "probable_cause": "direct_db_edit"})
    assert cause == "direct_db_edit" and "3 row(s) fail their own HMAC (seq 4-6)" in why[0] and "UPDATE" in why[1]
    cause, why = ar.reasoning({"rows": 90, "segments": [seg(10, 19, "seq_gap")], "probable_cause": "restore_gap"})
    assert "10 seq(s) are missing (seq 10-19)" in why[0] and "restore" in why[0]
    cause, why = ar.reasoning({"rows": 90, "segments": [seg(7, 7, "link_broken")], "probable_cause": "replication_lag"})
    assert "replication lag" in why[0]
    cause, why = ar.reasoning({"rows": 5, "segments": [seg(1, 5, "hmac_mismatch")], "probable_cause": "key_mismatch"})
    assert cause == "key_mismatch" and "5 of 5 rows" in why[0] and any("key-rotation.md" in w for w in why)
    _cause, why = ar.reasoning({"rows": 50, "probable_cause": "direct_db_edit",
                                "segments": [seg(3, 3, "hmac_mismatch"), seg(4, 4, "link_broken"), seg(9, 9, "seq_gap")]})
    assert len(why) == 4 and "Several kinds" in why[-1]
    assert len([w for w in why if "still links" in w]) == 0  # the edited row's successor does not link


def test_report_states_and_rendering():
    verify = {"broken": ["acme"], "scope": ["tenant 'acme': ..."], "database": {"database": "db"},
              "tenants": {"acme": {"rows": 10, "valid_rows": 9, "segments": [seg(4, 4, "hmac_mismatch")],
                                   "probable_cause": "direct_db_edit"}}}
    capture = {"tenant": "acme", "dest": "/e/c.csv", "manifest": "/e/c.csv.manifest.json",
               "capture": {"sha256": "c" * 64, "rows": 1, "bytes": 10, "seq_ranges": [[4, 4]], "selection": "segments"}}
    report = ar.build_report("i1", verify, {"acme": capture}, generated_at="t")
    assert report["status"] == "captured_awaiting_signoff" and "waiting for the written" in report["tenants"][0]["disposition"]
    retire = {"changed": True, "moved": 1, "anchors": [{"resume_seq": 5, "retired_first_seq": 4, "retired_last_seq": 4,
                                                        "retired_rows": 1, "retired_sha256": "r" * 64,
                                                        "reason": "hmac_mismatch"}]}
    backup = {"dest": "/e/b.dump", "manifest": "/e/b.dump.manifest.json",
              "backup": {"sha256": "b" * 64, "bytes": 5, "created_at": "t", "pg_dump": {"version": "16"},
                         "verified_by": "x"}}
    report = ar.build_report("i1", verify, {"acme": capture}, backup, {"acme": retire},
                             {"verified": True, "broken": [], "scope": []}, {"acme": {"status": 201, "seq": 11}},
                             "CR-1", "t2")
    assert report["status"] == "retired" and report["backup"]["sha256"] == "b" * 64
    text = ar.render_markdown(report)
    for needle in ("CR-1", "b" * 64, "c" * 64, "r" * 64, "| 5 | 4-4 | 1 |", "HTTP 201, seq 11", "Chain verifies: **yes**"):
        assert needle in text
    assert ar.same_report(dict(report, generated_at="other"), report)
    assert not ar.same_report(dict(report, signoff="CR-2"), report)
