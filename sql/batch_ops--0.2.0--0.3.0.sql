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
-- =============================================================

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
-- Action batches (the Cisco Meraki model, issue #11): resources (path
-- templates mapped to tables) and action batches (drafts, confirmed
-- synchronous or asynchronous batches of create/update/destroy actions).
--
-- The tables are not accessible to PUBLIC.  The functions are SECURITY
-- INVOKER: they check what the caller may do as the caller, then reach
-- the tables as their owner with a pinned search_path, and show a role
-- only its own batches (every batch to a superuser).  An asynchronous
-- batch is a job of kind 'action_batch' (needs shared_preload_libraries).
-- ====================================================================

-- regclass and regrole, so that pg_dump writes the table's and the role's
-- names: the templates are configuration, dumped with the database
-- (pg_extension_config_dump below) and restored after its tables.
CREATE TABLE batch_ops.action_resource (
	path          text COLLATE "C" PRIMARY KEY,
	shape         text COLLATE "C" NOT NULL UNIQUE,
	target        regclass NOT NULL,
	variables     text[] NOT NULL,
	registered_by regrole NOT NULL,
	registered_at timestamptz NOT NULL DEFAULT now()
);

SELECT pg_catalog.pg_extension_config_dump('batch_ops.action_resource', '');

COMMENT ON TABLE batch_ops.action_resource IS
'path templates of action batches (see batch_ops.resources); not accessible to PUBLIC';
COMMENT ON COLUMN batch_ops.action_resource.shape IS
'the path with each {variable} written {}: two templates that would match the same paths have the same shape';

CREATE TABLE batch_ops.action_batch (
	id           bigserial PRIMARY KEY,
	role         oid NOT NULL,
	state        text NOT NULL
	             CHECK (state IN ('draft', 'queued', 'running', 'completed', 'failed')),
	confirmed    boolean NOT NULL,
	synchronous  boolean NOT NULL,
	actions      jsonb NOT NULL,
	callback     jsonb,
	job_id       bigint,
	status       jsonb,
	created_at   timestamptz NOT NULL DEFAULT now(),
	confirmed_at timestamptz,
	finished_at  timestamptz
);

-- Lookups are by id; purge() finds drafts by age.  No other index: each
-- synchronous batch inserts a row, and every index would cost it.
CREATE INDEX action_batch_drafts ON batch_ops.action_batch (created_at)
	WHERE state = 'draft';

COMMENT ON TABLE batch_ops.action_batch IS
'action batches of this database (see batch_ops.action_batches); not accessible to PUBLIC';
COMMENT ON COLUMN batch_ops.action_batch.status IS
'Meraki''s status object once the batch has run: completed, failed, errors, createdResources';

-- Every synchronous batch writes its actions and status: lz4 compresses
-- them several times faster than pglz (as for idempotency_keys.response).
DO $$
BEGIN
	ALTER TABLE batch_ops.action_batch ALTER COLUMN actions SET COMPRESSION lz4,
		ALTER COLUMN status SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	NULL;
END
$$;

REVOKE ALL ON batch_ops.action_resource, batch_ops.action_batch FROM PUBLIC;
REVOKE ALL ON SEQUENCE batch_ops.action_batch_id_seq FROM PUBLIC;

--
-- Each batch with its answer (the JSON of action_batch()).  A batch whose
-- job ended without the kind recording its end (the role was dropped, the
-- worker gave up) reads as failed, with the job's error.  Internal: the
-- functions read it as the owner, the view below gives each role its own.
--
CREATE VIEW batch_ops.action_batch_info AS
SELECT b.id, b.role, s.state, b.confirmed, b.synchronous, b.actions, b.callback,
	   b.job_id, s.status, b.created_at, b.confirmed_at,
	   coalesce(b.finished_at, CASE WHEN s.job_failed THEN j.finished_at END) AS finished_at,
	   pg_catalog.jsonb_build_object(
		   'id', b.id, 'state', s.state, 'confirmed', b.confirmed,
		   'synchronous', b.synchronous, 'status', s.status, 'actions', b.actions,
		   'job_id', b.job_id, 'callback', b.callback,
		   'submitted_by', coalesce(pg_catalog.pg_get_userbyid(b.role)::pg_catalog.text,
									b.role::pg_catalog.text),
		   'created_at', b.created_at, 'confirmed_at', b.confirmed_at,
		   'finished_at', coalesce(b.finished_at, CASE WHEN s.job_failed THEN j.finished_at END))
		   AS answer
  FROM batch_ops.action_batch b
  LEFT JOIN batch_ops.job_queue j ON j.id OPERATOR(pg_catalog.=) b.job_id
 CROSS JOIN LATERAL (
	SELECT b.state OPERATOR(pg_catalog.=) ANY ('{queued,running}'::pg_catalog.text[])
		   AND (j.id IS NULL OR j.status OPERATOR(pg_catalog.=)
				ANY ('{failed,cancelled,completed}'::pg_catalog.text[])) AS job_failed) f
 CROSS JOIN LATERAL (
	SELECT CASE WHEN f.job_failed THEN 'failed'
				WHEN b.state OPERATOR(pg_catalog.=) 'queued'
					 AND j.status OPERATOR(pg_catalog.=) 'running' THEN 'running'
				ELSE b.state END AS state,
		   f.job_failed,
		   coalesce(b.status,
			   pg_catalog.jsonb_build_object(
				   'completed', false, 'failed', f.job_failed,
				   'errors', CASE WHEN f.job_failed THEN pg_catalog.jsonb_build_array(
						pg_catalog.jsonb_build_object(
							'error', CASE WHEN j.status OPERATOR(pg_catalog.=) 'cancelled'
										  THEN 'cancelled' ELSE 'job_failed' END,
							'message', coalesce(j.error, 'the job of the batch ended before the batch did')))
						ELSE '[]'::pg_catalog.jsonb END,
				   'createdResources', '[]'::pg_catalog.jsonb)) AS status) s;

