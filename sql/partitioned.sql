--
-- Partitioned tables.
--
-- A batch can target a partitioned table: rows are routed to their
-- partitions as INSERT routes them, updates and deletes find rows through
-- the partitioned table's primary key (which includes the partition key).
-- A single partition can be targeted too, like any table.
--
CREATE EXTENSION IF NOT EXISTS batch_ops;
\pset format unaligned
\pset footer off
\set SHOW_CONTEXT never
CREATE SCHEMA bo_part;
SET search_path = bo_part, public;
SET datestyle = 'ISO, YMD';

-- Range partitioning by a date; the key is (id, day).
CREATE TABLE measurements (
    seq     integer NOT NULL,
    day     date NOT NULL,
    sensor  text NOT NULL,
    value   numeric CHECK (value >= 0),
    PRIMARY KEY (seq, day)
) PARTITION BY RANGE (day);
CREATE TABLE measurements_2024_01 PARTITION OF measurements
    FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE measurements_2024_02 PARTITION OF measurements
    FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');

-- Items go to their partitions; a row that fits no partition is a
-- validation_error (23514), and the others are stored.
SELECT batch_ops.batch_create('measurements',
    '[{"seq": 1, "day": "2024-01-15", "sensor": "a", "value": 1.5},
      {"seq": 2, "day": "2024-02-03", "sensor": "b", "value": 2},
      {"seq": 3, "day": "2024-07-01", "sensor": "c", "value": 3},
      {"seq": 4, "day": "2024-01-20", "sensor": "d", "value": -1},
      {"seq": 1, "day": "2024-01-15", "sensor": "dup", "value": 9},
      {"seq": 1, "day": "2024-02-15", "sensor": "a", "value": 4}]');
SELECT tableoid::regclass AS partition, * FROM measurements ORDER BY seq, day;

-- Updates by the composite key, given as columns or as an "id" object.
SELECT batch_ops.batch_update('measurements',
    '[{"seq": 1, "day": "2024-01-15", "value": 10},
      {"id": {"seq": 2, "day": "2024-02-03"}, "sensor": "b2"},
      {"seq": 1, "day": "2024-03-01", "value": 5},
      {"seq": 1, "value": 5}]');

-- The partition key is part of the primary key, so moving a row to another
-- partition would change its key: refused as an invalid item.
SELECT batch_ops.batch_update('measurements',
    '[{"id": {"seq": 1, "day": "2024-01-15"}, "day": "2024-02-20", "value": 11}]');

-- Deletes by key objects.
SELECT batch_ops.batch_delete('measurements',
    '[{"seq": 2, "day": "2024-02-03"}, {"id": {"seq": 1, "day": "2024-02-15"}}, {"seq": 2, "day": "2024-02-03"}]');
SELECT tableoid::regclass AS partition, * FROM measurements ORDER BY seq, day;

-- A partition targeted on its own is a table like any other: rows outside
-- its bounds are refused (23514).
SELECT batch_ops.batch_create('measurements_2024_02',
    '[{"seq": 7, "day": "2024-02-07", "sensor": "x"}, {"seq": 8, "day": "2024-01-08", "sensor": "y"}]');

-- Atomic mode across partitions: one bad item rolls back every partition.
SELECT batch_ops.batch_create('measurements',
    '[{"seq": 10, "day": "2024-01-10", "sensor": "p"}, {"seq": 11, "day": "2024-02-11", "sensor": "q"},
      {"seq": 12, "day": "1999-01-01", "sensor": "r"}]', atomic => true);
SELECT count(*) AS rows FROM measurements;

-- A default partition takes the rows no other partition does.
CREATE TABLE measurements_other PARTITION OF measurements DEFAULT;
SELECT batch_ops.batch_create('measurements',
    '[{"seq": 20, "day": "2030-01-01", "sensor": "future"}]');
SELECT tableoid::regclass AS partition, seq, day FROM measurements WHERE seq = 20;

-- List partitioning with a text key and a BEFORE trigger on one partition
-- only: the trigger changes the rows of that partition, and its RAISE is a
-- trigger_error.
CREATE TABLE tickets (
    region  text NOT NULL,
    num     integer NOT NULL,
    subject text,
    PRIMARY KEY (region, num)
) PARTITION BY LIST (region);
CREATE TABLE tickets_eu PARTITION OF tickets FOR VALUES IN ('eu');
CREATE TABLE tickets_us PARTITION OF tickets FOR VALUES IN ('us');
CREATE FUNCTION tickets_eu_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.subject IS NULL THEN
        RAISE EXCEPTION 'EU tickets need a subject';
    END IF;
    NEW.subject := '[EU] ' || NEW.subject;
    RETURN NEW;
END $$;
CREATE TRIGGER tickets_eu_before BEFORE INSERT OR UPDATE ON tickets_eu
    FOR EACH ROW EXECUTE FUNCTION tickets_eu_before();
SELECT batch_ops.batch_create('tickets',
    '[{"region": "eu", "num": 1, "subject": "login"},
      {"region": "us", "num": 1, "subject": "billing"},
      {"region": "eu", "num": 2},
      {"region": "us", "num": 2},
      {"region": "apac", "num": 1, "subject": "nowhere"}]');
SELECT batch_ops.batch_update('tickets',
    '[{"region": "eu", "num": 1, "subject": "login again"}, {"region": "us", "num": 2, "subject": "later"}]');
SELECT tableoid::regclass AS partition, * FROM tickets ORDER BY region, num;

-- Hash partitioning on a uuid key.
CREATE TABLE sessions (id uuid PRIMARY KEY, who text) PARTITION BY HASH (id);
CREATE TABLE sessions_0 PARTITION OF sessions FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE sessions_1 PARTITION OF sessions FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT batch_ops.batch_create('sessions',
    '[{"id": "00000000-0000-0000-0000-000000000001", "who": "a"},
      {"id": "00000000-0000-0000-0000-000000000002", "who": "b"},
      {"id": "00000000-0000-0000-0000-000000000003", "who": "c"}]') -> 'errors' AS errors;
SELECT count(DISTINCT tableoid) AS partitions_used, count(*) AS rows FROM sessions;
SELECT batch_ops.batch_update('sessions',
    '[{"id": "00000000-0000-0000-0000-000000000002", "who": "B"}]');
SELECT batch_ops.batch_delete('sessions',
    '["00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000003",
      "00000000-0000-0000-0000-000000000009"]');
SELECT id, who FROM sessions ORDER BY id;

SET client_min_messages = warning;
DROP SCHEMA bo_part CASCADE;
RESET client_min_messages;
RESET search_path;
RESET datestyle;
