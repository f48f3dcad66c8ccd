\unset ECHO
-- pgTAP: the API surface of batch_ops -- the batch functions, the job API,
-- the objects behind them, who may use what, and the settings.
--
-- What a caller relies on: the names, argument names, defaults and result
-- types of the functions (named-parameter calls break when an argument is
-- renamed), that every function is SECURITY INVOKER (README "Reference",
-- DESIGN "SQL API"), that PUBLIC may call the batch and job functions but
-- never reads the job or key tables, and the settings with their defaults
-- and who may change them.  Catalog checks only; the behaviour behind them
-- is in the pg_regress tests and test/pgtap/jobs_privileges.sql.
--
-- Runs in one transaction, rolled back at the end (nothing is left behind,
-- even when a statement fails: psql stops and the server aborts it).
--
-- The per-function checks are driven by the table bo_tap_api below: one
-- row per function, one test per row and check.  Each SELECT reads the
-- table through an ordered subquery, so the tests run (and are numbered)
-- in the order they are printed.
-- psql settings, the session's styles, BEGIN, the extensions (pg_regress
-- feeds the file on stdin from the top of the tree)
\i test/pgtap/setup.psql

-- The documented functions.  args: the argument types as pgTAP names them
-- (format_type, IN arguments only); arguments: pg_get_function_arguments(),
-- i.e. names, modes and defaults exactly; result: pg_get_function_result().
CREATE TEMP TABLE bo_tap_api (
    n           int PRIMARY KEY,
    name        name NOT NULL,
    args        name[] NOT NULL,
    arguments   text NOT NULL,
    returns     text NOT NULL,    -- as pgTAP's function_returns() spells it
    result      text NOT NULL,
    public_exec boolean NOT NULL, -- PUBLIC may EXECUTE it
    not_strict  boolean NOT NULL  -- must not be STRICT (a NULL argument is an error, not a NULL answer)
) ON COMMIT DROP;
INSERT INTO bo_tap_api VALUES
 (1, 'batch_create', '{regclass,jsonb,boolean,text}',
  'target regclass, items jsonb, atomic boolean DEFAULT false, idempotency_key text DEFAULT NULL::text',
  'jsonb', 'jsonb', true, true),
 (2, 'batch_update', '{regclass,jsonb,boolean,text}',
  'target regclass, items jsonb, atomic boolean DEFAULT false, idempotency_key text DEFAULT NULL::text',
  'jsonb', 'jsonb', true, true),
 (3, 'batch_delete', '{regclass,jsonb,boolean,text}',
  'target regclass, ids jsonb, atomic boolean DEFAULT false, idempotency_key text DEFAULT NULL::text',
  'jsonb', 'jsonb', true, true),
 (4, 'submit_import', '{regclass,text,jsonb}',
  'target regclass, source text, options jsonb DEFAULT ''{}''::jsonb',
  'bigint', 'bigint', true, true),
 (5, 'submit_batch', '{text,regclass,jsonb,jsonb}',
  'operation text, target regclass, items jsonb, options jsonb DEFAULT ''{}''::jsonb',
  'bigint', 'bigint', true, true),
 (6, 'job', '{bigint}', 'job_id bigint', 'jsonb', 'jsonb', true, true),
 -- DEFAULT '1 hour', as PostgreSQL prints it
 (7, 'wait_job', '{bigint,interval}',
  'job_id bigint, timeout interval DEFAULT ''01:00:00''::interval',
  'jsonb', 'jsonb', true, true),
 (8, 'cancel_job', '{bigint}', 'job_id bigint', 'boolean', 'boolean', true, true),
 (9, 'job_errors', '{bigint}', 'job_id bigint', 'setof record',
  'TABLE(line bigint, index integer, error text, message text, raw text)', true, true),
 (10, 'job_list', '{}',
  'OUT job_id bigint, OUT kind text, OUT operation text, OUT target text, OUT source text, '
  'OUT status text, OUT progress integer, OUT rows_done bigint, OUT created bigint, '
  'OUT updated bigint, OUT deleted bigint, OUT failed bigint, OUT errors_total bigint, '
  'OUT error text, OUT submitted_by text, OUT options jsonb, '
  'OUT submitted_at timestamp with time zone, OUT started_at timestamp with time zone, '
  'OUT finished_at timestamp with time zone',
  'setof record', 'SETOF record', true, false),
 (11, 'purge', '{}', '', 'bigint', 'bigint', false, false),
 (12, 'rate_limit_status', '{}', '', 'setof record',
  'TABLE(role name, tokens double precision, rate integer, burst integer)', true, false),
 (13, 'resume_job', '{bigint}', 'job_id bigint', 'jsonb', 'jsonb', true, true);

