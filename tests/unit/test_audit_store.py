"""audit_store's pure parts: the streaming sink, chunk merging, run planning (no database)."""
import datetime
import random

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_retire
from ansible_collections.alexandria.ee.plugins.module_utils import audit_store as st

KEY = b"unit-store-key"
UTC = datetime.timezone.utc


def chain(n, tenant="t1", key=KEY):
    t0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    rows = [dict(occurred_at=t0 + datetime.timedelta(seconds=i), actor="a\t%d" % i, action="act\n",
                 payload={"i": i, "s": "x\\y"}) for i in range(n)]
    return ac.build_chain(key, tenant, rows)


def lines(rows):
    return [ac.copy_line(r["tenant_id"], r["seq"], r["occurred_at"], r["actor"], r["action"], r["payload"],
                         r["prev_hmac"], r["row_hmac"]) for r in rows]


def damaged(n=60):
    rows = chain(n)
    for r in rows[9:12]:
        r["payload"] = {"edited": True}
    del rows[30:33]
    rows[45]["prev_hmac"] = "e" * 64
    row = rows[45]
    message = ac.row_message("t1", row["seq"], row["occurred_at"], row["actor"], row["action"], row["payload"],
                             row["prev_hmac"])
    row["row_hmac"] = ac.row_hmac(KEY, message)
    return rows


def sink_scan(data_chunks, start=(0, ac.GENESIS), anchors=None):
    scan = ac.TenantScan("t1", anchors)
    scan.last_seq, scan.last_row_hmac = start
    sink = st.ScanSink(KEY, scan)
    for chunk in data_chunks:
        sink.write(chunk)
    sink.finish()
    return scan


def test_sink_matches_reference_verifier_for_any_write_split():
    rows = damaged()
    raw = b"".join(line + b"\n" for line in lines(rows))
    expected = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    assert [s["kind"] for s in expected["segments"]] == ["hmac_mismatch", "seq_gap", "link_broken"]
    rnd = random.Random(7)
    splits = [[raw], [line + b"\n" for line in lines(rows)], [raw[i:i + 1] for i in range(len(raw))]]
    for _round in range(5):
        cuts = sorted(rnd.sample(range(1, len(raw)), 40))
        splits.append([raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])])
    for chunks in splits:
        scan = sink_scan(chunks)
        assert scan.result() == expected


def test_sink_refuses_a_truncated_stream_and_foreign_columns():
    raw = b"".join(line + b"\n" for line in lines(chain(3)))
    scan = ac.TenantScan("t1")
    sink = st.ScanSink(KEY, scan)
    sink.write(raw[:-10])
    with pytest.raises(st.AuditError, match="middle of a row"):
        sink.finish()
    with pytest.raises(st.AuditError, match="3 fields"):
        st.ScanSink(KEY, ac.TenantScan("t1")).write(b"a\tb\tc\n")


def test_chunks_merge_to_the_single_scan():
    rows = damaged(80)
    whole = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    by_seq = dict((r["seq"], r) for r in rows)
    for bounds in ([1, 80], [1, 10, 11, 31, 32, 46, 47, 80], [1, 9, 10, 12, 13, 33, 34, 80], [1, 33, 34, 80]):
        partials = []
        for low, high in zip(bounds[::2], bounds[1::2]):
            before = [s for s in by_seq if s < low]
            start = (max(before), by_seq[max(before)]["row_hmac"]) if before else (0, ac.GENESIS)
            chunk = [by_seq[s] for s in sorted(by_seq) if low <= s <= high]
            scan = sink_scan([b"".join(line + b"\n" for line in lines(chunk))], start)
            partials.append({"low": low, "rows": scan.rows, "valid_rows": scan.valid_rows,
                             "hmac_failures": scan.hmac_failures, "link_failures": scan.link_failures,
                             "segments": scan.segments, "first_seq": chunk[0]["seq"] if chunk else None,
                             "last_seq": scan.last_seq if chunk else None,
                             "last_row_hmac": scan.last_row_hmac if chunk else None})
        random.Random(1).shuffle(partials)
        merged = st.merge_partials("t1", partials)
        for key in ("rows", "valid_rows", "segments", "verified", "probable_cause"):
            assert merged[key] == whole[key], (bounds, key)
        assert merged["first_seq"] == 1 and merged["last_seq"] == 80