REVOKE ALL ON batch_ops.action_batch_info FROM PUBLIC;

CREATE FUNCTION batch_ops.register_resource(path text, target regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'batch_ops_register_resource'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.register_resource(text, regclass) IS
'map a path template such as ''/networks/{network_id}/devices/{serial}'' to a table (its owner only); {variables} are columns';

CREATE FUNCTION batch_ops.unregister_resource(path text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'batch_ops_unregister_resource'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.unregister_resource(text) IS
'drop a path template (who registered it, the table''s owner or a superuser); false if there is none';

CREATE FUNCTION batch_ops.create_action_batch(actions jsonb,
											  confirmed boolean DEFAULT false,
											  synchronous boolean DEFAULT false,
											  callback jsonb DEFAULT NULL,
											  idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_create_action_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.create_action_batch(jsonb, boolean, boolean, jsonb, text) IS
'create an action batch: a draft, or confirmed to run now (synchronous) or as a job; returns the batch';

CREATE FUNCTION batch_ops.update_action_batch(batch_id bigint,
											  confirmed boolean DEFAULT NULL,
											  synchronous boolean DEFAULT NULL,
											  actions jsonb DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_update_action_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.update_action_batch(bigint, boolean, boolean, jsonb) IS
'edit a draft (actions, synchronous) or confirm it, which runs it; a confirmed batch cannot change (55000)';

CREATE FUNCTION batch_ops.delete_action_batch(batch_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'batch_ops_delete_action_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.delete_action_batch(bigint) IS
'delete a draft; a confirmed batch cannot be deleted (55000)';

CREATE FUNCTION batch_ops.action_batch(batch_id bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_action_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.action_batch(bigint) IS
'one of the caller''s action batches: state, status (completed, failed, errors, createdResources), actions';

CREATE FUNCTION batch_ops.wait_action_batch(batch_id bigint, timeout interval DEFAULT '10 min')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_wait_action_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.wait_action_batch(bigint, interval) IS
'wait until a queued or running action batch has finished or the timeout has passed, then return action_batch(batch_id)';

CREATE VIEW batch_ops.action_batches WITH (security_barrier) AS
SELECT i.id, i.state, i.confirmed, i.synchronous, i.actions,
	   (i.status OPERATOR(pg_catalog.->>) 'completed')::pg_catalog.bool AS completed,
	   (i.status OPERATOR(pg_catalog.->>) 'failed')::pg_catalog.bool AS failed,
	   i.status, i.job_id, i.callback,
	   coalesce(pg_catalog.pg_get_userbyid(i.role)::pg_catalog.text, i.role::pg_catalog.text)
		   AS submitted_by,
	   i.created_at, i.confirmed_at, i.finished_at
  FROM batch_ops.action_batch_info i
 WHERE i.role OPERATOR(pg_catalog.=)
		   (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
	OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER);

GRANT SELECT ON batch_ops.action_batches TO PUBLIC;

COMMENT ON VIEW batch_ops.action_batches IS
'the caller''s action batches (every batch for a superuser)';

CREATE VIEW batch_ops.resources WITH (security_barrier) AS
SELECT r.path, r.target::pg_catalog.regclass AS target, r.variables,
	   coalesce(pg_catalog.pg_get_userbyid(r.registered_by)::pg_catalog.text,
				r.registered_by::pg_catalog.text) AS registered_by,
	   r.registered_at
  FROM batch_ops.action_resource r
 WHERE r.registered_by OPERATOR(pg_catalog.=)
		   (SELECT a.oid FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
	OR pg_catalog.has_table_privilege(r.target, 'SELECT, INSERT, UPDATE, DELETE')
	OR (SELECT a.rolsuper FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) CURRENT_USER);

GRANT SELECT ON batch_ops.resources TO PUBLIC;

COMMENT ON VIEW batch_ops.resources IS
'path templates the caller registered or whose table it may read or write (every one for a superuser)';