-- The function's OID, or NULL when there is no such function.
CREATE FUNCTION pg_temp.bo_fn(name, name[]) RETURNS regprocedure
LANGUAGE sql STABLE AS
$$ SELECT to_regprocedure(format('batch_ops.%I(%s)', $1, array_to_string($2, ','))) $$;

-- functions: 13 x 10 checks, 10 not STRICT, 2 over all of them; the view 6;
-- tables 8; PUBLIC and the tables 8; batch_ops_fetch 3; settings 11 x 2 + 2
SELECT plan(13 * 10 + 10 + 2 + 6 + 8 + 8 + 3 + 11 * 2 + 2);

-- ------------------------------------------------------------ functions
SELECT has_function('batch_ops', name, args,
                    format('batch_ops.%s(%s) exists', name, array_to_string(args, ', ')))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
-- one function per name: no stray overload makes a named call ambiguous
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'batch_ops'::regnamespace AND proname = a.name),
          1::bigint, format('batch_ops.%s has no other overload', name))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
SELECT is(pg_get_function_arguments(pg_temp.bo_fn(name, args)), arguments,
          format('batch_ops.%s: argument names, modes and defaults', name))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
SELECT function_returns('batch_ops', name, args, returns,
                        format('batch_ops.%s returns %s', name, returns))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
SELECT is(pg_get_function_result(pg_temp.bo_fn(name, args)), result,
          format('batch_ops.%s: result %s', name, result))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
SELECT isnt_definer('batch_ops', name, args,
                    format('batch_ops.%s is SECURITY INVOKER', name))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
SELECT volatility_is('batch_ops', name, args, 'volatile',
                     format('batch_ops.%s is VOLATILE', name))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
-- they write, switch users or wait: never in a parallel worker
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = pg_temp.bo_fn(name, args)),
          'u'::"char", format('batch_ops.%s is PARALLEL UNSAFE', name))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
SELECT ok(coalesce(btrim(obj_description(pg_temp.bo_fn(name, args), 'pg_proc')) <> '', false),
          format('batch_ops.%s has a COMMENT', name))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;
SELECT function_privs_are('batch_ops', name, args, 'public',
                          CASE WHEN public_exec THEN ARRAY['EXECUTE'] ELSE ARRAY[]::name[] END,
                          format('PUBLIC %s execute batch_ops.%s',
                                 CASE WHEN public_exec THEN 'may' ELSE 'may not' END, name))
  FROM (SELECT * FROM bo_tap_api ORDER BY n) a;

-- a NULL target, item list, operation or job id is an ERROR (22004 and
-- "... must not be null"), which a STRICT function would turn into NULL
SELECT isnt_strict('batch_ops', name, args,
                   format('batch_ops.%s is not STRICT', name))
  FROM (SELECT * FROM bo_tap_api WHERE not_strict ORDER BY n) a;       -- 10 tests
-- every function of the schema is SECURITY INVOKER, including any not
-- listed above (DESIGN: "All functions are SECURITY INVOKER")
SELECT is(ARRAY(SELECT oid::regprocedure::text FROM pg_proc
                 WHERE pronamespace = 'batch_ops'::regnamespace AND prosecdef ORDER BY 1),
          ARRAY[]::text[], 'no function in schema batch_ops is SECURITY DEFINER');
SELECT is(ARRAY(SELECT a.name::text FROM bo_tap_api a
                 WHERE NOT EXISTS (SELECT FROM pg_depend d
                                    WHERE d.classid = 'pg_proc'::regclass
                                      AND d.objid = pg_temp.bo_fn(a.name, a.args)
                                      AND d.refclassid = 'pg_extension'::regclass
                                      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'batch_ops')
                                      AND d.deptype = 'e')
                 ORDER BY a.n),
          ARRAY[]::text[], 'every documented function is a member of the extension');