def test_plan_chunks_cover_each_range_exactly():
    bounds = {"a": (1, 100000), "b": (5, 7), "c": (10, 45000)}
    for workers in (1, 2, 4):
        chunks = st.plan_chunks(bounds, workers)
        for tenant, (low, high) in bounds.items():
            mine = sorted((lo, hi) for t, lo, hi in chunks if t == tenant)
            assert mine[0][0] == low and mine[-1][1] == high
            assert all(b[0] == a[1] + 1 for a, b in zip(mine, mine[1:]))
        if workers == 1:
            assert len(chunks) == 3
        else:
            assert len(chunks) > 3


def seg(first, last, kind, rows=None):
    return {"first_seq": first, "last_seq": last, "kind": kind, "rows": rows or last - first + 1}


def test_plan_runs_merges_adjacent_kinds_into_one_anchor():
    segments = [seg(5, 7, "seq_gap"), seg(8, 8, "hmac_mismatch"), seg(9, 9, "link_broken"), seg(20, 20, "hmac_mismatch")]
    runs = audit_retire.plan_runs(segments)
    assert [(r["first_seq"], r["last_seq"], r["resume_seq"], r["rows"], r["reason"]) for r in runs] == [
        (5, 9, 10, 2, "seq_gap,hmac_mismatch,link_broken"), (20, 20, 21, 1, "hmac_mismatch")]
    assert runs[0]["row_ranges"] == [[8, 9]]


def test_plan_runs_stops_before_seqs_an_existing_anchor_retired():
    existing = {6: {"retired_first_seq": 5, "resume_seq": 6}}
    runs = audit_retire.plan_runs([seg(4, 5, "seq_gap")], existing)
    assert [(r["first_seq"], r["last_seq"], r["resume_seq"]) for r in runs] == [(4, 4, 5)]


def test_ranges_and_capture_coverage():
    assert st.normalize_ranges([[5, 6], [1, 2], [3, 3], [10, 12]]) == [[1, 3], [5, 6], [10, 12]]
    with pytest.raises(st.AuditError):
        st.normalize_ranges([[3, 2]])
    segments = [seg(3, 4, "hmac_mismatch"), seg(9, 10, "seq_gap")]
    runs = audit_retire.plan_runs(segments)
    exact = {"seq_ranges": [[3, 4]], "segments": segments}
    assert st.capture_coverage_problems(exact, runs, segments) == []
    wider = {"seq_ranges": [[1, 40]], "segments": []}
    assert "holds seq ranges 1-40 but the rows to retire are 3-4" in st.capture_coverage_problems(wider, runs, segments)[0]
    assert st.capture_coverage_problems(wider, runs, segments, "superset") == []
    narrow = {"seq_ranges": [[4, 4]], "segments": segments}
    assert st.capture_coverage_problems(narrow, runs, segments, "superset") == ["the capture does not hold seq ranges 3-4"]
    stale = {"seq_ranges": [[3, 4]], "segments": segments[:1]}
    assert "other segments" in st.capture_coverage_problems(stale, runs, segments)[0]


@pytest.mark.parametrize("key", [b"", b"k", "clé-🔑-2", b"x" * 64, b"y" * 65, b"z" * 200])
def test_pad_hasher_is_hmac_sha256(key):
    for message in (b"", b"abc", b"\t" * 1000):
        assert st.PadHasher(key).hexdigest(message) == ac.ChainHasher(key).hexdigest(message)
