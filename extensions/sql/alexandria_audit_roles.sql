-- PostgreSQL roles for the alexandria.ee audit modules (docs/security.md, "Database roles").
--
-- Run once per product database, as the owner of the audit tables (or a superuser):
--     psql "$DSN" -v ON_ERROR_STOP=1 -f alexandria_audit_roles.sql
-- then give the roles to the login roles the automation uses, for example
--     CREATE ROLE alex_watch LOGIN PASSWORD '...' IN ROLE alexandria_audit_reader;
--     CREATE ROLE alex_responder LOGIN PASSWORD '...' IN ROLE alexandria_audit_retirer;
-- Neither role is a superuser, creates anything, or owns a table; both are NOLOGIN groups. The table names are
-- the contract's defaults (docs/contract.md section 4): replace public.audit_logs, public.audit_chain_anchors and
-- public.audit_quarantine if the modules' schema/table options differ. Running it again changes nothing.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'alexandria_audit_reader') THEN
        CREATE ROLE alexandria_audit_reader NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'alexandria_audit_retirer') THEN
        CREATE ROLE alexandria_audit_retirer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
END
$roles$;

-- alexandria_audit_reader: alex_audit_verify (scenario 3's scope, the watch, the restore drill's verification),
-- alex_audit_export (the capture), alex_audit_backup state=present (pg_dump of the audit tables).
-- The rest every role has already: pg_export_snapshot (one snapshot for the verify workers and pg_dump),
-- pg_control_system (the database identity), pg_advisory_xact_lock (the writers' lock).
GRANT USAGE ON SCHEMA public TO alexandria_audit_reader;
GRANT SELECT ON TABLE public.audit_logs, public.audit_chain_anchors, public.audit_quarantine
    TO alexandria_audit_reader;

-- alexandria_audit_retirer: everything the reader may, plus
--   alex_audit_retire (RetireUnverifiableAuditRows): DELETE the unverifiable rows from audit_logs, INSERT them into
--     audit_quarantine, INSERT the anchors;
--   alex_audit_backup state=restored (the rollback playbook): TRUNCATE the three tables (which also allows the
--     ACCESS EXCLUSIVE lock it takes first) and INSERT the backup's rows (COPY FROM).
-- No UPDATE anywhere: no module rewrites a row in place.
GRANT alexandria_audit_reader TO alexandria_audit_retirer;
GRANT DELETE ON TABLE public.audit_logs TO alexandria_audit_retirer;
GRANT INSERT ON TABLE public.audit_quarantine, public.audit_chain_anchors TO alexandria_audit_retirer;
GRANT TRUNCATE, INSERT ON TABLE public.audit_logs, public.audit_chain_anchors, public.audit_quarantine
    TO alexandria_audit_retirer;

-- The key rotation records (docs/contract.md, "Key epochs"), where the deployment has them: every verification
-- reads them (each epoch's key), the backup dumps them, the rollback restores them with the rows they belong to.
DO $rotations$
BEGIN
    IF to_regclass('public.audit_key_rotations') IS NOT NULL THEN
        GRANT SELECT ON TABLE public.audit_key_rotations TO alexandria_audit_reader;
        GRANT TRUNCATE, INSERT ON TABLE public.audit_key_rotations TO alexandria_audit_retirer;
    END IF;
END
$rotations$;