-- ------------------------------------------------------------ the view
SELECT has_view('batch_ops', 'jobs', 'the view batch_ops.jobs exists');
SELECT columns_are('batch_ops', 'jobs',
                   ARRAY['job_id', 'kind', 'operation', 'target', 'source', 'status', 'progress',
                         'rows_done', 'created', 'updated', 'deleted', 'failed', 'errors_total',
                         'error', 'submitted_by', 'options', 'submitted_at', 'started_at',
                         'finished_at'],
                   'batch_ops.jobs has the columns of job_list()');
SELECT table_privs_are('batch_ops', 'jobs', 'public', ARRAY['SELECT'],
                       'PUBLIC may only SELECT from batch_ops.jobs');
-- The view must call job_list() (which shows the caller its own jobs),
-- not read job_queue itself as the view's owner.
SELECT ok(pg_get_viewdef('batch_ops.jobs'::regclass) ~ 'batch_ops\.job_list\(\)'
          AND pg_get_viewdef('batch_ops.jobs'::regclass) !~ 'job_queue',
          'batch_ops.jobs is a view of job_list(), not of job_queue');
SELECT ok(coalesce(btrim(obj_description('batch_ops.jobs'::regclass, 'pg_class')) <> '', false),
          'batch_ops.jobs has a COMMENT');
SELECT schema_privs_are('batch_ops', 'public', ARRAY['USAGE'],
                        'PUBLIC has USAGE on schema batch_ops, and not CREATE');

-- ------------------------------------------------------------ tables
SELECT has_table('batch_ops', 'job_queue', 'the table batch_ops.job_queue exists');
SELECT has_table('batch_ops', 'job_error', 'the table batch_ops.job_error exists');
SELECT has_table('batch_ops', 'job_item', 'the table batch_ops.job_item exists');
SELECT has_table('batch_ops', 'idempotency_keys', 'the table batch_ops.idempotency_keys exists');
SELECT has_sequence('batch_ops', 'job_queue_id_seq', 'the sequence batch_ops.job_queue_id_seq exists');
SELECT is(pg_get_serial_sequence('batch_ops.job_queue', 'id'), 'batch_ops.job_queue_id_seq',
          'it is the sequence of job_queue.id');
SELECT col_is_pk('batch_ops', 'job_queue', 'id', 'job_queue.id is the primary key (the job id)');
SELECT is(ARRAY(SELECT t FROM unnest(ARRAY['job_queue', 'job_error', 'job_item', 'idempotency_keys',
                                           'jobs', 'job_queue_id_seq']) AS t
                 WHERE NOT EXISTS (SELECT FROM pg_depend d
                                    WHERE d.classid = 'pg_class'::regclass
                                      AND d.objid = to_regclass('batch_ops.' || t)
                                      AND d.refclassid = 'pg_extension'::regclass
                                      AND d.deptype = 'e')),
          ARRAY[]::text[], 'the tables, the view and the sequence are members of the extension');

-- ------------------------------------------------------------ PUBLIC and the tables
SELECT table_privs_are('batch_ops', t, 'public', ARRAY[]::name[],
                       format('PUBLIC has no privilege on batch_ops.%s', t))
  FROM unnest(ARRAY['job_queue', 'job_error', 'job_item', 'idempotency_keys']::name[]) AS u(t);
SELECT is((SELECT count(*) FROM information_schema.column_privileges
            WHERE table_schema = 'batch_ops'
              AND table_name IN ('job_queue', 'job_error', 'job_item', 'idempotency_keys')
              AND grantee = 'PUBLIC'),
          0::bigint, 'nor on any of their columns');
-- also checked with the ACL itself: has_table_privilege('public', ...) is
-- what table_privs_are() asks, this is the catalog entry behind it
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c, aclexplode(c.relacl) a
                 WHERE c.relnamespace = 'batch_ops'::regnamespace
                   AND c.relname IN ('job_queue', 'job_error', 'job_item', 'idempotency_keys',
                                     'job_queue_id_seq')
                   AND a.grantee = 0
                 ORDER BY 1),
          ARRAY[]::text[], 'no ACL entry for PUBLIC on the job tables, the key table or the job id sequence');
