--
-- Import sources at submit time: which URLs batch_ops.fetch_url_prefixes
-- allows (compared as parsed URLs, not as strings), URLs refused whatever
-- the prefixes, the download limits (options and settings), and server
-- files that are not regular files.
--
-- Nothing here is fetched: try_submit() submits the import and rolls it
-- back, and prints "allowed" or the error.  The fetches themselves are in
-- test/t/030_url_policy.pl and the other test/t/03*.pl files.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS batch_ops;
RESET client_min_messages;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_sources;
SET search_path = bo_sources, public;
CREATE TABLE items (id int PRIMARY KEY, name text, qty int);

-- "allowed", or "SQLSTATE: message"; the submitted job is rolled back
CREATE FUNCTION try_submit(source text, options jsonb DEFAULT '{}') RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM batch_ops.submit_import('bo_sources.items', source, options);
  RAISE EXCEPTION USING MESSAGE = 'allowed', ERRCODE = 'P0001';
EXCEPTION WHEN OTHERS THEN
  RETURN CASE WHEN SQLERRM = 'allowed' THEN 'allowed' ELSE SQLSTATE || ': ' || SQLERRM END;
END
$$;

--
-- A prefix without a path: the origin http://127.0.0.1:18765, any path.
-- "host:port@otherhost" is userinfo, and is refused outright.
--
SET batch_ops.fetch_url_prefixes = 'http://127.0.0.1:18765';
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('http://127.0.0.1:18765/data.csv'),
  ('http://127.0.0.1:18765'),
  ('http://127.0.0.1:18765@127.0.0.2:18765/secret.csv'),
  ('http://127.0.0.1:18765:pw@127.0.0.2:18765/secret.csv'),
  ('http://user@127.0.0.1:18765/data.csv'),
  ('http://@127.0.0.1:18765/data.csv'),
  ('http://127.0.0.1:18765\@127.0.0.2:18765/secret.csv'),
  ('http://127.0.0.1:18765/a@127.0.0.2/secret.csv'),
  ('http://127.0.0.1:18765/x.csv?next=http://127.0.0.2/#@127.0.0.2'),
  ('HTTP://127.0.0.1:18765/data.csv'),
  ('http://127.0.0.1:18766/data.csv'),
  ('http://127.0.0.1/data.csv'),
  ('https://127.0.0.1:18765/data.csv'),
  ('http://127.0.0.2:18765/data.csv'),
  ('http://127.0.0.1.example.com:18765/data.csv'),
  ('http://2130706433:18765/decimal.csv'),
  ('http://0x7f.1:18765/hex.csv'),
  ('http://0177.0.0.1:18765/octal.csv'),
  ('http://127.1:18765/short.csv'),
  ('http://2130706434:18765/decimal-127.0.0.2.csv'),
  ('http://0x7f000002:18765/hex-127.0.0.2.csv'),
  ('http://127.0.0.1.:18765/trailing-dot.csv'),
  ('http://[::1]:18765/ipv6.csv')
) AS t(u);

-- default ports made explicit; host case and a trailing dot do not matter
SET batch_ops.fetch_url_prefixes = 'http://Data.Example.COM.';
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('http://data.example.com/x.csv'),
  ('http://DATA.example.com:80/x.csv'),
  ('http://data.example.com.:80/x.csv'),
  ('http://data.example.com:8080/x.csv'),
  ('https://data.example.com/x.csv'),
  ('http://data.example.com.evil.net/x.csv'),
  ('http://evil.net/data.example.com/x.csv')
) AS t(u);
SET batch_ops.fetch_url_prefixes = 'https://data.example.com:443/';
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('https://data.example.com/x.csv'),
  ('https://data.example.com:443/x.csv'),
  ('http://data.example.com:443/x.csv')
) AS t(u);

-- IPv6 literals, in any spelling of the same address, and their zones
SET batch_ops.fetch_url_prefixes = 'http://[::1]:18765/v6/';
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('http://[::1]:18765/v6/x.csv'),
  ('http://[0:0:0:0:0:0:0:1]:18765/v6/x.csv'),
  ('http://[::0001]:18765/v6/x.csv'),
  ('http://[::2]:18765/v6/x.csv'),
  ('http://[::1%25lo]:18765/v6/x.csv'),
  ('http://127.0.0.1:18765/v6/x.csv'),
  ('http://[::ffff:127.0.0.1]:18765/v6/x.csv')
) AS t(u);

