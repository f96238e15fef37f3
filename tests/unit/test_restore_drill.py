"""What restoring a backup would lose (plugins/module_utils/restore_drill.py): pure logic, no database."""
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import restore_drill as rd

H = dict((n, "%064x" % n) for n in range(1, 600))


def cp(seq, rows=None, row_hmac=None):
    return {"checkpoint": {"status": "ok", "last_seq": seq, "last_row_hmac": row_hmac or H[seq], "rows": rows or seq}}


def live(last_seq, checkpoint_seq=None, rows=None):
    out = {"last_seq": last_seq, "rows": last_seq if rows is None else rows}
    if checkpoint_seq is not None:
        out.update(cp(checkpoint_seq))
    return out


def tips(last_seq, at=None, at_hmac=None):
    return {"rows": last_seq, "first_seq": 1, "last_seq": last_seq, "last_row_hmac": H[last_seq],
            "row_hmac_at": at_hmac if at_hmac is not None else (H[at] if at and at <= last_seq else None)}


def test_copy_text_fields_unescape_like_postgresql():
    assert rd.copy_text_field("plain") == "plain"
    assert rd.copy_text_field("\\N") is None
    assert rd.copy_text_field("a\\tb\\nc\\\\d") == "a\tb\nc\\d"
    assert rd.copy_text_field("\\x41\\101\\q") == "AAq"


def test_scan_copy_rows_tips_and_the_row_at_a_seq():
    lines = ["-- dump header", "COPY public.audit_logs (tenant_id, seq, occurred_at, row_hmac) FROM stdin;",
             "acme\t2\tt\t%s" % H[2], "acme\t1\tt\t%s" % H[1], "t\\tx\t5\tt\t%s" % H[5], "acme\t3\tt\t%s" % H[3], "\\.",
             "COPY other (x) FROM stdin;"]
    out = rd.scan_copy_rows(iter(lines), at_seqs={"acme": 2})
    assert out == {"acme": {"rows": 3, "first_seq": 1, "last_seq": 3, "last_row_hmac": H[3], "row_hmac_at": H[2]},
                   "t\tx": {"rows": 1, "first_seq": 5, "last_seq": 5, "last_row_hmac": H[5], "row_hmac_at": None}}


@pytest.mark.parametrize("lines,words", [
    ([], "holds no audit rows"),
    (["COPY public.audit_logs (tenant_id, seq, row_hmac) FROM stdin;", "a\t1\tx"], "without their terminator"),
    (["COPY public.audit_logs (tenant_id, seq, row_hmac) FROM stdin;", "a\t1"], "not in COPY text format"),
    (["COPY public.audit_logs (tenant_id, row_hmac) FROM stdin;", "\\."], "no tenant_id, seq or row_hmac"),
])
def test_scan_copy_rows_refuses_what_is_not_an_audit_table(lines, words):
    with pytest.raises(rd.DrillError, match=words):
        rd.scan_copy_rows(iter(lines))


def test_backup_at_480_checkpoint_500_live_520():
    backup = rd.backup_findings({"acme": tips(480)}, {"acme": live(520, 500)})
    assert backup == {"acme": {"last_seq": 480, "rows": 480, "segments": [
        {"first_seq": 481, "last_seq": 500, "rows": 20, "kind": "truncated"}]}}
    report = rd.loss_report(backup, {"acme": live(520, 500)})
    assert report["tenants"]["acme"] == {
        "backup_last_seq": 480, "checkpoint_seq": 500, "live_last_seq": 520,
        "lost_up_to_checkpoint": [{"first_seq": 481, "last_seq": 500, "rows": 20, "kind": "truncated"}],
        "lost_after_checkpoint": {"first_seq": 501, "last_seq": 520, "rows": 20}, "rows_lost": 40}
    assert report["rows_lost"] == 40 and report["tenants_losing"] == ["acme"]


def test_backup_newer_than_the_checkpoint_loses_only_the_rows_after_its_tip():
    backup = rd.backup_findings({"acme": tips(510, at=500)}, {"acme": live(520, 500)})
    assert backup["acme"]["segments"] == []
    loss = rd.loss_report(backup, {"acme": live(520, 500)})["tenants"]["acme"]
    assert loss["lost_after_checkpoint"] == {"first_seq": 511, "last_seq": 520, "rows": 10} and loss["rows_lost"] == 10


def test_no_checkpoint_store_measures_against_the_live_database():
    loss = rd.loss_report(rd.backup_findings({"acme": tips(480)}, {"acme": live(520)}), {"acme": live(520)})
    assert loss["tenants"]["acme"]["checkpoint_seq"] is None
    assert loss["tenants"]["acme"]["lost_up_to_checkpoint"] == []
    assert loss["tenants"]["acme"]["lost_after_checkpoint"] == {"first_seq": 481, "last_seq": 520, "rows": 40}
    assert "written after the backup" in loss["lines"][0]


def test_a_tenant_the_backup_does_not_hold():
    backup = rd.backup_findings({}, {"new": live(12, 10)})
    assert backup["new"]["segments"] == [{"first_seq": 1, "last_seq": 10, "rows": 10, "kind": "tenant_missing"}]
    loss = rd.loss_report(backup, {"new": live(12, 10)})["tenants"]["new"]
    assert loss["rows_lost"] == 12 and loss["lost_after_checkpoint"] == {"first_seq": 11, "last_seq": 12, "rows": 2}
    # without a checkpoint, every live row of it is lost
    assert rd.loss_report({}, {"new": live(7)})["tenants"]["new"]["lost_after_checkpoint"]["rows"] == 7


def test_a_backup_of_another_timeline_is_rolled_back_at_the_checkpoint():
    backup = rd.backup_findings({"acme": tips(505, at_hmac="f" * 64)}, {"acme": live(520, 500)})
    assert backup["acme"]["segments"] == [{"first_seq": 500, "last_seq": 500, "rows": 1, "kind": "rolled_back"}]


def test_nothing_lost_and_a_live_database_behind_the_backup():
    report = rd.loss_report(rd.backup_findings({"a": tips(30, at=30)}, {"a": live(30, 30)}), {"a": live(30, 30)})
    assert report["rows_lost"] == 0 and report["lines"] == []
    report = rd.loss_report(rd.backup_findings({"a": tips(40)}, {"a": live(35)}), {"a": live(35)})
    assert report["rows_lost"] == 0


def test_scratch_names():
    live_db = {"database": "alexandria"}
    assert rd.scratch_name_problems("alex_drill_20260301t120000z_1a2b3c4d", live_db) == []
    assert "is the live database" in rd.scratch_name_problems("alexandria", live_db)[0]
    for bad in ("", "Alex", "a-b", "x" * 64, "1abc", "a;drop"):
        assert rd.scratch_name_problems(bad, live_db), bad
    assert rd.scratch_name_problems("template1", live_db)


def test_malformed_inputs_are_no_checkpoint():
    assert rd.checkpoint_of("x") is None and rd.checkpoint_of({"checkpoint": {"last_seq": True}}) is None
    assert rd.checkpoint_of({"checkpoint": {"status": "missing", "stores": []}}) is None
