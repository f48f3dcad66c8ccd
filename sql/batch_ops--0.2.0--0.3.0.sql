-- batch_ops 0.2.0 -> 0.3.0
--
-- Run by ALTER EXTENSION batch_ops UPDATE.  Every change to the install
-- script (sql/batch_ops.sql) since 0.2.0 has its counterpart here, so that
-- an updated database and a fresh one have the same objects; the upgrade
-- test compares them.

\echo Use "ALTER EXTENSION batch_ops UPDATE TO '0.3.0'" to load this file. \quit

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
