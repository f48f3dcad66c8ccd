-- test/bench/outbound_setup.sql — the specs and helpers of outbound.sh.
--
-- psql variables: hosts, reqs, devices, slow, mem (sizes), p0 (port of the
-- "hosts"), ports (comma list: the devices' ports, 1000 devices each),
-- ka_c, dev_c, slow_c (concurrency), held_hosts, held_reqs, held_limit.
--
-- Hosts are 127.0.1.1 ... (port p0); device i (0-based) is address
-- 127.0.(2 + a / 250).(1 + a % 250) with a = i % 1000, on port
-- ports[i / 1000 + 1] — as outbound.sh's nginx configuration has them.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bo_outbound CASCADE;
CREATE SCHEMA bo_outbound;

CREATE TABLE bo_outbound.spec (name text PRIMARY KEY, spec jsonb NOT NULL);

-- spec(devices, path, options): an http-driver spec over plain http
CREATE FUNCTION bo_outbound.spec(devices jsonb, path text, options jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_catalog.jsonb_build_object(
		'driver', 'http',
		'connection_args', pg_catalog.jsonb_build_object('scheme', 'http', 'timeout', 60),
		'request', pg_catalog.jsonb_build_object('method', 'GET', 'path', path),
		'devices', devices,
		'options', options)
$$;

-- hosts(first, count, per_host, port): count hosts from index first, each
-- per_host times, round robin
CREATE FUNCTION bo_outbound.hosts(first int, count int, per_host int, port int)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'host', '127.0.1.' || (first + h + 1), 'port', port) ORDER BY r, h)
	  FROM pg_catalog.generate_series(0, per_host - 1) r,
	       pg_catalog.generate_series(0, count - 1) h
$$;

-- devices(n, ports): the first n devices
CREATE FUNCTION bo_outbound.devices(n int, ports int[])
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
	SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'host', '127.0.' || (2 + (i % 1000) / 250) || '.' || (1 + (i % 1000) % 250),
			'port', ports[i / 1000 + 1]) ORDER BY i)
	  FROM pg_catalog.generate_series(0, n - 1) i
$$;

-- wait_end(job, timeout s): the job's status once it is neither queued
-- nor running (or when the timeout is up); polls every 10 ms, each poll
-- with a fresh snapshot (READ COMMITTED)
CREATE FUNCTION bo_outbound.wait_end(job bigint, timeout float8)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	deadline timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => timeout);
BEGIN
	LOOP
		SELECT status INTO st FROM batch_ops.job_queue WHERE id = job;
		EXIT WHEN st NOT IN ('queued', 'running') OR pg_catalog.clock_timestamp() > deadline;
		PERFORM pg_catalog.pg_sleep(0.01);
	END LOOP;
	RETURN st;
END
$$;

-- first_result(job, timeout s): epoch when outbound_results() first shows
-- a row (NULL: not within the timeout); polls every 2 ms
CREATE FUNCTION bo_outbound.first_result(job bigint, timeout float8)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => timeout);
BEGIN
	LOOP
		PERFORM 1 FROM batch_ops.outbound_results(job) LIMIT 1;
		IF FOUND THEN
			RETURN extract(epoch FROM pg_catalog.clock_timestamp());
		END IF;
		EXIT WHEN pg_catalog.clock_timestamp() > deadline;
		PERFORM pg_catalog.pg_sleep(0.002);
	END LOOP;
	RETURN NULL;
END
$$;

INSERT INTO bo_outbound.spec (name, spec) VALUES
	-- keep-alive: hosts x reqs, concurrency ka_c spread over the hosts
	('ka', bo_outbound.spec(bo_outbound.hosts(0, :hosts, :reqs, :p0), '/ok',
		pg_catalog.jsonb_build_object('concurrency', :ka_c,
			'host_concurrency', greatest(1, :ka_c / :hosts)))),
	-- one request to each device
	('dev', bo_outbound.spec(bo_outbound.devices(:devices, ARRAY[:ports]), '/ok',
		pg_catalog.jsonb_build_object('concurrency', :dev_c))),
	-- latency-bound
	('slow', bo_outbound.spec(bo_outbound.devices(:slow, ARRAY[:ports]), '/slow',
		pg_catalog.jsonb_build_object('concurrency', :slow_c))),
	-- per-host limit
	('held', bo_outbound.spec(bo_outbound.hosts(0, :held_hosts, :held_reqs, :p0), '/held',
		pg_catalog.jsonb_build_object('concurrency', 200, 'host_concurrency', :held_limit))),
	-- fairness: two equal jobs on the two halves of the hosts
	('fair_a', bo_outbound.spec(bo_outbound.hosts(0, :hosts / 2, :reqs * 2, :p0), '/ok',
		pg_catalog.jsonb_build_object('concurrency', :ka_c / 2,
			'host_concurrency', greatest(1, :ka_c / :hosts)))),
	('fair_b', bo_outbound.spec(bo_outbound.hosts(:hosts / 2, :hosts / 2, :reqs * 2, :p0), '/ok',
		pg_catalog.jsonb_build_object('concurrency', :ka_c / 2,
			'host_concurrency', greatest(1, :ka_c / :hosts)))),
	-- first result: 2,000 quick targets
	('first', bo_outbound.spec(bo_outbound.hosts(0, :hosts, 2000 / :hosts, :p0), '/ok',
		pg_catalog.jsonb_build_object('concurrency', :ka_c))),
	-- cancel: slow targets, one at a time per host (about 25 s in all)
	('cancel', bo_outbound.spec(bo_outbound.hosts(0, :hosts, 1000 / :hosts, :p0), '/slow',
		pg_catalog.jsonb_build_object('concurrency', :hosts, 'host_concurrency', 1))),
	-- memory: mem targets of 1 kB output
	('mem', bo_outbound.spec(bo_outbound.hosts(0, :hosts, :mem / :hosts, :p0), '/kb',
		pg_catalog.jsonb_build_object('concurrency', :ka_c,
			'host_concurrency', greatest(1, :ka_c / :hosts))));
