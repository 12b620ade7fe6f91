-- Least privilege on a real PostgreSQL server (what `madoguchi run` provisions in the embedded default,
-- madoguchi_shared.db.provision). Run once as a superuser, e.g.
--   psql -v ON_ERROR_STOP=1 -d madoguchi -f postgres-roles.sql
-- then set a password for each login role (\password mg_audit ...) and give each service its own
-- MADOGUCHI_PG_DSN in /etc/madoguchi/<service>.env. No service connects as a superuser.

-- One login role per service: none superuser, none may create roles or databases.
CREATE ROLE mg_reporting LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE mg_calls     LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE mg_audit     LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE mg_desk      LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;  -- no tables
CREATE ROLE mg_console   LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;  -- no tables
-- The owner that runs the audit migrations at deploy (`madoguchi audit migrate`); never a running service.
CREATE ROLE mg_migrator  LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;

-- The audit log's own roles (services/audit/README.md "Roles").
CREATE ROLE audit_owner  NOLOGIN;  -- owns the log; used only by retention to delete a verified archive
CREATE ROLE audit_writer NOLOGIN;  -- SELECT, INSERT on the log; its own bookkeeping; the alert tables
CREATE ROLE audit_reader NOLOGIN;  -- SELECT, for queries and the verifier

REVOKE CREATE ON DATABASE madoguchi FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CREATE ON DATABASE madoguchi TO mg_migrator;
GRANT audit_owner, audit_writer, audit_reader TO mg_migrator;

-- reporting and calls own their schema and nothing else; they migrate it themselves at start.
CREATE SCHEMA reporting AUTHORIZATION mg_reporting;
CREATE SCHEMA calls AUTHORIZATION mg_calls;

-- The audit service appends and reads; it is never the owner.
GRANT audit_writer, audit_reader TO mg_audit;
-- Nothing to grant per partition: audit.log is partitioned by day and its partitions are made by the migration
-- and by audit.ensure_log_ahead() (SECURITY DEFINER, owned by audit_owner), owned by audit_owner with no grants;
-- audit_writer and audit_reader reach the records only through audit.log (services/audit/README.md).
