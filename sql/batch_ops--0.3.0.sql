/* batch_ops.sql: the install script of the current version (built into batch_ops--<version>.sql) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION batch_ops" to load this file. \quit

GRANT USAGE ON SCHEMA batch_ops TO PUBLIC;

--
-- Batch CRUD.  All SECURITY INVOKER: the caller's privileges and row-level
-- security apply to every row.  Not STRICT: a NULL target or item list is an
-- error, not a NULL answer.
--
CREATE FUNCTION batch_ops.batch_create(target regclass, items jsonb,
									   atomic boolean DEFAULT false,
									   idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_create'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.batch_create(regclass, jsonb, boolean, text) IS
'insert a JSON array of objects into target; returns {"data": [...], "errors": [...]}';

CREATE FUNCTION batch_ops.batch_update(target regclass, items jsonb,
									   atomic boolean DEFAULT false,
									   idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_update'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.batch_update(regclass, jsonb, boolean, text) IS
'update rows of target by primary key from a JSON array of objects; only the columns present change';

CREATE FUNCTION batch_ops.batch_delete(target regclass, ids jsonb,
									   atomic boolean DEFAULT false,
									   idempotency_key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.batch_delete(regclass, jsonb, boolean, text) IS
'delete rows of target by primary key; returns {"deleted": n, "errors": [...]}';

-- ========================================================================
-- Idempotency keys and rate limits
-- ========================================================================

--
-- One row per (role, key) given as idempotency_key to a batch function: the
-- hash of the request and its response.  Written by the batch functions, as
-- the table's owner, in the caller's transaction.  PUBLIC has no access: no
-- role can read another role's stored responses.
--
-- Not registered with pg_extension_config_dump: keys are transient (they
-- expire after batch_ops.idempotency_ttl), and role holds OIDs, which mean
-- nothing in another cluster.  A dump and restore forgets the keys.
--
-- fillfactor leaves room on each page so that storing the response, an
-- UPDATE of the row just claimed, can be a HOT update.
--
CREATE TABLE batch_ops.idempotency_keys (
	role         oid NOT NULL,
	key          text COLLATE "C" NOT NULL,
	request_hash bytea NOT NULL,
	response     jsonb,
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL,
	PRIMARY KEY (role, key)
) WITH (fillfactor = 80);

-- A response is written on every keyed call and kept a day at most: lz4
-- compresses it several times faster than pglz (measured: the keyed
-- call's overhead drops by a third).  A server built without lz4 keeps
-- the default.
DO $$
BEGIN
	ALTER TABLE batch_ops.idempotency_keys ALTER COLUMN response SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	NULL;
END
$$;

REVOKE ALL ON batch_ops.idempotency_keys FROM PUBLIC;

COMMENT ON TABLE batch_ops.idempotency_keys IS
'idempotency keys of the batch functions: request hash and stored response per (role, key); not accessible to PUBLIC';
COMMENT ON COLUMN batch_ops.idempotency_keys.role IS
'OID of the role that made the call (its current user)';
COMMENT ON COLUMN batch_ops.idempotency_keys.request_hash IS
'SHA-256 of the operation, target, options and items';
COMMENT ON COLUMN batch_ops.idempotency_keys.response IS
'the response returned to the first call; NULL only while that call runs';
COMMENT ON COLUMN batch_ops.idempotency_keys.expires_at IS
'created_at + batch_ops.idempotency_ttl; an expired key counts as absent';

--
-- Deletes expired keys and finished jobs past batch_ops.job_ttl (every
-- role's).  Runs the DELETEs as the tables' owner; not executable by
-- PUBLIC: grant it to the role that schedules it.
--
CREATE FUNCTION batch_ops.purge()
RETURNS bigint
AS 'MODULE_PATHNAME', 'batch_ops_purge'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION batch_ops.purge() FROM PUBLIC;

COMMENT ON FUNCTION batch_ops.purge() IS
'delete expired idempotency keys and finished jobs older than batch_ops.job_ttl; returns how many were deleted';

--
-- The caller's token bucket (every role's for a superuser or a member of
-- pg_read_all_stats).  Needs shared_preload_libraries.
--
CREATE FUNCTION batch_ops.rate_limit_status()
RETURNS TABLE (role name, tokens float8, rate int, burst int)
AS 'MODULE_PATHNAME', 'batch_ops_rate_limit_status'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE ROWS 1;

COMMENT ON FUNCTION batch_ops.rate_limit_status() IS
'token buckets of the item rate limit: the caller''s (all roles'' for a superuser or a member of pg_read_all_stats); tokens is NULL when no limit applies';

-- ====================================================================
-- Async jobs: the job queue, CSV imports and submit_batch.
--
-- One queue per database, in these tables; PUBLIC cannot read them.  The
-- functions below are SECURITY INVOKER: they check what the caller may do
-- as the caller, then reach the tables as their owner and show a role only
-- its own jobs (every job to a superuser).  Jobs run in background workers
-- as the role that submitted them (needs shared_preload_libraries).
-- ====================================================================

CREATE TABLE batch_ops.job_queue (
	id               bigserial PRIMARY KEY,
	role             oid NOT NULL,
	kind             text NOT NULL,
	operation        text,
	target           oid,
	source           text,
	options          jsonb NOT NULL DEFAULT '{}',
	atomic           boolean NOT NULL DEFAULT false,
	status           text NOT NULL DEFAULT 'queued'
	                 CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
	cancel_requested boolean NOT NULL DEFAULT false,
	progress         integer NOT NULL DEFAULT 0,
	rows_done        bigint NOT NULL DEFAULT 0,
	errors_total     bigint NOT NULL DEFAULT 0,
	attempts         integer NOT NULL DEFAULT 0,
	worker_pid       integer,
	error            text,
	submitted_at     timestamptz NOT NULL DEFAULT now(),
	started_at       timestamptz,
	finished_at      timestamptz,
	checkpoint       jsonb NOT NULL DEFAULT '{}',
	summary          jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX job_queue_pending ON batch_ops.job_queue (id)
	WHERE status IN ('queued', 'running');
CREATE INDEX job_queue_finished ON batch_ops.job_queue (finished_at);

COMMENT ON TABLE batch_ops.job_queue IS
'async jobs of this database (see batch_ops.jobs); not accessible to PUBLIC';
COMMENT ON COLUMN batch_ops.job_queue.kind IS
'the job''s kind, by name (checked against the kinds the library has)';
COMMENT ON COLUMN batch_ops.job_queue.checkpoint IS
'the kind''s checkpoint, committed with the work before it (imports: offset, line, columns; batches: index)';
COMMENT ON COLUMN batch_ops.job_queue.summary IS
'counters (created, updated, deleted, failed) and the kind''s totals (bytes_total, items_total)';

CREATE TABLE batch_ops.job_error (
	job_id   bigint NOT NULL REFERENCES batch_ops.job_queue ON DELETE CASCADE,
	pos      bigint NOT NULL,
	line     bigint,
	index    bigint,
	error    text NOT NULL,
	message  text,
	sqlstate text,
	detail   text,
	raw      text,
	PRIMARY KEY (job_id, pos)
);

COMMENT ON TABLE batch_ops.job_error IS
'every bad row (imports, by line) or item (batches, by index) of a job';

CREATE TABLE batch_ops.job_item (
	job_id bigint NOT NULL REFERENCES batch_ops.job_queue ON DELETE CASCADE,
	idx    bigint NOT NULL,
	item   jsonb,
	PRIMARY KEY (job_id, idx)
);

COMMENT ON TABLE batch_ops.job_item IS
'the items of a submit_batch job until it finishes';

REVOKE ALL ON batch_ops.job_queue, batch_ops.job_error, batch_ops.job_item FROM PUBLIC;
REVOKE ALL ON SEQUENCE batch_ops.job_queue_id_seq FROM PUBLIC;

-- Membership in batch_ops_fetch is what lets a role import from URLs.  A
-- role is a cluster object: the extension of another database may have
-- made it already.  One that someone else made with more than NOLOGIN
-- (a login, superuser, ...) is not adopted: whoever made it could hold
-- ADMIN on it and hand out URL imports.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'batch_ops_fetch') THEN
		CREATE ROLE batch_ops_fetch NOLOGIN;
	ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles
				   WHERE rolname = 'batch_ops_fetch'
					 AND (rolcanlogin OR rolsuper OR rolcreaterole OR rolcreatedb
						  OR rolreplication OR rolbypassrls)) THEN
		RAISE EXCEPTION 'role "batch_ops_fetch" already exists with attributes batch_ops does not give it'
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Drop the role, or make it NOLOGIN without other attributes, then create the extension.';
	END IF;
END
$$;

CREATE FUNCTION batch_ops.submit_import(target regclass, source text,
										options jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'batch_ops_submit_import'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.submit_import(regclass, text, jsonb) IS
'queue a CSV import into target from a server file or an http(s) URL; returns the job id';

CREATE FUNCTION batch_ops.submit_batch(operation text, target regclass, items jsonb,
									   options jsonb DEFAULT '{}')
RETURNS bigint
AS 'MODULE_PATHNAME', 'batch_ops_submit_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.submit_batch(text, regclass, jsonb, jsonb) IS
'queue a create, update or delete batch of up to batch_ops.max_async_items items; returns the job id';

CREATE FUNCTION batch_ops.job(job_id bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_job'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.job(bigint) IS
'status, progress and results (first 100 errors) of one of the caller''s jobs';

CREATE FUNCTION batch_ops.wait_job(job_id bigint, timeout interval DEFAULT '1 hour')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'batch_ops_wait_job'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.wait_job(bigint, interval) IS
'wait until the job has finished or the timeout has passed, then return job(job_id)';

CREATE FUNCTION batch_ops.cancel_job(job_id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'batch_ops_cancel_job'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.cancel_job(bigint) IS
'cancel a queued or running job (at commit); false if it had already finished';

CREATE FUNCTION batch_ops.job_errors(job_id bigint)
RETURNS TABLE (line bigint, index integer, error text, message text, raw text)
AS 'MODULE_PATHNAME', 'batch_ops_job_errors'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100;

COMMENT ON FUNCTION batch_ops.job_errors(bigint) IS
'every error of one of the caller''s jobs, in file (or item) order';

CREATE FUNCTION batch_ops.job_list(
	OUT job_id bigint, OUT kind text, OUT operation text, OUT target text,
	OUT source text, OUT status text, OUT progress integer, OUT rows_done bigint,
	OUT created bigint, OUT updated bigint, OUT deleted bigint, OUT failed bigint,
	OUT errors_total bigint, OUT error text, OUT submitted_by text, OUT options jsonb,
	OUT submitted_at timestamptz, OUT started_at timestamptz, OUT finished_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'batch_ops_job_list'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION batch_ops.job_list() IS
'the caller''s jobs (every job for a superuser); see the view batch_ops.jobs';

CREATE VIEW batch_ops.jobs AS SELECT * FROM batch_ops.job_list();

GRANT SELECT ON batch_ops.jobs TO PUBLIC;

COMMENT ON VIEW batch_ops.jobs IS
'the caller''s async jobs (every job for a superuser)';

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

-- ====================================================================
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
