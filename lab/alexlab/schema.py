"""The contract's audit tables (docs/contract.md section 4), with table names as identifiers.

The collection never creates these (the product does); the lab and the tests do.
"""
from psycopg2 import sql

_AUDIT = """
CREATE TABLE IF NOT EXISTS {schema}.{table} (
    tenant_id   text        NOT NULL,
    seq         bigint      NOT NULL CHECK (seq >= 1),
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    payload     jsonb       NOT NULL,
    prev_hmac   text        NOT NULL,
    row_hmac    text        NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE TABLE IF NOT EXISTS {schema}.{anchors} (
    tenant_id         text        NOT NULL,
    resume_seq        bigint      NOT NULL,
    resume_prev_hmac  text        NOT NULL,
    retired_first_seq bigint      NOT NULL,
    retired_last_seq  bigint      NOT NULL,
    retired_rows      bigint      NOT NULL,
    retired_sha256    text        NOT NULL,
    capture_sha256    text        NOT NULL,
    backup_sha256     text        NOT NULL,
    signoff           text        NOT NULL,
    reason            text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    anchor_hmac       text        NOT NULL,
    PRIMARY KEY (tenant_id, resume_seq)
);
CREATE TABLE IF NOT EXISTS {schema}.{quarantine} (
    tenant_id text NOT NULL, seq bigint NOT NULL, occurred_at timestamptz NOT NULL,
    actor text NOT NULL, action text NOT NULL, payload jsonb NOT NULL,
    prev_hmac text NOT NULL, row_hmac text NOT NULL,
    kind              text        NOT NULL,
    anchor_resume_seq bigint      NOT NULL,
    retired_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, seq)
);
CREATE TABLE IF NOT EXISTS {schema}.{rotations} (
    tenant_id         text   NOT NULL,
    first_seq         bigint NOT NULL CHECK (first_seq >= 1),
    old_key_id        text   NOT NULL,
    new_key_id        text   NOT NULL,
    reason            text   NOT NULL,
    old_last_seq      bigint NOT NULL,
    old_last_row_hmac text   NOT NULL,
    rotated_at        text   NOT NULL,
    old_key_hmac      text   NOT NULL,
    new_key_hmac      text   NOT NULL,
    PRIMARY KEY (tenant_id, new_key_id)
);
"""


def create_audit_tables(conn, schema="public", table="audit_logs", anchors="audit_chain_anchors",
                        quarantine="audit_quarantine", rotations="audit_key_rotations"):
    """Create the four audit tables (idempotent) in one transaction."""
    statement = sql.SQL(_AUDIT).format(
        schema=sql.Identifier(schema), table=sql.Identifier(table),
        anchors=sql.Identifier(anchors), quarantine=sql.Identifier(quarantine), rotations=sql.Identifier(rotations))
    with conn.cursor() as cur:
        if schema != "public":
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(statement)
    conn.commit()


# The API's own tables (not part of the contract: the collection reads them only through the API).
_APP = """
CREATE TABLE IF NOT EXISTS tenants (
    id             text        PRIMARY KEY,
    name           text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz
);
CREATE TABLE IF NOT EXISTS users (
    id             bigserial   PRIMARY KEY,
    username       text        NOT NULL,
    tenant_id      text        NOT NULL REFERENCES tenants (id),
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz,
    UNIQUE (tenant_id, username)
);
CREATE INDEX IF NOT EXISTS users_status ON users (status);
"""


def create_app_tables(conn):
    """Create the API's users and tenants tables (idempotent) in one transaction."""
    with conn.cursor() as cur:
        cur.execute(_APP)
    conn.commit()