--
-- A prefix with a path: a path prefix on segment boundaries, with or
-- without a trailing slash, after "." and ".." are resolved.
--
SET batch_ops.fetch_url_prefixes = 'http://127.0.0.1:18765/data';
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('http://127.0.0.1:18765/data'),
  ('http://127.0.0.1:18765/data/'),
  ('http://127.0.0.1:18765/data/x.csv'),
  ('http://127.0.0.1:18765/data/sub/x.csv'),
  ('http://127.0.0.1:18765/database.csv'),
  ('http://127.0.0.1:18765/data.csv'),
  ('http://127.0.0.1:18765/Data/x.csv'),
  ('http://127.0.0.1:18765/'),
  ('http://127.0.0.1:18765/x.csv?p=/data/x.csv'),
  ('http://127.0.0.1:18765/data/x.csv?p=../../secret.csv'),
  ('http://127.0.0.1:18765/data/x.csv#../../secret.csv'),
  ('http://127.0.0.1:18765/data/../secret.csv'),
  ('http://127.0.0.1:18765/data/./x.csv'),
  ('http://127.0.0.1:18765/data/sub/../x.csv'),
  ('http://127.0.0.1:18765/other/../data/x.csv'),
  ('http://127.0.0.1:18765/data//x.csv'),
  ('http://127.0.0.1:18765//data/x.csv'),
  ('http://127.0.0.1:18765/d%61ta/x.csv'),
  ('http://127.0.0.1:18765/data/x%20y.csv'),
  ('http://127.0.0.1:18765/data/%2e%2e/secret.csv'),
  ('http://127.0.0.1:18765/data/%2E%2E/secret.csv'),
  ('http://127.0.0.1:18765/data/.%2e/secret.csv'),
  ('http://127.0.0.1:18765/data/%2e/x.csv'),
  ('http://127.0.0.1:18765/data/..%2fsecret.csv'),
  ('http://127.0.0.1:18765/data%2f..%2fsecret.csv'),
  ('http://127.0.0.1:18765/data%2Fx.csv'),
  ('http://127.0.0.1:18765/data/..%5csecret.csv'),
  ('http://127.0.0.1:18765/data/..\secret.csv'),
  ('http://127.0.0.1:18765/data\..\secret.csv'),
  ('http://127.0.0.1:18765/data/..;/secret.csv'),
  ('http://127.0.0.1:18765/data/x%00.csv'),
  ('http://127.0.0.1:18765/data/x%zz.csv'),
  ('http://127.0.0.1:18765/data/x%2.csv')
) AS t(u);
SET batch_ops.fetch_url_prefixes = 'http://127.0.0.1:18765/data/';
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('http://127.0.0.1:18765/data'),
  ('http://127.0.0.1:18765/data/x.csv'),
  ('http://127.0.0.1:18765/database.csv')
) AS t(u);

-- several prefixes; one that is not a usable prefix allows nothing
SET batch_ops.fetch_url_prefixes = 'not a url, http://127.0.0.1:18765/a?x=1, http://user@127.0.0.1:18765/b, http://127.0.0.1:18765/c/%2e%2e/, http://127.0.0.1:18765/d#f,http://127.0.0.1:18765/e';
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('http://127.0.0.1:18765/a/x.csv'),
  ('http://127.0.0.1:18765/b/x.csv'),
  ('http://127.0.0.1:18765/c/x.csv'),
  ('http://127.0.0.1:18765/d/x.csv'),
  ('http://127.0.0.1:18765/e/x.csv')
) AS t(u);

-- without prefixes any http(s) URL is allowed, but never userinfo or an
-- ambiguous path
RESET batch_ops.fetch_url_prefixes;
SELECT u AS url, try_submit(u) AS result FROM (VALUES
  ('https://example.com/x.csv'),
  ('https://user:secret@example.com/x.csv'),
  ('https://example.com/a/%2e%2e/x.csv'),
  ('http://exa mple.com/x.csv'),
  ('ftp://example.com/x.csv')
) AS t(u);

--
-- The limits of a download: options checked at submit, with their name
-- and range; the settings are the defaults, and the caps of timeout and
-- max_size.
--
SELECT name, boot_val, unit, context FROM pg_settings
 WHERE name IN ('batch_ops.fetch_timeout', 'batch_ops.fetch_low_speed_limit',
                'batch_ops.fetch_low_speed_time', 'batch_ops.fetch_max_size')
 ORDER BY name;
SELECT o AS options, try_submit('http://127.0.0.1:18765/x.csv', o::jsonb) AS result FROM (VALUES
  ('{"timeout": 30, "low_speed_limit": 0, "low_speed_time": 5, "max_size": 1000000}'),
  ('{"timeout": 3600}'),
  ('{"timeout": 3601}'),
  ('{"timeout": 0}'),
  ('{"timeout": -1}'),
  ('{"timeout": 1.5}'),
  ('{"timeout": 1e30}'),
  ('{"timeout": "10"}'),
  ('{"timeout": null}'),
  ('{"low_speed_limit": -1}'),
  ('{"low_speed_limit": 2147483648}'),
  ('{"low_speed_time": 0}'),
  ('{"low_speed_time": 86401}'),
  ('{"max_size": 0}'),
  ('{"max_size": 9223372036854775807}'),
  ('{"max_size": 9223372036854775808}'),
  ('{"max_sizes": 1}')
) AS t(o);

-- the messages in full
SELECT batch_ops.submit_import('bo_sources.items', 'http://127.0.0.1:18765/x.csv', '{"timeout": 7200}');
SELECT batch_ops.submit_import('bo_sources.items', 'http://127.0.0.1:18765/x.csv', '{"timeout": 60, "delimitr": ";"}');
SELECT batch_ops.submit_import('bo_sources.items', 'http://admin:hunter2@127.0.0.1:18765/x.csv');
SELECT batch_ops.submit_import('bo_sources.items', 'http://127.0.0.1:18765/data/%2e%2e/x.csv');

--
-- Server files: only regular files (symbolic links are followed).
--
SELECT p AS path, try_submit(p) AS result FROM (VALUES
  ('/'),
  ('/dev/null'),
  ('/dev/zero'),
  ('/dev/urandom')
) AS t(p);
SELECT batch_ops.submit_import('bo_sources.items', '/dev/zero');

DROP SCHEMA bo_sources CASCADE;
