"""audit_store and audit_scan pure parts: the streaming sink, chunk merging, run planning (no database)."""
import datetime
import random

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac
from ansible_collections.alexandria.ee.plugins.module_utils import audit_retire
from ansible_collections.alexandria.ee.plugins.module_utils import audit_scan
from ansible_collections.alexandria.ee.plugins.module_utils import audit_ranges as ar
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


def message_of(row, tenant="t1"):
    return ac.row_message(tenant, row["seq"], row["occurred_at"], row["actor"], row["action"], row["payload"],
                          row["prev_hmac"])


def resign(row, tenant="t1"):
    row["row_hmac"] = ac.row_hmac(KEY, message_of(row, tenant))


def damaged(n=60):
    rows = chain(n)
    for r in rows[9:12]:
        r["payload"] = {"edited": True}
    del rows[30:33]
    rows[45]["prev_hmac"] = "e" * 64
    resign(rows[45])
    return rows


def sink_scan(data_chunks, start=(0, ac.GENESIS), anchors=None, batch_rows=None, tenant="t1", key=KEY):
    scan = ac.TenantScan(tenant, anchors)
    scan.last_seq, scan.last_row_hmac = start
    sink = audit_scan.ScanSink(key, scan)
    if batch_rows:
        sink.BATCH_ROWS = batch_rows
    for chunk in data_chunks:
        sink.write(chunk)
    sink.finish()
    scan.sink = sink
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
        for batch_rows in (None, 1, 3, 7):
            scan = sink_scan(chunks, batch_rows=batch_rows)
            assert scan.result() == expected, (len(chunks), batch_rows)


def test_sink_refuses_a_truncated_stream_and_foreign_columns():
    raw = b"".join(line + b"\n" for line in lines(chain(3)))
    scan = ac.TenantScan("t1")
    sink = audit_scan.ScanSink(KEY, scan)
    sink.write(raw[:-10])
    with pytest.raises(ac.AuditError, match="middle of a row"):
        sink.finish()
    sink = audit_scan.ScanSink(KEY, ac.TenantScan("t1"))
    sink.write(b"a\tb\tc\n")
    with pytest.raises(ac.AuditError, match="3 fields"):
        sink.finish()


def one_row_per_write(rows):
    return [line + b"\n" for line in lines(rows)]


@pytest.mark.parametrize("tenant", ["t1", "t\t;'\"ü\\x 🔑"])
def test_clean_batches_take_the_batch_path_and_count_every_row(tenant):
    rows = chain(50, tenant)
    scan = sink_scan(one_row_per_write(rows), batch_rows=8, tenant=tenant)
    assert scan.result() == ac.verify_copy_lines(KEY, lines(rows))[tenant]
    assert scan.result()["verified"] and scan.rows == scan.valid_rows == 50
    assert scan.sink.clean_batches == 7  # 6 full batches of 8 and the last 2 rows
    assert scan.sink.first_seq == 1 and scan.last_seq == 50 and scan.last_row_hmac == rows[-1]["row_hmac"]


@pytest.mark.parametrize("bad_index", [0, 7, 8, 9, 23, 39])
def test_one_bad_row_sends_only_its_batch_the_slow_way(bad_index):
    rows = chain(40)
    rows[bad_index]["action"] = "edited"
    expected = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    assert expected["segments"] == [{"first_seq": bad_index + 1, "last_seq": bad_index + 1, "rows": 1,
                                     "kind": "hmac_mismatch"}]
    scan = sink_scan(one_row_per_write(rows), batch_rows=8)
    assert scan.result() == expected
    assert scan.sink.clean_batches == 4


