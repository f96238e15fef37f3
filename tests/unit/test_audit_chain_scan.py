"""Pure chain verification: segments per kind, anchors, probable cause (no database)."""
import datetime

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac

KEY = "unit-key"
UTC = datetime.timezone.utc


def chain(n, tenant="t1", key=KEY):
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    rows = [dict(occurred_at=start + datetime.timedelta(seconds=i), actor="a%d" % i, action="act", payload={"i": i})
            for i in range(n)]
    return ac.build_chain(key, tenant, rows)


def lines(rows):
    return [ac.copy_line(r["tenant_id"], r["seq"], r["occurred_at"], r["actor"], r["action"], r["payload"],
                         r["prev_hmac"], r["row_hmac"]) for r in rows]


def verify(rows, anchors=None, key=KEY):
    return ac.verify_copy_lines(key, lines(rows), anchors)


def test_valid_chain():
    res = verify(chain(10))["t1"]
    assert res["verified"] and res["rows"] == 10 and res["valid_rows"] == 10 and res["segments"] == []


def test_tamper_is_one_hmac_segment():
    rows = chain(20)
    for r in rows[4:8]:  # seqs 5..8 edited in place
        r["payload"] = {"i": -1}
    res = verify(rows)["t1"]
    assert res["segments"] == [{"first_seq": 5, "last_seq": 8, "rows": 4, "kind": "hmac_mismatch"}]
    assert res["valid_rows"] == 16
    assert res["probable_cause"] == "direct_db_edit"


def test_delete_is_one_gap_segment_without_link_noise():
    rows = chain(20)
    del rows[9:12]  # seqs 10..12 gone
    res = verify(rows)["t1"]
    assert res["segments"] == [{"first_seq": 10, "last_seq": 12, "rows": 3, "kind": "seq_gap"}]
    assert res["probable_cause"] == "restore_gap"


def test_resigned_row_breaks_the_next_link():
    rows = chain(6)
    r = rows[2]
    r["payload"] = {"forged": True}
    r["row_hmac"] = ac.row_hmac(KEY, ac.row_message("t1", 3, r["occurred_at"], r["actor"], r["action"],
                                                    r["payload"], r["prev_hmac"]))
    res = verify(rows)["t1"]
    assert res["segments"] == [{"first_seq": 4, "last_seq": 4, "rows": 1, "kind": "link_broken"}]


def test_two_faults_in_one_tenant_and_other_tenant_clean():
    rows = chain(30)
    rows[2]["action"] = "edited"
    rows[3]["action"] = "edited"
    del rows[20:25]
    res = verify(rows + chain(5, tenant="t2"))
    assert res["t1"]["segments"] == [
        {"first_seq": 3, "last_seq": 4, "rows": 2, "kind": "hmac_mismatch"},
        {"first_seq": 21, "last_seq": 25, "rows": 5, "kind": "seq_gap"},
    ]
    assert res["t2"]["verified"]


def test_missing_first_rows_are_a_gap():
    res = verify(chain(5)[2:])["t1"]
    assert res["segments"] == [{"first_seq": 1, "last_seq": 2, "rows": 2, "kind": "seq_gap"}]


def test_key_mismatch():
    res = verify(chain(8), key="another-key")["t1"]
    assert res["probable_cause"] == "key_mismatch"
    assert res["segments"] == [{"first_seq": 1, "last_seq": 8, "rows": 8, "kind": "hmac_mismatch"}]


def anchor_for(rows, first, last, resume_prev, key=KEY):
    anchor = dict(tenant_id="t1", resume_seq=last + 1, resume_prev_hmac=resume_prev, retired_first_seq=first,
                  retired_last_seq=last, retired_rows=last - first + 1, retired_sha256="0" * 64,
                  capture_sha256="c" * 64, backup_sha256="b" * 64, signoff="CR-1", reason="hmac_mismatch")
    anchor["anchor_hmac"] = ac.anchor_hmac(key, anchor)
    return anchor


def test_anchor_accepts_retired_gap_and_forged_anchor_is_ignored():
    rows = chain(12)
    resume_prev = rows[7]["prev_hmac"]  # row seq 8 follows retired 5..7
    kept = rows[:4] + rows[7:]
    good = anchor_for(rows, 5, 7, resume_prev)
    valid, invalid = ac.check_anchors(KEY, [good])
    assert invalid == []
    assert verify(kept, valid)["t1"]["verified"]
    forged = dict(good, signoff="CR-forged")
    valid, invalid = ac.check_anchors(KEY, [forged])
    assert invalid == [{"tenant_id": "t1", "resume_seq": 8}]
    assert verify(kept, valid)["t1"]["segments"][0]["kind"] == "seq_gap"


def test_chained_anchors_cover_adjacent_retirements():
    rows = chain(12)
    kept = rows[:2] + rows[7:]  # seqs 3..7 gone, retired in two operations: 5..7 then 3..4
    later = anchor_for(rows, 5, 7, rows[7]["prev_hmac"])
    earlier = anchor_for(rows, 3, 4, rows[4]["prev_hmac"])
    valid, invalid = ac.check_anchors(KEY, [later, earlier])
    assert invalid == []
    assert verify(kept, valid)["t1"]["verified"]


def test_tail_anchor_lets_the_next_write_link_to_the_good_tip():
    rows = chain(10)
    kept = rows[:7]  # 8..10 retired from the tail
    anchor = anchor_for(rows, 8, 10, rows[6]["row_hmac"])
    valid, invalid = ac.check_anchors(KEY, [anchor])
    assert invalid == []
    assert verify(kept, valid)["t1"]["verified"]
    nxt = ac.build_chain(KEY, "t1", [dict(occurred_at=rows[-1]["occurred_at"], actor="w", action="new",
                                          payload={})], start_seq=11, prev_hmac=anchor["resume_prev_hmac"])
    assert verify(kept + nxt, valid)["t1"]["verified"]


def test_copy_escape_round_trip():
    text = "a\\b\tc\nd\re\x08f\x0bg\x0ch 'quote'; DROP"
    assert ac.copy_unescape(ac.copy_escape(text)) == text