SELECT sequence_privs_are('batch_ops', 'job_queue_id_seq', 'public', ARRAY[]::name[],
                          'PUBLIC has no privilege on the job id sequence');
SELECT table_privs_are('batch_ops', 'job_queue', 'batch_ops_fetch', ARRAY[]::name[],
                       'batch_ops_fetch grants no access to the job queue');

-- ------------------------------------------------------------ the role batch_ops_fetch
SELECT has_role('batch_ops_fetch', 'the role batch_ops_fetch exists');
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = 'batch_ops_fetch'), false,
          'batch_ops_fetch is NOLOGIN');
SELECT is((SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls
             FROM pg_roles WHERE rolname = 'batch_ops_fetch'), false,
          'batch_ops_fetch has no other attribute (superuser, createrole, createdb, replication, bypassrls)');

-- ------------------------------------------------------------ settings
-- The settings and defaults of README "Settings".  Defaults are boot_val (what the setting is when nothing sets it; a test
-- cluster may set others); time settings are compared as intervals, so
-- their unit counts.  Context: superuser (SET only by a superuser, and per
-- role with ALTER ROLE ... SET), sighup (postgresql.conf and reload),
-- postmaster (restart).
CREATE TEMP TABLE bo_tap_guc (n int PRIMARY KEY, name text, default_val text,
                              is_interval boolean, context text) ON COMMIT DROP;
INSERT INTO bo_tap_guc VALUES
 (1,  'batch_ops.max_create_items',   '100',      false, 'superuser'),
 (2,  'batch_ops.max_update_items',   '100',      false, 'superuser'),
 (3,  'batch_ops.max_delete_items',   '1000',     false, 'superuser'),
 (4,  'batch_ops.rate_limit',         '0',        false, 'superuser'),
 (5,  'batch_ops.rate_limit_burst',   '0',        false, 'superuser'),
 (6,  'batch_ops.idempotency_ttl',    '24 hours', true,  'superuser'),
 (7,  'batch_ops.max_async_items',    '1000000',  false, 'superuser'),
 (8,  'batch_ops.job_ttl',            '7 days',   true,  'sighup'),
 (9,  'batch_ops.max_workers',        '2',        false, 'postmaster'),
 (10, 'batch_ops.poll_interval',      '60 s',     true,  'sighup'),
 -- who may import from which URLs: an ordinary role must not widen it
 (11, 'batch_ops.fetch_url_prefixes', '',         false, 'superuser');

SELECT CASE WHEN g.is_interval
            THEN is((SELECT (s.boot_val || ' ' || s.unit)::interval FROM pg_settings s
                      WHERE s.name = g.name),
                    g.default_val::interval, format('%s defaults to %s', g.name, g.default_val))
            ELSE is((SELECT s.boot_val FROM pg_settings s WHERE s.name = g.name),
                    g.default_val, format('%s defaults to %s', g.name,
                                          CASE WHEN g.default_val = '' THEN '''''' ELSE g.default_val END))
       END
  FROM (SELECT * FROM bo_tap_guc ORDER BY n) g;
SELECT is((SELECT s.context FROM pg_settings s WHERE s.name = g.name), g.context,
          format('%s has context %s', g.name, g.context))
  FROM (SELECT * FROM bo_tap_guc ORDER BY n) g;
-- the size limits and ttls are integers, not reals
SELECT is(ARRAY(SELECT g.name FROM bo_tap_guc g
                 WHERE g.name <> 'batch_ops.fetch_url_prefixes'
                   AND NOT EXISTS (SELECT FROM pg_settings s
                                    WHERE s.name = g.name AND s.vartype = 'integer')
                 ORDER BY g.n),
          ARRAY[]::text[], 'the numeric settings are integers');
SELECT is((SELECT vartype FROM pg_settings WHERE name = 'batch_ops.fetch_url_prefixes'),
          'string', 'batch_ops.fetch_url_prefixes is a string');

SELECT * FROM finish();
ROLLBACK;