def test_batches_after_a_gap_a_relink_and_a_chunk_start_agree_with_the_reference():
    rows = chain(60)
    del rows[20:25]                       # seq gap 21-25 inside a batch
    rows[40]["prev_hmac"] = "0" * 64      # seq 46 relinked to nothing, its own HMAC made right again
    resign(rows[40])
    expected = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    # seq 46 links to nothing stored, and seq 47 to the old HMAC of 46: one link_broken segment.
    assert [(s["kind"], s["first_seq"], s["rows"]) for s in expected["segments"]] == [
        ("seq_gap", 21, 5), ("link_broken", 46, 2)]
    scan = sink_scan(one_row_per_write(rows), batch_rows=5)
    assert scan.result() == expected
    assert scan.sink.clean_batches >= 6
    # A chunk that starts at seq 31 from the stored row before it (what scan_range does).
    tail = [r for r in rows if r["seq"] >= 31]
    before = [r for r in rows if r["seq"] == 30][0]
    chunk = sink_scan(one_row_per_write(tail), start=(30, before["row_hmac"]), batch_rows=4)
    assert chunk.sink.first_seq == 31 and chunk.rows == len(tail)
    assert chunk.segments == [s for s in expected["segments"] if s["first_seq"] >= 31]


def test_a_duplicated_row_that_hides_a_gap_in_a_batch_is_not_taken_as_clean():
    # seqs 1..8 with 5 duplicated and 6 missing: first and last seq of the batch look right.
    rows = chain(8)
    rows = rows[:5] + [dict(rows[4])] + rows[6:]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 5, 7, 8]
    scan = sink_scan(one_row_per_write(rows), batch_rows=8)
    assert scan.sink.clean_batches == 0
    assert scan.result() == ac.verify_copy_lines(KEY, lines(rows))["t1"]
    assert {"first_seq": 6, "last_seq": 6, "rows": 1, "kind": "seq_gap"} in scan.result()["segments"]


@pytest.mark.parametrize("seed", range(12))
def test_random_damage_any_batch_size_and_split_gives_the_reference_result(seed):
    rnd = random.Random(seed)
    rows = chain(150)
    for _fault in range(rnd.randint(0, 4)):
        kind = rnd.choice(["edit", "delete", "relink", "duplicate"])
        index = rnd.randrange(len(rows))
        if kind == "edit":
            rows[index] = dict(rows[index], action="edited")
        elif kind == "delete":
            del rows[index:index + rnd.randint(1, 6)]
        elif kind == "relink":
            rows[index] = dict(rows[index], prev_hmac=rnd.choice("0123456789abcdef") * 64)
            resign(rows[index])
        else:
            rows.insert(index, dict(rows[index]))
    expected = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    items = one_row_per_write(rows)
    raw = b"".join(items)
    cuts = sorted(rnd.sample(range(1, len(raw)), 25))
    for chunks in (items, [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]):
        scan = sink_scan(chunks, batch_rows=rnd.choice([1, 2, 5, 16, 64, 512]))
        assert scan.result() == expected, seed


def relink_from(rows, index):
    """What a holder of the key could do: re-sign rows[index:] so each links to the row before it."""
    for i in range(index, len(rows)):
        rows[i] = dict(rows[i], prev_hmac=rows[i - 1]["row_hmac"])
        resign(rows[i])
    return rows


@pytest.mark.parametrize("gap_at", [8, 10])  # at a batch boundary (batches of 4) and inside a batch
def test_a_gap_bridged_by_resigned_links_is_still_a_seq_gap(gap_at):
    rows = chain(24)
    del rows[gap_at:gap_at + 3]
    relink_from(rows, gap_at)
    expected = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    assert expected["segments"] == [{"first_seq": gap_at + 1, "last_seq": gap_at + 3, "rows": 3, "kind": "seq_gap"}]
    scan = sink_scan(one_row_per_write(rows), batch_rows=4)
    assert scan.result() == expected


