-- batch_ops 0.2.0 -> 0.3.0
--
-- Run by ALTER EXTENSION batch_ops UPDATE.  Every change to the install
-- script (sql/batch_ops.sql) since 0.2.0 has its counterpart here, so that
-- an updated database and a fresh one have the same objects; the upgrade
-- test compares them.

\echo Use "ALTER EXTENSION batch_ops UPDATE TO '0.3.0'" to load this file. \quit

-- ====================================================================
-- Outbound batches: the engine, the job kind and the SQL API (issue #10
-- items 3 and 5).  A job's per-target results and its sealed inline
-- secrets live in tables PUBLIC cannot read; outbound_results() shows a
-- role its own jobs' results only.
-- ====================================================================

CREATE TABLE batch_ops.outbound_result (
	job_id         bigint NOT NULL REFERENCES batch_ops.job_queue ON DELETE CASCADE,
	index          integer NOT NULL,
	hostname       text NOT NULL,
	success        boolean,
	status_code    integer,
	output         jsonb,
	error          text,
	message        text,
	attempts       integer NOT NULL DEFAULT 0,
	execution_time float8,
	started_at     timestamptz,
	finished_at    timestamptz,
	PRIMARY KEY (job_id, index)
);

COMMENT ON TABLE batch_ops.outbound_result IS
'one row per target of an outbound job; a row without finished_at marks a change that was about to be sent';

CREATE TABLE batch_ops.outbound_secret (
	job_id bigint NOT NULL REFERENCES batch_ops.job_queue ON DELETE CASCADE,
	index  integer NOT NULL,
	sealed bytea NOT NULL,
	PRIMARY KEY (job_id, index)
);

COMMENT ON TABLE batch_ops.outbound_secret IS
'inline passwords of outbound jobs, encrypted under the credential key, deleted when the job ends';

REVOKE ALL ON batch_ops.outbound_result, batch_ops.outbound_secret FROM PUBLIC;

CREATE FUNCTION batch_ops.submit_outbound(spec jsonb, idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'batch_ops_submit_outbound'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.submit_outbound(jsonb, text) IS
'queue an outbound batch (one request per device or action); returns the job id';

CREATE FUNCTION batch_ops.run_outbound(spec jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_run_outbound'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.run_outbound(jsonb) IS
'run an outbound batch of up to batch_ops.max_sync_targets targets now and return its results';

CREATE FUNCTION batch_ops.outbound_results(job_id bigint)
RETURNS TABLE (index integer, hostname text, success boolean, status_code integer,
               output jsonb, error text, message text, attempts integer,
               execution_time float8, started_at timestamptz, finished_at timestamptz)
AS 'MODULE_PATHNAME', 'batch_ops_outbound_results'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100;

COMMENT ON FUNCTION batch_ops.outbound_results(bigint) IS
'every target''s result of one of the caller''s outbound jobs, by index';
-- Credentials and the outbound policy (issue #10; credential.c,
-- outbound_policy.c).
--
-- batch_ops.credential holds the secrets, sealed with AES-256-GCM under
-- the key in batch_ops.credential_key_file; PUBLIC has no access.  The
-- functions are SECURITY INVOKER: they check as the caller, then reach
-- the table as its owner (credential.c), as for the job tables.
CREATE TABLE batch_ops.credential (
	owner      oid NOT NULL,
	name       text NOT NULL,
	fields     text[] NOT NULL,
	options    jsonb NOT NULL DEFAULT '{}',
	sealed     bytea NOT NULL,
	grantees   oid[] NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (owner, name)
);

COMMENT ON TABLE batch_ops.credential IS
'named secrets, encrypted; read them through batch_ops.credentials (names of fields only)';

REVOKE ALL ON batch_ops.credential FROM PUBLIC;

CREATE FUNCTION batch_ops.credential_set(name text, secret jsonb, options jsonb DEFAULT '{}')
RETURNS void
AS 'MODULE_PATHNAME', 'batch_ops_credential_set'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.credential_set(text, jsonb, jsonb) IS
'create or replace one of the caller''s credentials; the secret is stored encrypted and never shown';

CREATE FUNCTION batch_ops.credential_drop(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'batch_ops_credential_drop'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.credential_drop(text) IS
'drop one of the caller''s credentials';

CREATE FUNCTION batch_ops.credential_grant(name text, grantee regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'batch_ops_credential_grant'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.credential_grant(text, regrole) IS
'let grantee (and its members) use one of the caller''s credentials';

CREATE FUNCTION batch_ops.credential_revoke(name text, grantee regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'batch_ops_credential_revoke'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.credential_revoke(text, regrole) IS
'undo credential_grant';

CREATE FUNCTION batch_ops.credential_list(
	OUT name text, OUT owner name, OUT fields text[], OUT grantees name[],
	OUT created_at timestamptz, OUT updated_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'batch_ops_credential_list'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.credential_list() IS
'the credentials the caller may use; see the view batch_ops.credentials';

CREATE VIEW batch_ops.credentials AS SELECT * FROM batch_ops.credential_list();

GRANT SELECT ON batch_ops.credentials TO PUBLIC;

COMMENT ON VIEW batch_ops.credentials IS
'the credentials the caller may use: names of their fields, never values (grantees for the owner only)';

-- Membership in batch_ops_outbound is what lets a role send outbound
-- requests; made and adopted exactly as batch_ops_fetch is.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'batch_ops_outbound') THEN
		CREATE ROLE batch_ops_outbound NOLOGIN;
	ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles
				   WHERE rolname = 'batch_ops_outbound'
					 AND (rolcanlogin OR rolsuper OR rolcreaterole OR rolcreatedb
						  OR rolreplication OR rolbypassrls)) THEN
		RAISE EXCEPTION 'role "batch_ops_outbound" already exists with attributes batch_ops does not give it'
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Drop the role, or make it NOLOGIN without other attributes, then create the extension.';
	END IF;
END
$$;
