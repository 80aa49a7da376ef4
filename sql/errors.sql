-- Errors name the problem; unsupported constructs are rejected at CREATE time.
CREATE EXTENSION velostream;
CREATE FOREIGN TABLE s (ts timestamptz, delay int, distance int, origin text, destination text, price numeric, f4 real)
  SERVER velostream;
CREATE TABLE plain (ts timestamptz, delay int, origin text);
\set VERBOSITY default

-- A stream cannot be read, updated or deleted from.
SELECT * FROM s;
UPDATE s SET delay = 1;
DELETE FROM s;

-- The FROM list must be one stream.
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, count(*) FROM plain GROUP BY origin;
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT a.origin, count(*) FROM s a JOIN s b ON a.origin = b.origin GROUP BY a.origin;

-- Unsupported constructs, each named.
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, destination FROM s;
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT origin, count(*) FROM s GROUP BY origin HAVING count(*) > random() * 10;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, max(ts)::text FROM s GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, count(DISTINCT (delay, origin)) FROM s GROUP BY origin;
-- Ordered-set aggregates, aggregates without a combine function, volatile
-- functions, window functions, subqueries and joins, each with its SQLSTATE.
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT origin, percentile_cont(0.5) WITHIN GROUP (ORDER BY delay) FROM s GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, sum(delay * random()) FROM s GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, array_agg(delay) FROM s GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT origin, count(*), rank() OVER (ORDER BY origin) FROM s GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT origin, count(*) FROM s WHERE delay > (SELECT 1) GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT a.origin, count(*) FROM s a JOIN s b ON a.origin = b.origin GROUP BY a.origin;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, string_agg(destination, ',') FROM s GROUP BY origin;
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT count(*) FROM s GROUP BY origin;
-- GROUP BY expressions of a type the engine does not store; functions that
-- are not IMMUTABLE in WHERE.
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT origin::bytea, count(*) FROM s GROUP BY origin::bytea;
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, count(*) FROM s WHERE random() < 0.5 GROUP BY origin;
\echo :LAST_ERROR_SQLSTATE
-- An ordering comparison of text outside the "C" collation (named here, so the
-- database's default collation does not matter; to PostgreSQL 15, C.UTF-8 is not "C").
CREATE COLLATION not_c (provider = libc, locale = 'C.UTF-8');
-- is evaluated by the executor, in that collation (a computed column).
CREATE MATERIALIZED VIEW not_c_v WITH (velostream.continuous) AS
  SELECT origin, count(*) FROM s WHERE origin COLLATE not_c < 'M' GROUP BY origin;
DROP MATERIALIZED VIEW not_c_v;
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS SELECT origin, count(*) FROM s GROUP BY origin ORDER BY origin;
CREATE MATERIALIZED VIEW v WITH (velostream.continuous) AS
  SELECT tumble(ts, interval '1 month') AS m, count(*) FROM s GROUP BY tumble(ts, interval '1 month');
CREATE MATERIALIZED VIEW v WITH (velostream.continuous, velostream.emit = 'final') AS SELECT origin, count(*) FROM s GROUP BY origin;
CREATE MATERIALIZED VIEW v WITH (velostream.continuous = false) AS SELECT origin, count(*) FROM s GROUP BY origin;
SELECT count(*) AS views_created FROM velostream.views;

-- Supported WHERE forms are accepted.
CREATE MATERIALIZED VIEW ok WITH (velostream.continuous) AS
  SELECT origin, count(*) FROM s
  WHERE (delay BETWEEN 0 AND 100 OR delay IS NULL) AND origin IN ('SFO', 'LAX') AND NOT (price > 10.5)
        AND origin COLLATE "C" < 'M' AND ts >= '2001-01-01'
  GROUP BY origin;
CREATE MATERIALIZED VIEW ok WITH (velostream.continuous) AS SELECT origin, count(*) FROM s GROUP BY origin;
CREATE MATERIALIZED VIEW IF NOT EXISTS ok WITH (velostream.continuous) AS SELECT origin, count(*) FROM s GROUP BY origin;

-- Stream options are validated.
CREATE FOREIGN TABLE bad (x int) SERVER velostream OPTIONS (partitions '0');
CREATE FOREIGN TABLE bad (x int) SERVER velostream OPTIONS (topic 'x');
-- Streams cannot change shape under their logs.
ALTER FOREIGN TABLE s ADD COLUMN extra int;
-- A continuous view's table cannot be truncated (its workers own the state).
CREATE MATERIALIZED VIEW trunc_v WITH (velostream.continuous) AS SELECT origin, count(*) AS n FROM s GROUP BY origin;
TRUNCATE trunc_v;
DROP MATERIALIZED VIEW trunc_v;

-- The internal logs go with their stream only.
DO $$
BEGIN
  EXECUTE format('DROP TABLE %s', (SELECT log_table FROM velostream.stream_partitions LIMIT 1));
EXCEPTION WHEN dependent_objects_still_exist THEN
  RAISE NOTICE 'refused: %', regexp_replace(SQLERRM, '[0-9]+', 'N');
END $$;

SELECT velostream.wait('plain');
DROP EXTENSION velostream CASCADE;
DROP COLLATION not_c;
