--
-- Credentials: the SQL API, its errors, who sees what (issue #10).
--
-- test/regress.conf names the key file batch_ops_credential.key in the
-- data directory; it does not exist yet.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
CREATE ROLE regress_cred_a;
CREATE ROLE regress_cred_b;
CREATE ROLE regress_cred_c;
CREATE ROLE regress_cred_team;
GRANT regress_cred_team TO regress_cred_c;

-- no key file: storing a secret is refused, and says why
SET ROLE regress_cred_a;
SELECT batch_ops.credential_set('core-ro', '{"username": "netops", "password": "s3cret-pw"}');
RESET ROLE;

-- a key file that others may read (COPY ... TO makes it 0644) is refused
DO $$
BEGIN
	EXECUTE format('COPY (SELECT repeat(''k'', 31)) TO %L',
				   current_setting('data_directory') || '/batch_ops_credential.key');
END
$$;
SELECT batch_ops.credential_set('core-ro', '{"username": "netops", "password": "s3cret-pw"}');
-- chmod 600 (the program runs in the data directory)
COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; chmod 600 batch_ops_credential.key';

-- the storage is not readable by PUBLIC
SET ROLE regress_cred_a;
SELECT * FROM batch_ops.credential;
SELECT batch_ops.credential_set('core-ro', '{"username": "netops", "password": "s3cret-pw"}');
SELECT batch_ops.credential_set('meraki', '{"api_key": "k-123"}',
								'{"header": "X-Cisco-Meraki-API-Key"}');
SELECT name, owner, fields, grantees, created_at = updated_at AS unchanged
  FROM batch_ops.credentials ORDER BY name;

-- replace: new fields, created_at kept, updated_at moves
SELECT pg_sleep(0.01);
SELECT batch_ops.credential_set('core-ro', '{"username": "netops", "password": "n3w", "enable_password": "en"}');
SELECT name, fields, created_at < updated_at AS updated
  FROM batch_ops.credentials WHERE name = 'core-ro';

-- no value anywhere in the view
SELECT count(*) FROM batch_ops.credentials c
 WHERE c::text LIKE '%s3cret%' OR c::text LIKE '%n3w%' OR c::text LIKE '%k-123%';

-- bad input
SELECT batch_ops.credential_set('x', '{"passwd": "p"}');
SELECT batch_ops.credential_set('x', '{"password": 42}');
SELECT batch_ops.credential_set('x', '{"password": null}');
SELECT batch_ops.credential_set('x', '["password"]');
SELECT batch_ops.credential_set('x', '"p"');
SELECT batch_ops.credential_set('x', '{}');
SELECT batch_ops.credential_set('x', '{"token": "t"}', '{"headers": "X"}');
SELECT batch_ops.credential_set('x', '{"token": "t"}', '{"header": "X: evil\r\nY"}');
SELECT batch_ops.credential_set('x', '{"token": "t"}', '{"header": 1}');
SELECT batch_ops.credential_set('', '{"token": "t"}');
SELECT batch_ops.credential_set(repeat('n', 201), '{"token": "t"}');
SELECT batch_ops.credential_set('a.b', '{"token": "t"}');
SELECT batch_ops.credential_set(NULL, '{"token": "t"}');
SELECT batch_ops.credential_set('x', NULL);
SELECT batch_ops.credential_grant('core-ro', NULL);
SELECT batch_ops.credential_grant('core-ro', 'no_such_role');

-- another role: A's credentials do not exist for it
SET ROLE regress_cred_b;
SELECT * FROM batch_ops.credentials;
SELECT batch_ops.credential_drop('core-ro');
SELECT batch_ops.credential_drop('no-such');
SELECT batch_ops.credential_grant('core-ro', 'regress_cred_b');
SELECT batch_ops.credential_revoke('core-ro', 'regress_cred_b');
SELECT batch_ops.credential_drop('regress_cred_a.core-ro');
-- B may have its own "core-ro"
SELECT batch_ops.credential_set('core-ro', '{"token": "b-token"}');
SELECT name, owner, fields FROM batch_ops.credentials;

-- grants: to a role and to a group
SET ROLE regress_cred_a;
SELECT batch_ops.credential_grant('core-ro', 'regress_cred_b');
SELECT batch_ops.credential_grant('core-ro', 'regress_cred_b');
SELECT batch_ops.credential_grant('meraki', 'regress_cred_team');
SELECT name, grantees FROM batch_ops.credentials ORDER BY name;

-- a grantee sees the credential, not its other grantees, and cannot manage it
SET ROLE regress_cred_b;
SELECT name, owner, fields, grantees FROM batch_ops.credentials ORDER BY owner, name;
SELECT batch_ops.credential_drop('regress_cred_a.core-ro');
SELECT batch_ops.credential_grant('regress_cred_a.core-ro', 'regress_cred_c');
-- a member of a grantee role
SET ROLE regress_cred_c;
SELECT name, owner, fields, grantees FROM batch_ops.credentials;
SELECT batch_ops.credential_drop('meraki');

-- revoke
SET ROLE regress_cred_a;
SELECT batch_ops.credential_revoke('core-ro', 'regress_cred_b');
SELECT batch_ops.credential_revoke('core-ro', 'regress_cred_b');
SELECT name, grantees FROM batch_ops.credentials ORDER BY name;
SET ROLE regress_cred_b;
SELECT name, owner FROM batch_ops.credentials;

-- a superuser sees every credential and manages them as owner.name
RESET ROLE;
SELECT name, owner, fields, grantees FROM batch_ops.credentials ORDER BY owner, name;
SELECT batch_ops.credential_drop('regress_cred_b.core-ro');
SELECT batch_ops.credential_drop('regress_cred_b.core-ro');

-- drop by the owner (also as owner.name)
SET ROLE regress_cred_a;
SELECT batch_ops.credential_drop('regress_cred_a.meraki');
SELECT batch_ops.credential_drop('meraki');
SELECT name FROM batch_ops.credentials;
SELECT batch_ops.credential_drop('core-ro');
RESET ROLE;

-- what the functions are: SECURITY INVOKER, callable by PUBLIC; the table
-- has no grants
SELECT p.proname, p.prosecdef
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'batch_ops' AND p.proname LIKE 'credential%' ORDER BY 1;
SELECT relacl FROM pg_class WHERE oid = 'batch_ops.credential'::regclass;
SELECT has_table_privilege('regress_cred_a', 'batch_ops.credential', 'SELECT') AS a_select;

-- the outbound role
SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'batch_ops_outbound';

DROP ROLE regress_cred_a, regress_cred_b, regress_cred_c, regress_cred_team;
