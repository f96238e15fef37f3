"""api_log: the contract's log lines (docs/contract.md section 6) read back as events, exactly."""
import datetime
import json
import os
import re

import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import api_log

CONTRACT = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "contract.md")


def contract_log_examples():
    """The example block of contract section 6 (the lines the runbook's log checks look for)."""
    text = open(CONTRACT, encoding="utf-8").read()
    section = text[text.index("## 6. Log lines"):]
    block = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_every_contract_example_is_an_event_of_its_kind():
    lines = contract_log_examples()
    events = api_log.audit_events("\n".join("2026-11-27T09:52:00.123Z INFO " + line for line in lines))
    assert [e["kind"] for e in events] == ["hmac_mismatch", "chain_broken", "chain_broken", "anchor_reset"]
    assert all(e["tenant"] == "acme" for e in events)
    assert events[0]["first_seq"] == 100 and events[0]["last_seq"] == 120 and events[0]["rows"] == 21
    assert events[1]["segment_kind"] == "hmac_mismatch" and events[1]["probable_cause"] == "direct_db_edit"
    assert events[2]["note"] == "write refused" and events[2]["first_seq"] == events[2]["last_seq"] == 250
    assert events[3]["resume_seq"] == 121 and events[3]["retired_first_seq"] == 100
    assert events[3]["retired_last_seq"] == 120 and events[3]["signoff"] == "CR-2026-0042"


@pytest.mark.parametrize("tenant", ["acme", 'q"uo\\te', "tab\tnew\nline", "x seq=1-2 kind=y", "\u00e9\U0001f600",
                                    "resume_seq=9"])
def test_tenant_ids_read_back_exactly(tenant):
    for ensure_ascii in (True, False):
        words = json.dumps(tenant, ensure_ascii=ensure_ascii)
        line = "2026-11-27T09:54:00Z INFO audit chain anchor reset: tenant=%s resume_seq=121: writes resume" % words
        (event,) = api_log.audit_events(line)
        assert event["tenant"] == tenant and event["resume_seq"] == 121 and event["note"] == "writes resume"


def test_other_lines_are_not_events():
    text = "\n".join([
        "2026-11-27T09:54:00Z INFO GET /ready 200",
        "garbage",
        "2026-11-27T09:54:00Z ERROR audit chain broken: no tenant here",
        "2026-11-27T09:54:00Z ERROR orchestrator.sock: no such file or directory",
    ])
    assert api_log.audit_events(text) == []


def test_since_leaves_out_older_lines_and_keeps_unstamped_ones():
    text = "\n".join([
        '2026-11-27T09:52:00.100Z ERROR HMAC mismatch: tenant="a" seq=1-1 rows=1',
        '2026-11-27T10:52:00.200+01:00 ERROR HMAC mismatch: tenant="b" seq=1-1 rows=1',  # 09:52:00.2 UTC
        'HMAC mismatch: tenant="c" seq=1-1 rows=1',
        '2026-11-27T09:53:00Z ERROR HMAC mismatch: tenant="d" seq=1-1 rows=1',
    ])
    since = api_log.parse_time("2026-11-27T09:52:00.150Z")
    assert [e["tenant"] for e in api_log.audit_events(text, since)] == ["b", "c", "d"]
    assert api_log.audit_events(text)[1]["time"] == "2026-11-27T09:52:00.200000Z"


def test_parse_time():
    utc = datetime.timezone.utc
    assert api_log.parse_time("2026-11-27T09:52:00Z") == datetime.datetime(2026, 11, 27, 9, 52, tzinfo=utc)
    assert api_log.parse_time("2026-11-27T09:52:00.5-02:30") == datetime.datetime(2026, 11, 27, 12, 22, 0, 500000,
                                                                                  tzinfo=utc)
    for bad in ("yesterday", "2026-11-27", "2026-11-27T09:52:00", ""):
        with pytest.raises(ValueError):
            api_log.parse_time(bad)


def test_missing_events():
    events = [{"kind": "anchor_reset", "tenant": "a"}, {"kind": "chain_broken", "tenant": "b"}]
    expected = [{"kind": "anchor_reset", "tenant": "a"}, {"kind": "anchor_reset", "tenant": "b"}]
    assert api_log.missing_events(events, expected) == [{"kind": "anchor_reset", "tenant": "b"}]
    assert api_log.missing_events(events, []) == []
