"""The contract's test vectors, both directions: encode Python values, verify PostgreSQL's own COPY text."""
import io
import json
import pathlib
import re

import psycopg2
import pytest

from ansible_collections.alexandria.ee.plugins.module_utils import audit_chain as ac

CONTRACT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def load_vectors():
    text = CONTRACT.read_text(encoding="utf-8")
    block = re.search(r"<!-- test-vectors:begin -->\s*```json\n(.*?)```\s*<!-- test-vectors:end -->", text, re.S)
    assert block, "docs/contract.md lost its test-vectors block"
    return json.loads(block.group(1))


VECTORS = load_vectors()
SCHEMA = re.search(r"```sql\n(.*?)```", CONTRACT.read_text(encoding="utf-8"), re.S).group(1)


def test_contract_has_at_least_three_vectors():
    assert len(VECTORS["chains"]) >= 3
    assert sum(len(c["rows"]) for c in VECTORS["chains"]) >= 6


@pytest.mark.parametrize("chain", VECTORS["chains"], ids=lambda c: c["tenant_id"][:12])
def test_encode_direction(chain):
    prev = ac.GENESIS
    for row in chain["rows"]:
        assert row["prev_hmac"] == prev
        message = ac.row_message(chain["tenant_id"], row["seq"], row["occurred_at"], row["actor"], row["action"],
                                 row["payload"], row["prev_hmac"])
        assert message == row["message"].encode("utf-8")
        assert ac.row_hmac(chain["key"], message) == row["row_hmac"]
        prev = row["row_hmac"]


def test_anchor_vector():
    anchor = VECTORS["anchor"]
    assert ac.anchor_message(anchor) == anchor["message"].encode("utf-8")
    assert ac.anchor_hmac(anchor["key"], anchor) == anchor["anchor_hmac"]


def _copy_out(cur, tenant):
    buf = io.BytesIO()
    query = cur.mogrify(
        "COPY (SELECT tenant_id, seq, occurred_at, actor, action, payload, prev_hmac, row_hmac "
        "FROM audit_logs WHERE tenant_id = %s ORDER BY seq) TO STDOUT", (tenant,))
    cur.copy_expert(query.decode("utf-8"), buf)
    return buf.getvalue().splitlines()


@pytest.mark.parametrize("chain", VECTORS["chains"], ids=lambda c: c["tenant_id"][:12])
def test_verify_direction_against_postgres(pg_dsn, chain):
    """Insert the vectors' values into a real PostgreSQL; the COPY text it prints must verify."""
    conn = psycopg2.connect(pg_dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
        cur.execute(SCHEMA)
        for row in chain["rows"]:
            cur.execute(
                "INSERT INTO audit_logs VALUES (%s, %s, %s::timestamptz, %s, %s, %s::jsonb, %s, %s)",
                (chain["tenant_id"], row["seq"], row["occurred_at"], row["actor"], row["action"], row["payload"],
                 row["prev_hmac"], row["row_hmac"]))
        lines = _copy_out(cur, chain["tenant_id"])
    conn.close()
    for line, row in zip(lines, chain["rows"]):
        assert line.rpartition(b"\t")[0] == row["message"].encode("utf-8")
    result = ac.verify_copy_lines(chain["key"], lines)
    assert result == {chain["tenant_id"]: {"rows": len(chain["rows"]), "valid_rows": len(chain["rows"]),
                                           "segments": [], "verified": True, "probable_cause": None}}
    # Another key fails every row: that is a key mismatch, not tampering.
    wrong = ac.verify_copy_lines(chain["key"] + "x", lines)[chain["tenant_id"]]
    assert wrong["valid_rows"] == 0
    assert wrong["probable_cause"] == "key_mismatch"