def test_repeated_seqs_bridging_a_gap_are_not_a_clean_batch():
    # Only a table without the contract's primary key holds these, and only a key holder signs them: a batch
    # of four rows numbered 12 after seq 8 has the right last seq and links that hold; its first seq tells.
    rows = chain(16)
    rows = rows[:8] + [dict(rows[11]) for _copy in range(4)] + rows[12:]
    relink_from(rows, 8)
    assert [r["seq"] for r in rows][6:14] == [7, 8, 12, 12, 12, 12, 13, 14]
    expected = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    assert expected["segments"] == [{"first_seq": 9, "last_seq": 11, "rows": 3, "kind": "seq_gap"}]
    scan = sink_scan(one_row_per_write(rows), batch_rows=4)
    assert scan.result() == expected


@pytest.mark.parametrize("field", ["prev_hmac", "row_hmac"])
def test_a_hash_field_with_a_right_hmac_at_its_end_but_more_before_it_is_not_clean(field):
    rows = chain(8)
    if field == "prev_hmac":
        rows[5] = dict(rows[5], prev_hmac="x" + rows[4]["row_hmac"])
        resign(rows[5])
        relink_from(rows, 6)
    else:  # "x" + the HMAC of the line up to that "x": what a batch would hash without its TAB checks
        rows[5] = dict(rows[5], row_hmac="x" + ac.row_hmac(KEY, message_of(rows[5]) + b"\t"))
    expected = ac.verify_copy_lines(KEY, lines(rows))["t1"]
    assert not expected["verified"]
    scan = sink_scan(one_row_per_write(rows), batch_rows=8)
    assert scan.result() == expected and scan.sink.clean_batches == 0


def test_a_wrong_key_fails_every_batch_and_reads_as_key_mismatch():
    rows = chain(30)
    scan = sink_scan(one_row_per_write(rows), batch_rows=8, key=b"another key")
    result = scan.result()
    assert result["probable_cause"] == "key_mismatch" and result["valid_rows"] == 0
    assert scan.sink.clean_batches == 0


def test_writes_of_several_rows_or_part_rows_never_pass_as_clean():
    rows = chain(24)
    items = one_row_per_write(rows)
    merged = [items[0] + items[1]] + items[2:]
    split = [items[0][:100], items[0][100:]] + items[1:]
    for chunks in (merged, split):
        scan = sink_scan(chunks, batch_rows=4)
        assert scan.result() == ac.verify_copy_lines(KEY, lines(rows))["t1"]
        assert scan.result()["verified"]


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
    assert ar.normalize_ranges([[5, 6], [1, 2], [3, 3], [10, 12]]) == [[1, 3], [5, 6], [10, 12]]
    with pytest.raises(st.AuditError):
        ar.normalize_ranges([[3, 2]])
    segments = [seg(3, 4, "hmac_mismatch"), seg(9, 10, "seq_gap")]
    runs = audit_retire.plan_runs(segments)
    exact = {"seq_ranges": [[3, 4]], "segments": segments}
    assert ar.capture_coverage_problems(exact, runs, segments) == []
    wider = {"seq_ranges": [[1, 40]], "segments": []}
    assert "holds seq ranges 1-40 but the rows to retire are 3-4" in ar.capture_coverage_problems(wider, runs, segments)[0]
    assert ar.capture_coverage_problems(wider, runs, segments, "superset") == []
    narrow = {"seq_ranges": [[4, 4]], "segments": segments}
    assert ar.capture_coverage_problems(narrow, runs, segments, "superset") == ["the capture does not hold seq ranges 3-4"]
    stale = {"seq_ranges": [[3, 4]], "segments": segments[:1]}
    assert "other segments" in ar.capture_coverage_problems(stale, runs, segments)[0]


@pytest.mark.parametrize("key", [b"", b"k", "clé-🔑-2", b"x" * 64, b"y" * 65, b"z" * 200])
def test_pad_hasher_is_hmac_sha256(key):
    for message in (b"", b"abc", b"\t" * 1000):
        assert audit_scan.PadHasher(key).hexdigest(message) == ac.ChainHasher(key).hexdigest(message)
